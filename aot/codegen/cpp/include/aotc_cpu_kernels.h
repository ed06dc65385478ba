// aotc_cpu_kernels.h: extern kernels for the CPU backend. This header holds
// what they share (element types, operand descriptions, small helpers) and
// includes one header per family at its end: GEMM (aotc_cpu_gemm.h),
// convolution (aotc_cpu_conv.h), attention (aotc_cpu_attention.h), pooling
// (aotc_cpu_pool.h). Header-only C++17, no BLAS: parallel over an outer
// dimension through the host's pool (aotc_rt::parallel_for); hot loops use
// AVX2/FMA intrinsics where the package's ISA has them, else plain loops
// written so that g++ -O3 vectorises them without -ffast-math (no
// reassociated reductions: every vectorised loop runs over independent
// accumulators).
//
// [Note: extern kernel numerics]
// - Element types: float and bf16 (below). Arithmetic is always float32;
//   bf16 operands are converted on load and results rounded once on store
//   (round-to-nearest-even), as eager does with its float accumulation.
// - NaN and inf follow eager: NaN in a GEMM/conv operand reaches the outputs
//   it touches; max pooling propagates NaN (and reports its index) like
//   eager's `val > max || isnan(val)`; attention propagates NaN scores and
//   gives 0 for a row whose scores are all -inf (fully masked), like eager's
//   flash and _safe_softmax paths.
// - Sums run in a fixed order (pooling windows row-major like eager, so those
//   are bit-exact in float32); GEMM/conv sum over K in order, which differs
//   from MKL's blocking only by rounding. A transposed convolution sums each
//   kernel tap over input channels (fused multiply-add where the ISA has
//   it), then the taps in order, as eager's gemm + col2im does: bit-exact
//   with eager's float32 on OpInfo's samples, whose cancelling sums a
//   single running sum missed by 1e-4 at a 1e-5 tolerance.
// - Kernels return an aotc_abi_code_e. Scratch memory (packed GEMM panels,
//   attention tiles) comes from malloc; failure is RESOURCE_EXHAUSTED.
//
// Every function takes sizes and element strides explicitly, so strided
// views (transposes, expands with stride 0, slices) are read in place.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

#include "aotc_cpu.h"

