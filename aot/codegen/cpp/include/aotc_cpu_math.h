// aotc_cpu_math.h: scalar math and dtype helpers for generated CPU kernels.
//
// Header-only, C++17, no intrinsics: the helpers are small inline functions
// written so that g++ can inline them and auto-vectorise the loops that call
// them. Semantics follow eager PyTorch on CPU (torch 2.11-2.13):
// - bfloat16 and float16 are stored as uint16_t bit patterns (g++ 12 has no
//   __bf16) and converted with round-to-nearest-even; NaN stays NaN.
// - Integer floor division and remainder use floor semantics and never trap:
//   a divisor of 0 yields 0, and INT_MIN / -1 wraps instead of raising SIGFPE.
// - Integer add/sub/mul/neg wrap (two's complement) instead of being UB.
// - maximum/minimum propagate NaN; float->int conversions of NaN or values out
//   of range give INT_MIN like x86 (and eager) instead of being UB.
// Nothing here depends on -ffast-math (the build never uses it).
#pragma once

#include <algorithm>  // std::max/std::min in generated index arithmetic
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace aotc_math {

// ---------------------------------------------------------------------------
// Bit casts
// ---------------------------------------------------------------------------

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// ---------------------------------------------------------------------------
// bfloat16 <-> float (as c10::BFloat16: RNE, NaN becomes the canonical 0x7FC0)
// ---------------------------------------------------------------------------

inline float bf16_to_float(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

inline uint16_t float_to_bf16(float f) {
  if (f != f) return UINT16_C(0x7FC0);
  const uint32_t u = float_bits(f);
  const uint32_t rounding_bias = UINT32_C(0x7FFF) + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding_bias) >> 16);
}

// ---------------------------------------------------------------------------
// float16 <-> float (IEEE half; the branch-free algorithm of the FP16 library
// that c10::Half uses: RNE, subnormals exact, NaN kept as a quiet NaN)
// ---------------------------------------------------------------------------

inline float fp16_to_float(uint16_t h) {
  const uint32_t w = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = w & UINT32_C(0x80000000);
  const uint32_t two_w = w + w;
  // Normal numbers: shift the exponent and mantissa into place, then rescale
  // the exponent bias (15 -> 127) with one multiply (also maps inf/NaN).
  const uint32_t exp_offset = UINT32_C(0xE0) << 23;
  const float exp_scale = 0x1.0p-112f;
  const float normalized = bits_float((two_w >> 4) + exp_offset) * exp_scale;
  // Subnormals: build 0.5 + m * 2^-24 exactly and subtract 0.5.
  const uint32_t magic_mask = UINT32_C(126) << 23;
  const float denormalized = bits_float((two_w >> 17) | magic_mask) - 0.5f;
  const uint32_t denormalized_cutoff = UINT32_C(1) << 27;
  const uint32_t result =
      sign | (two_w < denormalized_cutoff ? float_bits(denormalized) : float_bits(normalized));
  return bits_float(result);
}

inline uint16_t float_to_fp16(float f) {
  // Scaling by 2^112 then 2^-110 rounds the mantissa to 11 bits (RNE) in the
  // FPU and turns overflow into inf; adding a power-of-two bias aligns it.
  const float scale_to_inf = 0x1.0p+112f;
  const float scale_to_zero = 0x1.0p-110f;
  float base = (std::fabs(f) * scale_to_inf) * scale_to_zero;
  const uint32_t w = float_bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & UINT32_C(0x80000000);
  uint32_t bias = shl1_w & UINT32_C(0xFF000000);
  if (bias < UINT32_C(0x71000000)) bias = UINT32_C(0x71000000);
  base = bits_float((bias >> 1) + UINT32_C(0x07800000)) + base;
  const uint32_t bits = float_bits(base);
  const uint32_t exp_bits = (bits >> 13) & UINT32_C(0x00007C00);
  const uint32_t mantissa_bits = bits & UINT32_C(0x00000FFF);
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) |
                               (shl1_w > UINT32_C(0xFF000000) ? UINT32_C(0x7E00) : nonsign));
}

// ---------------------------------------------------------------------------
// Conversions with torch's semantics where C++ leaves them undefined
// ---------------------------------------------------------------------------

