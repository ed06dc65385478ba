// aotc runtime: C++17 API. Header-only, implemented inline on top of the C
// API (aotc.h), so no C++ type crosses the libaotc boundary and the host may be
// built with another compiler or standard library than the runtime.
//
//   auto package = aotc::Package::open("model.pt2");
//   if (!package.ok()) { /* package.status().message() says why */ }
//   auto model = aotc::Model::load(*package, {/*name=*/"", /*device=*/"cpu"});
//   auto x = aotc::TensorView::of(data.data(), {8, 64});
//   auto outputs = model->run({*x});
//   const float* y = (*outputs)[0].data<float>();
//
// Errors are values, never exceptions: functions that can fail return an
// aotc::Status or an aotc::Result<T>. The only exceptions that can leave this
// header are std::bad_alloc from the standard containers it fills.
//
// Handles (Package, Model, Tensor) are movable, not copyable, and final; a
// moved-from handle may only be destroyed or assigned to. Package and Model
// share the underlying object through retain(), which is cheap (a reference
// count). Status, Result, TensorView and TensorSpec are plain values.
#ifndef AOTC_AOTC_HPP_
#define AOTC_AOTC_HPP_

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

namespace aotc {

//===----------------------------------------------------------------------===//
// Status and Result
//===----------------------------------------------------------------------===//

// Same values as aotc_status_code_e.
enum class StatusCode : int {
  kOk = AOTC_OK,
  kInternal = AOTC_INTERNAL,
  kInvalidArgument = AOTC_INVALID_ARGUMENT,
  kOutOfRange = AOTC_OUT_OF_RANGE,
  kUnsupported = AOTC_UNSUPPORTED,
  kNotFound = AOTC_NOT_FOUND,
  kResourceExhausted = AOTC_RESOURCE_EXHAUSTED,
  kDeviceError = AOTC_DEVICE_ERROR,
  kDeviceUnavailable = AOTC_DEVICE_UNAVAILABLE,
  kIoError = AOTC_IO_ERROR,
  kCorruptPackage = AOTC_CORRUPT_PACKAGE,
  kIncompatible = AOTC_INCOMPATIBLE,
};

// "INVALID_ARGUMENT", ... (from the runtime library).
inline const char* status_code_name(StatusCode code) {
  return aotc_status_code_name(static_cast<int>(code));
}

// An error code and the message that says what failed and where; OK when
// default-constructed. A plain value: thread-compatible, copyable.
class [[nodiscard]] Status final {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  // Takes ownership of |status| (may be NULL, meaning OK), copies its code and
  // message, and frees it with aotc_status_free().
  explicit Status(aotc_status_t* status) {
    if (status == nullptr) return;
    code_ = static_cast<StatusCode>(aotc_status_code(status));
    message_ = aotc_status_message(status);
    aotc_status_free(status);
    // A non-NULL status always means failure, whatever code it carries.
    if (code_ == StatusCode::kOk) code_ = StatusCode::kInternal;
  }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "OK", or "INVALID_ARGUMENT: <message>".
  std::string to_string() const {
    if (ok()) return "OK";
    return std::string(status_code_name(code_)) + ": " + message_;
  }
  // So that Status and Result<T> can be tested alike.
  const Status& status() const { return *this; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value of type T or an error Status. A Result built from an OK Status
// holds an INTERNAL error instead, so ok() and status() never disagree.
// Move-only. value() on an error Result is a programming error: it prints the
// error to stderr and aborts.
template <typename T>
class [[nodiscard]] Result final {
  static_assert(!std::is_same<std::decay_t<T>, Status>::value, "Result<Status> is meaningless");

 public:
  Result(T value) : state_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : state_(std::move(status)) {  // NOLINT: implicit by design
    if (std::get<Status>(state_).ok()) {
      state_ = Status(StatusCode::kInternal, "aotc::Result constructed from an OK status");
    }
  }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  Result(Result&&) = default;
  Result& operator=(Result&&) = default;

  bool ok() const { return std::holds_alternative<T>(state_); }
  // OK when a value is held.
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(state_);
  }

  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Result*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T& operator*() & { return checked(); }
  const T& operator*() const& { return const_cast<Result*>(this)->checked(); }
  T&& operator*() && { return std::move(checked()); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &const_cast<Result*>(this)->checked(); }

 private:
  T& checked() {
    T* value = std::get_if<T>(&state_);
    if (value == nullptr) {
      std::fprintf(stderr, "aotc::Result::value() called on an error: %s\n",
                   std::get<Status>(state_).to_string().c_str());
      std::abort();
    }
    return *value;
  }
  std::variant<T, Status> state_;
};

}  // namespace aotc

// Propagation helpers for code using this API (standard C++17). Named
// AOTC_CPP_* so they never clash with the runtime's internal macros.
#define AOTC_CPP_RETURN_IF_ERROR(expr)                   \
  do {                                                   \
    ::aotc::Status aotc_cpp_status_ = (expr);            \
    if (!aotc_cpp_status_.ok()) return aotc_cpp_status_; \
  } while (0)

#define AOTC_CPP_CONCAT_INNER_(a, b) a##b
#define AOTC_CPP_CONCAT_(a, b) AOTC_CPP_CONCAT_INNER_(a, b)
// AOTC_CPP_ASSIGN_OR_RETURN(auto model, aotc::Model::load(package));
#define AOTC_CPP_ASSIGN_OR_RETURN(lhs, expr) \
  AOTC_CPP_ASSIGN_OR_RETURN_IMPL_(AOTC_CPP_CONCAT_(aotc_cpp_result_, __LINE__), lhs, expr)
#define AOTC_CPP_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return tmp.status();                   \
  lhs = std::move(tmp).value()

namespace aotc {

// Checks that the runtime library implements the C API this header was
// written against: same major version, minor not older. Package::open calls
// it, so a mismatched libaotc is reported instead of misbehaving.
inline Status check_api_version() {
  const uint32_t version = aotc_api_version();
  const int64_t major = version >> 16, minor = version & 0xffffu;
  if (major != AOTC_API_VERSION_MAJOR || minor < AOTC_API_VERSION_MINOR) {
    return Status(StatusCode::kIncompatible,
                  "aotc.hpp was written for C API " + std::to_string(AOTC_API_VERSION_MAJOR) + "." +
                      std::to_string(AOTC_API_VERSION_MINOR) + " but the runtime library " +
                      "implements " + std::to_string(major) + "." + std::to_string(minor));
  }
  return Status();
}

//===----------------------------------------------------------------------===//
// Element types and devices
//===----------------------------------------------------------------------===//

// Same values as aotc_dtype_e.
enum class DType : int32_t {
  kFloat32 = AOTC_FLOAT32,
  kFloat16 = AOTC_FLOAT16,
  kBFloat16 = AOTC_BFLOAT16,
  kFloat64 = AOTC_FLOAT64,
  kInt8 = AOTC_INT8,
  kUInt8 = AOTC_UINT8,
  kInt16 = AOTC_INT16,
  kInt32 = AOTC_INT32,
  kInt64 = AOTC_INT64,
  kBool = AOTC_BOOL,
};

// "float32", ...; "unknown" for a value outside DType.
inline const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kFloat16:
      return "float16";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kFloat64:
      return "float64";
    case DType::kInt8:
      return "int8";
    case DType::kUInt8:
      return "uint8";
    case DType::kInt16:
      return "int16";
    case DType::kInt32:
      return "int32";
    case DType::kInt64:
      return "int64";
    case DType::kBool:
      return "bool";
  }
  return "unknown";
}

