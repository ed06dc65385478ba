#include "model.h"

#include <zstd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cuda/cuda_device.h"
#include "cuda/cuda_host.h"
#include "dtype.h"
#include "tensor_copy.h"

namespace aotc::internal {

// ---------------------------------------------------------------------------
// Pieces owned by a Model

// One complete set of constants as bound to an instance.
struct Model::ConstantSet {
  std::vector<aotc_abi_constant_binding_t> bindings;
  std::vector<Allocation> owned;           // copies: decompressed, realigned, uploaded, updated
  std::shared_ptr<const Package> package;  // in-place bindings point into its bytes
};

struct Model::Instance {
  aotc_model_instance* handle = nullptr;
  aotc_model_destroy_fn destroy = nullptr;
  std::shared_ptr<ConstantSet> constants;
  ~Instance() {
    if (handle) destroy(handle);
  }
};

// What host-table callbacks reach through host->ctx.
struct Model::HostContext {
  CudaDevice* cuda = nullptr;
  const Package* package = nullptr;
  const ModelManifest* manifest = nullptr;
};

namespace {

int32_t fail(aotc_abi_status_t* status, const Status& error) {
  if (status) {
    status->code = static_cast<int32_t>(error.code());
    std::snprintf(status->message, sizeof(status->message), "%s", error.message().c_str());
  }
  return static_cast<int32_t>(error.code());
}

Status from_abi(const aotc_abi_status_t& status, int32_t code, const std::string& what) {
  int32_t effective = code != 0 ? code : status.code;
  if (effective == 0) effective = AOTC_INTERNAL;
  std::string message(status.message, strnlen(status.message, sizeof(status.message)));
  if (message.empty()) message = "failed without a message";
  return Status(static_cast<Code>(effective), what + ": " + message);
}

// host->get_entry: names are relative to the model's folder and must be
// listed (and hashed) in its manifest, like the library itself.
CudaDevice* cuda_of(void* ctx) { return static_cast<Model::HostContext*>(ctx)->cuda; }

int32_t host_get_entry(void* ctx, const char* name, const void** out_data, uint64_t* out_size,
                       aotc_abi_status_t* status) {
  auto* host = static_cast<const Model::HostContext*>(ctx);
  if (!name || !out_data || !out_size)
    return fail(status, Error(Code::kInvalidArgument, "get_entry: NULL argument"));
  auto bytes = host->package->verified_entry(*host->manifest, host->manifest->folder + name);
  if (!bytes.ok()) return fail(status, bytes.status());
  *out_data = bytes.value().data();
  *out_size = bytes.value().size();
  return AOTC_ABI_OK;
}

struct Executor {
  int max_threads;
};

void host_parallel_for(void*, void* exec, int64_t begin, int64_t end, int64_t grain,
                       aotc_abi_range_fn fn, void* fn_ctx) {
  int threads = exec ? static_cast<Executor*>(exec)->max_threads : 1;
  ThreadPool::shared().parallel_for(threads, begin, end, grain, fn, fn_ctx);
}

Result<std::pair<int, int>> parse_device(const std::string& device) {
  if (device.empty() || device == "cpu") return std::make_pair(int(AOTC_DEVICE_CPU), 0);
  if (device == "cuda") return std::make_pair(int(AOTC_DEVICE_CUDA), 0);
  if (device.compare(0, 5, "cuda:") == 0 && device.size() > 5 && device.size() < 9) {
    int index = 0;
    for (size_t i = 5; i < device.size(); ++i) {
      if (device[i] < '0' || device[i] > '9') index = -1;
      if (index >= 0) index = index * 10 + (device[i] - '0');
    }
    if (index >= 0) return std::make_pair(int(AOTC_DEVICE_CUDA), index);
  }
  return Error(Code::kInvalidArgument, "unknown device '%.64s' (expected cpu, cuda or cuda:N)",
               device.c_str());
}

const char* json_string(const Json& object, const char* key) {
  const Json* v = object.get(key);
  return v && v->is_string() ? v->as_string().c_str() : nullptr;
}

std::string expected_shape(const aotc_abi_io_spec_t& spec) {
  std::string out = dtype_name(spec.dtype);
  out += "[";
  for (int d = 0; d < spec.ndim; ++d) {
    if (d) out += ", ";
    const auto& dim = spec.dims[d];
    out += dim.size >= 0 ? std::to_string(dim.size) : (dim.expr ? dim.expr : "?");
  }
  return out + "]";
}

// A manifest shape lists ints for static dims and strings for symbolic ones.
bool same_shape(const Json* shape, const aotc_abi_io_spec_t& spec) {
  if (!shape || !shape->is_array() || shape->items().size() != size_t(spec.ndim)) return false;
  for (int d = 0; d < spec.ndim; ++d) {
    const Json& dim = shape->items()[d];
    bool dynamic = spec.dims[d].size < 0;
    if (dynamic ? !dim.is_string() : !(dim.is_int() && dim.as_int() == spec.dims[d].size))
      return false;
  }
  return true;
}

std::string format_manifest_shape(const Json* shape) {
  if (!shape || !shape->is_array()) return "(no shape)";
  std::string out = "[";
  for (const Json& dim : shape->items()) {
    if (out.size() > 1) out += ", ";
    out += dim.is_int() ? std::to_string(dim.as_int()) : dim.is_string() ? dim.as_string() : "?";
  }
  return out + "]";
}

const char* device_type_name(int type) { return type == AOTC_DEVICE_CUDA ? "cuda" : "cpu"; }

}  // namespace

Allocation allocate_host(uint64_t bytes) {
  uint64_t rounded = (std::max<uint64_t>(bytes, 1) + 63) / 64 * 64;
  return Allocation(std::aligned_alloc(64, rounded), [](void* p) { std::free(p); });
}

// ---------------------------------------------------------------------------
// Loading

Result<std::shared_ptr<Model>> Model::load(std::shared_ptr<const Package> package,
                                           const std::string& name, const std::string& device) {
  std::shared_ptr<Model> model(new Model());
  model->package_ = package;
  AOTC_ASSIGN_OR_RETURN(model->manifest_, package->find_model(name));
  const ModelManifest& manifest = *model->manifest_;
  const std::string where = "loading model '" + manifest.name + "'";

  AOTC_ASSIGN_OR_RETURN(auto parsed_device, parse_device(device));
  model->device_type_ = parsed_device.first;
  model->device_index_ = parsed_device.second;
  model->device_string_ = model->device_type_ == AOTC_DEVICE_CUDA
                              ? "cuda:" + std::to_string(model->device_index_)
                              : "cpu";
  AOTC_RETURN_IF_ERROR(model->check_target().annotate(where));

  // Code is verified before it is loaded (docs/SECURITY.md).
  const char* library = json_string(manifest.json, "library");
  if (!library)
    return Error(Code::kCorruptPackage, "%s: manifest has no \"library\"", where.c_str());
  AOTC_ASSIGN_OR_RETURN(std::string_view image,
                        package->verified_entry(manifest, manifest.folder + library));
  const PackageOptions& options = package->options();
  AOTC_ASSIGN_OR_RETURN(LoadedLibrary loaded,
                        LoadedLibrary::load(image, options.library_loading, options.temp_dir,
                                            "model '" + manifest.name + "'"));
  model->library_ = std::make_unique<LoadedLibrary>(std::move(loaded));

  struct Symbol {
    const char* name;
    void** slot;
  };
  aotc_model_describe_fn describe = nullptr;
  const Symbol symbols[] = {
      {AOTC_MODEL_DESCRIBE_SYMBOL, reinterpret_cast<void**>(&describe)},
      {AOTC_MODEL_CREATE_SYMBOL, reinterpret_cast<void**>(&model->create_)},
      {AOTC_MODEL_PLAN_SYMBOL, reinterpret_cast<void**>(&model->plan_)},
      {AOTC_MODEL_RUN_SYMBOL, reinterpret_cast<void**>(&model->run_)},
      {AOTC_MODEL_DESTROY_SYMBOL, reinterpret_cast<void**>(&model->destroy_)},
  };
  for (const auto& symbol : symbols) {
    *symbol.slot = model->library_->symbol(symbol.name);
    if (!*symbol.slot)
      return Error(Code::kIncompatible, "%s: the model library does not export %s()", where.c_str(),
                   symbol.name);
  }
  model->description_ = describe();
  AOTC_RETURN_IF_ERROR(model->check_description().annotate(where));

  model->host_context_ = std::make_unique<HostContext>();
  model->host_context_->package = package.get();
  model->host_context_->manifest = model->manifest_;
  model->host_context_->cuda = model->cuda_.get();
  aotc_host_t& host = model->host_;
  host.struct_size = sizeof(aotc_host_t);
  host.abi_major = AOTC_MODEL_ABI_MAJOR;
  host.abi_minor = AOTC_MODEL_ABI_MINOR;
  host.ctx = model->host_context_.get();
  host.device_type = model->device_type_;
  host.device_index = model->device_index_;
  host.get_entry = host_get_entry;
  host.parallel_for = host_parallel_for;
  if (model->cuda_) fill_cuda_host_callbacks<&cuda_of>(&host);

  AOTC_ASSIGN_OR_RETURN(auto constants, model->bind_constants(nullptr));
  AOTC_ASSIGN_OR_RETURN(model->instance_, model->create_instance(std::move(constants)));
  return model;
}

Model::~Model() {
  // The instance must go before the library that holds its code.
  instance_.reset();
}

Status Model::check_target() {
  const Json* target = manifest_->json.get("target");
  if (!target || !target->is_object())
    return Error(Code::kCorruptPackage, "manifest has no \"target\" object");
  const char* built_for = json_string(*target, "device");
  if (!built_for || (std::strcmp(built_for, "cpu") && std::strcmp(built_for, "cuda")))
    return Error(Code::kCorruptPackage, "manifest target.device must be \"cpu\" or \"cuda\"");
  if (std::strcmp(built_for, device_type_name(device_type_)) != 0)
    return Error(Code::kIncompatible, "the model was built for %s and cannot run on %s", built_for,
                 device_string_.c_str());
  if (device_type_ == AOTC_DEVICE_CPU) {
    const char* isa = json_string(*target, "isa");
    return isa ? check_cpu_isa(isa) : OkStatus();
  }
  AOTC_ASSIGN_OR_RETURN(cuda_, CudaDevice::open(device_index_));
  const char* arch = json_string(*target, "arch");
  const Json* min_driver = target->get("min_driver");
  if (!arch)
    return Error(Code::kCorruptPackage, "manifest target.arch is missing for a cuda model");
  uint32_t driver = min_driver && min_driver->is_int() ? uint32_t(min_driver->as_int()) : 0;
  return cuda_->check_target(arch, driver);
}

Status Model::check_description() {
  const aotc_model_description_t* d = description_;
  if (!d) return Error(Code::kIncompatible, "aotc_model_describe() returned NULL");
  // Version first: a newer library may have changed everything after it.
  if (d->struct_size < offsetof(aotc_model_description_t, io_spec_size))
    return Error(Code::kIncompatible, "model description is too short (%u bytes)", d->struct_size);
  if (d->abi_major != AOTC_MODEL_ABI_MAJOR || d->abi_minor > AOTC_MODEL_ABI_MINOR)
    return Error(Code::kIncompatible,
                 "model library ABI %u.%u is not supported by this runtime (model ABI %d.%d)",
                 d->abi_major, d->abi_minor, AOTC_MODEL_ABI_MAJOR, AOTC_MODEL_ABI_MINOR);
  struct Size {
    const char* what;
    uint32_t got, expected;
  };
  const Size sizes[] = {
      {"aotc_model_description_t", d->struct_size, sizeof(aotc_model_description_t)},
      {"aotc_abi_io_spec_t", d->io_spec_size, sizeof(aotc_abi_io_spec_t)},
      {"aotc_abi_dim_spec_t", d->dim_spec_size, sizeof(aotc_abi_dim_spec_t)},
      {"aotc_abi_constant_spec_t", d->constant_spec_size, sizeof(aotc_abi_constant_spec_t)},
      {"aotc_abi_kernel_spec_t", d->kernel_spec_size, sizeof(aotc_abi_kernel_spec_t)},
      {"aotc_abi_tensor_t", d->tensor_size, sizeof(aotc_abi_tensor_t)},
      {"aotc_abi_run_args_t", d->run_args_size, sizeof(aotc_abi_run_args_t)},
  };
  for (const auto& s : sizes)
    if (s.got != s.expected)
      return Error(Code::kIncompatible,
                   "model library was built with sizeof(%s) = %u, this runtime has %u (ABI %d.%d)",
                   s.what, s.got, s.expected, AOTC_MODEL_ABI_MAJOR, AOTC_MODEL_ABI_MINOR);
  if (d->host_size > sizeof(aotc_host_t))
    return Error(Code::kIncompatible,
                 "model library needs a host table of %u bytes, runtime has %zu", d->host_size,
                 sizeof(aotc_host_t));
  if (!d->name || manifest_->name != d->name)
    return Error(Code::kCorruptPackage,
                 "model library describes model '%.128s', manifest says '%s'",
                 d->name ? d->name : "(null)", manifest_->name.c_str());
  if (d->device_type != device_type_)
    return Error(Code::kCorruptPackage, "model library targets %s but the manifest says %s",
                 device_type_name(d->device_type), device_type_name(device_type_));

  // The manifest's I/O lists must agree with the code (tools read the former).
  struct IoList {
    const char* kind;
    uint32_t count;
    const aotc_abi_io_spec_t* specs;
    const char* key;
  };
  const IoList lists[] = {{"input", d->num_inputs, d->inputs, "inputs"},
                          {"output", d->num_outputs, d->outputs, "outputs"}};
  for (const auto& list : lists) {
    const Json* listed = manifest_->json.get(list.key);
    if (!listed || !listed->is_array())
      return Error(Code::kCorruptPackage, "manifest \"%s\" must be an array", list.key);
    if (list.count > 0 && !list.specs)
      return Error(Code::kCorruptPackage, "model library lists %u %ss but no specs", list.count,
                   list.kind);
    if (listed->items().size() != list.count)
      return Error(Code::kCorruptPackage, "model library has %u %ss, the manifest lists %zu",
                   list.count, list.kind, listed->items().size());
    for (uint32_t i = 0; i < list.count; ++i) {
      const aotc_abi_io_spec_t& spec = list.specs[i];
      if (!spec.name || spec.ndim < 0 || spec.ndim > AOTC_ABI_MAX_DIMS ||
          dtype_size(spec.dtype) == 0 || (spec.ndim > 0 && !spec.dims))
        return Error(Code::kCorruptPackage, "model library %s %u has an invalid spec", list.kind,
                     i);
      const Json& record = listed->items()[i];
      const char* name = json_string(record, "name");
      const char* dtype = json_string(record, "dtype");
      if (!name || std::strcmp(name, spec.name) || !dtype || dtype_from_name(dtype) != spec.dtype ||
          !same_shape(record.get("shape"), spec))
        return Error(Code::kCorruptPackage,
                     "%s %u: model library says \"%s\" %s, the manifest says \"%s\" %s%s",
                     list.kind, i, spec.name, expected_shape(spec).c_str(), name ? name : "?",
                     dtype ? dtype : "?", format_manifest_shape(record.get("shape")).c_str());
    }
  }
  if (d->num_constants > 0 && !d->constants)
    return Error(Code::kCorruptPackage, "model library lists constants but no specs");
  if (d->num_kernels > 0 && !d->kernels)
    return Error(Code::kCorruptPackage, "model library lists kernels but no specs");
  return OkStatus();
}

// Binds every description constant to memory. |overrides| (from
// update_constants) replaces the non-state ones with host copies.
Result<std::shared_ptr<Model::ConstantSet>> Model::bind_constants(
    const std::vector<const void*>* overrides) {
  const aotc_model_description_t& d = *description_;
  auto set = std::make_shared<ConstantSet>();
  set->package = package_;
  const Json* listed = manifest_->json.get("constants");
  if (!listed || !listed->is_array())
    return Error(Code::kCorruptPackage, "manifest \"constants\" must be an array");
  bool first_bind = state_.empty();
  for (uint32_t i = 0; i < d.num_constants; ++i) {
    const aotc_abi_constant_spec_t& spec = d.constants[i];
    if (!spec.name) return Error(Code::kCorruptPackage, "constant %u has no name", i);
    const Json* record = nullptr;
    for (const auto& item : listed->items()) {
      const char* name = json_string(item, "name");
      if (name && std::strcmp(name, spec.name) == 0) record = &item;
    }
    if (!record)
      return Error(Code::kCorruptPackage,
                   "constant '%s' of the model library is not in the manifest", spec.name);
    const bool is_state = spec.flags & AOTC_ABI_CONSTANT_STATE;
    const void* host_bytes = nullptr;
    Allocation host_copy;
    if (overrides && !is_state && (*overrides)[i]) {
      host_bytes = (*overrides)[i];
    } else if (is_state && !first_bind) {
      host_bytes = nullptr;  // state is bound below from state_
    } else {
      const char* entry = json_string(*record, "entry");
      const char* compression = json_string(*record, "compression");
      if (!entry) return Error(Code::kCorruptPackage, "constant '%s' has no entry", spec.name);
      std::string full = manifest_->weights_folder + entry;
      Result<std::string_view> stored = package_->options().verify_weights
                                            ? package_->verified_entry(*manifest_, full)
                                            : package_->listed_entry(*manifest_, full);
      if (!stored.ok())
        return stored.status().annotate("constant '" + std::string(spec.name) + "'");
      std::string_view bytes = stored.value();
      if (compression && std::strcmp(compression, "zstd") == 0) {
        unsigned long long size = ZSTD_getFrameContentSize(bytes.data(), bytes.size());
        if (size != spec.nbytes)
          return Error(Code::kCorruptPackage,
                       "constant '%s': compressed entry holds %llu bytes, expected %llu", spec.name,
                       size, static_cast<unsigned long long>(spec.nbytes));
        host_copy = allocate_host(spec.nbytes);
        size_t got = ZSTD_decompress(host_copy.data(), spec.nbytes, bytes.data(), bytes.size());
        if (ZSTD_isError(got) || got != spec.nbytes)
          return Error(Code::kCorruptPackage, "constant '%s': zstd: %s", spec.name,
                       ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short output");
        host_bytes = host_copy.data();
      } else if (compression && std::strcmp(compression, "none") != 0) {
        return Error(Code::kCorruptPackage, "constant '%s': unknown compression '%.32s'", spec.name,
                     compression);
      } else {
        if (bytes.size() != spec.nbytes)
          return Error(Code::kCorruptPackage, "constant '%s': entry holds %zu bytes, expected %llu",
                       spec.name, bytes.size(), static_cast<unsigned long long>(spec.nbytes));
        host_bytes = bytes.data();
      }
    }

    aotc_abi_constant_binding_t binding{nullptr, spec.nbytes};
    if (is_state) {
      if (first_bind) {
        // Private, writable, per loaded model.
        AOTC_ASSIGN_OR_RETURN(Allocation state, allocate(spec.nbytes, Lifetime::kModel, nullptr));
        if (cuda_) {
          AOTC_RETURN_IF_ERROR(cuda_->memcpy_async(state.data(), host_bytes, spec.nbytes,
                                                   AOTC_ABI_MEMCPY_HOST_TO_DEVICE, nullptr));
        } else if (spec.nbytes) {
          std::memcpy(state.data(), host_bytes, spec.nbytes);
        }
        state_.push_back(std::move(state));
      }
      // State buffers are appended in description order on first bind.
      size_t state_index = 0;
      for (uint32_t j = 0; j < i; ++j)
        state_index += (d.constants[j].flags & AOTC_ABI_CONSTANT_STATE) ? 1 : 0;
      binding.data = state_[state_index].data();
    } else if (cuda_) {
      AOTC_ASSIGN_OR_RETURN(Allocation device, allocate(spec.nbytes, Lifetime::kModel, nullptr));
      AOTC_RETURN_IF_ERROR(cuda_->memcpy_async(device.data(), host_bytes, spec.nbytes,
                                               AOTC_ABI_MEMCPY_HOST_TO_DEVICE, nullptr));
      binding.data = device.data();
      set->owned.push_back(std::move(device));
    } else if (overrides || reinterpret_cast<uintptr_t>(host_bytes) % 64 != 0) {
      // Updated values are copied; a misaligned in-place entry is realigned.
      Allocation copy = allocate_host(spec.nbytes);
      if (spec.nbytes) std::memcpy(copy.data(), host_bytes, spec.nbytes);
      binding.data = copy.data();
      set->owned.push_back(std::move(copy));
    } else if (host_copy.data()) {
      binding.data = host_copy.data();
      set->owned.push_back(std::move(host_copy));
    } else {
      binding.data = const_cast<void*>(host_bytes);  // in place from the mmap; read-only
    }
    set->bindings.push_back(binding);
  }
  if (cuda_) AOTC_RETURN_IF_ERROR(cuda_->synchronize(nullptr));
  return set;
}

Result<std::shared_ptr<Model::Instance>> Model::create_instance(
    std::shared_ptr<ConstantSet> constants) {
  auto instance = std::make_shared<Instance>();
  instance->destroy = destroy_;
  instance->constants = std::move(constants);
  aotc_abi_status_t status{};
  int32_t code = create_(&host_, instance->constants->bindings.data(),
                         static_cast<uint32_t>(instance->constants->bindings.size()),
                         &instance->handle, &status);
  if (code != AOTC_ABI_OK || !instance->handle) {
    instance->handle = nullptr;
    return from_abi(status, code ? code : AOTC_INTERNAL,
                    "creating model '" + manifest_->name + "'");
  }
  return instance;
}

Result<Allocation> Model::allocate(uint64_t bytes, Lifetime lifetime, void* stream) const {
  if (!cuda_) {
    Allocation memory = allocate_host(bytes);
    if (!memory.data())
      return Error(Code::kResourceExhausted, "out of host memory allocating %llu bytes",
                   static_cast<unsigned long long>(bytes));
    return memory;
  }
  std::shared_ptr<CudaDevice> device = cuda_;
  if (lifetime != Lifetime::kModel) {
    AOTC_ASSIGN_OR_RETURN(void* p, device->alloc_async(std::max<uint64_t>(bytes, 1), stream));
    void* free_on = lifetime == Lifetime::kOutput ? nullptr : stream;
    return Allocation(p, [device, free_on](void* q) { device->free_async(q, free_on); });
  }
  AOTC_ASSIGN_OR_RETURN(void* p, device->alloc(std::max<uint64_t>(bytes, 1)));
  return Allocation(p, [device](void* q) { device->free(q); });
}

std::shared_ptr<Model::Instance> Model::current_instance() const {
  return std::atomic_load(&instance_);
}

// ---------------------------------------------------------------------------
// Running

Status Model::plan(const int64_t* const* input_sizes, size_t num_inputs, int64_t* const* out_sizes,
                   size_t num_outputs, uint64_t* out_workspace_bytes) const {
  const aotc_model_description_t& d = *description_;
  if (num_inputs != d.num_inputs || num_outputs != d.num_outputs)
    return Error(Code::kInvalidArgument,
                 "model '%s' has %u inputs and %u outputs, plan was given %zu and %zu",
                 name().c_str(), d.num_inputs, d.num_outputs, num_inputs, num_outputs);
  for (size_t i = 0; i < num_inputs; ++i) {
    if (!input_sizes[i] && d.inputs[i].ndim > 0)
      return Error(Code::kInvalidArgument, "plan: sizes of input %zu are NULL", i);
    const auto& spec = d.inputs[i];
    for (int k = 0; k < spec.ndim; ++k) {
      int64_t got = input_sizes[i][k];
      if (got < 0)
        return Error(Code::kInvalidArgument, "input %zu \"%s\": negative size %lld in dim %d", i,
                     spec.name, static_cast<long long>(got), k);
      if (spec.dims[k].size >= 0 && got != spec.dims[k].size) {
        std::string shape = format_shape(spec.dtype, input_sizes[i], spec.ndim);
        return Error(Code::kInvalidArgument, "input %zu \"%s\": expected %s, got %s", i, spec.name,
                     expected_shape(spec).c_str(), shape.c_str());
      }
    }
  }
  auto instance = current_instance();
  aotc_abi_status_t status{};
  uint64_t workspace = 0;
  int32_t code = plan_(instance->handle, input_sizes, out_sizes, &workspace, &status);
  if (code != AOTC_ABI_OK) return from_abi(status, code, "model '" + name() + "'");
  for (size_t o = 0; o < num_outputs; ++o)
    for (int k = 0; k < d.outputs[o].ndim; ++k)
      if (out_sizes[o][k] < 0)
        return Error(Code::kInternal, "model '%s': plan gave output %zu a negative size",
                     name().c_str(), o);
  if (out_workspace_bytes) *out_workspace_bytes = workspace;
  return OkStatus();
}

Status Model::check_input(size_t i, const aotc_tensor_view_t& input) const {
  const aotc_abi_io_spec_t& spec = description_->inputs[i];
  if (input.ndim < 0 || input.ndim > AOTC_MAX_DIMS)
    return Error(Code::kInvalidArgument, "input %zu \"%s\": invalid rank %d", i, spec.name,
                 input.ndim);
  bool shape_ok = input.dtype == spec.dtype && input.ndim == spec.ndim;
  for (int k = 0; shape_ok && k < spec.ndim; ++k)
    shape_ok = spec.dims[k].size < 0 || spec.dims[k].size == input.sizes[k];
  if (!shape_ok)
    return Error(Code::kInvalidArgument, "input %zu \"%s\": expected %s, got %s", i, spec.name,
                 expected_shape(spec).c_str(),
                 format_shape(input.dtype, input.sizes, input.ndim).c_str());
  if (input.device_type != device_type_ ||
      (device_type_ == AOTC_DEVICE_CUDA && input.device_index != device_index_)) {
    std::string got = input.device_type == AOTC_DEVICE_CUDA
                          ? "cuda:" + std::to_string(input.device_index)
                          : (input.device_type == AOTC_DEVICE_CPU ? "cpu" : "an unknown device");
    return Error(Code::kInvalidArgument, "input %zu \"%s\": expected a tensor on %s, got %s", i,
                 spec.name, device_string_.c_str(), got.c_str());
  }
  int64_t numel = 1;
  for (int k = 0; k < input.ndim; ++k) {
    if (input.sizes[k] < 0)
      return Error(Code::kInvalidArgument, "input %zu \"%s\": negative size in dim %d", i,
                   spec.name, k);
    if (input.strides[k] < 0)
      return Error(Code::kInvalidArgument, "input %zu \"%s\": negative stride in dim %d", i,
                   spec.name, k);
    numel *= input.sizes[k];
  }
  if (numel > 0 && !input.data)
    return Error(Code::kInvalidArgument, "input %zu \"%s\": data pointer is NULL", i, spec.name);
  if (device_type_ == AOTC_DEVICE_CUDA && !is_contiguous(input))
    return Error(Code::kInvalidArgument,
                 "input %zu \"%s\": non-contiguous CUDA inputs are not supported; call "
                 ".contiguous() first",
                 i, spec.name);
  return OkStatus();
}

Status Model::check_output(size_t o, const aotc_tensor_view_t& output,
                           const int64_t* planned) const {
  const aotc_abi_io_spec_t& spec = description_->outputs[o];
  bool ok = output.dtype == spec.dtype && output.ndim == spec.ndim;
  for (int k = 0; ok && k < spec.ndim; ++k) ok = output.sizes[k] == planned[k];
  if (!ok)
    return Error(Code::kInvalidArgument, "output %zu \"%s\": expected %s, got %s", o, spec.name,
                 format_shape(spec.dtype, planned, spec.ndim).c_str(),
                 format_shape(output.dtype, output.sizes, output.ndim).c_str());
  if (output.device_type != device_type_ ||
      (device_type_ == AOTC_DEVICE_CUDA && output.device_index != device_index_))
    return Error(Code::kInvalidArgument, "output %zu \"%s\": expected memory on %s", o, spec.name,
                 device_string_.c_str());
  if (!is_contiguous(output))
    return Error(Code::kInvalidArgument, "output %zu \"%s\": output memory must be contiguous", o,
                 spec.name);
  if (!output.data && view_bytes(output) > 0)
    return Error(Code::kInvalidArgument, "output %zu \"%s\": data pointer is NULL", o, spec.name);
  return OkStatus();
}

Status Model::run(const aotc_tensor_view_t* inputs, size_t num_inputs,
                  const aotc_tensor_view_t* outputs, size_t num_outputs, const RunOptions& options,
                  std::vector<OwnedTensor>* allocated) {
  const aotc_model_description_t& d = *description_;
  if (cuda_ && cuda_->is_dead())
    return Error(Code::kDeviceError, "model '%s' on %s is unusable after an earlier CUDA error",
                 name().c_str(), device_string_.c_str());
  if (num_inputs != d.num_inputs) {
    std::string names;
    for (uint32_t i = 0; i < d.num_inputs; ++i)
      names += (i ? ", " : "") + std::string(d.inputs[i].name);
    return Error(Code::kInvalidArgument, "model '%s' takes %u input%s (%s), got %zu",
                 name().c_str(), d.num_inputs, d.num_inputs == 1 ? "" : "s", names.c_str(),
                 num_inputs);
  }
  if (num_inputs > 0 && !inputs) return Error(Code::kInvalidArgument, "inputs array is NULL");
  if (outputs ? num_outputs != d.num_outputs : num_outputs != d.num_outputs)
    return Error(Code::kInvalidArgument, "model '%s' has %u output%s, %zu were given",
                 name().c_str(), d.num_outputs, d.num_outputs == 1 ? "" : "s", num_outputs);

  // Inputs: checked, and made contiguous on CPU where they are not.
  std::vector<aotc_abi_tensor_t> abi_inputs(num_inputs);
  std::vector<Allocation> staged(num_inputs);
  std::vector<const int64_t*> input_sizes(num_inputs);
  for (size_t i = 0; i < num_inputs; ++i) {
    AOTC_RETURN_IF_ERROR(check_input(i, inputs[i]));
    aotc_abi_tensor_t& t = abi_inputs[i];
    t.data = inputs[i].data;
    t.dtype = inputs[i].dtype;
    t.ndim = inputs[i].ndim;
    std::copy(inputs[i].sizes, inputs[i].sizes + t.ndim, t.sizes);
    set_contiguous_strides(t.sizes, t.ndim, t.strides);
    if (!is_contiguous(inputs[i])) {
      staged[i] = allocate_host(view_bytes(inputs[i]));
      gather_strided(inputs[i], staged[i].data());
      t.data = staged[i].data();
    }
    input_sizes[i] = t.sizes;
  }

  std::vector<aotc_abi_tensor_t> abi_outputs(d.num_outputs);
  std::vector<int64_t*> output_sizes(d.num_outputs);
  for (uint32_t o = 0; o < d.num_outputs; ++o) {
    abi_outputs[o].dtype = d.outputs[o].dtype;
    abi_outputs[o].ndim = d.outputs[o].ndim;
    output_sizes[o] = abi_outputs[o].sizes;
  }
  uint64_t workspace_bytes = 0;
  AOTC_RETURN_IF_ERROR(
      plan(input_sizes.data(), num_inputs, output_sizes.data(), d.num_outputs, &workspace_bytes));

  std::vector<OwnedTensor> fresh;
  for (uint32_t o = 0; o < d.num_outputs; ++o) {
    aotc_abi_tensor_t& t = abi_outputs[o];
    set_contiguous_strides(t.sizes, t.ndim, t.strides);
    if (outputs) {
      AOTC_RETURN_IF_ERROR(check_output(o, outputs[o], t.sizes));
      t.data = outputs[o].data;
      continue;
    }
    OwnedTensor owned{};
    owned.view.dtype = t.dtype;
    owned.view.ndim = t.ndim;
    owned.view.device_type = device_type_;
    owned.view.device_index = device_index_;
    std::copy(t.sizes, t.sizes + t.ndim, owned.view.sizes);
    std::copy(t.strides, t.strides + t.ndim, owned.view.strides);
    AOTC_ASSIGN_OR_RETURN(owned.memory,
                          allocate(view_bytes(owned.view), Lifetime::kOutput, options.stream));
    owned.view.data = owned.memory.data();
    t.data = owned.view.data;
    fresh.push_back(std::move(owned));
  }
  if (outputs) AOTC_RETURN_IF_ERROR(check_no_overlap(inputs, num_inputs, outputs, num_outputs));

  AOTC_ASSIGN_OR_RETURN(Allocation workspace,
                        allocate(workspace_bytes, Lifetime::kRun, options.stream));
  Executor exec{options.num_threads > 0 ? options.num_threads : ThreadPool::default_threads()};
  aotc_abi_run_args_t args{};
  args.struct_size = sizeof(args);
  args.num_inputs = static_cast<uint32_t>(num_inputs);
  args.inputs = abi_inputs.data();
  args.num_outputs = d.num_outputs;
  args.outputs = abi_outputs.data();
  args.workspace = workspace.data();
  args.workspace_bytes = workspace_bytes;
  args.stream = options.stream;
  args.exec = &exec;

  std::shared_ptr<Instance> instance = current_instance();
  aotc_abi_status_t status{};
  int32_t code;
  if (d.flags & AOTC_ABI_MODEL_MUTATES_STATE) {
    std::lock_guard<std::mutex> lock(state_mutex_);
    code = run_(instance->handle, &args, &status);
  } else {
    code = run_(instance->handle, &args, &status);
  }
  if (code != AOTC_ABI_OK) return from_abi(status, code, "model '" + name() + "'");

  // Mutated inputs that were staged go back to the caller's layout.
  for (size_t i = 0; i < num_inputs; ++i)
    if (staged[i].data() && (d.inputs[i].flags & AOTC_ABI_IO_MUTATED))
      scatter_strided(staged[i].data(), inputs[i]);
  if (allocated) *allocated = std::move(fresh);
  return OkStatus();
}

Status Model::update_constants(const char* const* names, const aotc_tensor_view_t* values,
                               size_t count) {
  const aotc_model_description_t& d = *description_;
  if (count > 0 && (!names || !values))
    return Error(Code::kInvalidArgument, "update_constants: NULL names or values");
  std::vector<const void*> overrides(d.num_constants, nullptr);
  for (size_t k = 0; k < count; ++k) {
    if (!names[k]) return Error(Code::kInvalidArgument, "update_constants: name %zu is NULL", k);
    uint32_t i = 0;
    while (i < d.num_constants && std::strcmp(d.constants[i].name, names[k]) != 0) ++i;
    if (i == d.num_constants)
      return Error(Code::kNotFound, "update_constants: model '%s' has no constant '%.128s'",
                   name().c_str(), names[k]);
    const aotc_abi_constant_spec_t& spec = d.constants[i];
    if (spec.flags & AOTC_ABI_CONSTANT_STATE)
      return Error(Code::kInvalidArgument,
                   "update_constants: '%s' is model state (a mutable buffer), not a constant",
                   spec.name);
    if (overrides[i])
      return Error(Code::kInvalidArgument, "update_constants: '%s' given twice", spec.name);
    const aotc_tensor_view_t& v = values[k];
    bool ok = v.dtype == spec.dtype && v.ndim == spec.ndim && v.device_type == AOTC_DEVICE_CPU;
    for (int j = 0; ok && j < spec.ndim; ++j) ok = v.sizes[j] == spec.sizes[j];
    if (!ok || !is_contiguous(v))
      return Error(Code::kInvalidArgument,
                   "update_constants: '%s' expects a contiguous cpu tensor %s, got %s%s", spec.name,
                   format_shape(spec.dtype, spec.sizes, spec.ndim).c_str(),
                   format_shape(v.dtype, v.sizes, v.ndim).c_str(),
                   v.device_type == AOTC_DEVICE_CPU ? "" : " on another device");
    if (!v.data && spec.nbytes)
      return Error(Code::kInvalidArgument, "update_constants: '%s' data is NULL", spec.name);
    overrides[i] = v.data;
  }
  for (uint32_t i = 0; i < d.num_constants; ++i)
    if (!overrides[i] && !(d.constants[i].flags & AOTC_ABI_CONSTANT_STATE))
      return Error(Code::kInvalidArgument, "update_constants needs a complete set: '%s' is missing",
                   d.constants[i].name);
  std::lock_guard<std::mutex> lock(update_mutex_);
  AOTC_ASSIGN_OR_RETURN(auto constants, bind_constants(&overrides));
  AOTC_ASSIGN_OR_RETURN(auto instance, create_instance(std::move(constants)));
  // Runs in flight hold the old instance; it is destroyed after the last one.
  std::atomic_store(&instance_, std::move(instance));
  return OkStatus();
}

}  // namespace aotc::internal
