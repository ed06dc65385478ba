/* A fake CUDA driver (libcuda.so.1 stand-in) for the CudaDevice tests on
 * machines without a GPU. "Device" memory is host memory; modules are opaque;
 * the one known kernel, add_one(const float* x, float* y, int n), runs on the
 * host. Like the real driver, a bad address inside a kernel is reported
 * asynchronously (by the next call) and then sticks to every later call.
 *
 * Tests steer it through the fake_cuda_* functions at the end. Not
 * thread-safe: the tests that use it are single-threaded.
 *
 * Built with FAKE_CUDA_OMIT_MEM_ALLOC_ASYNC it lacks cuMemAllocAsync, to test
 * the loader's missing-symbol error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define API __attribute__((visibility("default")))

typedef int CUresult;
typedef unsigned long long CUdeviceptr;

enum {
  kSuccess = 0,
  kInvalidValue = 1,
  kOutOfMemory = 2,
  kInvalidDevice = 101,
  kInvalidPtx = 218,
  kNotFound = 500,
  kIllegalAddress = 700,
  kMaxAllocations = 256,
};

typedef struct Allocation {
  char* data;
  size_t size;
} Allocation;

static struct {
  int device_count, cc_major, cc_minor, driver_version, shared_optin, pools;
  size_t memory_limit; /* allocations above this fail with out of memory */
  CUresult pending;    /* asynchronous error, returned by the next call */
  CUresult sticky;     /* once set, every call returns it */
  char fail_name[64];  /* the next call of this function fails ... */
  CUresult fail_code;  /* ... with this code */
  Allocation allocations[kMaxAllocations];
  int context_token;
  int module_token;
  int function_token;
  int shared_limit; /* set by cuFuncSetAttribute */
  /* counters read by fake_cuda_counter */
  long long set_current, retained, released, live_allocs, async_allocs, threshold_set, launches,
      syncs, module_loads, module_unloads, last_image_strlen, last_grid_x, last_block_x,
      last_shared;
} g = {.device_count = 1,
       .cc_major = 9,
       .driver_version = 13000,
       .shared_optin = 232448,
       .pools = 1,
       .memory_limit = (size_t)1 << 30};

static void* g_current_context = NULL;

/* Returns nonzero (the code) when the call named |name| must fail. */
static CUresult enter(const char* name) {
  if (g.sticky != kSuccess) return g.sticky;
  if (g.pending != kSuccess) {
    g.sticky = g.pending;
    g.pending = kSuccess;
    return g.sticky;
  }
  if (g.fail_name[0] != '\0' && strcmp(g.fail_name, name) == 0) {
    g.fail_name[0] = '\0';
    return g.fail_code;
  }
  return kSuccess;
}

#define ENTER(name)                            \
  do {                                         \
    CUresult entered_ = enter(name);           \
    if (entered_ != kSuccess) return entered_; \
  } while (0)

/* The allocation holding [ptr, ptr + bytes), or NULL. */
static Allocation* find(CUdeviceptr ptr, size_t bytes) {
  for (int i = 0; i < kMaxAllocations; ++i) {
    Allocation* a = &g.allocations[i];
    uintptr_t begin = (uintptr_t)a->data;
    if (a->data != NULL && ptr >= begin && ptr + bytes <= begin + a->size) return a;
  }
  return NULL;
}

static CUresult allocate(CUdeviceptr* out, size_t bytes) {
  if (bytes == 0) return kInvalidValue;
  if (bytes > g.memory_limit) return kOutOfMemory;
  for (int i = 0; i < kMaxAllocations; ++i) {
    if (g.allocations[i].data == NULL) {
      g.allocations[i].data = calloc(1, bytes);
      g.allocations[i].size = bytes;
      *out = (CUdeviceptr)(uintptr_t)g.allocations[i].data;
      ++g.live_allocs;
      return kSuccess;
    }
  }
  return kOutOfMemory;
}