// Bytes per element; 0 for a value outside DType.
inline constexpr size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat64:
    case DType::kInt64:
      return 8;
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kInt16:
      return 2;
    case DType::kInt8:
    case DType::kUInt8:
    case DType::kBool:
      return 1;
  }
  return 0;
}

// bfloat16 and float16 as their 16 bits, with conversions (round to nearest
// even; NaN stays NaN). Host code only; the runtime never converts.
struct BFloat16 {
  uint16_t bits = 0;

  static BFloat16 from_float(float value) {
    uint32_t u;
    std::memcpy(&u, &value, sizeof(u));
    if ((u & 0x7fffffffu) > 0x7f800000u) return {static_cast<uint16_t>((u >> 16) | 0x0040u)};
    u += 0x7fffu + ((u >> 16) & 1u);
    return {static_cast<uint16_t>(u >> 16)};
  }
  float to_float() const {
    const uint32_t u = static_cast<uint32_t>(bits) << 16;
    float value;
    std::memcpy(&value, &u, sizeof(value));
    return value;
  }
};

struct Float16 {
  uint16_t bits = 0;

  static Float16 from_float(float value) {
    // After F. Giesen's float_to_half_fast3_rtne.
    constexpr uint32_t kF32Infinity = 255u << 23;
    constexpr uint32_t kF16Overflow = (127u + 16u) << 23;  // 2^16: rounds to infinity
    constexpr uint32_t kDenormMagic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    uint32_t f;
    std::memcpy(&f, &value, sizeof(f));
    const uint32_t sign = f & 0x80000000u;
    f ^= sign;
    uint32_t out;
    if (f >= kF16Overflow) {
      out = f > kF32Infinity ? 0x7e00u : 0x7c00u;  // NaN : infinity
    } else if (f < (113u << 23)) {                 // below 2^-14: float16 subnormal or zero
      float magic, sum;
      std::memcpy(&magic, &kDenormMagic, sizeof(magic));
      std::memcpy(&sum, &f, sizeof(sum));
      sum += magic;
      std::memcpy(&out, &sum, sizeof(out));
      out -= kDenormMagic;
    } else {
      const uint32_t mantissa_odd = (f >> 13) & 1u;
      f += (static_cast<uint32_t>(15 - 127) << 23) + 0xfffu;
      f += mantissa_odd;
      out = f >> 13;
    }
    return {static_cast<uint16_t>(out | (sign >> 16))};
  }
  float to_float() const {
    const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
    const uint32_t exponent = (bits >> 10) & 0x1fu;
    const uint32_t mantissa = bits & 0x3ffu;
    uint32_t u;
    if (exponent == 0) {
      // Zero or subnormal: mantissa * 2^-24, exact in float.
      float magnitude = static_cast<float>(mantissa) * (1.0f / 16777216.0f);
      std::memcpy(&u, &magnitude, sizeof(u));
      u |= sign;
    } else if (exponent == 31) {
      u = sign | 0x7f800000u | (mantissa << 13);
    } else {
      u = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    }
    float value;
    std::memcpy(&value, &u, sizeof(value));
    return value;
  }
};

