// The public C API (aotc.h) over the internal runtime. Every entry point
// catches everything: no exception crosses the C ABI, and bad arguments
// become statuses, never crashes.
#include <atomic>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "aotc/aotc.h"
#include "bytes.h"
#include "dtype.h"
#include "model.h"
#include "package.h"
#include "tensor_copy.h"

using aotc::internal::Code;
using aotc::internal::Status;

struct aotc_status {
  int code;
  std::string message;
};

// Refcounted handles: create/open results belong to the caller (refcount 1).
struct aotc_package {
  std::atomic<int> refs{1};
  std::shared_ptr<const aotc::internal::Package> package;
};

struct aotc_model {
  std::atomic<int> refs{1};
  std::shared_ptr<aotc::internal::Model> model;
  // Specs as the C API shows them, built once at load.
  std::vector<aotc_tensor_spec_t> inputs, outputs;
};

struct aotc_tensor {
  aotc::internal::OwnedTensor tensor;
};

namespace {

// Returned when even the status cannot be allocated; never freed.
aotc_status g_out_of_memory{AOTC_RESOURCE_EXHAUSTED, "out of memory"};

aotc_status_t* make_status(int code, std::string message) {
  auto* status = new (std::nothrow) aotc_status{code, std::move(message)};
  return status ? status : &g_out_of_memory;
}

aotc_status_t* to_c(const Status& status) {
  if (status.ok()) return nullptr;
  return make_status(static_cast<int>(status.code()), status.message());
}

aotc_status_t* invalid(const char* message) { return make_status(AOTC_INVALID_ARGUMENT, message); }

// Runs |fn| and turns any escaping exception into a status.
template <typename Fn>
aotc_status_t* guarded(const char* where, Fn fn) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return make_status(AOTC_RESOURCE_EXHAUSTED, std::string(where) + ": out of memory");
  } catch (const std::exception& e) {
    return make_status(AOTC_INTERNAL, std::string(where) + ": " + e.what());
  } catch (...) {
    return make_status(AOTC_INTERNAL, std::string(where) + ": unknown exception");
  }
}

aotc::internal::PackageOptions to_internal(const aotc_package_options_t* options) {
  aotc::internal::PackageOptions out;
  if (options) {
    out.verify_weights = options->verify_weights != 0;
    out.library_loading = options->library_loading;
    if (options->temp_dir) out.temp_dir = options->temp_dir;
  }
  return out;
}

aotc_status_t* finish_open(
    aotc::internal::Result<std::shared_ptr<const aotc::internal::Bytes>> bytes,
    const aotc_package_options_t* options, aotc_package_t** out_package) {
  if (!bytes.ok()) return to_c(bytes.status());
  if (options && (options->library_loading < AOTC_LIBRARY_LOADING_AUTO ||
                  options->library_loading > AOTC_LIBRARY_LOADING_TEMPFILE))
    return invalid("aotc_package_options_t.library_loading is not an aotc_library_loading_e value");
  auto package = aotc::internal::Package::open(std::move(bytes).value(), to_internal(options));
  if (!package.ok()) return to_c(package.status());
  auto* handle = new aotc_package();
  handle->package = std::move(package).value();
  *out_package = handle;
  return nullptr;
}

aotc_tensor_spec_t make_spec(const aotc_abi_io_spec_t& io) {
  aotc_tensor_spec_t spec{};
  spec.name = io.name;
  spec.dtype = io.dtype;
  spec.ndim = io.ndim;
  spec.mutated = (io.flags & AOTC_ABI_IO_MUTATED) ? 1 : 0;
  for (int d = 0; d < io.ndim && d < AOTC_MAX_DIMS; ++d) {
    spec.sizes[d] = io.dims[d].size;
    spec.dim_exprs[d] = io.dims[d].expr ? io.dims[d].expr : "";
    spec.dim_min[d] = io.dims[d].min;
    spec.dim_max[d] = io.dims[d].max;
  }
  return spec;
}

aotc::internal::RunOptions to_internal(const aotc_run_options_t* options) {
  aotc::internal::RunOptions out;
  if (options) {
    out.stream = options->stream;
    out.num_threads = options->num_threads;
  }
  return out;
}

}  // namespace

