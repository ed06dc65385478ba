// Model: one model of a package loaded on one device. Owns the dlopen'ed
// library, the bound constants and the library's instance. Thread-safe:
// run() may be called concurrently and runs overlap (no global lock); runs of
// a model whose description sets AOTC_ABI_MODEL_MUTATES_STATE are serialised
// by a per-model mutex (docs/ABI.md). update_constants() swaps in a new
// instance while runs in flight finish on the old one.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "aotc/aotc.h"
#include "aotc/model_abi.h"
#include "library_loader.h"
#include "package.h"
#include "status.h"
#include "thread_pool.h"

namespace aotc::internal {

class CudaDevice;

// Memory owned by the runtime on the model's device, freed by its deleter.
class Allocation final {
 public:
  Allocation() = default;
  Allocation(void* data, std::function<void(void*)> free) : data_(data), free_(std::move(free)) {}
  Allocation(Allocation&& other) noexcept { *this = std::move(other); }
  Allocation& operator=(Allocation&& other) noexcept {
    reset();
    data_ = other.data_;
    free_ = std::move(other.free_);
    other.data_ = nullptr;
    return *this;
  }
  ~Allocation() { reset(); }
  void* data() const { return data_; }

 private:
  void reset() {
    if (data_ && free_) free_(data_);
    data_ = nullptr;
  }
  void* data_ = nullptr;
  std::function<void(void*)> free_;
};

// 64-byte aligned host memory (at least one byte so the pointer is unique).
Allocation allocate_host(uint64_t bytes);

// A tensor the runtime allocated for the caller (aotc_tensor_t).
struct OwnedTensor {
  aotc_tensor_view_t view;
  Allocation memory;
};

struct RunOptions {
  void* stream = nullptr;
  int num_threads = 0;
};

class Model final {
 public:
  // |device|: "cpu", "cuda", "cuda:N" (empty = cpu). |name| empty: the only model.
  static Result<std::shared_ptr<Model>> load(std::shared_ptr<const Package> package,
                                             const std::string& name, const std::string& device);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const std::string& name() const { return manifest_->name; }
  const std::string& device() const { return device_string_; }
  const std::string& metadata_json() const { return manifest_->text; }
  const aotc_model_description_t& description() const { return *description_; }
  const char* library_loading() const { return library_->how(); }

  Status plan(const int64_t* const* input_sizes, size_t num_inputs, int64_t* const* out_sizes,
              size_t num_outputs, uint64_t* out_workspace_bytes) const;

  // |outputs| non-null: caller memory checked against plan(). Otherwise the
  // outputs are allocated into |allocated|.
  Status run(const aotc_tensor_view_t* inputs, size_t num_inputs, const aotc_tensor_view_t* outputs,
             size_t num_outputs, const RunOptions& options, std::vector<OwnedTensor>* allocated);

  // A complete new set of the non-state constants (host memory, copied).
  Status update_constants(const char* const* names, const aotc_tensor_view_t* values, size_t count);

  struct HostContext;  // what host-table callbacks reach through host->ctx

 private:
  struct ConstantSet;
  struct Instance;

  Model() = default;
  Status check_description();
  Status check_target();
  Result<std::shared_ptr<ConstantSet>> bind_constants(const std::vector<const void*>* overrides);
  Result<std::shared_ptr<Instance>> create_instance(std::shared_ptr<ConstantSet> constants);
  // What memory is for decides how CUDA allocates it: kModel (constants,
  // state) with cuMemAlloc; kRun (workspace) and kOutput stream-ordered on
  // the run's |stream|, so runs never call cuMemAlloc/cuMemFree (which
  // synchronises). Outputs outlive the run and its stream, so they are freed
  // on the default stream.
  enum class Lifetime { kModel, kRun, kOutput };
  Result<Allocation> allocate(uint64_t bytes, Lifetime lifetime, void* stream) const;
  Status check_input(size_t index, const aotc_tensor_view_t& input) const;
  Status check_output(size_t index, const aotc_tensor_view_t& output, const int64_t* planned) const;
  std::shared_ptr<Instance> current_instance() const;

  std::shared_ptr<const Package> package_;
  const ModelManifest* manifest_ = nullptr;
  std::unique_ptr<LoadedLibrary> library_;
  const aotc_model_description_t* description_ = nullptr;
  aotc_model_create_fn create_ = nullptr;
  aotc_model_plan_fn plan_ = nullptr;
  aotc_model_run_fn run_ = nullptr;
  aotc_model_destroy_fn destroy_ = nullptr;

  int device_type_ = AOTC_DEVICE_CPU;
  int device_index_ = 0;
  std::string device_string_;
  std::shared_ptr<CudaDevice> cuda_;
  std::unique_ptr<HostContext> host_context_;
  aotc_host_t host_{};

  // State constants (mutable buffers): shared by every instance of this
  // model, so a constants update keeps the state.
  std::vector<Allocation> state_;
  std::mutex state_mutex_;              // serialises runs that mutate state
  std::mutex update_mutex_;             // one constants update at a time
  std::shared_ptr<Instance> instance_;  // read/written with std::atomic_load/store
};

}  // namespace aotc::internal
