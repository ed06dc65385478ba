// SHA-256 (FIPS 180-4) for package entry verification.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace aotc::internal {

// Lowercase hex digest of |size| bytes at |data|.
std::string sha256_hex(const uint8_t* data, size_t size);

}  // namespace aotc::internal
