/* aotc model ABI: the plain-C contract between the aotc runtime and a generated
 * model library (model.so). docs/ABI.md is the prose version of this header; the
 * two change together.
 *
 * A model library exports exactly five functions (see "Exported functions"):
 * describe, create, plan, run, destroy. No C++ type crosses this boundary, so
 * the library and the runtime may be built by different compilers with
 * different standard libraries.
 *
 * Versioning: the major version changes when a struct layout or a function
 * signature changes incompatibly; the minor version when fields are appended to
 * the end of a struct or new host functions are appended to aotc_host_t. Every
 * versioned struct starts with |struct_size| so either side can tell what the
 * other was compiled with. The runtime accepts a library whose major equals its
 * own and whose minor is not newer than its own.
 */
#ifndef AOTC_MODEL_ABI_H_
#define AOTC_MODEL_ABI_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AOTC_MODEL_ABI_MAJOR 1
#define AOTC_MODEL_ABI_MINOR 0

/* Largest tensor rank the ABI carries. */
#define AOTC_ABI_MAX_DIMS 16
/* Capacity of an error message, terminating NUL included. */
#define AOTC_ABI_MESSAGE_CAPACITY 1024

/*===----------------------------------------------------------------------===*/
/* Enumerations (values are stable: new values are appended, never renumbered) */
/*===----------------------------------------------------------------------===*/

typedef enum aotc_abi_dtype_e {
  AOTC_ABI_DTYPE_FLOAT32 = 0,
  AOTC_ABI_DTYPE_FLOAT16 = 1,
  AOTC_ABI_DTYPE_BFLOAT16 = 2,
  AOTC_ABI_DTYPE_FLOAT64 = 3,
  AOTC_ABI_DTYPE_INT8 = 4,
  AOTC_ABI_DTYPE_UINT8 = 5,
  AOTC_ABI_DTYPE_INT16 = 6,
  AOTC_ABI_DTYPE_INT32 = 7,
  AOTC_ABI_DTYPE_INT64 = 8,
  AOTC_ABI_DTYPE_BOOL = 9,
} aotc_abi_dtype_e;

typedef enum aotc_abi_device_type_e {
  AOTC_ABI_DEVICE_CPU = 0,
  AOTC_ABI_DEVICE_CUDA = 1,
} aotc_abi_device_type_e;

/* Status codes returned by every ABI function and host callback. Grouped by
 * kind like the public API's codes (aotc.h), with which they share values. */
typedef enum aotc_abi_code_e {
  AOTC_ABI_OK = 0,
  AOTC_ABI_INTERNAL = 1,          /* a bug in the library or runtime */
  AOTC_ABI_INVALID_ARGUMENT = 16, /* caller input: shapes, dtypes, ranges */
  AOTC_ABI_OUT_OF_RANGE = 17,     /* an index inside a kernel was out of bounds */
  AOTC_ABI_UNSUPPORTED = 18,      /* a feature the other side lacks */
  AOTC_ABI_RESOURCE_EXHAUSTED = 32,
  AOTC_ABI_DEVICE_ERROR = 33, /* a driver call failed (sticky on CUDA) */
} aotc_abi_code_e;

/* Bits of aotc_abi_io_spec_t.flags */
#define AOTC_ABI_IO_MUTATED 0x1u /* the model writes this input; runtime writes it back */

/* Bits of aotc_abi_constant_spec_t.flags */
#define AOTC_ABI_CONSTANT_STATE 0x1u /* a mutable buffer: per loaded model, runs mutate it */

/* Bits of aotc_model_description_t.flags */
#define AOTC_ABI_MODEL_MUTATES_STATE 0x1u /* runs must be serialised (see ABI.md) */

/*===----------------------------------------------------------------------===*/
/* Status                                                                     */
/*===----------------------------------------------------------------------===*/

/* Caller-owned error slot passed to every ABI function. On failure the callee
 * sets |code| and writes a NUL-terminated |message|; on success it leaves the
 * slot untouched. Never allocated across the boundary. */
typedef struct aotc_abi_status_t {
  int32_t code;
  char message[AOTC_ABI_MESSAGE_CAPACITY];
} aotc_abi_status_t;

/*===----------------------------------------------------------------------===*/
/* Static description (aotc_model_describe)                                   */
/*===----------------------------------------------------------------------===*/

/* One dimension of an input or output. |size| >= 0 for a static dim, -1 for a
 * symbolic one. |expr| is the printable expression ("8", "s0", "2*s0") and
 * [min, max] the declared range (max = INT64_MAX when unbounded). The range is
 * for messages and tools: the library's plan() enforces it. */
typedef struct aotc_abi_dim_spec_t {
  const char* expr;
  int64_t size;
  int64_t min;
  int64_t max;
} aotc_abi_dim_spec_t;

typedef struct aotc_abi_io_spec_t {
  const char* name;
  int32_t dtype; /* aotc_abi_dtype_e */
  int32_t ndim;
  const aotc_abi_dim_spec_t* dims; /* |ndim| entries */
  uint32_t flags;                  /* AOTC_ABI_IO_* */
} aotc_abi_io_spec_t;

