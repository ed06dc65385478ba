#include "library_loader.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "aotc/aotc.h"

namespace aotc::internal {
namespace {

Status write_all(int fd, std::string_view image, const char* what) {
  const char* p = image.data();
  size_t left = image.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return Error(Code::kIoError, "writing the model library to %s: %s", what,
                   std::strerror(errno));
    p += n;
    left -= static_cast<size_t>(n);
  }
  return OkStatus();
}

Result<void*> dlopen_path(const std::string& path, const std::string& label) {
  dlerror();
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    return Error(Code::kIncompatible, "cannot load the model library of %s: %s", label.c_str(),
                 why ? why : "unknown dlopen error");
  }
  return handle;
}

// On success |*out_fd| is the memfd, to be closed after dlclose.
Result<void*> load_from_memfd(std::string_view image, const std::string& label, int* out_fd) {
  int fd = ::memfd_create("aotc-model", MFD_CLOEXEC);
  if (fd < 0) return Error(Code::kUnsupported, "memfd_create failed: %s", std::strerror(errno));
  Status written = write_all(fd, image, "a memfd");
  if (!written.ok()) {
    ::close(fd);
    return written;
  }
  auto handle = dlopen_path("/proc/self/fd/" + std::to_string(fd), label);
  if (handle.ok())
    *out_fd = fd;
  else
    ::close(fd);
  return handle;
}

Result<void*> load_from_tempfile(std::string_view image, const std::string& temp_dir,
                                 const std::string& label) {
  std::string dir = temp_dir;
  if (dir.empty()) {
    const char* env = std::getenv("TMPDIR");
    dir = env && *env ? env : "/tmp";
  }
  // pid and a counter make the name unique among libraries still loaded:
  // glibc recognises loaded libraries by path, even after unlink.
  static std::atomic<unsigned> counter{0};
  std::string path = dir + "/aotc-model-" + std::to_string(::getpid()) + "-" +
                     std::to_string(counter.fetch_add(1)) + "-XXXXXX.so";
  int fd = ::mkstemps(path.data(), 3);
  if (fd < 0)
    return Error(Code::kIoError, "cannot create a temp file in '%s' for the model library: %s",
                 dir.c_str(), std::strerror(errno));
  Status written = write_all(fd, image, path.c_str());
  ::close(fd);
  Result<void*> handle = written.ok() ? dlopen_path(path, label) : Result<void*>(written);
  ::unlink(path.c_str());  // loaded or not, leave nothing behind
  return handle;
}

}  // namespace

Result<LoadedLibrary> LoadedLibrary::load(std::string_view image, int mode,
                                          const std::string& temp_dir, const std::string& label) {
  if (mode == AOTC_LIBRARY_LOADING_TEMPFILE) {
    AOTC_ASSIGN_OR_RETURN(void* handle, load_from_tempfile(image, temp_dir, label));
    return LoadedLibrary(handle, -1, "tempfile");
  }
  int fd = -1;
  Result<void*> from_memfd = load_from_memfd(image, label, &fd);
  if (from_memfd.ok()) return LoadedLibrary(from_memfd.value(), fd, "memfd");
  if (mode == AOTC_LIBRARY_LOADING_MEMFD) return from_memfd.status();
  // A library that fails to load from a memfd because of its own content
  // (bad ELF, missing symbol) fails from a file too; retrying costs little
  // and covers hosts where memfds are not executable.
  Result<void*> from_file = load_from_tempfile(image, temp_dir, label);
  if (from_file.ok()) return LoadedLibrary(from_file.value(), -1, "tempfile");
  return from_file.status().annotate("after memfd failed (" + from_memfd.status().message() + ")");
}

LoadedLibrary::~LoadedLibrary() {
  if (handle_) ::dlclose(handle_);
  if (fd_ >= 0) ::close(fd_);
}

void* LoadedLibrary::symbol(const char* name) const { return ::dlsym(handle_, name); }

Status check_cpu_isa(const std::string& isa) {
#if defined(__x86_64__)
  struct Feature {
    const char* name;
    int present;
  };
  __builtin_cpu_init();
  const Feature v2[] = {{"sse3", __builtin_cpu_supports("sse3")},
                        {"ssse3", __builtin_cpu_supports("ssse3")},
                        {"sse4.1", __builtin_cpu_supports("sse4.1")},
                        {"sse4.2", __builtin_cpu_supports("sse4.2")},
                        {"popcnt", __builtin_cpu_supports("popcnt")}};
  const Feature v3[] = {{"avx", __builtin_cpu_supports("avx")},
                        {"avx2", __builtin_cpu_supports("avx2")},
                        {"bmi", __builtin_cpu_supports("bmi")},
                        {"bmi2", __builtin_cpu_supports("bmi2")},
                        {"fma", __builtin_cpu_supports("fma")}};
  const Feature v4[] = {{"avx512f", __builtin_cpu_supports("avx512f")},
                        {"avx512bw", __builtin_cpu_supports("avx512bw")},
                        {"avx512cd", __builtin_cpu_supports("avx512cd")},
                        {"avx512dq", __builtin_cpu_supports("avx512dq")},
                        {"avx512vl", __builtin_cpu_supports("avx512vl")}};
  int level = 0;
  if (isa == "x86-64")
    level = 1;
  else if (isa == "x86-64-v2")
    level = 2;
  else if (isa == "x86-64-v3")
    level = 3;
  else if (isa == "x86-64-v4")
    level = 4;
  else
    return Error(Code::kIncompatible,
                 "package built for ISA '%.64s', which this x86-64 host cannot run", isa.c_str());
  std::string missing;
  auto require = [&](const Feature* features, size_t n) {
    for (size_t i = 0; i < n; ++i)
      if (!features[i].present)
        missing += (missing.empty() ? "" : ", ") + std::string(features[i].name);
  };
  if (level >= 2) require(v2, 5);
  if (level >= 3) require(v3, 5);
  if (level >= 4) require(v4, 5);
  if (!missing.empty())
    return Error(Code::kIncompatible, "package built for %s but this CPU lacks: %s", isa.c_str(),
                 missing.c_str());
  return OkStatus();
#else
  return Error(Code::kIncompatible,
               "package built for ISA '%.64s'; this runtime's host is not x86-64", isa.c_str());
#endif
}

}  // namespace aotc::internal