namespace aotc_rt {
namespace kernels {

// -- element types ------------------------------------------------------------

// bfloat16 storage (g++ 12 has no __bf16): the upper half of a float32.
struct bf16 {
  uint16_t bits;
};

inline float bf16_to_f32(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// Round to nearest even; NaN stays NaN (quietened), inf stays inf.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float to_f32(float v) { return v; }
inline float to_f32(bf16 v) { return bf16_to_f32(v.bits); }

template <typename T>
inline T from_f32(float v);
template <>
inline float from_f32<float>(float v) {
  return v;
}
template <>
inline bf16 from_f32<bf16>(float v) {
  return bf16{f32_to_bf16(v)};
}

// An attention mask element as the amount added to a score: a bool mask
// keeps true positions (adds 0) and drops false ones (adds -inf).
inline float mask_value(bool keep) { return keep ? 0.0f : -std::numeric_limits<float>::infinity(); }
inline float mask_value(float v) { return v; }
inline float mask_value(bf16 v) { return bf16_to_f32(v.bits); }

// -- fused epilogues ----------------------------------------------------------

// [Note: extern epilogues] A GEMM or convolution may run a fused pointwise
// kernel (activation, batch norm, residual add ...) on its output while the
// output is still in cache. The kernel takes an Epilogue functor and, after
// it has stored a segment of one output row, calls
//   epi(row, c0, c1)
// where |row| is the flat index over every output dim but the last (the
// output is contiguous) and [c0, c1) a range of the last dim. Every output
// element is passed exactly once, after its final value is stored; calls
// come from any thread of the pool, for disjoint ranges, so the functor
// must only read the elements it is given (and other buffers) and write
// its own outputs at the same positions. NoEpilogue does nothing.
struct NoEpilogue {
  void operator()(int64_t, int64_t, int64_t) const {}
};

// -- operand descriptions ------------------------------------------------------

// A batch of matrices: element (b, i, j) at data[b*sb + i*s0 + j*s1].
template <typename T>
struct Matrix {
  const T* data;
  int64_t sb;
  int64_t s0;
  int64_t s1;
};

// A strided tensor of rank R: element (i0, ..., iR-1) at data[sum(ik * s[k])].
template <typename T, int R>
struct TensorN {
  const T* data;
  int64_t s[R];
};
template <typename T>
using Tensor4 = TensorN<T, 4>;
template <typename T>
using Tensor5 = TensorN<T, 5>;

// |t| with a size-1 dim of stride 0 inserted at dim 2 (the depth of a 2-D
// convolution or pooling operand).
template <typename T>
inline Tensor5<T> with_depth(const Tensor4<T>& t) {
  return Tensor5<T>{t.data, {t.s[0], t.s[1], 0, t.s[2], t.s[3]}};
}

// Per spatial dim (depth, height, width) of a convolution or pooling.
using Dims3 = std::array<int64_t, 3>;

namespace detail {

constexpr float kInf = std::numeric_limits<float>::infinity();

// floor(a / b) and ceil(a / b) for any sign of a and b > 0.
inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
inline int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// Output positions o in [lo, hi) whose input position o*stride + offset lies
// in [0, size), clipped to [begin, end).
inline void valid_range(int64_t stride, int64_t offset, int64_t size, int64_t begin, int64_t end,
                        int64_t* lo, int64_t* hi) {
  *lo = std::max(begin, ceil_div(-offset, stride));
  *hi = std::min(end, floor_div(size - 1 - offset, stride) + 1);
  if (*hi < *lo) *hi = *lo;
}

// malloc'd float scratch owned by one scope.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(data_); }
  bool allocate(int64_t count) {
    std::free(data_);
    data_ = static_cast<float*>(
        std::malloc(static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(float)));
    return data_ != nullptr;
  }
  float* data() const { return data_; }

 private:
  float* data_ = nullptr;
};

// Set from inside a parallel loop when a chunk cannot get its scratch.
struct ChunkError {
  int32_t flag = 0;
  void set() { __atomic_store_n(&flag, 1, __ATOMIC_RELEASE); }
  bool failed() const { return __atomic_load_n(&flag, __ATOMIC_ACQUIRE) != 0; }
};

// Chunk size for parallel_for: about |target| inner operations per chunk.
inline int64_t grain_for(int64_t work_per_unit, int64_t target = int64_t{1} << 15) {
  return std::max<int64_t>(1, target / std::max<int64_t>(work_per_unit, 1));
}

// acc[r][dst0 + j*dst_step] += w[r] * x[j*src_step] for r < rows, j < count.
// The unit-stride, four-row case is the hot one (stride-1 convolution,
// pooling-free rows); it vectorises over j.
template <int64_t kCols, typename T>
inline void axpy_rows(float (*acc)[kCols], const float* w, int64_t rows, int64_t dst0,
                      int64_t dst_step, const T* x, int64_t src_step, int64_t count) {
  if (dst_step == 1 && src_step == 1 && rows == 4) {
    float* a0 = acc[0] + dst0;
    float* a1 = acc[1] + dst0;
    float* a2 = acc[2] + dst0;
    float* a3 = acc[3] + dst0;
    const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
    for (int64_t j = 0; j < count; ++j) {
      const float v = to_f32(x[j]);
      a0[j] += w0 * v;
      a1[j] += w1 * v;
      a2[j] += w2 * v;
      a3[j] += w3 * v;
    }
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* a = acc[r] + dst0;
    const float wr = w[r];
    if (dst_step == 1 && src_step == 1) {
      for (int64_t j = 0; j < count; ++j) a[j] += wr * to_f32(x[j]);
    } else {
      for (int64_t j = 0; j < count; ++j) a[j * dst_step] += wr * to_f32(x[j * src_step]);
    }
  }
}

// a * b + c with one rounding where the ISA has FMA (as the BLAS gemm behind
// eager's transposed convolution computes its per-tap channel sums), else
// multiply then add.
inline float fused_madd(float a, float b, float c) {
#ifdef __FMA__
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// acc[r][j] = fused_madd(w[r], x[j*step], acc[r][j]) for r < rows, j < count;
// the unit-stride four-row case shares each x load, as axpy_rows.
template <int64_t kCols, typename T>
inline void fma_rows(float (*acc)[kCols], const float* w, int64_t rows, const T* x, int64_t step,
                     int64_t count) {
  if (rows == 4 && step == 1) {
    const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
    for (int64_t j = 0; j < count; ++j) {
      const float v = to_f32(x[j]);
      acc[0][j] = fused_madd(w0, v, acc[0][j]);
      acc[1][j] = fused_madd(w1, v, acc[1][j]);
      acc[2][j] = fused_madd(w2, v, acc[2][j]);
      acc[3][j] = fused_madd(w3, v, acc[3][j]);
    }
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < count; ++j)
      acc[r][j] = fused_madd(w[r], to_f32(x[j * step]), acc[r][j]);
  }
}

}  // namespace detail

}  // namespace kernels
}  // namespace aotc_rt

// The kernels themselves, one header per family. Generated code and the tests
// include this header alone, so it brings them all along.
// GEMM first: convolution and attention use its micro-kernels and transposes.
// clang-format off
#include "aotc_cpu_gemm.h"
#include "aotc_cpu_attention.h"
#include "aotc_cpu_conv.h"
#include "aotc_cpu_pool.h"
// clang-format on
