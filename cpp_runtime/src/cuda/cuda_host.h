// The device half of the host table (aotc_host_t): C trampolines that forward
// a model library's device callbacks to a CudaDevice and turn each Status into
// the ABI's (code, aotc_abi_status_t message) pair. No exception leaves a
// trampoline.
//
// How a trampoline finds its CudaDevice: it receives only host->ctx, which
// belongs to the host (the loader's own context struct). Rather than impose a
// layout on that struct, the host names a getter at compile time:
//
//   static CudaDevice* cuda_of(void* ctx) {
//     return static_cast<HostContext*>(ctx)->cuda_device.get();
//   }
//   fill_cuda_host_callbacks<&cuda_of>(&host);   // host.ctx = &host_context
//
// Each getter instantiates its own set of trampolines, so there is no global
// state and no cast of host->ctx to a type it is not. A getter returning null
// makes every callback fail with AOTC_ABI_INTERNAL ("no CUDA device bound").
//
// For hosts with nothing else in their context (tests, tools) the plain
// overload expects host->ctx to point to a CudaHostContext.
//
// Only the device callbacks are set (device_alloc, device_free, memcpy_async,
// memset_async, module_load, module_unload, module_get_function,
// function_set_shared_memory, launch, stream_synchronize); get_entry,
// parallel_for and the header fields are the host's.
//
// Codes: Status codes that the ABI enum lacks are mapped to the nearest ABI
// code (kIncompatible -> UNSUPPORTED, kDeviceUnavailable -> DEVICE_ERROR,
// kNotFound and the rest -> INTERNAL); the message keeps the detail.
//
// [Note: graph capture] A run must be safe to capture into a CUDA graph
// (cudaStreamBeginCapture on the caller's stream, then replays). Launches,
// memsets and device-to-device copies are captured as they are. The one
// synchronisation a model library makes, reading its index-check slots back
// after the last kernel (docs/ABI.md section 12), is skipped while the stream
// captures: stream_synchronize returns OK without waiting and a copy to host
// memory is not made, so the slots read as "no error". Inside a graph, a bad
// index is therefore clamped, not reported; sync-debug mode does not
// synchronise during capture either.
//
// Thread-safety: the trampolines are as thread-safe as CudaDevice (fully).
#pragma once

#include <cstdint>

#include "aotc/model_abi.h"
#include "cuda/cuda_device.h"

namespace aotc::internal {

using CudaDeviceGetter = CudaDevice* (*)(void* ctx);

// What host->ctx points to for the plain overload below. |device| must
// outlive every loaded model that uses the host table.
struct CudaHostContext {
  CudaDevice* device = nullptr;
};

// Sets the device callbacks of |host|; trampolines find the device with
// Get(host->ctx).
template <CudaDeviceGetter Get>
void fill_cuda_host_callbacks(aotc_host_t* host);

// Sets the device callbacks of |host|, whose ctx must point to a
// CudaHostContext.
void fill_cuda_host_callbacks(aotc_host_t* host);

// Implementation: non-template bodies (cuda_host.cc) behind per-getter
// trampolines.
namespace cuda_host_detail {

int32_t device_alloc(CudaDevice* device, uint64_t bytes, void** out_ptr, aotc_abi_status_t* status);
void device_free(CudaDevice* device, void* ptr);
int32_t memcpy_async(CudaDevice* device, void* dst, const void* src, uint64_t bytes, int32_t kind,
                     void* stream, aotc_abi_status_t* status);
int32_t memset_async(CudaDevice* device, void* dst, int32_t value, uint64_t bytes, void* stream,
                     aotc_abi_status_t* status);
int32_t module_load(CudaDevice* device, const void* image, uint64_t size, void** out_module,
                    aotc_abi_status_t* status);
void module_unload(CudaDevice* device, void* module);
int32_t module_get_function(CudaDevice* device, void* module, const char* name, void** out_function,
                            aotc_abi_status_t* status);
int32_t function_set_shared_memory(CudaDevice* device, void* function, uint32_t bytes,
                                   aotc_abi_status_t* status);
int32_t launch(CudaDevice* device, void* function, const uint32_t grid[3], const uint32_t block[3],
               uint32_t shared_bytes, void* stream, void** args, const char* debug_handle,
               aotc_abi_status_t* status);
int32_t stream_synchronize(CudaDevice* device, void* stream, aotc_abi_status_t* status);

template <CudaDeviceGetter Get>
struct Trampolines {
  static int32_t device_alloc(void* ctx, uint64_t bytes, void** out_ptr,
                              aotc_abi_status_t* status) {
    return cuda_host_detail::device_alloc(Get(ctx), bytes, out_ptr, status);
  }
  static void device_free(void* ctx, void* ptr) { cuda_host_detail::device_free(Get(ctx), ptr); }
  static int32_t memcpy_async(void* ctx, void* dst, const void* src, uint64_t bytes, int32_t kind,
                              void* stream, aotc_abi_status_t* status) {
    return cuda_host_detail::memcpy_async(Get(ctx), dst, src, bytes, kind, stream, status);
  }
  static int32_t memset_async(void* ctx, void* dst, int32_t value, uint64_t bytes, void* stream,
                              aotc_abi_status_t* status) {
    return cuda_host_detail::memset_async(Get(ctx), dst, value, bytes, stream, status);
  }
  static int32_t module_load(void* ctx, const void* image, uint64_t size, void** out_module,
                             aotc_abi_status_t* status) {
    return cuda_host_detail::module_load(Get(ctx), image, size, out_module, status);
  }
  static void module_unload(void* ctx, void* module) {
    cuda_host_detail::module_unload(Get(ctx), module);
  }
  static int32_t module_get_function(void* ctx, void* module, const char* name, void** out_function,
                                     aotc_abi_status_t* status) {
    return cuda_host_detail::module_get_function(Get(ctx), module, name, out_function, status);
  }
  static int32_t function_set_shared_memory(void* ctx, void* function, uint32_t bytes,
                                            aotc_abi_status_t* status) {
    return cuda_host_detail::function_set_shared_memory(Get(ctx), function, bytes, status);
  }
  static int32_t launch(void* ctx, void* function, const uint32_t grid[3], const uint32_t block[3],
                        uint32_t shared_bytes, void* stream, void** args, const char* debug_handle,
                        aotc_abi_status_t* status) {
    return cuda_host_detail::launch(Get(ctx), function, grid, block, shared_bytes, stream, args,
                                    debug_handle, status);
  }
  static int32_t stream_synchronize(void* ctx, void* stream, aotc_abi_status_t* status) {
    return cuda_host_detail::stream_synchronize(Get(ctx), stream, status);
  }
};

}  // namespace cuda_host_detail

template <CudaDeviceGetter Get>
void fill_cuda_host_callbacks(aotc_host_t* host) {
  using T = cuda_host_detail::Trampolines<Get>;
  host->device_alloc = &T::device_alloc;
  host->device_free = &T::device_free;
  host->memcpy_async = &T::memcpy_async;
  host->memset_async = &T::memset_async;
  host->module_load = &T::module_load;
  host->module_unload = &T::module_unload;
  host->module_get_function = &T::module_get_function;
  host->function_set_shared_memory = &T::function_set_shared_memory;
  host->launch = &T::launch;
  host->stream_synchronize = &T::stream_synchronize;
}

}  // namespace aotc::internal
