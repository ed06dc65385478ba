/* Compile-only check that the public C headers are strict C99
 * (-std=c99 -pedantic -Werror): built as an object library, never run. */
#include <stddef.h>
#include <stdint.h>

#include "aotc/aotc.h"
#include "aotc/model_abi.h"

/* Both headers together: their enums share values. */
typedef char aotc_c99_check_codes_agree[(int)AOTC_INVALID_ARGUMENT == (int)AOTC_ABI_INVALID_ARGUMENT
                                            ? 1
                                            : -1];
typedef char aotc_c99_check_dtypes_agree[(int)AOTC_BOOL == (int)AOTC_ABI_DTYPE_BOOL ? 1 : -1];
typedef char aotc_c99_check_dims_agree[AOTC_MAX_DIMS == AOTC_ABI_MAX_DIMS ? 1 : -1];

int aotc_c99_check_run(const char* path);

/* A typical C caller: open, load, query, run with runtime-allocated outputs. */
int aotc_c99_check_run(const char* path) {
  aotc_package_options_t package_options;
  aotc_model_options_t model_options;
  aotc_run_options_t run_options;
  aotc_package_t* package = NULL;
  aotc_model_t* model = NULL;
  aotc_tensor_spec_t spec;
  aotc_tensor_view_t input;
  aotc_tensor_t* outputs[4] = {NULL, NULL, NULL, NULL};
  aotc_status_t* status;
  float data[8] = {0};
  size_t i;
  int code;

  aotc_package_options_initialize(&package_options);
  package_options.verify_weights = 0;
  status = aotc_package_open_file(path, &package_options, &package);
  if (status != NULL) {
    code = aotc_status_code(status);
    (void)aotc_status_message(status);
    (void)aotc_status_code_name(code);
    aotc_status_free(status);
    return code;
  }
  aotc_model_options_initialize(&model_options);
  model_options.device = "cpu";
  status = aotc_model_load(package, &model_options, &model);
  aotc_package_release(package);
  if (status != NULL) {
    code = aotc_status_code(status);
    aotc_status_free(status);
    return code;
  }
  status = aotc_model_input_spec(model, 0, &spec);
  if (status == NULL && aotc_model_output_count(model) <= 4) {
    input.data = data;
    input.dtype = AOTC_FLOAT32;
    input.device_type = AOTC_DEVICE_CPU;
    input.device_index = 0;
    input.ndim = 1;
    input.sizes[0] = 8;
    aotc_tensor_view_set_contiguous(&input);
    aotc_run_options_initialize(&run_options);
    run_options.num_threads = 1;
    status = aotc_model_run_alloc(model, &input, 1, &run_options, outputs,
                                  aotc_model_output_count(model));
  }
  code = status != NULL ? aotc_status_code(status) : AOTC_OK;
  aotc_status_free(status);
  for (i = 0; i < sizeof(outputs) / sizeof(outputs[0]); ++i) {
    if (outputs[i] != NULL) {
      (void)aotc_tensor_view(outputs[i])->sizes[0];
      aotc_tensor_release(outputs[i]);
    }
  }
  aotc_model_release(model);
  return code;
}

/* The model ABI's function types, as a host declares them. */
struct aotc_c99_check_library {
  aotc_model_describe_fn describe;
  aotc_model_create_fn create;
  aotc_model_plan_fn plan;
  aotc_model_run_fn run;
  aotc_model_destroy_fn destroy;
  aotc_host_t host;
  aotc_abi_status_t status;
  aotc_abi_run_args_t run_args;
};

size_t aotc_c99_check_sizes(void);
size_t aotc_c99_check_sizes(void) {
  return sizeof(struct aotc_c99_check_library) + sizeof(aotc_model_description_t) +
         sizeof(aotc_abi_constant_binding_t) + sizeof(aotc_abi_tensor_t) +
         (size_t)aotc_api_version() + (size_t)aotc_model_abi_version();
}
