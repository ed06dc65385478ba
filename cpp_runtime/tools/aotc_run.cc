// aotc-run: runs a .pt2 package's model through the C++ runtime, checks its
// outputs against the eager outputs stored in the package (or runs .npy
// inputs), and reports latency. Exit status: 0 pass, 1 mismatch, 2 error.
//
// Uses the public C++ API (aotc.hpp) for everything a user program would do.
// Reading the sample entries needs the archive, which the public API does not
// expose, so the tool (linked to the static runtime) uses the internal
// archive and JSON readers; on CUDA it uses the internal device to copy
// tensors to and from the GPU.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aotc/aotc.hpp"
#include "archive.h"
#include "bytes.h"
#include "cuda/cuda_device.h"
#include "json.h"
#include "npy.h"

namespace {

namespace internal = ::aotc::internal;
using aotc::DType;
using aotc::Result;
using aotc::Status;
using aotc::StatusCode;
using aotc::tools::NpyArray;

constexpr char kUsage[] =
    R"(usage: aotc-run PKG [options]

Runs a model of the .pt2 package PKG with the aotc runtime. Without --input it
runs the package's sample inputs and compares the outputs with the eager
outputs stored beside them; with --input it runs the given .npy files.

options:
  --model NAME        model to run (default: the package's only model)
  --device DEV        cpu (default), cuda or cuda:N
  -n RUNS             timed runs (default 10; 0 skips timing)
  --warmup N          untimed runs before them (default 2)
  --threads N         CPU threads per run (default 0: the runtime's choice)
  --input A.npy ...   one .npy per model input, in order (put PKG first);
                      bfloat16 inputs take '<u2' (raw bits) or '<f4'
  --output-dir DIR    write the outputs as DIR/output_<i>.npy (bfloat16 as '<u2')
  --atol X, --rtol Y  tolerance: |actual - expected| <= atol + rtol * |expected|
                      (defaults: float32 1e-4/1e-4, float64 1e-6/1e-6,
                      float16 1e-2/1e-2, bfloat16 1e-2/1.6e-2, integers and
                      bool exact; NaN matches NaN)
  --quiet             print only failures and errors
  -h, --help          print this help

exit status: 0 all outputs match (or ran, with --input), 1 mismatch, 2 error
)";

struct Args {
  std::string package;
  std::string model;
  std::string device;
  int runs = 10;
  int warmup = 2;
  int threads = 0;
  std::vector<std::string> inputs;
  std::string output_dir;
  std::optional<double> atol;
  std::optional<double> rtol;
  bool quiet = false;
  bool help = false;
};

Status usage_error(const std::string& message) {
  return Status(StatusCode::kInvalidArgument, message + " (see aotc-run --help)");
}

Status from_internal(const internal::Status& status) {
  if (status.ok()) return Status();
  return Status(static_cast<StatusCode>(status.code()), status.message());
}

// "float32[2, 3]".
std::string describe(DType dtype, const std::vector<int64_t>& shape) {
  std::string out = std::string(aotc::dtype_name(dtype)) + "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

//===----------------------------------------------------------------------===//
// Command line
//===----------------------------------------------------------------------===//

Result<int> parse_int(const std::string& option, const std::string& text, int min_value) {
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || value < min_value || value > 1000000000) {
    return usage_error(option + " expects an integer >= " + std::to_string(min_value) + ", got '" +
                       text + "'");
  }
  return static_cast<int>(value);
}

Result<double> parse_tolerance(const std::string& option, const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(value) || value < 0) {
    return usage_error(option + " expects a non-negative number, got '" + text + "'");
  }
  return value;
}

Result<Args> parse_args(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::optional<std::string> inline_value;
    if (arg.size() > 2 && arg.compare(0, 2, "--") == 0) {
      const size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        inline_value = arg.substr(eq + 1);
        arg.resize(eq);
      }
    }
    // The value of an option: "--opt=value" or the next argument.
    auto value = [&]() -> Result<std::string> {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) return usage_error(arg + " needs a value");
      return std::string(argv[++i]);
    };
    auto flag = [&]() -> Status {
      if (inline_value) return usage_error(arg + " takes no value");
      return Status();
    };

    if (arg == "-h" || arg == "--help") {
      args.help = true;
      return Result<Args>(std::move(args));
    } else if (arg == "--quiet" || arg == "-q") {
      AOTC_CPP_RETURN_IF_ERROR(flag());
      args.quiet = true;
    } else if (arg == "--model") {
      AOTC_CPP_ASSIGN_OR_RETURN(args.model, value());
    } else if (arg == "--device") {
      AOTC_CPP_ASSIGN_OR_RETURN(args.device, value());
    } else if (arg == "-n" || arg == "--runs") {
      AOTC_CPP_ASSIGN_OR_RETURN(std::string text, value());
      AOTC_CPP_ASSIGN_OR_RETURN(args.runs, parse_int(arg, text, 0));
    } else if (arg == "--warmup") {
      AOTC_CPP_ASSIGN_OR_RETURN(std::string text, value());
      AOTC_CPP_ASSIGN_OR_RETURN(args.warmup, parse_int(arg, text, 0));
    } else if (arg == "--threads") {
      AOTC_CPP_ASSIGN_OR_RETURN(std::string text, value());
      AOTC_CPP_ASSIGN_OR_RETURN(args.threads, parse_int(arg, text, 0));
    } else if (arg == "--atol" || arg == "--rtol") {
      AOTC_CPP_ASSIGN_OR_RETURN(std::string text, value());
      AOTC_CPP_ASSIGN_OR_RETURN(double tolerance, parse_tolerance(arg, text));
      (arg == "--atol" ? args.atol : args.rtol) = tolerance;
    } else if (arg == "--output-dir") {
      AOTC_CPP_ASSIGN_OR_RETURN(args.output_dir, value());
      if (args.output_dir.empty()) return usage_error("--output-dir needs a directory");
    } else if (arg == "--input") {
      // Takes every following argument up to the next option.
      size_t count = 0;
      if (inline_value) {
        args.inputs.push_back(*inline_value);
        ++count;
      }
      while (i + 1 < argc && argv[i + 1][0] != '-') {
        args.inputs.push_back(argv[++i]);
        ++count;
      }
      if (count == 0) return usage_error("--input needs at least one .npy file");
    } else if (!arg.empty() && arg[0] == '-') {
      return usage_error("unknown option '" + arg + "'");
    } else if (args.package.empty()) {
      args.package = arg;
    } else {
      return usage_error("unexpected argument '" + arg + "' (PKG is '" + args.package + "')");
    }
  }
  if (args.package.empty()) return usage_error("missing PKG");
  return Result<Args>(std::move(args));
}

