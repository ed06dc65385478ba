// aotc C++ API: element types, devices, TensorView and Tensor (see aotc.hpp).

#ifndef AOTC_TENSOR_HPP_
#define AOTC_TENSOR_HPP_

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

namespace aotc {

//===----------------------------------------------------------------------===//
// Element types and devices
//===----------------------------------------------------------------------===//

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

}  // namespace aotc

#endif  // AOTC_TENSOR_HPP_