static CUresult release(CUdeviceptr ptr) {
  for (int i = 0; i < kMaxAllocations; ++i) {
    if (g.allocations[i].data != NULL && (uintptr_t)g.allocations[i].data == ptr) {
      free(g.allocations[i].data);
      g.allocations[i].data = NULL;
      --g.live_allocs;
      return kSuccess;
    }
  }
  return kInvalidValue;
}

static const struct {
  CUresult code;
  const char* name;
  const char* text;
} kErrors[] = {
    {0, "CUDA_SUCCESS", "no error"},
    {1, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {100, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {101, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {209, "CUDA_ERROR_NO_BINARY_FOR_GPU",
     "no kernel image is available for execution on the device"},
    {218, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
    {222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
     "the provided PTX was compiled with an unsupported toolchain."},
    {500, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {700, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {719, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
};

API CUresult cuGetErrorName(CUresult code, const char** name) {
  for (size_t i = 0; i < sizeof(kErrors) / sizeof(kErrors[0]); ++i) {
    if (kErrors[i].code == code) {
      *name = kErrors[i].name;
      return kSuccess;
    }
  }
  *name = NULL;
  return kInvalidValue;
}

API CUresult cuGetErrorString(CUresult code, const char** text) {
  for (size_t i = 0; i < sizeof(kErrors) / sizeof(kErrors[0]); ++i) {
    if (kErrors[i].code == code) {
      *text = kErrors[i].text;
      return kSuccess;
    }
  }
  *text = NULL;
  return kInvalidValue;
}

API CUresult cuInit(unsigned flags) {
  (void)flags;
  ENTER("cuInit");
  return kSuccess;
}

API CUresult cuDriverGetVersion(int* version) {
  *version = g.driver_version;
  return kSuccess;
}

API CUresult cuDeviceGetCount(int* count) {
  ENTER("cuDeviceGetCount");
  *count = g.device_count;
  return kSuccess;
}

API CUresult cuDeviceGet(int* device, int ordinal) {
  ENTER("cuDeviceGet");
  if (ordinal < 0 || ordinal >= g.device_count) return kInvalidDevice;
  *device = ordinal;
  return kSuccess;
}

API CUresult cuDeviceGetAttribute(int* value, int attribute, int device) {
  ENTER("cuDeviceGetAttribute");
  (void)device;
  switch (attribute) {
    case 75:
      *value = g.cc_major;
      return kSuccess;
    case 76:
      *value = g.cc_minor;
      return kSuccess;
    case 97:
      *value = g.shared_optin;
      return kSuccess;
    case 115:
      *value = g.pools;
      return kSuccess;
    default:
      return kInvalidValue;
  }
}

API CUresult cuDevicePrimaryCtxRetain(void** context, int device) {
  ENTER("cuDevicePrimaryCtxRetain");
  (void)device;
  *context = &g.context_token;
  ++g.retained;
  return kSuccess;
}

API CUresult cuDevicePrimaryCtxRelease_v2(int device) {
  (void)device;
  ++g.released;
  return kSuccess;
}

API CUresult cuCtxSetCurrent(void* context) {
  /* Thread-local bookkeeping: reports an earlier fault only once it stuck. */
  if (g.sticky != kSuccess) return g.sticky;
  if (strcmp(g.fail_name, "cuCtxSetCurrent") == 0) {
    g.fail_name[0] = '\0';
    return g.fail_code;
  }
  g_current_context = context;
  ++g.set_current;
  return kSuccess;
}

API CUresult cuCtxGetCurrent(void** context) {
  *context = g_current_context;
  return kSuccess;
}

API CUresult cuMemAlloc_v2(CUdeviceptr* ptr, size_t bytes) {
  ENTER("cuMemAlloc_v2");
  return allocate(ptr, bytes);
}

API CUresult cuMemFree_v2(CUdeviceptr ptr) {
  ENTER("cuMemFree_v2");
  return release(ptr);
}

#ifndef FAKE_CUDA_OMIT_MEM_ALLOC_ASYNC
API CUresult cuMemAllocAsync(CUdeviceptr* ptr, size_t bytes, void* stream) {
  (void)stream;
  ENTER("cuMemAllocAsync");
  CUresult result = allocate(ptr, bytes);
  if (result == kSuccess) ++g.async_allocs;
  return result;
}
#endif

API CUresult cuMemFreeAsync(CUdeviceptr ptr, void* stream) {
  (void)stream;
  ENTER("cuMemFreeAsync");
  return release(ptr);
}

API CUresult cuDeviceGetDefaultMemPool(void** pool, int device) {
  (void)device;
  ENTER("cuDeviceGetDefaultMemPool");
  *pool = &g.module_token;
  return kSuccess;
}

API CUresult cuMemPoolSetAttribute(void* pool, int attribute, void* value) {
  (void)pool;
  ENTER("cuMemPoolSetAttribute");
  if (attribute == 4 && *(const uint64_t*)value == UINT64_MAX) ++g.threshold_set;
  return kSuccess;
}

static CUresult copy(CUdeviceptr dst, int dst_device, CUdeviceptr src, int src_device,
                     size_t bytes) {
  if ((dst_device && find(dst, bytes) == NULL) || (src_device && find(src, bytes) == NULL)) {
    return kInvalidValue;
  }
  memcpy((void*)(uintptr_t)dst, (const void*)(uintptr_t)src, bytes);
  return kSuccess;
}

API CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t bytes, void* stream) {
  (void)stream;
  ENTER("cuMemcpyAsync");
  return copy(dst, 0, src, 0, bytes);
}

API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t bytes, void* stream) {
  (void)stream;
  ENTER("cuMemcpyHtoDAsync_v2");
  return copy(dst, 1, (CUdeviceptr)(uintptr_t)src, 0, bytes);
}

API CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t bytes, void* stream) {
  (void)stream;
  ENTER("cuMemcpyDtoHAsync_v2");
  return copy((CUdeviceptr)(uintptr_t)dst, 0, src, 1, bytes);
}

API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes, void* stream) {
  (void)stream;
  ENTER("cuMemcpyDtoDAsync_v2");
  return copy(dst, 1, src, 1, bytes);
}

API CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char value, size_t count, void* stream) {
  (void)stream;
  ENTER("cuMemsetD8Async");
  if (find(dst, count) == NULL) return kInvalidValue;
  memset((void*)(uintptr_t)dst, value, count);
  return kSuccess;
}

API CUresult cuStreamSynchronize(void* stream) {
  (void)stream;
  ++g.syncs;
  ENTER("cuStreamSynchronize");
  return kSuccess;
}

API CUresult cuStreamIsCapturing(void* stream, int* capture) {
  (void)stream;
  ENTER("cuStreamIsCapturing");
  *capture = 0;
  return kSuccess;
}

API CUresult cuModuleLoadData(void** module, const void* image) {
  ENTER("cuModuleLoadData");
  const unsigned char* bytes = (const unsigned char*)image;
  /* For PTX, the length up to the NUL the driver relies on. */
  g.last_image_strlen = bytes[0] == 0x7f ? -1 : (long long)strlen((const char*)image);
  if (bytes[0] != 0x7f && strstr((const char*)image, ".target") == NULL) return kInvalidPtx;
  *module = &g.module_token;
  ++g.module_loads;
  return kSuccess;
}

API CUresult cuModuleUnload(void* module) {
  (void)module;
  ENTER("cuModuleUnload");
  ++g.module_unloads;
  return kSuccess;
}

API CUresult cuModuleGetFunction(void** function, void* module, const char* name) {
  (void)module;
  ENTER("cuModuleGetFunction");
  if (strcmp(name, "add_one") != 0) return kNotFound;
  *function = &g.function_token;
  return kSuccess;
}

API CUresult cuFuncSetAttribute(void* function, int attribute, int value) {
  (void)function;
  ENTER("cuFuncSetAttribute");
  if (attribute != 8 || value < 0 || value > g.shared_optin) return kInvalidValue;
  g.shared_limit = value;
  return kSuccess;
}

API CUresult cuLaunchKernel(void* function, unsigned grid_x, unsigned grid_y, unsigned grid_z,
                            unsigned block_x, unsigned block_y, unsigned block_z,
                            unsigned shared_bytes, void* stream, void** params, void** extra) {
  (void)stream;
  (void)extra;
  ENTER("cuLaunchKernel");
  if (function != &g.function_token || grid_x * grid_y * grid_z == 0 ||
      block_x * block_y * block_z == 0 || block_x * block_y * block_z > 1024) {
    return kInvalidValue;
  }
  if (shared_bytes > 48 * 1024 && (int)shared_bytes > g.shared_limit) return kInvalidValue;
  ++g.launches;
  g.last_grid_x = grid_x;
  g.last_block_x = block_x;
  g.last_shared = shared_bytes;
  /* add_one(const float* x, float* y, int n): one thread per element. */
  CUdeviceptr x = *(CUdeviceptr*)params[0];
  CUdeviceptr y = *(CUdeviceptr*)params[1];
  int n = *(int*)params[2];
  long long threads = (long long)grid_x * block_x;
  if (threads < n) n = (int)threads; /* a grid that is too small covers a prefix */
  size_t bytes = (size_t)n * sizeof(float);
  if (find(x, bytes) == NULL || find(y, bytes) == NULL) {
    g.pending = kIllegalAddress; /* reported by a later call, as on a GPU */
    return kSuccess;
  }
  for (int i = 0; i < n; ++i) ((float*)(uintptr_t)y)[i] = ((const float*)(uintptr_t)x)[i] + 1.0f;
  return kSuccess;
}

API CUresult cuPointerGetAttribute(void* data, int attribute, CUdeviceptr ptr) {
  ENTER("cuPointerGetAttribute");
  if (find(ptr, 1) == NULL) return kInvalidValue;
  if (attribute == 2)
    *(unsigned*)data = 2; /* CU_MEMORYTYPE_DEVICE */
  else if (attribute == 9)
    *(int*)data = 0;
  else
    return kInvalidValue;
  return kSuccess;
}

/* ---- Controls for tests ---- */

API void fake_cuda_reset(int device_count, int cc_major, int cc_minor, int driver_version) {
  for (int i = 0; i < kMaxAllocations; ++i) free(g.allocations[i].data);
  memset(&g, 0, sizeof(g));
  g.device_count = device_count;
  g.cc_major = cc_major;
  g.cc_minor = cc_minor;
  g.driver_version = driver_version;
  g.shared_optin = 232448;
  g.pools = 1;
  g.memory_limit = (size_t)1 << 30;
}

/* The next call of driver function |name| (exported name) returns |code|. */
API void fake_cuda_fail_next(const char* name, int code) {
  strncpy(g.fail_name, name, sizeof(g.fail_name) - 1);
  g.fail_code = code;
}

API long long fake_cuda_counter(const char* name) {
#define COUNTER(field) \
  if (strcmp(name, #field) == 0) return g.field;
  COUNTER(set_current)
  COUNTER(retained)
  COUNTER(released)
  COUNTER(live_allocs)
  COUNTER(async_allocs)
  COUNTER(threshold_set)
  COUNTER(launches)
  COUNTER(syncs)
  COUNTER(module_loads)
  COUNTER(module_unloads)
  COUNTER(last_image_strlen)
  COUNTER(last_grid_x)
  COUNTER(last_block_x)
  COUNTER(last_shared)
  COUNTER(shared_limit)
#undef COUNTER
  return -1;
}