//===----------------------------------------------------------------------===//
// Inputs and expected outputs
//===----------------------------------------------------------------------===//

struct Samples {
  std::vector<NpyArray> inputs;
  std::vector<NpyArray> outputs;
};

// Reads the arrays listed in |list| (manifest "samples" -> "inputs" or
// "outputs") from |prefix| in |archive|.
Result<std::vector<NpyArray>> read_sample_list(const internal::Archive& archive,
                                               const std::string& package_path,
                                               const std::string& prefix,
                                               const internal::Json* list, const char* what) {
  if (list == nullptr || !list->is_array()) {
    return Status(StatusCode::kCorruptPackage,
                  package_path + ": manifest \"samples\" has no \"" + what + "\" list");
  }
  std::vector<NpyArray> arrays;
  for (size_t i = 0; i < list->items().size(); ++i) {
    const internal::Json& item = list->items()[i];
    const internal::Json* entry = item.get("entry");
    if (entry == nullptr || !entry->is_string()) {
      return Status(StatusCode::kCorruptPackage, package_path + ": manifest sample " + what + "[" +
                                                     std::to_string(i) + "] has no \"entry\"");
    }
    const std::string name = prefix + entry->as_string();
    const internal::ArchiveEntry* found = archive.find(name);
    if (found == nullptr) {
      return Status(StatusCode::kCorruptPackage,
                    package_path + ": sample entry '" + name + "' is missing from the archive");
    }
    AOTC_CPP_RETURN_IF_ERROR(from_internal(archive.check_crc(*found)));
    AOTC_CPP_ASSIGN_OR_RETURN(
        NpyArray array,
        aotc::tools::parse_npy(archive.data(*found), found->size, package_path + ":" + name));
    const internal::Json* dtype = item.get("dtype");
    if (dtype != nullptr && dtype->is_string() &&
        dtype->as_string() != aotc::dtype_name(array.dtype)) {
      return Status(StatusCode::kCorruptPackage, package_path + ":" + name + ": manifest says " +
                                                     dtype->as_string() + ", the file holds " +
                                                     aotc::dtype_name(array.dtype));
    }
    arrays.push_back(std::move(array));
  }
  return Result<std::vector<NpyArray>>(std::move(arrays));
}

