#include "cuda/cuda_driver.h"

#include <dlfcn.h>

#include <mutex>

namespace aotc::internal {

namespace cu {

bool is_sticky_error(CUresult result) {
  switch (result) {
    case CUDA_ERROR_ECC_UNCORRECTABLE:
    case CUDA_ERROR_NVLINK_UNCORRECTABLE:
    case CUDA_ERROR_CONTAINED:
    case CUDA_ERROR_ILLEGAL_ADDRESS:
    case CUDA_ERROR_LAUNCH_TIMEOUT:
    case CUDA_ERROR_CONTEXT_IS_DESTROYED:
    case CUDA_ERROR_ASSERT:
    case CUDA_ERROR_HARDWARE_STACK_ERROR:
    case CUDA_ERROR_ILLEGAL_INSTRUCTION:
    case CUDA_ERROR_MISALIGNED_ADDRESS:
    case CUDA_ERROR_INVALID_ADDRESS_SPACE:
    case CUDA_ERROR_INVALID_PC:
    case CUDA_ERROR_LAUNCH_FAILED:
    case CUDA_ERROR_TENSOR_MEMORY_LEAK:
    case CUDA_ERROR_EXTERNAL_DEVICE:
    case CUDA_ERROR_UNKNOWN:
      return true;
    default:
      return false;
  }
}

}  // namespace cu

namespace {

// Looks up |name| and stores it in |slot|; returns false when missing.
template <typename Fn>
bool lookup(void* handle, const char* name, Fn* slot) {
  void* symbol = dlsym(handle, name);
  *slot = reinterpret_cast<Fn>(symbol);
  return symbol != nullptr;
}

}  // namespace

Status CudaDriver::resolve_symbols() {
  // The versioned names are what cuda.h maps the plain names to.
#define AOTC_CUDA_SYMBOL(field, name)                                                           \
  if (!lookup(handle_, name, &field))                                                           \
    return Error(Code::kDeviceUnavailable,                                                      \
                 "the CUDA driver %s lacks %s (driver too old? aotc needs CUDA 11.2 or newer)", \
                 path_.c_str(), name);
  AOTC_CUDA_SYMBOL(cuGetErrorName, "cuGetErrorName")
  AOTC_CUDA_SYMBOL(cuGetErrorString, "cuGetErrorString")
  AOTC_CUDA_SYMBOL(cuInit, "cuInit")
  AOTC_CUDA_SYMBOL(cuDriverGetVersion, "cuDriverGetVersion")
  AOTC_CUDA_SYMBOL(cuDeviceGetCount, "cuDeviceGetCount")
  AOTC_CUDA_SYMBOL(cuDeviceGet, "cuDeviceGet")
  AOTC_CUDA_SYMBOL(cuDeviceGetAttribute, "cuDeviceGetAttribute")
  AOTC_CUDA_SYMBOL(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain")
  AOTC_CUDA_SYMBOL(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2")
  AOTC_CUDA_SYMBOL(cuCtxSetCurrent, "cuCtxSetCurrent")
  AOTC_CUDA_SYMBOL(cuCtxGetCurrent, "cuCtxGetCurrent")
  AOTC_CUDA_SYMBOL(cuMemAlloc, "cuMemAlloc_v2")
  AOTC_CUDA_SYMBOL(cuMemFree, "cuMemFree_v2")
  AOTC_CUDA_SYMBOL(cuMemAllocAsync, "cuMemAllocAsync")
  AOTC_CUDA_SYMBOL(cuMemFreeAsync, "cuMemFreeAsync")
  AOTC_CUDA_SYMBOL(cuDeviceGetDefaultMemPool, "cuDeviceGetDefaultMemPool")
  AOTC_CUDA_SYMBOL(cuMemPoolSetAttribute, "cuMemPoolSetAttribute")
  AOTC_CUDA_SYMBOL(cuMemcpyAsync, "cuMemcpyAsync")
  AOTC_CUDA_SYMBOL(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2")
  AOTC_CUDA_SYMBOL(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2")
  AOTC_CUDA_SYMBOL(cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2")
  AOTC_CUDA_SYMBOL(cuMemsetD8Async, "cuMemsetD8Async")
  AOTC_CUDA_SYMBOL(cuStreamSynchronize, "cuStreamSynchronize")
  AOTC_CUDA_SYMBOL(cuStreamIsCapturing, "cuStreamIsCapturing")
  AOTC_CUDA_SYMBOL(cuModuleLoadData, "cuModuleLoadData")
  AOTC_CUDA_SYMBOL(cuModuleUnload, "cuModuleUnload")
  AOTC_CUDA_SYMBOL(cuModuleGetFunction, "cuModuleGetFunction")
  AOTC_CUDA_SYMBOL(cuFuncSetAttribute, "cuFuncSetAttribute")
  AOTC_CUDA_SYMBOL(cuLaunchKernel, "cuLaunchKernel")
  AOTC_CUDA_SYMBOL(cuPointerGetAttribute, "cuPointerGetAttribute")
#undef AOTC_CUDA_SYMBOL
  return OkStatus();
}

Result<std::unique_ptr<CudaDriver>> CudaDriver::load(const char* path) {
  std::unique_ptr<CudaDriver> driver(new CudaDriver());
  driver->path_ = path;
  // RTLD_LOCAL: the driver's symbols must not leak into the global namespace
  // where a model library or the host application could bind to them.
  driver->handle_ = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (driver->handle_ == nullptr) {
    const char* reason = dlerror();
    return Error(Code::kDeviceUnavailable, "no CUDA driver found (%s)",
                 reason != nullptr ? reason : path);
  }
  AOTC_RETURN_IF_ERROR(driver->resolve_symbols());
  cu::CUresult result = driver->cuInit(0);
  if (result != cu::CUDA_SUCCESS) {
    return Error(Code::kDeviceUnavailable, "cuInit failed: %s", driver->describe(result).c_str());
  }
  return driver;
}

Result<const CudaDriver*> CudaDriver::get() {
  // Loaded once per process and never unloaded: devices may be released
  // during static destruction, after any owner of the driver would be gone.
  static std::once_flag once;
  static const CudaDriver* driver = nullptr;
  static Status* failure = nullptr;
  std::call_once(once, [] {
    Result<std::unique_ptr<CudaDriver>> loaded = load("libcuda.so.1");
    if (loaded.ok()) {
      driver = std::move(loaded).value().release();
    } else {
      failure = new Status(loaded.status());
    }
  });
  if (driver == nullptr) return *failure;
  return driver;
}

CudaDriver::~CudaDriver() {
  if (handle_ != nullptr) dlclose(handle_);
}

std::string CudaDriver::describe(cu::CUresult result) const {
  const char* name = nullptr;
  const char* text = nullptr;
  if (cuGetErrorName == nullptr || cuGetErrorName(result, &name) != cu::CUDA_SUCCESS ||
      name == nullptr) {
    return "CUDA error " + std::to_string(result);
  }
  std::string out = name;
  if (cuGetErrorString != nullptr && cuGetErrorString(result, &text) == cu::CUDA_SUCCESS &&
      text != nullptr) {
    out += " (";
    out += text;
    out += ")";
  }
  return out;
}

}  // namespace aotc::internal