/* A weight, buffer or lifted constant. |entry| names the archive entry that
 * holds its bytes, relative to data/weights/<model>/. Always contiguous. */
typedef struct aotc_abi_constant_spec_t {
  const char* name;
  const char* entry;
  int32_t dtype;
  int32_t ndim;
  const int64_t* sizes; /* |ndim| entries */
  uint64_t nbytes;
  uint32_t flags; /* AOTC_ABI_CONSTANT_* */
} aotc_abi_constant_spec_t;

/* A device kernel the library loads at create() through the host table.
 * |entry| names the archive entry (cubin or ptx) relative to
 * data/aotc/<model>/kernels/; |debug_handle| is "<kernel>:<N>". CPU-only
 * libraries have no kernels here (their code is inside model.so). */
typedef struct aotc_abi_kernel_spec_t {
  const char* name;
  const char* entry;
  const char* debug_handle;
} aotc_abi_kernel_spec_t;

typedef struct aotc_model_description_t {
  uint32_t struct_size; /* sizeof(aotc_model_description_t) in the library */
  uint16_t abi_major;
  uint16_t abi_minor;
  /* sizeof() of each nested/argument struct as the library was compiled,
   * so a mismatch is caught before any of them is read. */
  uint32_t io_spec_size;
  uint32_t dim_spec_size;
  uint32_t constant_spec_size;
  uint32_t kernel_spec_size;
  uint32_t tensor_size;   /* aotc_abi_tensor_t */
  uint32_t host_size;     /* aotc_host_t the library expects at least */
  uint32_t run_args_size; /* aotc_abi_run_args_t */

  const char* name;            /* model name */
  int32_t device_type;         /* aotc_abi_device_type_e */
  const char* target;          /* "cpu:x86-64-v3", "cuda:sm_90", ... */
  uint32_t min_driver_version; /* CUDA driver version as cuDriverGetVersion; 0 on CPU */
  uint32_t flags;              /* AOTC_ABI_MODEL_* */

  uint32_t num_inputs;
  const aotc_abi_io_spec_t* inputs;
  uint32_t num_outputs;
  const aotc_abi_io_spec_t* outputs;
  uint32_t num_constants;
  const aotc_abi_constant_spec_t* constants;
  uint32_t num_kernels;
  const aotc_abi_kernel_spec_t* kernels;
} aotc_model_description_t;

/*===----------------------------------------------------------------------===*/
/* Host table: what the runtime lends the library                            */
/*===----------------------------------------------------------------------===*/

/* Work function for parallel_for: processes [begin, end). */
typedef void (*aotc_abi_range_fn)(void* fn_ctx, int64_t begin, int64_t end);

typedef enum aotc_abi_memcpy_kind_e {
  AOTC_ABI_MEMCPY_HOST_TO_DEVICE = 0,
  AOTC_ABI_MEMCPY_DEVICE_TO_HOST = 1,
  AOTC_ABI_MEMCPY_DEVICE_TO_DEVICE = 2,
} aotc_abi_memcpy_kind_e;

/* All callbacks are thread-safe and may be called concurrently from several
 * runs. |ctx| is the host's own pointer: pass it back unchanged. Callbacks
 * that can fail return an aotc_abi_code_e and fill |status|. Device
 * callbacks are NULL-safe to test: a CPU host sets them to NULL. */
typedef struct aotc_host_t {
  uint32_t struct_size; /* sizeof(aotc_host_t) in the runtime */
  uint16_t abi_major;
  uint16_t abi_minor;
  void* ctx;
  int32_t device_type; /* device the model runs on */
  int32_t device_index;

  /* Archive entry |name|, relative to the model's folder data/aotc/<model>/
   * (e.g. "kernels/k0.cubin"), as bytes valid for the life of the loaded
   * model. Only entries the manifest lists (and hashes) are served. */
  int32_t (*get_entry)(void* ctx, const char* name, const void** out_data, uint64_t* out_size,
                       aotc_abi_status_t* status);

  /* Runs fn over [begin, end) in chunks of at least |grain| on the host's
   * shared thread pool; returns when all chunks are done. |exec| is the
   * run's executor from aotc_abi_run_args_t (bounds the thread count).
   * Nested calls run inline. Never fails. */
  void (*parallel_for)(void* ctx, void* exec, int64_t begin, int64_t end, int64_t grain,
                       aotc_abi_range_fn fn, void* fn_ctx);

  /* Device memory, modules and launches (CUDA driver API semantics). */
  int32_t (*device_alloc)(void* ctx, uint64_t bytes, void** out_ptr, aotc_abi_status_t* status);
  void (*device_free)(void* ctx, void* ptr);
  int32_t (*memcpy_async)(void* ctx, void* dst, const void* src, uint64_t bytes, int32_t kind,
                          void* stream, aotc_abi_status_t* status);
  int32_t (*memset_async)(void* ctx, void* dst, int32_t value, uint64_t bytes, void* stream,
                          aotc_abi_status_t* status);
  int32_t (*module_load)(void* ctx, const void* image, uint64_t size, void** out_module,
                         aotc_abi_status_t* status);
  void (*module_unload)(void* ctx, void* module);
  int32_t (*module_get_function)(void* ctx, void* module, const char* name, void** out_function,
                                 aotc_abi_status_t* status);
  /* Raises the function's dynamic shared memory limit (needed above 48 KB). */
  int32_t (*function_set_shared_memory)(void* ctx, void* function, uint32_t bytes,
                                        aotc_abi_status_t* status);
  /* |args| as cuLaunchKernel's kernelParams. |debug_handle| names the call
   * site "<kernel>:<N>" for error messages and sync-debug mode. */
  int32_t (*launch)(void* ctx, void* function, const uint32_t grid[3], const uint32_t block[3],
                    uint32_t shared_bytes, void* stream, void** args, const char* debug_handle,
                    aotc_abi_status_t* status);
  int32_t (*stream_synchronize)(void* ctx, void* stream, aotc_abi_status_t* status);
} aotc_host_t;