// The sample inputs and eager outputs stored in the package for |model|.
Result<Samples> read_samples(const std::string& package_path, const aotc::Model& model) {
  const std::string model_name(model.name());
  auto manifest = internal::Json::parse(model.metadata_json());
  if (!manifest.ok()) {
    return Status(StatusCode::kCorruptPackage, package_path + ": manifest of model '" + model_name +
                                                   "': " + manifest.status().message());
  }
  const internal::Json* samples = manifest->get("samples");
  auto is_empty = [samples](const char* key) {
    const internal::Json* list = samples->get(key);
    return list == nullptr || (list->is_array() && list->items().empty());
  };
  if (samples == nullptr || !samples->is_object() || (is_empty("inputs") && is_empty("outputs"))) {
    return Status(StatusCode::kNotFound,
                  package_path + ": model '" + model_name + "' has no sample inputs; pass --input");
  }

  auto bytes = internal::Bytes::map_file(package_path);  // an internal::Result
  if (!bytes.ok()) return from_internal(bytes.status());
  auto archive = internal::Archive::parse(std::move(bytes).value());
  if (!archive.ok()) return from_internal(archive.status());

  // <root>/data/aotc/<model>/manifest.json locates the root folder.
  const std::string manifest_suffix = "/data/aotc/" + model_name + "/manifest.json";
  std::optional<std::string> root;
  for (const internal::ArchiveEntry& entry : archive->entries()) {
    const std::string& name = entry.name;
    if (name.size() > manifest_suffix.size() &&
        name.compare(name.size() - manifest_suffix.size(), std::string::npos, manifest_suffix) ==
            0) {
      const std::string candidate = name.substr(0, name.size() - manifest_suffix.size());
      if (candidate.find('/') == std::string::npos) root = candidate;
    }
  }
  if (!root) {
    return Status(StatusCode::kCorruptPackage,
                  package_path + ": no <root>" + manifest_suffix + " entry in the archive");
  }
  const std::string prefix = *root + "/data/sample_inputs/" + model_name + "/";

  Samples out;
  AOTC_CPP_ASSIGN_OR_RETURN(out.inputs, read_sample_list(*archive, package_path, prefix,
                                                         samples->get("inputs"), "inputs"));
  AOTC_CPP_ASSIGN_OR_RETURN(out.outputs, read_sample_list(*archive, package_path, prefix,
                                                          samples->get("outputs"), "outputs"));
  return Result<Samples>(std::move(out));
}

