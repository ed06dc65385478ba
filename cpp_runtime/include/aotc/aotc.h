/* aotc runtime: public C API (C99). Loads a .pt2 package written by aotc and
 * runs its models on CPU or CUDA, without Python or libtorch.
 *
 * Conventions (after IREE): functions are aotc_<object>_<verb>; outputs come
 * last with an out_ prefix; a function that can fail returns an
 * aotc_status_t*, NULL on success, which the caller frees with
 * aotc_status_free(). Objects are reference counted: open and load results
 * belong to the caller, who releases them; accessors lend.
 *
 * Thread-safety: aotc_package_t and aotc_model_t are thread-safe. Concurrent
 * aotc_model_run calls on one model overlap (no global lock), except for
 * models that mutate state, whose runs are serialised (docs/ABI.md).
 */
#ifndef AOTC_AOTC_H_
#define AOTC_AOTC_H_

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define AOTC_API
#else
#define AOTC_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Public C API version: bumped major on incompatible change. */
#define AOTC_API_VERSION_MAJOR 1
#define AOTC_API_VERSION_MINOR 0
#define AOTC_MAX_DIMS 16

/*===----------------------------------------------------------------------===*/
/* aotc_status_t                                                              */
/*===----------------------------------------------------------------------===*/

/* Codes share values with aotc_abi_code_e (model_abi.h). Grouped by kind:
 * 0x0_ system, 0x1_ caller input, 0x2_ resources, 0x3_ package. New codes are
 * appended, never renumbered. */
typedef enum aotc_status_code_e {
  AOTC_OK = 0,
  AOTC_INTERNAL = 1,
  AOTC_INVALID_ARGUMENT = 16,
  AOTC_OUT_OF_RANGE = 17,
  AOTC_UNSUPPORTED = 18,
  AOTC_NOT_FOUND = 19,
  AOTC_RESOURCE_EXHAUSTED = 32,
  AOTC_DEVICE_ERROR = 33,
  AOTC_DEVICE_UNAVAILABLE = 34,
  AOTC_IO_ERROR = 35,
  AOTC_CORRUPT_PACKAGE = 48,
  AOTC_INCOMPATIBLE = 49, /* ABI/format version, ISA, arch or driver mismatch */
} aotc_status_code_e;

typedef struct aotc_status aotc_status_t;

AOTC_API int aotc_status_code(const aotc_status_t* status);
/* Lent; valid until aotc_status_free(|status|). "" for NULL. */
AOTC_API const char* aotc_status_message(const aotc_status_t* status);
AOTC_API void aotc_status_free(aotc_status_t* status);
/* Name of a code, e.g. "INVALID_ARGUMENT". */
AOTC_API const char* aotc_status_code_name(int code);

/* (major << 16) | minor of the C API this library implements. */
AOTC_API uint32_t aotc_api_version(void);
/* (major << 16) | minor of the model ABI this runtime accepts. */
AOTC_API uint32_t aotc_model_abi_version(void);

/*===----------------------------------------------------------------------===*/
/* Tensors                                                                    */
/*===----------------------------------------------------------------------===*/

/* Same values as aotc_abi_dtype_e. */
typedef enum aotc_dtype_e {
  AOTC_FLOAT32 = 0,
  AOTC_FLOAT16 = 1,
  AOTC_BFLOAT16 = 2,
  AOTC_FLOAT64 = 3,
  AOTC_INT8 = 4,
  AOTC_UINT8 = 5,
  AOTC_INT16 = 6,
  AOTC_INT32 = 7,
  AOTC_INT64 = 8,
  AOTC_BOOL = 9,
} aotc_dtype_e;

/* "float32", ... ; "unknown" for a bad value. */
AOTC_API const char* aotc_dtype_name(int dtype);
/* Bytes per element; 0 for a bad value. */
AOTC_API size_t aotc_dtype_size(int dtype);

