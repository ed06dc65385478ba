#include "cuda/cuda_host.h"

#include <cstdio>
#include <cstring>
#include <exception>
#include <new>

namespace aotc::internal {

namespace {

int32_t abi_code(Code code) {
  switch (code) {
    case Code::kOk:
      return AOTC_ABI_OK;
    case Code::kInvalidArgument:
      return AOTC_ABI_INVALID_ARGUMENT;
    case Code::kOutOfRange:
      return AOTC_ABI_OUT_OF_RANGE;
    case Code::kUnsupported:
    case Code::kIncompatible:
      return AOTC_ABI_UNSUPPORTED;
    case Code::kResourceExhausted:
      return AOTC_ABI_RESOURCE_EXHAUSTED;
    case Code::kDeviceError:
    case Code::kDeviceUnavailable:
      return AOTC_ABI_DEVICE_ERROR;
    default:
      return AOTC_ABI_INTERNAL;
  }
}

int32_t fail(aotc_abi_status_t* status, int32_t code, const char* message) {
  if (status != nullptr) {
    status->code = code;
    std::snprintf(status->message, sizeof(status->message), "%s", message);
  }
  return code;
}

// Writes a failed |result| into |status| (left untouched on success, as the
// ABI says) and returns its ABI code.
int32_t report(const Status& result, aotc_abi_status_t* status) {
  if (result.ok()) return AOTC_ABI_OK;
  return fail(status, abi_code(result.code()), result.message().c_str());
}

constexpr const char* kNoDevice = "no CUDA device is bound to this host table";

// Runs |body| (returning an ABI code), turning exceptions into errors.
template <typename Body>
int32_t guarded(CudaDevice* device, aotc_abi_status_t* status, Body body) {
  if (device == nullptr) return fail(status, AOTC_ABI_INTERNAL, kNoDevice);
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(status, AOTC_ABI_RESOURCE_EXHAUSTED, "out of host memory in a CUDA host callback");
  } catch (...) {
    return fail(status, AOTC_ABI_INTERNAL, "unexpected C++ exception in a CUDA host callback");
  }
}

CudaDevice* device_of_context(void* ctx) {
  return ctx == nullptr ? nullptr : static_cast<CudaHostContext*>(ctx)->device;
}

}  // namespace

void fill_cuda_host_callbacks(aotc_host_t* host) {
  fill_cuda_host_callbacks<&device_of_context>(host);
}

namespace cuda_host_detail {

int32_t device_alloc(CudaDevice* device, uint64_t bytes, void** out_ptr,
                     aotc_abi_status_t* status) {
  return guarded(device, status, [&]() -> int32_t {
    // Long-lived memory: models allocate at create(), runs use the workspace.
    Result<void*> ptr = device->alloc(bytes);
    if (!ptr.ok()) return report(ptr.status(), status);
    *out_ptr = *ptr;
    return static_cast<int32_t>(AOTC_ABI_OK);
  });
}

void device_free(CudaDevice* device, void* ptr) {
  try {
    if (device != nullptr) device->free(ptr);
  } catch (...) {
  }
}

int32_t memcpy_async(CudaDevice* device, void* dst, const void* src, uint64_t bytes, int32_t kind,
                     void* stream, aotc_abi_status_t* status) {
  return guarded(device, status, [&]() -> int32_t {
    // [Note: graph capture]: a read-back into host memory is left out of a graph.
    if (kind == AOTC_ABI_MEMCPY_DEVICE_TO_HOST && device->is_capturing(stream)) return AOTC_ABI_OK;
    return report(device->memcpy_async(dst, src, bytes, kind, stream), status);
  });
}

int32_t memset_async(CudaDevice* device, void* dst, int32_t value, uint64_t bytes, void* stream,
                     aotc_abi_status_t* status) {
  return guarded(device, status,
                 [&] { return report(device->memset_async(dst, value, bytes, stream), status); });
}

int32_t module_load(CudaDevice* device, const void* image, uint64_t size, void** out_module,
                    aotc_abi_status_t* status) {
  return guarded(device, status, [&]() -> int32_t {
    Result<void*> module = device->module_load(image, size);
    if (!module.ok()) return report(module.status(), status);
    *out_module = *module;
    return static_cast<int32_t>(AOTC_ABI_OK);
  });
}

void module_unload(CudaDevice* device, void* module) {
  try {
    if (device != nullptr) device->module_unload(module);
  } catch (...) {
  }
}

int32_t module_get_function(CudaDevice* device, void* module, const char* name, void** out_function,
                            aotc_abi_status_t* status) {
  return guarded(device, status, [&]() -> int32_t {
    Result<void*> function = device->get_function(module, name);
    if (!function.ok()) return report(function.status(), status);
    *out_function = *function;
    return static_cast<int32_t>(AOTC_ABI_OK);
  });
}

int32_t function_set_shared_memory(CudaDevice* device, void* function, uint32_t bytes,
                                   aotc_abi_status_t* status) {
  return guarded(device, status,
                 [&] { return report(device->set_shared_memory(function, bytes), status); });
}

int32_t launch(CudaDevice* device, void* function, const uint32_t grid[3], const uint32_t block[3],
               uint32_t shared_bytes, void* stream, void** args, const char* debug_handle,
               aotc_abi_status_t* status) {
  return guarded(device, status, [&]() -> int32_t {
    return report(device->launch(function, grid, block, shared_bytes, stream, args, debug_handle),
                  status);
  });
}

int32_t stream_synchronize(CudaDevice* device, void* stream, aotc_abi_status_t* status) {
  return guarded(device, status, [&]() -> int32_t {
    if (device->is_capturing(stream)) return AOTC_ABI_OK;  // [Note: graph capture]
    return report(device->synchronize(stream), status);
  });
}

}  // namespace cuda_host_detail

}  // namespace aotc::internal