// Checks |array| (from |source|) against input |index|'s spec, converting
// float32 to bfloat16 where the spec asks for bfloat16.
Result<NpyArray> match_input(NpyArray array, const aotc::TensorSpec& spec, size_t index,
                             const std::string& source) {
  const std::string what = source + ": input " + std::to_string(index) + " \"" + spec.name +
                           "\" (" + spec.to_string() + ")";
  if (array.dtype == DType::kFloat32 && spec.dtype == DType::kBFloat16) {
    NpyArray converted;
    converted.dtype = DType::kBFloat16;
    converted.shape = array.shape;
    converted.data.resize(array.data.size() / 2);
    for (size_t i = 0; i < array.data.size() / 4; ++i) {
      float value;
      std::memcpy(&value, array.data.data() + 4 * i, 4);
      const uint16_t bits = aotc::BFloat16::from_float(value).bits;
      std::memcpy(converted.data.data() + 2 * i, &bits, 2);
    }
    array = std::move(converted);
  }
  if (array.dtype != spec.dtype) {
    return Status(
        StatusCode::kInvalidArgument,
        what + ": got " + describe(array.dtype, array.shape) +
            (spec.dtype == DType::kBFloat16 ? " (bfloat16 takes '<u2' bits or '<f4')" : ""));
  }
  if (array.shape.size() != spec.sizes.size()) {
    return Status(StatusCode::kInvalidArgument,
                  what + ": got " + describe(array.dtype, array.shape));
  }
  return Result<NpyArray>(std::move(array));
}

//===----------------------------------------------------------------------===//
// Device memory (CUDA models only)
//===----------------------------------------------------------------------===//

// Device allocations freed on destruction; copies to and from the device on
// the default stream, synchronously.
class DeviceMemory final {
 public:
  static Result<std::unique_ptr<DeviceMemory>> open(int index) {
    auto device = internal::CudaDevice::open(index);
    if (!device.ok()) return from_internal(device.status());
    return Result<std::unique_ptr<DeviceMemory>>(
        std::unique_ptr<DeviceMemory>(new DeviceMemory(std::move(device).value())));
  }
  ~DeviceMemory() {
    for (void* ptr : allocations_) device_->free(ptr);
  }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;

  Result<void*> alloc(size_t bytes) {
    auto ptr = device_->alloc(bytes > 0 ? bytes : 1);
    if (!ptr.ok()) return from_internal(ptr.status());
    allocations_.push_back(*ptr);
    return *ptr;
  }
  Result<void*> upload(const std::vector<uint8_t>& host) {
    AOTC_CPP_ASSIGN_OR_RETURN(void* ptr, alloc(host.size()));
    if (!host.empty()) {
      AOTC_CPP_RETURN_IF_ERROR(from_internal(device_->memcpy_async(
          ptr, host.data(), host.size(), AOTC_ABI_MEMCPY_HOST_TO_DEVICE, nullptr)));
    }
    AOTC_CPP_RETURN_IF_ERROR(synchronize());
    return ptr;
  }
  Status download(const void* device_ptr, size_t bytes, void* host) {
    if (bytes > 0) {
      AOTC_CPP_RETURN_IF_ERROR(from_internal(
          device_->memcpy_async(host, device_ptr, bytes, AOTC_ABI_MEMCPY_DEVICE_TO_HOST, nullptr)));
    }
    return synchronize();
  }
  Status synchronize() { return from_internal(device_->synchronize(nullptr)); }

 private:
  explicit DeviceMemory(std::shared_ptr<internal::CudaDevice> device)
      : device_(std::move(device)) {}
  std::shared_ptr<internal::CudaDevice> device_;
  std::vector<void*> allocations_;
};

// A host copy of |tensor|.
Result<NpyArray> to_host(const aotc::Tensor& tensor, DeviceMemory* device) {
  const aotc::TensorView view = tensor.view();
  if (!view.is_contiguous()) {
    return Status(StatusCode::kUnsupported, "aotc-run: non-contiguous output tensor");
  }
  NpyArray array;
  array.dtype = view.dtype();
  array.shape = view.sizes();
  array.data.resize(view.nbytes());
  if (array.data.empty()) return Result<NpyArray>(std::move(array));
  if (device != nullptr) {
    AOTC_CPP_RETURN_IF_ERROR(device->download(view.data(), array.data.size(), array.data.data()));
  } else {
    std::memcpy(array.data.data(), view.data(), array.data.size());
  }
  return Result<NpyArray>(std::move(array));
}

//===----------------------------------------------------------------------===//
// Comparison
//===----------------------------------------------------------------------===//

struct Tolerance {
  double atol;
  double rtol;
};

