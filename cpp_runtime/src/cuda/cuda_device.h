// CudaDevice: one CUDA device through the driver API, loaded with
// dlopen("libcuda.so.1") at first use, so one runtime build serves CPU-only
// and GPU hosts. Uses the device's primary context, made current on the
// calling thread by every method. Errors are sticky on CUDA: after a device
// error the device reports itself dead (is_dead()) and every later call fails.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "aotc/model_abi.h"
#include "status.h"

namespace aotc::internal {

class CudaDriver;  // the dlopen'ed function table (cuda_driver.h)

class CudaDevice final {
 public:
  // Opens cuda:|index|. Without a driver: Code::kDeviceUnavailable,
  // "no CUDA driver found (<dlerror text>)". Devices are shared per index.
  static Result<std::shared_ptr<CudaDevice>> open(int index);
  ~CudaDevice();
  CudaDevice(const CudaDevice&) = delete;
  CudaDevice& operator=(const CudaDevice&) = delete;

  int index() const { return index_; }
  // "sm_90" for compute capability 9.0.
  const std::string& arch() const { return arch_; }
  // cuDriverGetVersion, e.g. 13000.
  int driver_version() const { return driver_version_; }
  bool is_dead() const;

  // Checks a package target ("sm_90", min driver) against this device,
  // naming both sides on mismatch (Code::kIncompatible).
  Status check_target(const std::string& arch, uint32_t min_driver_version) const;

  // Memory. alloc is for long-lived memory (weights, state); per-run memory
  // comes from alloc_async/free_async (stream-ordered, pooled by the driver),
  // so runs never call cuMemAlloc/cuMemFree.
  Result<void*> alloc(uint64_t bytes);
  void free(void* ptr);
  Result<void*> alloc_async(uint64_t bytes, void* stream);
  void free_async(void* ptr, void* stream);
  Status memcpy_async(void* dst, const void* src, uint64_t bytes, int32_t kind, void* stream);
  Status memset_async(void* dst, int32_t value, uint64_t bytes, void* stream);
  Status synchronize(void* stream);
  // True when |ptr| is device memory of this device.
  bool owns_pointer(const void* ptr) const;

  // Modules and launches.
  Result<void*> module_load(const void* image, uint64_t size);
  void module_unload(void* module);
  Result<void*> get_function(void* module, const char* name);
  Status set_shared_memory(void* function, uint32_t bytes);
  Status launch(void* function, const uint32_t grid[3], const uint32_t block[3],
                uint32_t shared_bytes, void* stream, void** args, const char* debug_handle);

  // When on, launch() synchronises after each kernel and names the failing
  // kernel's debug handle (slow; for debugging).
  void set_sync_debug(bool on) { sync_debug_ = on; }

 private:
  CudaDevice() = default;
  Status check(int result, const char* what);  // marks the device dead on error
  const CudaDriver* driver_ = nullptr;
  int index_ = 0;
  int device_ = 0;      // CUdevice
  void* context_ = nullptr;  // CUcontext (primary)
  std::string arch_;
  int driver_version_ = 0;
  bool sync_debug_ = false;
  struct DeadFlag;
  std::shared_ptr<DeadFlag> dead_;
};

}  // namespace aotc::internal