extern "C" {

int aotc_status_code(const aotc_status_t* status) { return status ? status->code : AOTC_OK; }

const char* aotc_status_message(const aotc_status_t* status) {
  return status ? status->message.c_str() : "";
}

void aotc_status_free(aotc_status_t* status) {
  if (status != &g_out_of_memory) delete status;
}

const char* aotc_status_code_name(int code) {
  switch (code) {
    case AOTC_OK:
      return "OK";
    case AOTC_INTERNAL:
      return "INTERNAL";
    case AOTC_INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case AOTC_OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case AOTC_UNSUPPORTED:
      return "UNSUPPORTED";
    case AOTC_NOT_FOUND:
      return "NOT_FOUND";
    case AOTC_RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case AOTC_DEVICE_ERROR:
      return "DEVICE_ERROR";
    case AOTC_DEVICE_UNAVAILABLE:
      return "DEVICE_UNAVAILABLE";
    case AOTC_IO_ERROR:
      return "IO_ERROR";
    case AOTC_CORRUPT_PACKAGE:
      return "CORRUPT_PACKAGE";
    case AOTC_INCOMPATIBLE:
      return "INCOMPATIBLE";
    default:
      return "UNKNOWN";
  }
}

uint32_t aotc_api_version(void) { return (AOTC_API_VERSION_MAJOR << 16) | AOTC_API_VERSION_MINOR; }

uint32_t aotc_model_abi_version(void) {
  return (AOTC_MODEL_ABI_MAJOR << 16) | AOTC_MODEL_ABI_MINOR;
}

const char* aotc_dtype_name(int dtype) { return aotc::internal::dtype_name(dtype); }

size_t aotc_dtype_size(int dtype) { return aotc::internal::dtype_size(dtype); }

void aotc_tensor_view_set_contiguous(aotc_tensor_view_t* view) {
  if (view && view->ndim >= 0 && view->ndim <= AOTC_MAX_DIMS)
    aotc::internal::set_contiguous_strides(view->sizes, view->ndim, view->strides);
}

const aotc_tensor_view_t* aotc_tensor_view(const aotc_tensor_t* tensor) {
  return tensor ? &tensor->tensor.view : nullptr;
}

void aotc_tensor_release(aotc_tensor_t* tensor) { delete tensor; }

void aotc_package_options_initialize(aotc_package_options_t* out_options) {
  if (!out_options) return;
  std::memset(out_options, 0, sizeof(*out_options));
  out_options->struct_size = sizeof(*out_options);
  out_options->verify_weights = 1;
  out_options->library_loading = AOTC_LIBRARY_LOADING_AUTO;
}

aotc_status_t* aotc_package_open_file(const char* path, const aotc_package_options_t* options,
                                      aotc_package_t** out_package) {
  return guarded("aotc_package_open_file", [&]() -> aotc_status_t* {
    if (!path || !out_package) return invalid("aotc_package_open_file: NULL argument");
    *out_package = nullptr;
    auto bytes = aotc::internal::Bytes::map_file(path);
    if (!bytes.ok()) return to_c(bytes.status());
    aotc_status_t* status = finish_open(std::move(bytes), options, out_package);
    if (status) status->message = std::string(path) + ": " + status->message;
    return status;
  });
}

aotc_status_t* aotc_package_open_memory(const void* data, size_t size,
                                        const aotc_package_options_t* options,
                                        aotc_package_t** out_package) {
  return guarded("aotc_package_open_memory", [&]() -> aotc_status_t* {
    if ((!data && size) || !out_package) return invalid("aotc_package_open_memory: NULL argument");
    *out_package = nullptr;
    if (size == 0) return make_status(AOTC_CORRUPT_PACKAGE, "not an aotc package: buffer is empty");
    return finish_open(aotc::internal::Bytes::copy_of(data, size), options, out_package);
  });
}

void aotc_package_retain(aotc_package_t* package) {
  if (package) package->refs.fetch_add(1);
}

void aotc_package_release(aotc_package_t* package) {
  if (package && package->refs.fetch_sub(1) == 1) delete package;
}

size_t aotc_package_model_count(const aotc_package_t* package) {
  return package ? package->package->models().size() : 0;
}

const char* aotc_package_model_name(const aotc_package_t* package, size_t index) {
  if (!package || index >= package->package->models().size()) return nullptr;
  return package->package->models()[index].name.c_str();
}

void aotc_model_options_initialize(aotc_model_options_t* out_options) {
  if (!out_options) return;
  std::memset(out_options, 0, sizeof(*out_options));
  out_options->struct_size = sizeof(*out_options);
}

aotc_status_t* aotc_model_load(aotc_package_t* package, const aotc_model_options_t* options,
                               aotc_model_t** out_model) {
  return guarded("aotc_model_load", [&]() -> aotc_status_t* {
    if (!package || !out_model) return invalid("aotc_model_load: NULL argument");
    *out_model = nullptr;
    std::string name = options && options->model_name ? options->model_name : "";
    std::string device = options && options->device ? options->device : "cpu";
    auto model = aotc::internal::Model::load(package->package, name, device);
    if (!model.ok()) return to_c(model.status());
    auto* handle = new aotc_model();
    handle->model = std::move(model).value();
    const aotc_model_description_t& d = handle->model->description();
    for (uint32_t i = 0; i < d.num_inputs; ++i) handle->inputs.push_back(make_spec(d.inputs[i]));
    for (uint32_t i = 0; i < d.num_outputs; ++i) handle->outputs.push_back(make_spec(d.outputs[i]));
    *out_model = handle;
    return nullptr;
  });
}

void aotc_model_retain(aotc_model_t* model) {
  if (model) model->refs.fetch_add(1);
}

void aotc_model_release(aotc_model_t* model) {
  if (model && model->refs.fetch_sub(1) == 1) delete model;
}

size_t aotc_model_input_count(const aotc_model_t* model) {
  return model ? model->inputs.size() : 0;
}

size_t aotc_model_output_count(const aotc_model_t* model) {
  return model ? model->outputs.size() : 0;
}

aotc_status_t* aotc_model_input_spec(const aotc_model_t* model, size_t index,
                                     aotc_tensor_spec_t* out_spec) {
  if (!model || !out_spec) return invalid("aotc_model_input_spec: NULL argument");
  if (index >= model->inputs.size())
    return make_status(AOTC_OUT_OF_RANGE, "input index " + std::to_string(index) +
                                              " out of range (model has " +
                                              std::to_string(model->inputs.size()) + " inputs)");
  *out_spec = model->inputs[index];
  return nullptr;
}

aotc_status_t* aotc_model_output_spec(const aotc_model_t* model, size_t index,
                                      aotc_tensor_spec_t* out_spec) {
  if (!model || !out_spec) return invalid("aotc_model_output_spec: NULL argument");
  if (index >= model->outputs.size())
    return make_status(AOTC_OUT_OF_RANGE, "output index " + std::to_string(index) +
                                              " out of range (model has " +
                                              std::to_string(model->outputs.size()) + " outputs)");
  *out_spec = model->outputs[index];
  return nullptr;
}

const char* aotc_model_metadata_json(const aotc_model_t* model) {
  return model ? model->model->metadata_json().c_str() : "";
}

const char* aotc_model_name(const aotc_model_t* model) {
  return model ? model->model->name().c_str() : "";
}

const char* aotc_model_device(const aotc_model_t* model) {
  return model ? model->model->device().c_str() : "";
}

aotc_status_t* aotc_model_plan(const aotc_model_t* model, const int64_t* const* input_sizes,
                               size_t num_inputs, int64_t* const* out_output_sizes,
                               size_t num_outputs) {
  return guarded("aotc_model_plan", [&]() -> aotc_status_t* {
    if (!model || (num_inputs && !input_sizes) || (num_outputs && !out_output_sizes))
      return invalid("aotc_model_plan: NULL argument");
    for (size_t o = 0; o < num_outputs; ++o)
      if (!out_output_sizes[o] && model->outputs.size() > o && model->outputs[o].ndim > 0)
        return invalid("aotc_model_plan: an output sizes pointer is NULL");
    return to_c(
        model->model->plan(input_sizes, num_inputs, out_output_sizes, num_outputs, nullptr));
  });
}

void aotc_run_options_initialize(aotc_run_options_t* out_options) {
  if (!out_options) return;
  std::memset(out_options, 0, sizeof(*out_options));
  out_options->struct_size = sizeof(*out_options);
}

aotc_status_t* aotc_model_run(aotc_model_t* model, const aotc_tensor_view_t* inputs,
                              size_t num_inputs, const aotc_tensor_view_t* outputs,
                              size_t num_outputs, const aotc_run_options_t* options) {
  return guarded("aotc_model_run", [&]() -> aotc_status_t* {
    if (!model) return invalid("aotc_model_run: model is NULL");
    if (num_outputs && !outputs) return invalid("aotc_model_run: outputs array is NULL");
    if (!outputs) return invalid("aotc_model_run: outputs are required (see aotc_model_run_alloc)");
    return to_c(
        model->model->run(inputs, num_inputs, outputs, num_outputs, to_internal(options), nullptr));
  });
}

aotc_status_t* aotc_model_run_alloc(aotc_model_t* model, const aotc_tensor_view_t* inputs,
                                    size_t num_inputs, const aotc_run_options_t* options,
                                    aotc_tensor_t** out_outputs, size_t num_outputs) {
  return guarded("aotc_model_run_alloc", [&]() -> aotc_status_t* {
    if (!model) return invalid("aotc_model_run_alloc: model is NULL");
    if (num_outputs && !out_outputs) return invalid("aotc_model_run_alloc: out_outputs is NULL");
    std::vector<aotc::internal::OwnedTensor> produced;
    Status status = model->model->run(inputs, num_inputs, nullptr, num_outputs,
                                      to_internal(options), &produced);
    if (!status.ok()) return to_c(status);
    for (size_t o = 0; o < produced.size(); ++o)
      out_outputs[o] = new aotc_tensor{std::move(produced[o])};
    return nullptr;
  });
}

aotc_status_t* aotc_model_update_constants(aotc_model_t* model, const char* const* names,
                                           const aotc_tensor_view_t* values, size_t count) {
  return guarded("aotc_model_update_constants", [&]() -> aotc_status_t* {
    if (!model) return invalid("aotc_model_update_constants: model is NULL");
    return to_c(model->model->update_constants(names, values, count));
  });
}

size_t aotc_model_constant_count(const aotc_model_t* model) {
  return model ? model->model->description().num_constants : 0;
}

const char* aotc_model_constant_name(const aotc_model_t* model, size_t index) {
  if (!model || index >= model->model->description().num_constants) return nullptr;
  return model->model->description().constants[index].name;
}

}  // extern "C"
