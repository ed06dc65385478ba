// aotc C++ API: Package and Model (see aotc.hpp).

#ifndef AOTC_MODEL_HPP_
#define AOTC_MODEL_HPP_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "aotc/aotc.h"
#include "aotc/status.hpp"
#include "aotc/tensor.hpp"

namespace aotc {

//===----------------------------------------------------------------------===//
// Package
//===----------------------------------------------------------------------===//

enum class LibraryLoading : int32_t {
  kAuto = AOTC_LIBRARY_LOADING_AUTO,          // memfd, else an unlinked temp file
  kMemfd = AOTC_LIBRARY_LOADING_MEMFD,        // memfd only
  kTempFile = AOTC_LIBRARY_LOADING_TEMPFILE,  // temp file in temp_dir, unlinked after dlopen
};

struct PackageOptions {
  // Verify the sha256 of every weight entry at load. Code and manifest entries
  // are always verified before dlopen.
  bool verify_weights = true;
  LibraryLoading library_loading = LibraryLoading::kAuto;
  // Directory for the temp-file fallback; empty = $TMPDIR or /tmp.
  std::string temp_dir;
};

// An opened .pt2 package. Thread-safe: any number of threads may load models
// from one Package at once. The handle object itself is thread-compatible
// (don't move-assign it while another thread uses it). Models keep the
// package alive, so a Package may be destroyed while its models run.
class Package final {
 public:
  // Maps the file at |path| (copied; the file must stay unchanged while the
  // package or any of its models lives).
  static Result<Package> open(const std::string& path, const PackageOptions& options = {}) {
    Status version = check_api_version();
    if (!version.ok()) return version;
    aotc_package_options_t c_options = to_c(options);
    aotc_package_t* package = nullptr;
    Status status(aotc_package_open_file(path.c_str(), &c_options, &package));
    if (!status.ok()) return status;
    return Package(package);
  }

  // Copies |size| bytes at |data|; the caller may free them on return.
  static Result<Package> open_memory(const void* data, size_t size,
                                     const PackageOptions& options = {}) {
    Status version = check_api_version();
    if (!version.ok()) return version;
    aotc_package_options_t c_options = to_c(options);
    aotc_package_t* package = nullptr;
    Status status(aotc_package_open_memory(data, size, &c_options, &package));
    if (!status.ok()) return status;
    return Package(package);
  }

  // Takes ownership of one reference to |package| (must not be NULL).
  static Package adopt(aotc_package_t* package) { return Package(package); }

  Package(Package&& other) noexcept : package_(std::exchange(other.package_, nullptr)) {}
  Package& operator=(Package&& other) noexcept {
    if (this != &other) {
      reset();
      package_ = std::exchange(other.package_, nullptr);
    }
    return *this;
  }
  Package(const Package&) = delete;
  Package& operator=(const Package&) = delete;
  ~Package() { reset(); }

  // Another handle to the same package (aotc_package_retain).
  Package retain() const {
    aotc_package_retain(package_);
    return Package(package_);
  }

  size_t model_count() const { return aotc_package_model_count(package_); }
  std::vector<std::string> model_names() const {
    std::vector<std::string> names;
    const size_t count = model_count();
    names.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      const char* name = aotc_package_model_name(package_, i);
      names.emplace_back(name != nullptr ? name : "");
    }
    return names;
  }

  // The C handle, lent: valid while this Package holds it.
  aotc_package_t* c_package() const { return package_; }

 private:
  explicit Package(aotc_package_t* package) : package_(package) {}
  static aotc_package_options_t to_c(const PackageOptions& options) {
    aotc_package_options_t c_options;
    aotc_package_options_initialize(&c_options);
    c_options.verify_weights = options.verify_weights ? 1 : 0;
    c_options.library_loading = static_cast<int32_t>(options.library_loading);
    c_options.temp_dir = options.temp_dir.empty() ? nullptr : options.temp_dir.c_str();
    return c_options;
  }
  void reset() {
    if (package_ != nullptr) aotc_package_release(package_);
    package_ = nullptr;
  }
  aotc_package_t* package_ = nullptr;
};

