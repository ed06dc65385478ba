// aotc_cuda.h: support code compiled into every generated CUDA model library
// (host code only: the kernels are Triton cubins in the package, launched
// through the host table's device callbacks, docs/ABI.md section 15).
// Header-only; included by the CUDA wrapper's model.cc.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "aotc/model_abi.h"

namespace aotc_cuda {

// One compiled Triton kernel variant ([Note: Triton variants] in
// aot/build/triton_build.py): its cubin and PTX entries under kernels/, the
// function's name in them and its launch metadata.
struct KernelImage {
  const char* cubin_entry;  // "kernels/kernel3.aligned.cubin"
  const char* ptx_entry;    // "kernels/kernel3.aligned.ptx"
  const char* symbol;       // "kernel3"
  uint32_t shared_bytes;    // dynamic shared memory of every launch
  uint32_t threads;         // num_warps * 32
};

constexpr uint32_t kDefaultSharedLimit = 48 * 1024;

inline int32_t fail(aotc_abi_status_t* status, int32_t code, const char* format, const char* a,
                    const char* b) {
  if (status != nullptr) {
    status->code = code;
    std::snprintf(status->message, sizeof(status->message), format, a, b);
  }
  return code;
}

// Loads |image|'s module and function: the cubin, or the PTX when the driver
// cannot load the cubin (a newer GPU), then raises the function's dynamic
// shared memory limit when it needs more than the default.
inline int32_t load_kernel(const aotc_host_t* host, const KernelImage& image, void** out_module,
                           void** out_function, aotc_abi_status_t* status) {
  const void* data = nullptr;
  uint64_t size = 0;
  int32_t rc = host->get_entry(host->ctx, image.cubin_entry, &data, &size, status);
  if (rc != AOTC_ABI_OK) return rc;
  void* module = nullptr;
  rc = host->module_load(host->ctx, data, size, &module, status);
  if (rc != AOTC_ABI_OK) {
    // Keep the cubin's error unless the PTX loads.
    aotc_abi_status_t ptx_status{};
    const void* ptx = nullptr;
    uint64_t ptx_size = 0;
    if (host->get_entry(host->ctx, image.ptx_entry, &ptx, &ptx_size, &ptx_status) != AOTC_ABI_OK ||
        host->module_load(host->ctx, ptx, ptx_size, &module, &ptx_status) != AOTC_ABI_OK)
      return rc;
    if (status != nullptr) *status = aotc_abi_status_t{};
  }
  void* function = nullptr;
  rc = host->module_get_function(host->ctx, module, image.symbol, &function, status);
  if (rc == AOTC_ABI_OK && image.shared_bytes > kDefaultSharedLimit)
    rc = host->function_set_shared_memory(host->ctx, function, image.shared_bytes, status);
  if (rc != AOTC_ABI_OK) {
    host->module_unload(host->ctx, module);
    return rc;
  }
  *out_module = module;
  *out_function = function;
  return AOTC_ABI_OK;
}

// True when |p| may be passed to a kernel variant compiled with every
// pointer 16-byte divisible.
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Grid limits of a launch (CUDA: x < 2^31, y and z < 2^16).
inline bool grid_fits(int64_t x, int64_t y, int64_t z) {
  return x >= 0 && y >= 0 && z >= 0 && x < (int64_t(1) << 31) && y < 65536 && z < 65536;
}

}  // namespace aotc_cuda