typedef enum aotc_device_type_e {
  AOTC_DEVICE_CPU = 0,
  AOTC_DEVICE_CUDA = 1,
} aotc_device_type_e;

/* A view of caller memory: the runtime never frees |data|. Strides are in
 * elements. */
typedef struct aotc_tensor_view_t {
  void* data;
  int32_t dtype;
  int32_t device_type;
  int32_t device_index;
  int32_t ndim;
  int64_t sizes[AOTC_MAX_DIMS];
  int64_t strides[AOTC_MAX_DIMS];
} aotc_tensor_view_t;

/* Fills row-major strides for |view|'s sizes. */
AOTC_API void aotc_tensor_view_set_contiguous(aotc_tensor_view_t* view);

/* A tensor whose memory the runtime allocated (outputs of aotc_model_run_alloc). */
typedef struct aotc_tensor aotc_tensor_t;
/* Lent view of the tensor; valid until aotc_tensor_release(). */
AOTC_API const aotc_tensor_view_t* aotc_tensor_view(const aotc_tensor_t* tensor);
AOTC_API void aotc_tensor_release(aotc_tensor_t* tensor);

/*===----------------------------------------------------------------------===*/
/* aotc_package_t                                                             */
/*===----------------------------------------------------------------------===*/

typedef struct aotc_package aotc_package_t;

typedef enum aotc_library_loading_e {
  AOTC_LIBRARY_LOADING_AUTO = 0,     /* memfd, else an unlinked temp file */
  AOTC_LIBRARY_LOADING_MEMFD = 1,    /* memfd only */
  AOTC_LIBRARY_LOADING_TEMPFILE = 2, /* temp file in |temp_dir|, unlinked after dlopen */
} aotc_library_loading_e;

typedef struct aotc_package_options_t {
  uint32_t struct_size;
  /* Verify the sha256 of every weight entry at load (default 1). Code and
   * manifest entries are always verified before dlopen. */
  int32_t verify_weights;
  int32_t library_loading; /* aotc_library_loading_e */
  /* Directory for the temp-file fallback; NULL = $TMPDIR or /tmp. Copied. */
  const char* temp_dir;
} aotc_package_options_t;

AOTC_API void aotc_package_options_initialize(aotc_package_options_t* out_options);

/* Maps the file at |path|. |options| may be NULL (defaults). */
AOTC_API aotc_status_t* aotc_package_open_file(const char* path,
                                               const aotc_package_options_t* options,
                                               aotc_package_t** out_package);
/* Copies |size| bytes at |data|; the caller may free them on return. */
AOTC_API aotc_status_t* aotc_package_open_memory(const void* data, size_t size,
                                                 const aotc_package_options_t* options,
                                                 aotc_package_t** out_package);
AOTC_API void aotc_package_retain(aotc_package_t* package);
AOTC_API void aotc_package_release(aotc_package_t* package);

AOTC_API size_t aotc_package_model_count(const aotc_package_t* package);
/* Lent; NULL when |index| is out of range. */
AOTC_API const char* aotc_package_model_name(const aotc_package_t* package, size_t index);

/*===----------------------------------------------------------------------===*/
/* aotc_model_t                                                               */
/*===----------------------------------------------------------------------===*/

typedef struct aotc_model aotc_model_t;

typedef struct aotc_model_options_t {
  uint32_t struct_size;
  const char* model_name; /* NULL: the package's only model (error if several) */
  const char* device;     /* "cpu" (default when NULL), "cuda", "cuda:N" */
} aotc_model_options_t;

AOTC_API void aotc_model_options_initialize(aotc_model_options_t* out_options);

/* Loads a model: verifies and dlopens its library, checks ABI/ISA/driver,
 * binds weights (uploaded once on CUDA). The model keeps |package| alive. */
AOTC_API aotc_status_t* aotc_model_load(aotc_package_t* package,
                                        const aotc_model_options_t* options,
                                        aotc_model_t** out_model);
