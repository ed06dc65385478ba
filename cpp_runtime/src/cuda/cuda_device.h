// CudaDevice: one CUDA device through the driver API, loaded with
// dlopen("libcuda.so.1") at first use, so one runtime build serves CPU-only
// and GPU hosts. Uses the device's primary context, made current on the
// calling thread by every method (and left current, as the CUDA runtime
// does). Errors are sticky on CUDA: after a device error the device reports
// itself dead (is_dead()) and every later call fails.
//
// Error policy:
//  - Messages name the driver call and, for launches, the kernel's debug
//    handle: "cuLaunchKernel failed for kernel 'k0:3': CUDA_ERROR_ILLEGAL_ADDRESS
//    (an illegal memory access was encountered)".
//  - Sticky errors (cu::is_sticky_error: illegal address, launch failure,
//    device-side assert, ECC, ...) corrupt the primary context for the whole
//    process, so they mark the device dead (Code::kDeviceError); every later
//    call fails with "cuda:0 is unusable after an earlier CUDA error: <first
//    error>". Devices are shared per index, so this covers every model on it.
//  - Other failures leave the device usable and are mapped to a code:
//    out of memory -> kResourceExhausted; an image the driver cannot load
//    (no binary for this GPU, PTX too new, invalid image) -> kIncompatible;
//    a missing kernel name -> kNotFound; anything else -> kDeviceError.
//
// Thread-safety: thread-safe. Every method may be called concurrently; the
// driver serialises what needs it.
#pragma once

#include <atomic>
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
  // "no CUDA driver found (<dlerror text>)"; an index past the device count:
  // kDeviceUnavailable "cuda:3 requested but the CUDA driver reports 1
  // device(s)". Devices are shared per index: while one is open, open(i)
  // returns the same object.
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

  // Checks a package target ("sm_90", also accepted as "cuda:sm_90"; min
  // driver as cuDriverGetVersion) against this device, naming both sides on
  // mismatch (Code::kIncompatible): "package built for sm_90 but cuda:0 is
  // sm_80", "package needs CUDA driver >= 12040, this host has 12020".
  // A cubin runs on its own major architecture at the same or a newer minor
  // (sm_80 code on sm_86); an arch-specific target ("sm_90a") needs exactly
  // that device.
  Status check_target(const std::string& arch, uint32_t min_driver_version) const;

  // Memory. alloc is for long-lived memory (weights, state); per-run memory
  // comes from alloc_async/free_async (stream-ordered, pooled by the driver),
  // so runs never call cuMemAlloc/cuMemFree. Zero bytes gives nullptr; free
  // and free_async accept nullptr. At open, the release threshold of the
  // device's default memory pool is raised so the pool keeps freed memory
  // across stream synchronisations instead of returning it to the OS.
  Result<void*> alloc(uint64_t bytes);
  void free(void* ptr);
  Result<void*> alloc_async(uint64_t bytes, void* stream);
  void free_async(void* ptr, void* stream);
  // |kind| is an aotc_abi_memcpy_kind_e. Zero bytes is a no-op.
  Status memcpy_async(void* dst, const void* src, uint64_t bytes, int32_t kind, void* stream);
  Status memset_async(void* dst, int32_t value, uint64_t bytes, void* stream);
  Status synchronize(void* stream);
  // True while |stream| is being captured into a CUDA graph ([Note: graph
  // capture] in cuda_host.h): synchronising it then is an error, and a copy
  // to host memory would be recorded into the graph.
  bool is_capturing(void* stream) const;
  // True when |ptr| is device memory of this device.
  bool owns_pointer(const void* ptr) const;

  // Modules and launches. module_load accepts a cubin or fatbin (ELF/fatbin
  // magic) or PTX text; PTX need not be NUL-terminated in |image|.
  Result<void*> module_load(const void* image, uint64_t size);
  void module_unload(void* module);
  Result<void*> get_function(void* module, const char* name);
  // Raises |function|'s dynamic shared memory limit to |bytes|. A launch with
  // more than 48 KB of dynamic shared memory needs this first: the model
  // library calls it once per kernel at create(), from the kernel's compile
  // metadata (host table: function_set_shared_memory), never per launch.
  // Fails with kUnsupported when the device allows less per block.
  Status set_shared_memory(void* function, uint32_t bytes);
  // |args| as cuLaunchKernel's kernelParams; |debug_handle| ("<kernel>:<N>",
  // may be null) names the call site in errors.
  Status launch(void* function, const uint32_t grid[3], const uint32_t block[3],
                uint32_t shared_bytes, void* stream, void** args, const char* debug_handle);

  // When on, launch() synchronises after each kernel and names the failing
  // kernel's debug handle (slow; for debugging). Affects every user of this
  // device. Starts on when the environment has AOTC_CUDA_SYNC_DEBUG=1.
  void set_sync_debug(bool on) { sync_debug_ = on; }
  bool sync_debug() const { return sync_debug_; }

 private:
  friend class CudaDeviceTestPeer;  // tests open devices on a fake driver
  CudaDevice() = default;
  // Opens cuda:|index| on |driver| (which must outlive the device) without
  // the per-index sharing of open().
  static Result<std::shared_ptr<CudaDevice>> create(const CudaDriver* driver, int index);
  // Fails when the device is dead; otherwise makes the context current.
  Status enter() const;
  // OK for CUDA_SUCCESS; otherwise "<call> failed<detail>: <error> (<hint>)",
  // with the code chosen by the error policy above. Sticky errors mark the
  // device dead, keeping this message as the first error.
  Status check(int result, const char* call, const std::string& detail = std::string(),
               const std::string& hint = std::string()) const;
  const CudaDriver* driver_ = nullptr;
  int index_ = 0;
  int device_ = 0;           // CUdevice
  void* context_ = nullptr;  // CUcontext (primary)
  std::string arch_;
  int cc_major_ = 0;
  int cc_minor_ = 0;
  int driver_version_ = 0;
  int max_shared_optin_ = 0;   // bytes of shared memory a block may opt in to
  bool memory_pools_ = false;  // cuMemAllocAsync supported
  std::atomic<bool> sync_debug_{false};
  struct DeadFlag;
  std::shared_ptr<DeadFlag> dead_;
};

}  // namespace aotc::internal
