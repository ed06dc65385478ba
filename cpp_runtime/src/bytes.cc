#include "bytes.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

namespace aotc::internal {
namespace {

// Weights are used in place, so heap copies keep the same 64-byte alignment
// the packager gives entries inside the file.
constexpr size_t kAlignment = 64;

// Closes the descriptor on every path out of map_file; the mapping stays
// valid after close.
class FdCloser final {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() { ::close(fd_); }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

Status io_error(const std::string& path, const char* what, int err) {
  return Error(Code::kIoError, "cannot %s '%s': %s", what, path.c_str(), std::strerror(err));
}

}  // namespace

Result<std::shared_ptr<const Bytes>> Bytes::map_file(const std::string& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return io_error(path, "open", errno);
  FdCloser closer(fd);

  struct stat st;
  if (::fstat(fd, &st) != 0) return io_error(path, "stat", errno);
  if (S_ISDIR(st.st_mode))
    return Error(Code::kIoError, "cannot map '%s': is a directory", path.c_str());
  // Pipes and devices have no stable size to map.
  if (!S_ISREG(st.st_mode)) {
    return Error(Code::kIoError, "cannot map '%s': not a regular file", path.c_str());
  }
  if (st.st_size == 0) {
    return Error(Code::kCorruptPackage, "'%s' is not an aotc package: file is empty", path.c_str());
  }
  if (static_cast<uint64_t>(st.st_size) > SIZE_MAX) {
    return Error(Code::kResourceExhausted, "cannot map '%s': %lld bytes exceed the address space",
                 path.c_str(), static_cast<long long>(st.st_size));
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (addr == MAP_FAILED) return io_error(path, "mmap", errno);
  Bytes* bytes = new (std::nothrow) Bytes(static_cast<const uint8_t*>(addr), size, true);
  if (bytes == nullptr) {
    ::munmap(addr, size);
    return Error(Code::kResourceExhausted, "out of memory mapping '%s'", path.c_str());
  }
  // From here the Bytes owns the mapping (shared_ptr deletes it if it throws).
  return std::shared_ptr<const Bytes>(bytes);
}

Result<std::shared_ptr<const Bytes>> Bytes::copy_of(const void* data, size_t size) {
  // aligned_alloc wants a multiple of the alignment, and a non-zero size so an
  // empty copy still has a valid pointer.
  size_t rounded = size == 0 ? kAlignment : (size + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded < size) {
    return Error(Code::kResourceExhausted, "cannot copy %zu bytes: size overflows", size);
  }
  void* copy = std::aligned_alloc(kAlignment, rounded);
  if (copy == nullptr) {
    return Error(Code::kResourceExhausted, "cannot allocate %zu bytes for a package copy", size);
  }
  if (size != 0) std::memcpy(copy, data, size);
  Bytes* bytes = new (std::nothrow) Bytes(static_cast<const uint8_t*>(copy), size, false);
  if (bytes == nullptr) {
    std::free(copy);
    return Error(Code::kResourceExhausted, "cannot allocate %zu bytes for a package copy", size);
  }
  return std::shared_ptr<const Bytes>(bytes);
}

Bytes::~Bytes() {
  if (mapped_) {
    ::munmap(const_cast<uint8_t*>(data_), size_);
  } else {
    std::free(const_cast<uint8_t*>(data_));
  }
}

}  // namespace aotc::internal