//===----------------------------------------------------------------------===//
// Model
//===----------------------------------------------------------------------===//

// Static spec of one input or output. A plain value (copied out of the model).
struct TensorSpec {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> sizes;          // -1 for a dynamic dim
  std::vector<std::string> dim_exprs;  // "8", "s0", "2*s0"
  std::vector<int64_t> dim_min;        // declared range of each dim
  std::vector<int64_t> dim_max;        // INT64_MAX when unbounded
  bool mutated = false;                // an input the model writes

  int ndim() const { return static_cast<int>(sizes.size()); }
  bool is_dynamic() const {
    for (int64_t size : sizes)
      if (size < 0) return true;
    return false;
  }
  // "float32[8, s0]".
  std::string to_string() const {
    std::string out = std::string(dtype_name(dtype)) + "[";
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (i) out += ", ";
      out += sizes[i] >= 0 ? std::to_string(sizes[i]) : dim_exprs[i];
    }
    return out + "]";
  }
};

struct ModelOptions {
  std::string name;    // empty: the package's only model (error if several)
  std::string device;  // "cpu" (default when empty), "cuda", "cuda:N"
};

// Options of one run. A plain value.
struct RunOptions {
  void* stream = nullptr;   // CUstream for CUDA models (lent for the run); NULL = default stream
  int32_t num_threads = 0;  // CPU threads for this run; 0 = runtime default
};

// A model loaded from a package onto one device. Thread-safe: run(), plan(),
// update_constants() and the accessors may be called concurrently from many
// threads on one Model, and concurrent runs overlap (runs of a model that
// mutates state are serialised by the runtime). The handle object itself is
// thread-compatible (don't move-assign it while another thread uses it).
// After a CUDA error the model reports itself dead and every later run fails.
class Model final {
 public:
  // Loads a model of |package| (lent: the model retains the package, so the
  // caller may destroy |package| afterwards).
  static Result<Model> load(const Package& package, const ModelOptions& options = {}) {
    aotc_model_options_t c_options;
    aotc_model_options_initialize(&c_options);
    c_options.model_name = options.name.empty() ? nullptr : options.name.c_str();
    c_options.device = options.device.empty() ? nullptr : options.device.c_str();
    aotc_model_t* c_model = nullptr;
    Status status(aotc_model_load(package.c_package(), &c_options, &c_model));
    if (!status.ok()) return status;
    Model model(c_model);  // owns c_model from here on
    status = model.read_specs();
    if (!status.ok()) return status;
    return Result<Model>(std::move(model));
  }

  // Takes ownership of one reference to |model| (must not be NULL).
  static Result<Model> adopt(aotc_model_t* model) {
    Model out(model);
    Status status = out.read_specs();
    if (!status.ok()) return status;
    return Result<Model>(std::move(out));
  }

  Model(Model&& other) noexcept
      : model_(std::exchange(other.model_, nullptr)),
        inputs_(std::move(other.inputs_)),
        outputs_(std::move(other.outputs_)) {}
  Model& operator=(Model&& other) noexcept {
    if (this != &other) {
      reset();
      model_ = std::exchange(other.model_, nullptr);
      inputs_ = std::move(other.inputs_);
      outputs_ = std::move(other.outputs_);
    }
    return *this;
  }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  ~Model() { reset(); }

  // Another handle to the same loaded model (aotc_model_retain).
  Model retain() const {
    aotc_model_retain(model_);
    Model out(model_);
    out.inputs_ = inputs_;
    out.outputs_ = outputs_;
    return out;
  }

