// Loads a model library from package bytes without leaving files behind:
// dlopen of a memfd, or, where memfd is unavailable or not executable
// (memfd_noexec, hardened kernels), of a temp file that is unlinked right
// after dlopen. See docs/SECURITY.md: this runs the package author's code.
#pragma once

#include <string>
#include <string_view>

#include "status.h"

namespace aotc::internal {

class LoadedLibrary final {
 public:
  // |mode| is aotc_library_loading_e; |temp_dir| empty means $TMPDIR or /tmp.
  static Result<LoadedLibrary> load(std::string_view image, int mode, const std::string& temp_dir,
                                    const std::string& label);
  LoadedLibrary(LoadedLibrary&& other) noexcept
      : handle_(other.handle_), fd_(other.fd_), how_(other.how_) {
    other.handle_ = nullptr;
    other.fd_ = -1;
  }
  LoadedLibrary& operator=(LoadedLibrary&&) = delete;
  LoadedLibrary(const LoadedLibrary&) = delete;
  ~LoadedLibrary();

  // nullptr when absent.
  void* symbol(const char* name) const;
  // "memfd" or "tempfile": how it was loaded (tests check the fallback).
  const char* how() const { return how_; }

 private:
  LoadedLibrary(void* handle, int fd, const char* how) : handle_(handle), fd_(fd), how_(how) {}
  void* handle_;
  // The memfd stays open while the library is loaded: glibc recognises loaded
  // libraries by path, so a reused "/proc/self/fd/N" would hand back an
  // earlier model's library.
  int fd_;
  const char* how_;
};

// Checks that this CPU can run code built for |isa| ("x86-64", "x86-64-v2",
// "x86-64-v3", "x86-64-v4"). Code::kIncompatible names the missing features.
Status check_cpu_isa(const std::string& isa);

}  // namespace aotc::internal