AOTC_API void aotc_model_retain(aotc_model_t* model);
AOTC_API void aotc_model_release(aotc_model_t* model);

/* Static spec of one input or output. Strings are lent from |model|. */
typedef struct aotc_tensor_spec_t {
  const char* name;
  int32_t dtype;
  int32_t ndim;
  int64_t sizes[AOTC_MAX_DIMS]; /* -1 for a dynamic dim */
  const char* dim_exprs[AOTC_MAX_DIMS];
  int64_t dim_min[AOTC_MAX_DIMS];
  int64_t dim_max[AOTC_MAX_DIMS];
  int32_t mutated; /* input written by the model */
} aotc_tensor_spec_t;

AOTC_API size_t aotc_model_input_count(const aotc_model_t* model);
AOTC_API size_t aotc_model_output_count(const aotc_model_t* model);
AOTC_API aotc_status_t* aotc_model_input_spec(const aotc_model_t* model, size_t index,
                                              aotc_tensor_spec_t* out_spec);
AOTC_API aotc_status_t* aotc_model_output_spec(const aotc_model_t* model, size_t index,
                                               aotc_tensor_spec_t* out_spec);
/* The model's manifest.json text (lent, NUL-terminated). */
AOTC_API const char* aotc_model_metadata_json(const aotc_model_t* model);
/* Model name and device string ("cpu", "cuda:0"), lent. */
AOTC_API const char* aotc_model_name(const aotc_model_t* model);
AOTC_API const char* aotc_model_device(const aotc_model_t* model);

/* Output sizes for inputs of the given sizes: |input_sizes|[i] points at
 * input i's sizes; |out_output_sizes|[i] at AOTC_MAX_DIMS int64 of caller
 * memory. Checks dims, ranges and relations. */
AOTC_API aotc_status_t* aotc_model_plan(const aotc_model_t* model,
                                        const int64_t* const* input_sizes, size_t num_inputs,
                                        int64_t* const* out_output_sizes, size_t num_outputs);

typedef struct aotc_run_options_t {
  uint32_t struct_size;
  void* stream;        /* CUstream for CUDA models; NULL = default stream */
  int32_t num_threads; /* CPU threads for this run; 0 = runtime default */
} aotc_run_options_t;

AOTC_API void aotc_run_options_initialize(aotc_run_options_t* out_options);

/* Runs into caller memory: |outputs| must be contiguous, on the model's
 * device, with the dtypes of the output specs and the sizes plan() gives.
 * |options| may be NULL. */
AOTC_API aotc_status_t* aotc_model_run(aotc_model_t* model, const aotc_tensor_view_t* inputs,
                                       size_t num_inputs, const aotc_tensor_view_t* outputs,
                                       size_t num_outputs, const aotc_run_options_t* options);

/* Runs and allocates the outputs: on success |out_outputs|[i] (caller array
 * of aotc_model_output_count() slots) each belong to the caller. */
AOTC_API aotc_status_t* aotc_model_run_alloc(aotc_model_t* model, const aotc_tensor_view_t* inputs,
                                             size_t num_inputs, const aotc_run_options_t* options,
                                             aotc_tensor_t** out_outputs, size_t num_outputs);

/* Replaces the model's constants by a complete new set: |names|[i] and
 * |values|[i] (host memory, copied) for every non-state constant. Runs in
 * flight finish on the old set; later runs use the new one. */
AOTC_API aotc_status_t* aotc_model_update_constants(aotc_model_t* model, const char* const* names,
                                                    const aotc_tensor_view_t* values, size_t count);

AOTC_API size_t aotc_model_constant_count(const aotc_model_t* model);
/* Name of constant |index| (lent), NULL when out of range. */
AOTC_API const char* aotc_model_constant_name(const aotc_model_t* model, size_t index);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* AOTC_AOTC_H_ */