Tolerance default_tolerance(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return {1e-4, 1e-4};
    case DType::kFloat64:
      return {1e-6, 1e-6};
    case DType::kFloat16:
      return {1e-2, 1e-2};
    case DType::kBFloat16:
      return {1e-2, 1.6e-2};
    default:
      return {0, 0};
  }
}

// Element |i| of |array| as a long double (exact for every supported dtype,
// int64 included, on x86-64).
long double element(const NpyArray& array, size_t i) {
  const uint8_t* p = array.data.data() + i * aotc::dtype_size(array.dtype);
  auto load = [p](auto value) {
    std::memcpy(&value, p, sizeof(value));
    return value;
  };
  switch (array.dtype) {
    case DType::kFloat32:
      return load(float{});
    case DType::kFloat64:
      return load(double{});
    case DType::kFloat16:
      return aotc::Float16{load(uint16_t{})}.to_float();
    case DType::kBFloat16:
      return aotc::BFloat16{load(uint16_t{})}.to_float();
    case DType::kInt8:
      return load(int8_t{});
    case DType::kUInt8:
      return load(uint8_t{});
    case DType::kInt16:
      return load(int16_t{});
    case DType::kInt32:
      return load(int32_t{});
    case DType::kInt64:
      return load(int64_t{});
    case DType::kBool:
      return load(uint8_t{}) != 0 ? 1 : 0;
  }
  return 0;
}

struct Comparison {
  bool pass = true;
  std::string problem;  // dtype or shape mismatch
  double max_abs = 0;
  double max_rel = 0;
  int64_t mismatched = 0;
};

Comparison compare(const NpyArray& actual, const NpyArray& expected, Tolerance tolerance) {
  Comparison result;
  if (actual.dtype != expected.dtype || actual.shape != expected.shape) {
    result.pass = false;
    result.problem = "expected " + describe(expected.dtype, expected.shape) + ", got " +
                     describe(actual.dtype, actual.shape);
    return result;
  }
  const size_t count = static_cast<size_t>(actual.numel());
  for (size_t i = 0; i < count; ++i) {
    const long double a = element(actual, i), e = element(expected, i);
    if (a == e || (std::isnan(a) && std::isnan(e))) continue;
    const long double diff = std::fabs(a - e);  // inf or NaN when either side is
    const long double rel = e != 0 ? diff / std::fabs(e) : INFINITY;
    if (!(diff <= tolerance.atol + tolerance.rtol * std::fabs(e))) ++result.mismatched;
    const double abs_error = std::isnan(diff) ? INFINITY : static_cast<double>(diff);
    const double rel_error = std::isnan(rel) ? INFINITY : static_cast<double>(rel);
    result.max_abs = std::max(result.max_abs, abs_error);
    result.max_rel = std::max(result.max_rel, rel_error);
  }
  result.pass = result.mismatched == 0;
  return result;
}

//===----------------------------------------------------------------------===//
// The tool
//===----------------------------------------------------------------------===//