  // Lent: valid while this model (any handle to it) lives.
  std::string_view name() const { return aotc_model_name(model_); }
  // "cpu", "cuda:0".
  std::string device_name() const { return aotc_model_device(model_); }
  Device device() const {
    Result<Device> device = Device::parse(aotc_model_device(model_));
    return device.ok() ? *device : Device::cpu();
  }
  const std::vector<TensorSpec>& inputs() const { return inputs_; }
  const std::vector<TensorSpec>& outputs() const { return outputs_; }
  // The model's manifest.json text. Lent: valid while this model lives.
  std::string_view metadata_json() const {
    const char* json = aotc_model_metadata_json(model_);
    return json != nullptr ? std::string_view(json) : std::string_view();
  }
  // Names of the constants update_constants() replaces.
  std::vector<std::string> constant_names() const {
    std::vector<std::string> names;
    const size_t count = aotc_model_constant_count(model_);
    names.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      const char* name = aotc_model_constant_name(model_, i);
      names.emplace_back(name != nullptr ? name : "");
    }
    return names;
  }

  // Output sizes for inputs of the given sizes (one vector per input, as many
  // entries as the input's spec has dims). Checks dims, ranges and relations.
  Result<std::vector<std::vector<int64_t>>> plan(
      const std::vector<std::vector<int64_t>>& input_sizes) const {
    if (input_sizes.size() != inputs_.size()) {
      return Status(StatusCode::kInvalidArgument, "plan: model '" + std::string(name()) +
                                                      "' takes " + std::to_string(inputs_.size()) +
                                                      " inputs, got sizes for " +
                                                      std::to_string(input_sizes.size()));
    }
    std::vector<const int64_t*> in(input_sizes.size());
    for (size_t i = 0; i < input_sizes.size(); ++i) {
      if (input_sizes[i].size() != inputs_[i].sizes.size()) {
        return Status(StatusCode::kInvalidArgument,
                      "plan: input " + std::to_string(i) + " \"" + inputs_[i].name +
                          "\": " + "expected " + std::to_string(inputs_[i].sizes.size()) +
                          " dims, got " + std::to_string(input_sizes[i].size()));
      }
      in[i] = input_sizes[i].data();
    }
    std::vector<std::vector<int64_t>> out(outputs_.size(), std::vector<int64_t>(AOTC_MAX_DIMS, 0));
    std::vector<int64_t*> out_ptrs(outputs_.size());
    for (size_t i = 0; i < out.size(); ++i) out_ptrs[i] = out[i].data();
    Status status(aotc_model_plan(model_, in.data(), in.size(), out_ptrs.data(), out_ptrs.size()));
    if (!status.ok()) return status;
    for (size_t i = 0; i < out.size(); ++i) out[i].resize(outputs_[i].sizes.size());
    return Result<std::vector<std::vector<int64_t>>>(std::move(out));
  }

  // Runs once; the runtime allocates the outputs on the model's device.
  // |inputs| (lent for the call) in spec order.
  Result<std::vector<Tensor>> run(const std::vector<TensorView>& inputs,
                                  const RunOptions& options = {}) {
    std::vector<aotc_tensor_view_t> c_inputs = to_c(inputs);
    aotc_run_options_t c_options = to_c(options);
    std::vector<aotc_tensor_t*> c_outputs(aotc_model_output_count(model_), nullptr);
    Status status(aotc_model_run_alloc(model_, c_inputs.data(), c_inputs.size(), &c_options,
                                       c_outputs.data(), c_outputs.size()));
    if (!status.ok()) return status;
    std::vector<Tensor> outputs;
    outputs.reserve(c_outputs.size());
    for (aotc_tensor_t* tensor : c_outputs) outputs.push_back(Tensor::adopt(tensor));
    return Result<std::vector<Tensor>>(std::move(outputs));
  }

  // Runs once into caller memory: |outputs| (lent for the call) must be
  // contiguous, on the model's device, with the output specs' dtypes and the
  // sizes plan() gives.
  Status run(const std::vector<TensorView>& inputs, const std::vector<TensorView>& outputs,
             const RunOptions& options = {}) {
    std::vector<aotc_tensor_view_t> c_inputs = to_c(inputs);
    std::vector<aotc_tensor_view_t> c_outputs = to_c(outputs);
    aotc_run_options_t c_options = to_c(options);
    return Status(aotc_model_run(model_, c_inputs.data(), c_inputs.size(), c_outputs.data(),
                                 c_outputs.size(), &c_options));
  }

  // Replaces the model's constants by a complete new set (every non-state
  // constant, by name). Values are host memory, copied before the call
  // returns. Runs in flight finish on the old set; later runs use the new one.
  Status update_constants(const std::map<std::string, TensorView>& constants) {
    std::vector<const char*> names;
    std::vector<aotc_tensor_view_t> values;
    names.reserve(constants.size());
    values.reserve(constants.size());
    for (const auto& entry : constants) {
      names.push_back(entry.first.c_str());
      values.push_back(entry.second.c_view());
    }
    return Status(aotc_model_update_constants(model_, names.data(), values.data(), names.size()));
  }
  // Same, with |names|[i] naming |values|[i].
  Status update_constants(const std::vector<std::string>& names,
                          const std::vector<TensorView>& values) {
    if (names.size() != values.size()) {
      return Status(StatusCode::kInvalidArgument,
                    "update_constants: " + std::to_string(names.size()) + " names but " +
                        std::to_string(values.size()) + " values");
    }
    std::vector<const char*> c_names;
    c_names.reserve(names.size());
    for (const std::string& name : names) c_names.push_back(name.c_str());
    std::vector<aotc_tensor_view_t> c_values = to_c(values);
    return Status(
        aotc_model_update_constants(model_, c_names.data(), c_values.data(), c_names.size()));
  }

  // The C handle, lent: valid while this Model holds it.
  aotc_model_t* c_model() const { return model_; }

 private:
  explicit Model(aotc_model_t* model) : model_(model) {}

  Status read_specs() {
    Status status = read_specs(aotc_model_input_count(model_), aotc_model_input_spec, &inputs_);
    if (!status.ok()) return status;
    return read_specs(aotc_model_output_count(model_), aotc_model_output_spec, &outputs_);
  }
  template <typename SpecFn>
  Status read_specs(size_t count, SpecFn spec_fn, std::vector<TensorSpec>* out) {
    out->clear();
    out->reserve(count);
    for (size_t i = 0; i < count; ++i) {
      aotc_tensor_spec_t c_spec;
      std::memset(&c_spec, 0, sizeof(c_spec));
      Status status(spec_fn(model_, i, &c_spec));
      if (!status.ok()) return status;
      if (c_spec.ndim < 0 || c_spec.ndim > AOTC_MAX_DIMS) {
        return Status(StatusCode::kInternal,
                      "tensor spec with " + std::to_string(c_spec.ndim) + " dims");
      }
      TensorSpec spec;
      spec.name = c_spec.name != nullptr ? c_spec.name : "";
      spec.dtype = static_cast<DType>(c_spec.dtype);
      spec.mutated = c_spec.mutated != 0;
      for (int d = 0; d < c_spec.ndim; ++d) {
        spec.sizes.push_back(c_spec.sizes[d]);
        const char* expr = c_spec.dim_exprs[d];
        spec.dim_exprs.emplace_back(expr != nullptr ? expr : std::to_string(c_spec.sizes[d]));
        spec.dim_min.push_back(c_spec.dim_min[d]);
        spec.dim_max.push_back(c_spec.dim_max[d]);
      }
      out->push_back(std::move(spec));
    }
    return Status();
  }
  static std::vector<aotc_tensor_view_t> to_c(const std::vector<TensorView>& views) {
    std::vector<aotc_tensor_view_t> c_views;
    c_views.reserve(views.size());
    for (const TensorView& view : views) c_views.push_back(view.c_view());
    return c_views;
  }
  static aotc_run_options_t to_c(const RunOptions& options) {
    aotc_run_options_t c_options;
    aotc_run_options_initialize(&c_options);
    c_options.stream = options.stream;
    c_options.num_threads = options.num_threads;
    return c_options;
  }
  void reset() {
    if (model_ != nullptr) aotc_model_release(model_);
    model_ = nullptr;
  }

  aotc_model_t* model_ = nullptr;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
};

}  // namespace aotc

#endif  // AOTC_MODEL_HPP_
