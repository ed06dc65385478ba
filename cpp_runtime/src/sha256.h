// SHA-256 (FIPS 180-4) for package entry verification.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace aotc::internal {

// Lowercase hex digest of |size| bytes at |data|.
std::string sha256_hex(const uint8_t* data, size_t size);

// Incremental form, for data that arrives in pieces (a weight decompressed
// chunk by chunk). Thread-compatible: one thread at a time per object.
class Sha256 final {
 public:
  Sha256();
  void update(const uint8_t* data, size_t size);
  // Lowercase hex digest; the object must not be updated afterwards.
  std::string finish_hex();

 private:
  void compress(const uint8_t* block);
  uint32_t state_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

}  // namespace aotc::internal