// float -> integer: truncates toward zero. NaN and values out of range give
// the minimum of int32 (for 8/16/32-bit targets, which eager converts through
// int32) or of int64, as x86's cvtt instructions (and so eager) do.
template <typename T, typename F>
inline T float_to_int(F x) {
  static_assert(std::is_floating_point<F>::value, "float_to_int converts floats");
  if constexpr (std::is_same<T, bool>::value) {
    return x != 0;
  } else if constexpr (sizeof(T) == 8) {
    if (!(x >= static_cast<F>(-9223372036854775808.0) && x < static_cast<F>(9223372036854775808.0)))
      return static_cast<T>(std::numeric_limits<int64_t>::min());
    return static_cast<T>(static_cast<int64_t>(x));
  } else {
    int32_t v;
    if (!(x > -2147483649.0 && x < 2147483648.0)) {
      v = std::numeric_limits<int32_t>::min();
    } else {
      v = static_cast<int32_t>(x);
    }
    return static_cast<T>(v);
  }
}

// ---------------------------------------------------------------------------
// Wrapping integer arithmetic (torch wraps; signed overflow is UB in C++)
// ---------------------------------------------------------------------------

// The unsigned type an integer T computes in: at least unsigned int, so that
// small types do not promote to (overflowing) signed int.
template <typename T>
using wide_unsigned_t = std::make_unsigned_t<std::common_type_t<T, unsigned>>;

template <typename T>
inline T wrapping_add(T a, T b) {
  using U = wide_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
}

template <typename T>
inline T wrapping_sub(T a, T b) {
  using U = wide_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(a) - static_cast<U>(b));
}

template <typename T>
inline T wrapping_mul(T a, T b) {
  using U = wide_unsigned_t<T>;
  return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
}

template <typename T>
inline T wrapping_neg(T a) {
  using U = wide_unsigned_t<T>;
  return static_cast<T>(U(0) - static_cast<U>(a));
}

// ---------------------------------------------------------------------------
// Division and remainder
// ---------------------------------------------------------------------------

// Floor division. Integers: b == 0 gives 0 and a / -1 wraps (no SIGFPE).
// Floats: Python's semantics, exactly as c10's div_floor_floating.
template <typename T>
inline T floordiv(T a, T b) {
  if constexpr (std::is_floating_point<T>::value) {
    if (b == 0) return a / b;
    const T mod = std::fmod(a, b);
    T div = (a - mod) / b;
    if ((mod != 0) && ((b < 0) != (mod < 0))) div -= T(1);
    if (div == 0) return std::copysign(T(0), a / b);
    T floordiv = std::floor(div);
    if (div - floordiv > T(0.5)) floordiv += T(1);
    return floordiv;
  } else {
    if (b == 0) return T(0);
    if constexpr (std::is_signed<T>::value) {
      if (b == T(-1)) return wrapping_neg(a);
    }
    T q = static_cast<T>(a / b);
    const T r = static_cast<T>(a % b);
    if constexpr (std::is_signed<T>::value) {
      if (r != 0 && ((r < 0) != (b < 0))) --q;
    }
    return q;
  }
}

