// Bytes: an immutable, shared block of package bytes, either a read-only mmap
// of a file or an owned heap copy. Everything that points into a package
// (archive entries, weights used in place) keeps a shared_ptr<const Bytes>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "status.h"

namespace aotc::internal {

class Bytes final {
 public:
  // Maps |path| read-only. Empty files are refused (not a package).
  static Result<std::shared_ptr<const Bytes>> map_file(const std::string& path);
  // Copies |size| bytes into 64-byte aligned heap memory.
  static Result<std::shared_ptr<const Bytes>> copy_of(const void* data, size_t size);

  ~Bytes();
  Bytes(const Bytes&) = delete;
  Bytes& operator=(const Bytes&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  Bytes(const uint8_t* data, size_t size, bool mapped)
      : data_(data), size_(size), mapped_(mapped) {}
  const uint8_t* data_;
  size_t size_;
  bool mapped_;
};

}  // namespace aotc::internal
