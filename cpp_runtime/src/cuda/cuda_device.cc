#include "cuda/cuda_device.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "cuda/cuda_driver.h"

namespace aotc::internal {

// Shared by everything that uses the device: the first sticky error wins.
struct CudaDevice::DeadFlag {
  std::atomic<bool> dead{false};
  std::mutex mutex;
  std::string first_error;  // guarded by |mutex|; set once
};

namespace {

cu::CUdeviceptr device_ptr(const void* ptr) {
  return static_cast<cu::CUdeviceptr>(reinterpret_cast<uintptr_t>(ptr));
}
void* host_ptr(cu::CUdeviceptr ptr) { return reinterpret_cast<void*>(static_cast<uintptr_t>(ptr)); }
cu::CUstream stream_of(void* stream) { return static_cast<cu::CUstream>(stream); }

std::string bytes_detail(uint64_t bytes) { return " (" + std::to_string(bytes) + " bytes)"; }

Code code_for(cu::CUresult result) {
  if (cu::is_sticky_error(result)) return Code::kDeviceError;
  switch (result) {
    case cu::CUDA_ERROR_OUT_OF_MEMORY:
      return Code::kResourceExhausted;
    case cu::CUDA_ERROR_INVALID_IMAGE:
    case cu::CUDA_ERROR_NO_BINARY_FOR_GPU:
    case cu::CUDA_ERROR_INVALID_PTX:
    case cu::CUDA_ERROR_JIT_COMPILER_NOT_FOUND:
    case cu::CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
    case cu::CUDA_ERROR_JIT_COMPILATION_DISABLED:
      return Code::kIncompatible;
    case cu::CUDA_ERROR_NOT_FOUND:
      return Code::kNotFound;
    case cu::CUDA_ERROR_NO_DEVICE:
    case cu::CUDA_ERROR_INVALID_DEVICE:
    case cu::CUDA_ERROR_DEVICE_UNAVAILABLE:
    case cu::CUDA_ERROR_STUB_LIBRARY:
    case cu::CUDA_ERROR_NOT_INITIALIZED:
    case cu::CUDA_ERROR_DEINITIALIZED:
      return Code::kDeviceUnavailable;
    default:
      return Code::kDeviceError;
  }
}

// Parses "sm_90", "sm_90a", "sm_100f" (optionally "cuda:"-prefixed): the last
// digit is the minor version, the digits before it the major.
bool parse_arch(std::string arch, int* major, int* minor, char* suffix) {
  if (arch.rfind("cuda:", 0) == 0) arch = arch.substr(5);
  if (arch.rfind("sm_", 0) != 0) return false;
  std::string rest = arch.substr(3);
  *suffix = '\0';
  if (!rest.empty() && (rest.back() == 'a' || rest.back() == 'f')) {
    *suffix = rest.back();
    rest.pop_back();
  }
  if (rest.size() < 2 || rest.size() > 3) return false;
  for (char c : rest) {
    if (c < '0' || c > '9') return false;
  }
  *major = std::stoi(rest.substr(0, rest.size() - 1));
  *minor = rest.back() - '0';
  return true;
}

}  // namespace

Result<std::shared_ptr<CudaDevice>> CudaDevice::open(int index) {
  AOTC_ASSIGN_OR_RETURN(const CudaDriver* driver, CudaDriver::get());
  // One device object per index while any user holds it. When the last user
  // lets go, the primary context is released; a later open() starts afresh
  // (the only way back from a sticky error, once nothing else in the process
  // holds the context).
  static std::mutex* mutex = new std::mutex();
  static auto* devices = new std::map<int, std::weak_ptr<CudaDevice>>();
  std::lock_guard<std::mutex> lock(*mutex);
  std::weak_ptr<CudaDevice>& slot = (*devices)[index];
  if (std::shared_ptr<CudaDevice> existing = slot.lock()) return existing;
  AOTC_ASSIGN_OR_RETURN(std::shared_ptr<CudaDevice> device, create(driver, index));
  slot = device;
  return device;
}

Result<std::shared_ptr<CudaDevice>> CudaDevice::create(const CudaDriver* driver, int index) {
  if (index < 0) {
    return Error(Code::kInvalidArgument, "cuda:%d is not a valid device index", index);
  }
  int count = 0;
  cu::CUresult result = driver->cuDeviceGetCount(&count);
  if (result != cu::CUDA_SUCCESS) {
    return Error(Code::kDeviceUnavailable, "cuDeviceGetCount failed: %s",
                 driver->describe(result).c_str());
  }
  if (index >= count) {
    return Error(Code::kDeviceUnavailable,
                 "cuda:%d requested but the CUDA driver reports %d device(s)", index, count);
  }
  std::shared_ptr<CudaDevice> device(new CudaDevice());
  device->driver_ = driver;
  device->index_ = index;
  device->dead_ = std::make_shared<DeadFlag>();
  // AOTC_CUDA_SYNC_DEBUG=1 turns sync-debug mode on for every model, the way
  // CUDA_LAUNCH_BLOCKING does for CUDA programs: a faulting kernel is named.
  const char* sync_debug = std::getenv("AOTC_CUDA_SYNC_DEBUG");
  device->sync_debug_ = sync_debug != nullptr && *sync_debug != '\0' && *sync_debug != '0';
  const std::string where = "opening cuda:" + std::to_string(index);
  auto fail = [&](const Status& status) { return status.annotate(where); };

  Status status = device->check(driver->cuDeviceGet(&device->device_, index), "cuDeviceGet");
  if (!status.ok()) return fail(status);
  status =
      device->check(driver->cuDriverGetVersion(&device->driver_version_), "cuDriverGetVersion");
  if (!status.ok()) return fail(status);
  struct {
    int attribute;
    int* value;
  } attributes[] = {
      {cu::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, &device->cc_major_},
      {cu::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, &device->cc_minor_},
      {cu::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, &device->max_shared_optin_},
  };
  for (const auto& attribute : attributes) {
    status = device->check(
        driver->cuDeviceGetAttribute(attribute.value, attribute.attribute, device->device_),
        "cuDeviceGetAttribute", " (attribute " + std::to_string(attribute.attribute) + ")");
    if (!status.ok()) return fail(status);
  }
  int pools = 0;
  status =
      device->check(driver->cuDeviceGetAttribute(
                        &pools, cu::CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, device->device_),
                    "cuDeviceGetAttribute", " (memory pools supported)");
  if (!status.ok()) return fail(status);
  device->memory_pools_ = pools != 0;
  device->arch_ = "sm_" + std::to_string(device->cc_major_) + std::to_string(device->cc_minor_);

  cu::CUcontext context = nullptr;
  status = device->check(driver->cuDevicePrimaryCtxRetain(&context, device->device_),
                         "cuDevicePrimaryCtxRetain");
  if (!status.ok()) return fail(status);
  device->context_ = context;  // released by the destructor from here on
  status = device->enter();
  if (!status.ok()) return fail(status);

  if (device->memory_pools_) {
    // The default pool trims itself to its release threshold (0) at every
    // synchronisation, so each run would map fresh memory. Keep it instead:
    // per-run workspaces then cost a pool lookup, not a driver allocation.
    cu::CUmemoryPool pool = nullptr;
    status = device->check(driver->cuDeviceGetDefaultMemPool(&pool, device->device_),
                           "cuDeviceGetDefaultMemPool");
    if (!status.ok()) return fail(status);
    uint64_t threshold = UINT64_MAX;
    status = device->check(
        driver->cuMemPoolSetAttribute(pool, cu::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &threshold),
        "cuMemPoolSetAttribute", " (release threshold)");
    if (!status.ok()) return fail(status);
  }
  return device;
}

CudaDevice::~CudaDevice() {
  if (context_ != nullptr) (void)driver_->cuDevicePrimaryCtxRelease(device_);
}

bool CudaDevice::is_dead() const { return dead_->dead.load(std::memory_order_acquire); }

Status CudaDevice::enter() const {
  if (is_dead()) {
    std::lock_guard<std::mutex> lock(dead_->mutex);
    return Error(Code::kDeviceError, "cuda:%d is unusable after an earlier CUDA error: %s", index_,
                 dead_->first_error.c_str());
  }
  return check(driver_->cuCtxSetCurrent(static_cast<cu::CUcontext>(context_)), "cuCtxSetCurrent");
}

Status CudaDevice::check(int result, const char* call, const std::string& detail,
                         const std::string& hint) const {
  if (result == cu::CUDA_SUCCESS) return OkStatus();
  std::string message = std::string(call) + " failed" + detail + ": " + driver_->describe(result);
  if (!hint.empty()) {
    message += " (" + hint + ")";
  } else if (cu::is_sticky_error(result) && !sync_debug_) {
    // Kernel faults are reported by whichever call comes next.
    message += " (a kernel launched earlier failed; sync-debug mode names the kernel that faulted)";
  }
  if (cu::is_sticky_error(result)) {
    {
      std::lock_guard<std::mutex> lock(dead_->mutex);
      if (!dead_->dead.load(std::memory_order_relaxed)) {
        dead_->first_error = message;
        dead_->dead.store(true, std::memory_order_release);
      }
    }
    message += "; cuda:" + std::to_string(index_) +
               " is now unusable in this process (CUDA errors of this kind are sticky)";
  }
  return Status(code_for(result), std::move(message));
}

Status CudaDevice::check_target(const std::string& arch, uint32_t min_driver_version) const {
  int major = 0, minor = 0;
  char suffix = '\0';
  if (!parse_arch(arch, &major, &minor, &suffix)) {
    return Error(Code::kIncompatible,
                 "package target '%s' is not a CUDA architecture of the form sm_XY", arch.c_str());
  }
  std::string package_arch = arch.rfind("cuda:", 0) == 0 ? arch.substr(5) : arch;
  // SASS runs on its own major architecture at the same or a newer minor;
  // arch-specific code ("a") only on exactly its architecture.
  bool compatible = major == cc_major_ && (suffix == 'a' ? minor == cc_minor_ : minor <= cc_minor_);
  if (!compatible) {
    return Error(Code::kIncompatible, "package built for %s but cuda:%d is %s",
                 package_arch.c_str(), index_, arch_.c_str());
  }
  if (static_cast<int64_t>(driver_version_) < static_cast<int64_t>(min_driver_version)) {
    return Error(Code::kIncompatible,
                 "package needs CUDA driver >= %u, this host has %d (update the NVIDIA driver)",
                 min_driver_version, driver_version_);
  }
  return OkStatus();
}

Result<void*> CudaDevice::alloc(uint64_t bytes) {
  if (bytes == 0) return static_cast<void*>(nullptr);
  AOTC_RETURN_IF_ERROR(enter());
  cu::CUdeviceptr ptr = 0;
  AOTC_RETURN_IF_ERROR(check(driver_->cuMemAlloc(&ptr, bytes), "cuMemAlloc", bytes_detail(bytes)));
  return host_ptr(ptr);
}

void CudaDevice::free(void* ptr) {
  if (ptr == nullptr || !enter().ok()) return;
  (void)check(driver_->cuMemFree(device_ptr(ptr)), "cuMemFree");
}

Result<void*> CudaDevice::alloc_async(uint64_t bytes, void* stream) {
  if (bytes == 0) return static_cast<void*>(nullptr);
  if (!memory_pools_) {
    return Error(Code::kUnsupported,
                 "cuda:%d does not support stream-ordered allocation (cuMemAllocAsync)", index_);
  }
  AOTC_RETURN_IF_ERROR(enter());
  cu::CUdeviceptr ptr = 0;
  AOTC_RETURN_IF_ERROR(check(driver_->cuMemAllocAsync(&ptr, bytes, stream_of(stream)),
                             "cuMemAllocAsync", bytes_detail(bytes)));
  return host_ptr(ptr);
}

void CudaDevice::free_async(void* ptr, void* stream) {
  if (ptr == nullptr || !enter().ok()) return;
  (void)check(driver_->cuMemFreeAsync(device_ptr(ptr), stream_of(stream)), "cuMemFreeAsync");
}

Status CudaDevice::memcpy_async(void* dst, const void* src, uint64_t bytes, int32_t kind,
                                void* stream) {
  if (bytes == 0) return OkStatus();
  if (kind < AOTC_ABI_MEMCPY_HOST_TO_DEVICE || kind > AOTC_ABI_MEMCPY_DEVICE_TO_DEVICE) {
    return Error(Code::kInvalidArgument, "memcpy_async: unknown copy kind %d", kind);
  }
  AOTC_RETURN_IF_ERROR(enter());
  cu::CUstream s = stream_of(stream);
  switch (kind) {
    case AOTC_ABI_MEMCPY_HOST_TO_DEVICE:
      return check(driver_->cuMemcpyHtoDAsync(device_ptr(dst), src, bytes, s), "cuMemcpyHtoDAsync",
                   bytes_detail(bytes));
    case AOTC_ABI_MEMCPY_DEVICE_TO_HOST:
      return check(driver_->cuMemcpyDtoHAsync(dst, device_ptr(src), bytes, s), "cuMemcpyDtoHAsync",
                   bytes_detail(bytes));
    default:
      return check(driver_->cuMemcpyDtoDAsync(device_ptr(dst), device_ptr(src), bytes, s),
                   "cuMemcpyDtoDAsync", bytes_detail(bytes));
  }
}

Status CudaDevice::memset_async(void* dst, int32_t value, uint64_t bytes, void* stream) {
  if (bytes == 0) return OkStatus();
  AOTC_RETURN_IF_ERROR(enter());
  return check(driver_->cuMemsetD8Async(device_ptr(dst), static_cast<unsigned char>(value), bytes,
                                        stream_of(stream)),
               "cuMemsetD8Async", bytes_detail(bytes));
}

Status CudaDevice::synchronize(void* stream) {
  AOTC_RETURN_IF_ERROR(enter());
  return check(driver_->cuStreamSynchronize(stream_of(stream)), "cuStreamSynchronize");
}

bool CudaDevice::is_capturing(void* stream) const {
  int capture = 0;
  if (!enter().ok() || driver_->cuStreamIsCapturing(stream_of(stream), &capture) != 0) return false;
  return capture != 0;
}

bool CudaDevice::owns_pointer(const void* ptr) const {
  if (ptr == nullptr || !enter().ok()) return false;
  unsigned memory_type = 0;
  if (driver_->cuPointerGetAttribute(&memory_type, cu::CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                                     device_ptr(ptr)) != cu::CUDA_SUCCESS ||
      memory_type != cu::CU_MEMORYTYPE_DEVICE) {
    return false;
  }
  int ordinal = -1;
  if (driver_->cuPointerGetAttribute(&ordinal, cu::CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
                                     device_ptr(ptr)) != cu::CUDA_SUCCESS) {
    return false;
  }
  return ordinal == index_;
}

Result<void*> CudaDevice::module_load(const void* image, uint64_t size) {
  if (image == nullptr || size == 0) {
    return Error(Code::kInvalidArgument, "module_load: empty kernel image");
  }
  AOTC_RETURN_IF_ERROR(enter());
  // cuModuleLoadData reads ELF and fatbin images by their headers, and PTX up
  // to a NUL, which an archive entry does not carry: copy PTX to add one.
  const auto* bytes = static_cast<const unsigned char*>(image);
  const unsigned char kElf[4] = {0x7f, 'E', 'L', 'F'};
  const unsigned char kFatbin[4] = {0x50, 0xed, 0x55, 0xba};  // 0xba55ed50, little-endian
  bool binary =
      size >= 4 && (std::memcmp(bytes, kElf, 4) == 0 || std::memcmp(bytes, kFatbin, 4) == 0);
  std::string ptx;
  if (!binary) ptx.assign(reinterpret_cast<const char*>(bytes), size);
  cu::CUmodule module = nullptr;
  cu::CUresult result = driver_->cuModuleLoadData(&module, binary ? image : ptx.c_str());
  if (result == cu::CUDA_SUCCESS) return static_cast<void*>(module);
  std::string detail =
      std::string(" (") + (binary ? "cubin" : "PTX") + ", " + std::to_string(size) + " bytes)";
  Status status = check(result, "cuModuleLoadData", detail);
  if (status.code() == Code::kIncompatible) {
    status =
        Status(status.code(), status.message() + "; cuda:" + std::to_string(index_) + " is " +
                                  arch_ + " with CUDA driver " + std::to_string(driver_version_));
  }
  return status;
}

void CudaDevice::module_unload(void* module) {
  if (module == nullptr || !enter().ok()) return;
  (void)check(driver_->cuModuleUnload(static_cast<cu::CUmodule>(module)), "cuModuleUnload");
}

Result<void*> CudaDevice::get_function(void* module, const char* name) {
  if (module == nullptr || name == nullptr) {
    return Error(Code::kInvalidArgument, "get_function: null module or name");
  }
  AOTC_RETURN_IF_ERROR(enter());
  cu::CUfunction function = nullptr;
  AOTC_RETURN_IF_ERROR(
      check(driver_->cuModuleGetFunction(&function, static_cast<cu::CUmodule>(module), name),
            "cuModuleGetFunction", std::string(" for '") + name + "'"));
  return static_cast<void*>(function);
}

Status CudaDevice::set_shared_memory(void* function, uint32_t bytes) {
  if (static_cast<int64_t>(bytes) > max_shared_optin_) {
    return Error(Code::kUnsupported,
                 "kernel needs %u bytes of dynamic shared memory but cuda:%d (%s) allows at most "
                 "%d per block",
                 bytes, index_, arch_.c_str(), max_shared_optin_);
  }
  AOTC_RETURN_IF_ERROR(enter());
  return check(driver_->cuFuncSetAttribute(static_cast<cu::CUfunction>(function),
                                           cu::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                           static_cast<int>(bytes)),
               "cuFuncSetAttribute", " (max dynamic shared memory " + std::to_string(bytes) + ")");
}

Status CudaDevice::launch(void* function, const uint32_t grid[3], const uint32_t block[3],
                          uint32_t shared_bytes, void* stream, void** args,
                          const char* debug_handle) {
  AOTC_RETURN_IF_ERROR(enter());
  const std::string kernel =
      std::string(" for kernel '") + (debug_handle != nullptr ? debug_handle : "?") + "'";
  cu::CUresult result = driver_->cuLaunchKernel(static_cast<cu::CUfunction>(function), grid[0],
                                                grid[1], grid[2], block[0], block[1], block[2],
                                                shared_bytes, stream_of(stream), args, nullptr);
  if (result != cu::CUDA_SUCCESS) {
    std::string hint;
    if (result == cu::CUDA_ERROR_INVALID_VALUE &&
        shared_bytes > cu::kDefaultMaxDynamicSharedBytes) {
      hint = std::to_string(shared_bytes) +
             " bytes of dynamic shared memory is above 48 KB: the model must raise the limit "
             "with function_set_shared_memory at create";
    } else if (cu::is_sticky_error(result) && !sync_debug_) {
      hint =
          "the fault may come from a kernel launched earlier; sync-debug mode names the "
          "kernel that faulted";
    }
    return check(result, "cuLaunchKernel", kernel, hint);
  }
  if (sync_debug_ && !is_capturing(stream)) {
    // Errors are reported per kernel: wait for this one and name it.
    return check(driver_->cuStreamSynchronize(stream_of(stream)), "kernel execution",
                 kernel + " (sync-debug: cuStreamSynchronize after the launch)");
  }
  return OkStatus();
}

}  // namespace aotc::internal