// Remainder with the sign of the divisor (torch.remainder, Python's %).
// Integers: b == 0 gives 0. Floats: fmod adjusted (NaN for b == 0).
template <typename T>
inline T mod(T a, T b) {
  if constexpr (std::is_floating_point<T>::value) {
    T m = std::fmod(a, b);
    if ((m != 0) && ((b < 0) != (m < 0))) m += b;
    return m;
  } else {
    if (b == 0) return T(0);
    if constexpr (std::is_signed<T>::value) {
      if (b == T(-1)) return T(0);
    }
    T r = static_cast<T>(a % b);
    if constexpr (std::is_signed<T>::value) {
      if (r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
    }
    return r;
  }
}

// ---------------------------------------------------------------------------
// Powers
// ---------------------------------------------------------------------------

// Integer power by squaring (wrapping). Negative exponents: 1 for base 1,
// +-1 for base -1, otherwise 0 (as eager's integer pow).
template <typename T>
inline T ipow(T base, T exp) {
  if constexpr (std::is_signed<T>::value) {
    if (exp < 0) {
      if (base == 1) return T(1);
      if (base == -1) return (exp & 1) ? T(-1) : T(1);
      return T(0);
    }
  }
  T result = 1;
  while (exp) {
    if (exp & 1) result = wrapping_mul(result, base);
    exp = static_cast<T>(exp >> 1);
    base = wrapping_mul(base, base);
  }
  return result;
}

template <typename T>
inline T pow(T a, T b) {
  if constexpr (std::is_floating_point<T>::value) {
    return std::pow(a, b);
  } else {
    return ipow(a, b);
  }
}

// ---------------------------------------------------------------------------
// Unary helpers
// ---------------------------------------------------------------------------

template <typename T>
inline T abs(T x) {
  if constexpr (std::is_floating_point<T>::value) {
    return std::fabs(x);
  } else if constexpr (std::is_signed<T>::value) {
    return x < 0 ? wrapping_neg(x) : x;
  } else {
    return x;
  }
}

template <typename T>
inline T neg(T x) {
  if constexpr (std::is_floating_point<T>::value) {
    return -x;
  } else {
    return wrapping_neg(x);
  }
}

// Round half to even (torch.round); nearbyint uses the default rounding mode.
template <typename T>
inline T round_half_even(T x) {
  return std::nearbyint(x);
}

// -1, 0 or 1; NaN gives 0 (as eager on CPU); -0.0 gives 0.
template <typename T>
inline T sign(T x) {
  return static_cast<T>((T(0) < x) - (x < T(0)));
}

// [Note: vectorisable erf] std::erf is a libm call that g++ cannot
// vectorise (about 14% of a small GPT's run in its GELUs). For float, erf is
// eager's own vectorised formula (Abramowitz & Stegun 7.1.26, as ATen's
// Vectorized<float>::erf): erf(x) = sign(x) * (1 - poly(t) * t * exp(-x*x)),
// t = 1 / (1 + 0.3275911 |x|), within 6e-7 of std::erf in float, with exp from
// exp_float below: branch-free, so a loop of them vectorises (with
// -fno-trapping-math, [Note: compile flags]). NaN stays NaN,
// erf(+-inf) = +-1. Double keeps libm.

// e^x for float, branch-free (selects only): Cody-Waite reduction by ln 2
// and a degree-6 polynomial (Cephes expf), about 1 ulp up to 88.3 (inf
// above, 0 below -87.3; NaN stays NaN). Only erf uses it (arguments <= 0).
inline float exp_float(float x) {
  float clamped = x < -87.3f ? -87.3f : x;
  clamped = clamped > 88.3f ? 88.3f : clamped;
  const float n = std::floor(clamped * 1.44269504088896341f + 0.5f);
  float r = clamped - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const int32_t exponent = static_cast<int32_t>(n) + 127;
  const float scale = bits_float(static_cast<uint32_t>(exponent) << 23);
  float result = e * scale;
  result = x < -87.3f ? 0.0f : result;
  result = x > 88.3f ? std::numeric_limits<float>::infinity() : result;
  return x != x ? x : result;
}

template <typename T>
inline T erf(T x) {
  return std::erf(x);
}

template <>
inline float erf<float>(float x) {
  const float ax = std::fabs(x);
  const float t = 1.0f / (0.3275911f * ax + 1.0f);
  float r = 1.061405429f;
  r = r * t + -1.453152027f;
  r = r * t + 1.421413741f;
  r = r * t + -0.284496736f;
  r = r * t + 0.254829592f;
  const float ax2 = ax * ax;
  const float e = exp_float(ax2 < 100.0f ? -ax2 : -100.0f);  // (NaN: any value)
  const float y = 1.0f - r * t * e;
  return x != x ? x : std::copysign(y, x);
}

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

template <typename T>
inline T rsqrt(T x) {
  return T(1) / std::sqrt(x);
}

template <typename T>
inline T reciprocal(T x) {
  return T(1) / x;
}

template <typename T>
inline bool isnan(T x) {
  if constexpr (std::is_floating_point<T>::value) {
    return x != x;
  } else {
    return false;
  }
}

template <typename T>
inline bool isinf(T x) {
  if constexpr (std::is_floating_point<T>::value) {
    return std::fabs(x) == std::numeric_limits<T>::infinity();
  } else {
    return false;
  }
}

// ---------------------------------------------------------------------------
// maximum / minimum (torch.maximum / torch.minimum: NaN wins)
// ---------------------------------------------------------------------------

// Written as nested selects on std::isnan, a form g++ if-converts and
// vectorises (also inside the lane loops of max/min reductions).
template <typename T>
inline T maximum(T a, T b) {
  if constexpr (std::is_floating_point<T>::value) {
    return std::isnan(a) ? a : (std::isnan(b) ? b : (a > b ? a : b));
  } else {
    return a > b ? a : b;
  }
}

template <typename T>
inline T minimum(T a, T b) {
  if constexpr (std::is_floating_point<T>::value) {
    return std::isnan(a) ? a : (std::isnan(b) ? b : (a < b ? a : b));
  } else {
    return a < b ? a : b;
  }
}

// ---------------------------------------------------------------------------
// Reduction helpers
// ---------------------------------------------------------------------------

// Identity of max (-inf or the lowest integer) and min (+inf or the largest).
template <typename T>
inline T max_identity() {
  if constexpr (std::is_floating_point<T>::value) {
    return -std::numeric_limits<T>::infinity();
  } else {
    return std::numeric_limits<T>::lowest();
  }
}

template <typename T>
inline T min_identity() {
  if constexpr (std::is_floating_point<T>::value) {
    return std::numeric_limits<T>::infinity();
  } else {
    return std::numeric_limits<T>::max();
  }
}

// argmax: the first index of the largest value; the first NaN wins over
// everything (as torch.argmax). Visit indices in increasing order.
template <typename T>
inline void argmax_combine(T& acc_value, int64_t& acc_index, T value, int64_t index) {
  if constexpr (std::is_floating_point<T>::value) {
    if (acc_value != acc_value) return;
    if (value != value || value > acc_value) {
      acc_value = value;
      acc_index = index;
    }
  } else {
    if (value > acc_value) {
      acc_value = value;
      acc_index = index;
    }
  }
}

template <typename T>
inline void argmin_combine(T& acc_value, int64_t& acc_index, T value, int64_t index) {
  if constexpr (std::is_floating_point<T>::value) {
    if (acc_value != acc_value) return;
    if (value != value || value < acc_value) {
      acc_value = value;
      acc_index = index;
    }
  } else {
    if (value < acc_value) {
      acc_value = value;
      acc_index = index;
    }
  }
}

// Welford's online mean and sum of squared deviations (m2) of a stream of
// floating values, |weight| counting them ([Note: multi-output reductions] in
// aot/ir/nodes.py). The update is branch-free, so a fixed-size loop of lanes
// vectorises; welford_combine merges two partial results (Chan et al.).
template <typename T>
inline void welford_update(T& mean, T& m2, T& weight, T value) {
  weight = weight + T(1);
  const T delta = value - mean;
  mean = mean + delta / weight;
  m2 = m2 + delta * (value - mean);
}

template <typename T>
inline void welford_combine(T& mean, T& m2, T& weight, T mean_b, T m2_b, T weight_b) {
  const T total = weight + weight_b;
  if (total == T(0)) return;
  const T delta = mean_b - mean;
  const T share_b = weight_b / total;
  mean = mean + delta * share_b;
  m2 = m2 + m2_b + delta * delta * weight * share_b;
  weight = total;
}

// The mean of an empty stream is NaN (as torch.mean's).
template <typename T>
inline T welford_mean(T mean, T weight) {
  return weight > T(0) ? mean : std::numeric_limits<T>::quiet_NaN();
}

// ---------------------------------------------------------------------------
// Library math functions (math_fn names of aot/ir/ops.py; the special
// functions are in aotc_cpu_special.h). std:: gives eager's CPU values: its
// kernels call the same libm or Sleef functions of <= 1 ulp error.
// ---------------------------------------------------------------------------

#define AOTC_LIBM_UNARY(name) \
  template <typename T>       \
  inline T name(T x) {        \
    return std::name(x);      \
  }
AOTC_LIBM_UNARY(asin)
AOTC_LIBM_UNARY(acos)
AOTC_LIBM_UNARY(asinh)
AOTC_LIBM_UNARY(acosh)
AOTC_LIBM_UNARY(atanh)
AOTC_LIBM_UNARY(erfc)
AOTC_LIBM_UNARY(lgamma)
#undef AOTC_LIBM_UNARY

template <typename T>
inline T copysign(T a, T b) {
  return std::copysign(a, b);
}

template <typename T>
inline T hypot(T a, T b) {
  return std::hypot(a, b);
}

template <typename T>
inline T nextafter(T a, T b) {
  return std::nextafter(a, b);
}

// The bfloat16 after |a| towards |b| (both bfloat16 values held in float),
// as c10's nextafter of BFloat16: a step of the 16-bit pattern.
inline float nextafter_bf16(float a, float b) {
  if (a != a || b != b) return a + b;
  if (a == b) return b;
  if (a == 0) return std::copysign(bf16_to_float(1), b);  // the smallest subnormal
  const uint16_t bits = float_to_bf16(a);
  const bool away_from_zero = (b > a) == (a > 0);
  return bf16_to_float(static_cast<uint16_t>(away_from_zero ? bits + 1 : bits - 1));
}

// frexp's two results: mantissa in [0.5, 1) with x's sign, and the exponent
// (as a float: math_fn results keep the operand dtype).
template <typename T>
inline T frexp_mantissa(T x) {
  int exponent = 0;
  return std::frexp(x, &exponent);
}

template <typename T>
inline T frexp_exponent(T x) {
  int exponent = 0;
  std::frexp(x, &exponent);
  return static_cast<T>(exponent);
}

}  // namespace aotc_math

#include "aotc_cpu_special.h"