// Runs everything; returns the exit status for a completed run (0 or 1).
Result<int> run_tool(const Args& args) {
  AOTC_CPP_ASSIGN_OR_RETURN(aotc::Package package, aotc::Package::open(args.package));
  AOTC_CPP_ASSIGN_OR_RETURN(aotc::Model model,
                            aotc::Model::load(package, {args.model, args.device}));
  const aotc::Device device = model.device();
  const std::vector<aotc::TensorSpec>& input_specs = model.inputs();
  const std::vector<aotc::TensorSpec>& output_specs = model.outputs();

  // Inputs on the host, and the expected outputs when running samples.
  std::vector<NpyArray> inputs;
  std::vector<NpyArray> expected;
  const bool use_samples = args.inputs.empty();
  if (use_samples) {
    AOTC_CPP_ASSIGN_OR_RETURN(Samples samples, read_samples(args.package, model));
    if (samples.inputs.size() != input_specs.size() ||
        samples.outputs.size() != output_specs.size()) {
      return Status(StatusCode::kCorruptPackage,
                    args.package + ": model '" + std::string(model.name()) + "' has " +
                        std::to_string(input_specs.size()) + " inputs and " +
                        std::to_string(output_specs.size()) + " outputs but its samples have " +
                        std::to_string(samples.inputs.size()) + " and " +
                        std::to_string(samples.outputs.size()));
    }
    for (size_t i = 0; i < samples.inputs.size(); ++i) {
      AOTC_CPP_ASSIGN_OR_RETURN(
          NpyArray input,
          match_input(std::move(samples.inputs[i]), input_specs[i], i, args.package + " sample"));
      inputs.push_back(std::move(input));
    }
    expected = std::move(samples.outputs);
  } else {
    if (args.inputs.size() != input_specs.size()) {
      std::string specs;
      for (const aotc::TensorSpec& spec : input_specs) {
        specs += (specs.empty() ? "" : ", ") + spec.name + ": " + spec.to_string();
      }
      return usage_error("model '" + std::string(model.name()) + "' takes " +
                         std::to_string(input_specs.size()) + " inputs (" + specs + "), got " +
                         std::to_string(args.inputs.size()) + " --input files");
    }
    for (size_t i = 0; i < args.inputs.size(); ++i) {
      AOTC_CPP_ASSIGN_OR_RETURN(NpyArray file, aotc::tools::read_npy_file(args.inputs[i]));
      AOTC_CPP_ASSIGN_OR_RETURN(NpyArray input,
                                match_input(std::move(file), input_specs[i], i, args.inputs[i]));
      inputs.push_back(std::move(input));
    }
  }

  // Input views on the model's device.
  std::unique_ptr<DeviceMemory> device_memory;
  if (device.type == aotc::DeviceType::kCuda) {
    AOTC_CPP_ASSIGN_OR_RETURN(device_memory, DeviceMemory::open(device.index));
  }
  std::vector<aotc::TensorView> input_views;
  std::vector<std::vector<int64_t>> input_sizes;
  for (NpyArray& input : inputs) {
    void* data = input.data.data();
    if (device_memory) {
      AOTC_CPP_ASSIGN_OR_RETURN(data, device_memory->upload(input.data));
    }
    AOTC_CPP_ASSIGN_OR_RETURN(aotc::TensorView view,
                              aotc::TensorView::contiguous(data, input.dtype, input.shape, device));
    input_views.push_back(view);
    input_sizes.push_back(input.shape);
  }
  aotc::RunOptions run_options;
  run_options.num_threads = args.threads;

  if (!args.quiet) {
    std::printf("model '%.*s' on %s: %zu input(s), %zu output(s) (%s)\n",
                static_cast<int>(model.name().size()), model.name().data(),
                device.to_string().c_str(), input_specs.size(), output_specs.size(),
                use_samples ? "sample inputs from the package" : "inputs from --input");
  }

  // One run with runtime-allocated outputs: the outputs checked and written.
  std::vector<NpyArray> outputs;
  {
    AOTC_CPP_ASSIGN_OR_RETURN(std::vector<aotc::Tensor> tensors,
                              model.run(input_views, run_options));
    if (device_memory) {
      AOTC_CPP_RETURN_IF_ERROR(device_memory->synchronize());
    }
    for (const aotc::Tensor& tensor : tensors) {
      AOTC_CPP_ASSIGN_OR_RETURN(NpyArray output, to_host(tensor, device_memory.get()));
      outputs.push_back(std::move(output));
    }
  }

  bool all_pass = true;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const std::string& name = i < output_specs.size() ? output_specs[i].name : std::string("?");
    const std::string label = "output " + std::to_string(i) + " \"" + name +
                              "\": " + describe(outputs[i].dtype, outputs[i].shape);
    if (!use_samples) {
      if (!args.quiet) std::printf("%s\n", label.c_str());
      continue;
    }
    const Tolerance defaults = default_tolerance(expected[i].dtype);
    const Tolerance tolerance{args.atol.value_or(defaults.atol), args.rtol.value_or(defaults.rtol)};
    const Comparison result = compare(outputs[i], expected[i], tolerance);
    all_pass = all_pass && result.pass;
    if (args.quiet && result.pass) continue;
    if (!result.problem.empty()) {
      std::printf("%s  FAIL (%s)\n", label.c_str(), result.problem.c_str());
      continue;
    }
    std::printf("%s  max_abs_err %.3g  max_rel_err %.3g  (atol %g, rtol %g)  %s", label.c_str(),
                result.max_abs, result.max_rel, tolerance.atol, tolerance.rtol,
                result.pass ? "PASS" : "FAIL");
    if (!result.pass) {
      std::printf(" (%lld of %lld elements out of tolerance)",
                  static_cast<long long>(result.mismatched),
                  static_cast<long long>(outputs[i].numel()));
    }
    std::printf("\n");
  }

  if (!args.output_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(args.output_dir, error);
    if (error) {
      return Status(StatusCode::kIoError,
                    args.output_dir + ": cannot create directory: " + error.message());
    }
    for (size_t i = 0; i < outputs.size(); ++i) {
      const std::string path =
          (std::filesystem::path(args.output_dir) / ("output_" + std::to_string(i) + ".npy"))
              .string();
      AOTC_CPP_RETURN_IF_ERROR(aotc::tools::write_npy_file(path, outputs[i].dtype, outputs[i].shape,
                                                           outputs[i].data.data()));
      if (!args.quiet) std::printf("wrote %s\n", path.c_str());
    }
  }

  // Timed runs into caller memory sized by plan().
  if (args.runs > 0) {
    AOTC_CPP_ASSIGN_OR_RETURN(std::vector<std::vector<int64_t>> output_sizes,
                              model.plan(input_sizes));
    std::vector<std::vector<uint8_t>> host_outputs(output_sizes.size());
    std::vector<aotc::TensorView> output_views;
    for (size_t i = 0; i < output_sizes.size(); ++i) {
      int64_t numel = 1;
      for (int64_t size : output_sizes[i]) numel *= size;
      const size_t bytes = static_cast<size_t>(numel) * aotc::dtype_size(output_specs[i].dtype);
      void* data = nullptr;
      if (device_memory) {
        AOTC_CPP_ASSIGN_OR_RETURN(data, device_memory->alloc(bytes));
      } else {
        host_outputs[i].resize(bytes);
        data = host_outputs[i].data();
      }
      AOTC_CPP_ASSIGN_OR_RETURN(
          aotc::TensorView view,
          aotc::TensorView::contiguous(data, output_specs[i].dtype, output_sizes[i], device));
      output_views.push_back(view);
    }
    std::vector<double> times_ms;
    for (int r = 0; r < args.warmup + args.runs; ++r) {
      const auto start = std::chrono::steady_clock::now();
      AOTC_CPP_RETURN_IF_ERROR(model.run(input_views, output_views, run_options));
      if (device_memory) {
        AOTC_CPP_RETURN_IF_ERROR(device_memory->synchronize());
      }
      const auto end = std::chrono::steady_clock::now();
      if (r >= args.warmup) {
        times_ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());
      }
    }
    std::sort(times_ms.begin(), times_ms.end());
    const size_t n = times_ms.size();
    const double median =
        n % 2 == 1 ? times_ms[n / 2] : (times_ms[n / 2 - 1] + times_ms[n / 2]) / 2;
    if (!args.quiet) {
      std::printf("latency: median %.4g ms, min %.4g ms over %d runs (%d warmup)\n", median,
                  times_ms.front(), args.runs, args.warmup);
    }
  }

  if (use_samples && !args.quiet) std::printf("%s\n", all_pass ? "PASS" : "FAIL");
  return all_pass ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Result<Args> args = parse_args(argc, argv);
  if (!args.ok()) {
    std::fprintf(stderr, "aotc-run: error: %s\n", args.status().message().c_str());
    return 2;
  }
  if (args->help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  Result<int> exit_code = run_tool(*args);
  std::fflush(stdout);
  if (!exit_code.ok()) {
    std::fprintf(stderr, "aotc-run: error: %s\n", exit_code.status().message().c_str());
    return 2;
  }
  return *exit_code;
}