/*===----------------------------------------------------------------------===*/
/* Per-call arguments                                                         */
/*===----------------------------------------------------------------------===*/

/* Memory handed to create(): one entry per description constant, same order.
 * Lives until destroy(). State constants (AOTC_ABI_CONSTANT_STATE) are
 * writable and private to this loaded model; others are read-only. On CUDA
 * these are device pointers. */
typedef struct aotc_abi_constant_binding_t {
  void* data;
  uint64_t nbytes;
} aotc_abi_constant_binding_t;

/* A dense tensor. Inputs are always row-major contiguous when they reach the
 * library (the runtime copies or refuses others); |strides| (in elements) are
 * given for completeness. */
typedef struct aotc_abi_tensor_t {
  void* data;
  int32_t dtype;
  int32_t ndim;
  int64_t sizes[AOTC_ABI_MAX_DIMS];
  int64_t strides[AOTC_ABI_MAX_DIMS];
} aotc_abi_tensor_t;

typedef struct aotc_abi_run_args_t {
  uint32_t struct_size;
  uint32_t num_inputs;
  aotc_abi_tensor_t* inputs; /* writable: mutated inputs are written in place */
  uint32_t num_outputs;
  aotc_abi_tensor_t* outputs; /* shaped as plan() said; never alias inputs or workspace */
  void* workspace;            /* plan()'s workspace_bytes, 64-byte aligned, uninitialised */
  uint64_t workspace_bytes;
  void* stream; /* CUstream on CUDA (NULL = default stream); NULL on CPU */
  void* exec;   /* executor for host->parallel_for */
} aotc_abi_run_args_t;

/*===----------------------------------------------------------------------===*/
/* Exported functions                                                         */
/*===----------------------------------------------------------------------===*/

/* Opaque per-loaded-model state owned by the library. */
typedef struct aotc_model_instance aotc_model_instance;

#define AOTC_MODEL_DESCRIBE_SYMBOL "aotc_model_describe"
#define AOTC_MODEL_CREATE_SYMBOL "aotc_model_create"
#define AOTC_MODEL_PLAN_SYMBOL "aotc_model_plan"
#define AOTC_MODEL_RUN_SYMBOL "aotc_model_run"
#define AOTC_MODEL_DESTROY_SYMBOL "aotc_model_destroy"

/* Static data; valid while the library is loaded. Never fails. */
typedef const aotc_model_description_t* (*aotc_model_describe_fn)(void);

/* Binds constants, loads kernels through |host|. |host| and |constants| must
 * outlive the instance. */
typedef int32_t (*aotc_model_create_fn)(const aotc_host_t* host,
                                        const aotc_abi_constant_binding_t* constants,
                                        uint32_t num_constants, aotc_model_instance** out_instance,
                                        aotc_abi_status_t* status);

/* From input sizes (|input_sizes|[i] has inputs[i].ndim entries) checks every
 * static dim, range and relation, then writes each output's sizes into
 * |out_output_sizes|[i] (outputs[i].ndim entries, caller memory) and the
 * workspace size. Pure: no state, safe to call concurrently. */
typedef int32_t (*aotc_model_plan_fn)(const aotc_model_instance* instance,
                                      const int64_t* const* input_sizes,
                                      int64_t* const* out_output_sizes,
                                      uint64_t* out_workspace_bytes, aotc_abi_status_t* status);

/* Runs once. Re-entrant: concurrent calls with distinct outputs and
 * workspaces are allowed unless the description sets
 * AOTC_ABI_MODEL_MUTATES_STATE, in which case the runtime serialises them. */
typedef int32_t (*aotc_model_run_fn)(const aotc_model_instance* instance,
                                     const aotc_abi_run_args_t* args, aotc_abi_status_t* status);

typedef void (*aotc_model_destroy_fn)(aotc_model_instance* instance);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* AOTC_MODEL_ABI_H_ */