// The DType of a C++ element type: dtype_of<float>() == DType::kFloat32.
template <typename T>
constexpr DType dtype_of() {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same<U, float>::value)
    return DType::kFloat32;
  else if constexpr (std::is_same<U, Float16>::value)
    return DType::kFloat16;
  else if constexpr (std::is_same<U, BFloat16>::value)
    return DType::kBFloat16;
  else if constexpr (std::is_same<U, double>::value)
    return DType::kFloat64;
  else if constexpr (std::is_same<U, int8_t>::value)
    return DType::kInt8;
  else if constexpr (std::is_same<U, uint8_t>::value)
    return DType::kUInt8;
  else if constexpr (std::is_same<U, int16_t>::value)
    return DType::kInt16;
  else if constexpr (std::is_same<U, int32_t>::value)
    return DType::kInt32;
  else if constexpr (std::is_same<U, int64_t>::value)
    return DType::kInt64;
  else if constexpr (std::is_same<U, bool>::value)
    return DType::kBool;
  else
    static_assert(sizeof(U) == 0, "no aotc::DType for this element type");
}

enum class DeviceType : int32_t {
  kCpu = AOTC_DEVICE_CPU,
  kCuda = AOTC_DEVICE_CUDA,
};

// Where tensor memory lives. A plain value.
struct Device {
  DeviceType type = DeviceType::kCpu;
  int32_t index = 0;

  static Device cpu() { return Device{}; }
  static Device cuda(int32_t index = 0) { return Device{DeviceType::kCuda, index}; }
  // Parses "cpu", "cuda" (cuda:0) or "cuda:N".
  static Result<Device> parse(std::string_view text) {
    if (text == "cpu") return cpu();
    if (text == "cuda") return cuda(0);
    if (text.substr(0, 5) == "cuda:" && text.size() > 5 && text.size() <= 9) {
      int32_t index = 0;
      for (char c : text.substr(5)) {
        if (c < '0' || c > '9') return bad_device(text);
        index = index * 10 + (c - '0');
      }
      return cuda(index);
    }
    return bad_device(text);
  }
  // "cpu" or "cuda:N".
  std::string to_string() const {
    return type == DeviceType::kCpu ? std::string("cpu") : "cuda:" + std::to_string(index);
  }
  bool operator==(const Device& other) const {
    return type == other.type && (type == DeviceType::kCpu || index == other.index);
  }
  bool operator!=(const Device& other) const { return !(*this == other); }

 private:
  static Status bad_device(std::string_view text) {
    return Status(StatusCode::kInvalidArgument,
                  "bad device '" + std::string(text) + "': expected cpu, cuda or cuda:N");
  }
};

//===----------------------------------------------------------------------===//
// TensorView
//===----------------------------------------------------------------------===//

// A non-owning view of tensor memory: pointer, dtype, device, sizes and
// strides (in elements). A plain value wrapping aotc_tensor_view_t;
// thread-compatible. The memory must outlive every call the view is passed
// to; the runtime never frees it. Inputs the model mutates
// (TensorSpec::mutated) are written through |data|, so it must be writable.
class TensorView final {
 public:
  // An empty view: NULL data, a float32 scalar on the CPU.
  TensorView() { std::memset(&view_, 0, sizeof(view_)); }

  // Row-major contiguous view of |data| (lent: must outlive the view's uses)
  // with |sizes|. Fails on more than AOTC_MAX_DIMS dims, a negative size, a
  // byte size that overflows, or NULL data for a non-empty tensor.
  static Result<TensorView> contiguous(void* data, DType dtype, const std::vector<int64_t>& sizes,
                                       Device device = Device::cpu()) {
    Status status = check_shape(data, dtype, sizes);
    if (!status.ok()) return status;
    TensorView view;
    view.fill(data, dtype, sizes, device);
    int64_t stride = 1;
    for (size_t i = sizes.size(); i-- > 0;) {
      view.view_.strides[i] = stride;
      stride *= sizes[i] > 0 ? sizes[i] : 1;
    }
    return view;
  }

  // Contiguous view with the dtype deduced from T: of(ptr_to_float, {2, 3}).
  template <typename T>
  static Result<TensorView> of(T* data, const std::vector<int64_t>& sizes,
                               Device device = Device::cpu()) {
    static_assert(!std::is_const<T>::value,
                  "TensorView needs writable memory (mutated inputs are written through it)");
    return contiguous(static_cast<void*>(data), dtype_of<T>(), sizes, device);
  }

  // View with explicit |strides| (in elements, one per size). The runtime
  // copies or refuses non-contiguous inputs as docs/ABI.md says.
  static Result<TensorView> strided(void* data, DType dtype, const std::vector<int64_t>& sizes,
                                    const std::vector<int64_t>& strides,
                                    Device device = Device::cpu()) {
    Status status = check_shape(data, dtype, sizes);
    if (!status.ok()) return status;
    if (strides.size() != sizes.size()) {
      return Status(StatusCode::kInvalidArgument, "TensorView: " + std::to_string(strides.size()) +
                                                      " strides for " +
                                                      std::to_string(sizes.size()) + " sizes");
    }
    TensorView view;
    view.fill(data, dtype, sizes, device);
    for (size_t i = 0; i < strides.size(); ++i) view.view_.strides[i] = strides[i];
    return view;
  }

  // Wraps a C view as is (no checks).
  static TensorView from_c(const aotc_tensor_view_t& view) {
    TensorView out;
    out.view_ = view;
    return out;
  }

  void* data() const { return view_.data; }
  // Typed pointer; NULL when T does not match dtype().
  template <typename T>
  T* data() const {
    return dtype_of<T>() == dtype() ? static_cast<T*>(view_.data) : nullptr;
  }
  DType dtype() const { return static_cast<DType>(view_.dtype); }
  Device device() const {
    return Device{static_cast<DeviceType>(view_.device_type), view_.device_index};
  }
  int ndim() const { return view_.ndim; }
  std::vector<int64_t> sizes() const {
    return std::vector<int64_t>(view_.sizes, view_.sizes + clamped_ndim());
  }
  std::vector<int64_t> strides() const {
    return std::vector<int64_t>(view_.strides, view_.strides + clamped_ndim());
  }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < clamped_ndim(); ++i) n *= view_.sizes[i];
    return n;
  }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  bool is_contiguous() const {
    int64_t expected = 1;
    for (int i = clamped_ndim(); i-- > 0;) {
      if (view_.sizes[i] != 1 && view_.strides[i] != expected) return false;
      expected *= view_.sizes[i];
    }
    return true;
  }
  // The C struct, for the C API (lent: valid while this TensorView lives).
  const aotc_tensor_view_t& c_view() const { return view_; }

 private:
  int clamped_ndim() const {
    return view_.ndim < 0 ? 0 : (view_.ndim > AOTC_MAX_DIMS ? AOTC_MAX_DIMS : view_.ndim);
  }
  static Status check_shape(const void* data, DType dtype, const std::vector<int64_t>& sizes) {
    if (dtype_size(dtype) == 0) {
      return Status(StatusCode::kInvalidArgument,
                    "TensorView: bad dtype " + std::to_string(static_cast<int>(dtype)));
    }
    if (sizes.size() > AOTC_MAX_DIMS) {
      return Status(StatusCode::kInvalidArgument, "TensorView: " + std::to_string(sizes.size()) +
                                                      " dims, at most " +
                                                      std::to_string(AOTC_MAX_DIMS) + " supported");
    }
    int64_t numel = 1;
    for (int64_t size : sizes) {
      if (size < 0) {
        return Status(StatusCode::kInvalidArgument,
                      "TensorView: negative size " + std::to_string(size));
      }
      if (size == 0) numel = 0;
    }
    if (numel != 0) {
      const int64_t max_numel =
          std::numeric_limits<int64_t>::max() / static_cast<int64_t>(dtype_size(dtype));
      for (int64_t size : sizes) {
        if (numel > max_numel / size) {
          return Status(StatusCode::kInvalidArgument, "TensorView: byte size overflows int64");
        }
        numel *= size;
      }
    }
    if (data == nullptr && numel != 0) {
      return Status(StatusCode::kInvalidArgument, "TensorView: NULL data for a non-empty tensor");
    }
    return Status();
  }
  void fill(void* data, DType dtype, const std::vector<int64_t>& sizes, Device device) {
    view_.data = data;
    view_.dtype = static_cast<int32_t>(dtype);
    view_.device_type = static_cast<int32_t>(device.type);
    view_.device_index = device.index;
    view_.ndim = static_cast<int32_t>(sizes.size());
    for (size_t i = 0; i < sizes.size(); ++i) view_.sizes[i] = sizes[i];
  }
  aotc_tensor_view_t view_;
};

//===----------------------------------------------------------------------===//
// Tensor
//===----------------------------------------------------------------------===//

// A tensor whose memory the runtime allocated (the outputs of Model::run
// without caller outputs), on the model's device. Owns one aotc_tensor_t and
// releases it on destruction. Movable, not copyable; thread-compatible (its
// memory may be read from many threads).
class Tensor final {
 public:
  // Takes ownership of |tensor| (from aotc_model_run_alloc), which must not be
  // NULL and which the caller must not release afterwards.
  static Tensor adopt(aotc_tensor_t* tensor) { return Tensor(tensor); }

  Tensor(Tensor&& other) noexcept : tensor_(std::exchange(other.tensor_, nullptr)) {}
  Tensor& operator=(Tensor&& other) noexcept {
    if (this != &other) {
      reset();
      tensor_ = std::exchange(other.tensor_, nullptr);
    }
    return *this;
  }
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
  ~Tensor() { reset(); }

  // A view of this tensor's memory; valid while this Tensor lives.
  TensorView view() const { return TensorView::from_c(*aotc_tensor_view(tensor_)); }
  void* data() { return c_view().data; }
  const void* data() const { return c_view().data; }
  // Typed pointer (lent, valid while this Tensor lives); NULL when T does not
  // match dtype(). Device memory for CUDA models.
  template <typename T>
  T* data() {
    return dtype_of<T>() == dtype() ? static_cast<T*>(c_view().data) : nullptr;
  }
  template <typename T>
  const T* data() const {
    return dtype_of<T>() == dtype() ? static_cast<const T*>(c_view().data) : nullptr;
  }
  DType dtype() const { return static_cast<DType>(c_view().dtype); }
  Device device() const { return view().device(); }
  int ndim() const { return c_view().ndim; }
  std::vector<int64_t> sizes() const { return view().sizes(); }
  int64_t numel() const { return view().numel(); }
  size_t nbytes() const { return view().nbytes(); }

  // The C handle, lent: valid while this Tensor owns it.
  aotc_tensor_t* c_tensor() const { return tensor_; }
  // Gives up ownership: the caller must aotc_tensor_release() the result.
  aotc_tensor_t* release() { return std::exchange(tensor_, nullptr); }

 private:
  explicit Tensor(aotc_tensor_t* tensor) : tensor_(tensor) {}
  const aotc_tensor_view_t& c_view() const { return *aotc_tensor_view(tensor_); }
  void reset() {
    if (tensor_ != nullptr) aotc_tensor_release(tensor_);
    tensor_ = nullptr;
  }
  aotc_tensor_t* tensor_ = nullptr;
};

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

#endif  // AOTC_AOTC_HPP_
