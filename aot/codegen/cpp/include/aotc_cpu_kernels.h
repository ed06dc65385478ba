// aotc_cpu_kernels.h: extern kernels for the CPU backend (GEMM, batched GEMM,
// 1- to 3-D convolution, attention; pooling is aotc_cpu_pool.h, included at
// the end). Header-only C++17, no intrinsics, no BLAS:
// plain loops, parallel over an outer dimension through the host's pool
// (aotc_rt::parallel_for), with inner loops written so that g++ -O3
// vectorises them without -ffast-math (no reassociated reductions: every
// vectorised loop runs over independent accumulators).
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

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

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

// -- GEMM -------------------------------------------------------------------------

namespace detail {

// [Note: GEMM micro-kernel] C is computed in kGemmMR x kGemmNR micro-tiles
// held in registers (6 x 16 floats: twelve 8-float vectors, with two B
// vectors and one broadcast A value: 15 of AVX2's 16 registers). A is packed
// per task into k-major panels of kGemmMR rows (float, zero-padded rows); B is
// read in place when it is a float32 matrix with unit column stride (a
// weight, usually: no per-call packing, so a small-M GEMM reads B once), else
// packed once per call into such a matrix. Edge columns (N % 16) go through a
// zero-padded 16-wide copy. K is blocked by kGemmKC so the A block stays in L2
// and a B panel in L1; the float tile of C (kGemmMC x kGemmNC) lives on the
// task's stack and is rounded once in the epilogue. Each output element's
// sum runs over k in order, so results do not depend on the thread count.
constexpr int64_t kGemmMR = 6;
constexpr int64_t kGemmNR = 16;
constexpr int64_t kGemmMC = 8 * kGemmMR;   // rows per task
constexpr int64_t kGemmNC = 16 * kGemmNR;  // columns per task
constexpr int64_t kGemmKC = 256;           // depth per A block

// c[r * ldc + j] (+)= sum_{k < kc} a[k * MR + r] * b[k * ldb + j], r < MR, j < NR.
inline void gemm_micro(int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                       int64_t ldc, bool accumulate) {
#if defined(__AVX2__) && defined(__FMA__)
  __m256 acc[kGemmMR][2];
#pragma GCC unroll 6
  for (int r = 0; r < kGemmMR; ++r) {
    acc[r][0] = accumulate ? _mm256_loadu_ps(c + r * ldc) : _mm256_setzero_ps();
    acc[r][1] = accumulate ? _mm256_loadu_ps(c + r * ldc + 8) : _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b + k * ldb);
    const __m256 b1 = _mm256_loadu_ps(b + k * ldb + 8);
#pragma GCC unroll 6
    for (int r = 0; r < kGemmMR; ++r) {
      const __m256 ar = _mm256_broadcast_ss(a + k * kGemmMR + r);
      acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < kGemmMR; ++r) {
    _mm256_storeu_ps(c + r * ldc, acc[r][0]);
    _mm256_storeu_ps(c + r * ldc + 8, acc[r][1]);
  }
#else
  float acc[kGemmMR][kGemmNR];
  for (int r = 0; r < kGemmMR; ++r)
    for (int j = 0; j < kGemmNR; ++j) acc[r][j] = accumulate ? c[r * ldc + j] : 0.0f;
  for (int64_t k = 0; k < kc; ++k)
    for (int r = 0; r < kGemmMR; ++r) {
      const float ar = a[k * kGemmMR + r];
      for (int j = 0; j < kGemmNR; ++j) acc[r][j] = fused_madd(ar, b[k * ldb + j], acc[r][j]);
    }
  for (int r = 0; r < kGemmMR; ++r)
    for (int j = 0; j < kGemmNR; ++j) c[r * ldc + j] = acc[r][j];
#endif
}

}  // namespace detail

// out[b, i, j] = alpha * sum_k a[b, i, k] * b[b, k, j] + beta * bias[b, i, j]
// for b < batch, i < M, j < N; |out| is contiguous [batch, M, N]. |bias| is
// optional (data == nullptr) and broadcast through its strides (0 for a
// broadcast dim); beta == 0 ignores it entirely (NaN in it does not
// propagate), as addmm does. mm: batch 1, no bias; addmm: batch 1;
// bmm: no bias. Operands with sb == 0 are shared by every batch.
// [Note: GEMM micro-kernel] describes the blocking.
template <typename T>
int32_t gemm(const KernelContext& ctx, int64_t batch, int64_t M, int64_t N, int64_t K, Matrix<T> a,
             Matrix<T> b, Matrix<T> bias, float alpha, float beta, T* out) {
  using detail::kGemmKC;
  using detail::kGemmMC;
  using detail::kGemmMR;
  using detail::kGemmNC;
  using detail::kGemmNR;
  if (batch <= 0 || M <= 0 || N <= 0) return AOTC_ABI_OK;

  // B as float32 rows with unit column stride: used in place when it already
  // is one, else packed once (per batch, or once when shared by all batches).
  const float* panel = nullptr;
  int64_t panel_sb = 0;
  int64_t panel_ld = 0;
  detail::Scratch packed;
  bool in_place = false;
  if constexpr (std::is_same<T, float>::value) {
    if (b.s1 == 1) {
      panel = b.data;
      panel_sb = b.sb;
      panel_ld = b.s0;
      in_place = true;
    }
  }
  if (!in_place && K > 0) {
    const int64_t packed_batches = b.sb == 0 ? 1 : batch;
    if (!packed.allocate(packed_batches * K * N)) {
      return fail(ctx, AOTC_ABI_RESOURCE_EXHAUSTED, "gemm: cannot allocate %lld bytes to pack B",
                  static_cast<long long>(packed_batches * K * N * 4));
    }
    float* dst = packed.data();
    parallel_for(ctx, 0, packed_batches * K, detail::grain_for(N), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const T* src = b.data + (r / K) * b.sb + (r % K) * b.s0;
        float* row = dst + r * N;
        if (b.s1 == 1) {
          for (int64_t j = 0; j < N; ++j) row[j] = to_f32(src[j]);
        } else {
          for (int64_t j = 0; j < N; ++j) row[j] = to_f32(src[j * b.s1]);
        }
      }
    });
    panel = dst;
    panel_sb = b.sb == 0 ? 0 : K * N;
    panel_ld = N;
  }

  const bool use_bias = bias.data != nullptr && beta != 0.0f;
  // Epilogue: row i of batch bb, columns [j0, j0 + cols), from float sums.
  auto store_row = [&](int64_t bb, int64_t i, int64_t j0, int64_t cols, const float* acc) {
    T* crow = out + (bb * M + i) * N + j0;
    if (use_bias) {
      const T* brow = bias.data + bb * bias.sb + i * bias.s0 + j0 * bias.s1;
      for (int64_t j = 0; j < cols; ++j)
        crow[j] = from_f32<T>(alpha * acc[j] + beta * to_f32(brow[j * bias.s1]));
    } else {
      for (int64_t j = 0; j < cols; ++j) crow[j] = from_f32<T>(alpha * acc[j]);
    }
  };
  // A few rows (a GEMV, decode-time linear layers): stream whole rows of B
  // (1 KB per k) instead of 64-byte micro-panels; it is memory-bound.
  if (M < kGemmMR) {
    constexpr int64_t kCols = 256;
    const int64_t col_blocks = (N + kCols - 1) / kCols;
    const int64_t grain = detail::grain_for(M * kCols * std::max<int64_t>(K, 1), int64_t{1} << 18);
    parallel_for(ctx, 0, batch * col_blocks, grain, [&](int64_t begin, int64_t end) {
      float acc[kGemmMR][kCols];
      for (int64_t unit = begin; unit < end; ++unit) {
        const int64_t j0 = (unit % col_blocks) * kCols;
        const int64_t bb = unit / col_blocks;
        const int64_t cols = std::min(kCols, N - j0);
        const T* arow = a.data + bb * a.sb;
        const float* bpanel = panel + bb * panel_sb + j0;
        for (int64_t r = 0; r < M; ++r) std::fill(acc[r], acc[r] + cols, 0.0f);
        for (int64_t k = 0; k < K; ++k) {
          float av[kGemmMR];
          for (int64_t r = 0; r < M; ++r) av[r] = to_f32(arow[r * a.s0 + k * a.s1]);
          detail::fma_rows<kCols>(acc, av, M, bpanel + k * panel_ld, 1, cols);
        }
        for (int64_t r = 0; r < M; ++r) store_row(bb, r, j0, cols, acc[r]);
      }
    });
    return AOTC_ABI_OK;
  }
  // A task computes one kGemmMC x kGemmNC tile of one batch.
  const int64_t row_blocks = (M + kGemmMC - 1) / kGemmMC;
  const int64_t col_blocks = (N + kGemmNC - 1) / kGemmNC;
  const int64_t grain =
      detail::grain_for(kGemmMC * kGemmNC * std::max<int64_t>(K, 1), int64_t{1} << 20);
  parallel_for(ctx, 0, batch * row_blocks * col_blocks, grain, [&](int64_t begin, int64_t end) {
    alignas(64) float tile[kGemmMC * kGemmNC];
    alignas(64) float apack[kGemmMC * kGemmKC];
    alignas(64) float edge[kGemmKC * kGemmNR];
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t j0 = (unit % col_blocks) * kGemmNC;
      const int64_t i0 = (unit / col_blocks % row_blocks) * kGemmMC;
      const int64_t bb = unit / col_blocks / row_blocks;
      const int64_t rows = std::min(kGemmMC, M - i0);
      const int64_t cols = std::min(kGemmNC, N - j0);
      const int64_t groups = (rows + kGemmMR - 1) / kGemmMR;
      const T* ablock = a.data + bb * a.sb + i0 * a.s0;
      const float* bblock = panel + bb * panel_sb + j0;
      if (K == 0) std::fill(tile, tile + kGemmMC * kGemmNC, 0.0f);
      for (int64_t k0 = 0; k0 < K; k0 += kGemmKC) {
        const int64_t kc = std::min(kGemmKC, K - k0);
        // A block: |groups| panels of kGemmMR rows, k-major, zero-padded rows.
        for (int64_t g = 0; g < groups; ++g) {
          float* dst = apack + g * kGemmMR * kGemmKC;
          for (int64_t r = 0; r < kGemmMR; ++r) {
            const int64_t i = g * kGemmMR + r;
            if (i >= rows) {
              for (int64_t k = 0; k < kc; ++k) dst[k * kGemmMR + r] = 0.0f;
              continue;
            }
            const T* src = ablock + i * a.s0 + k0 * a.s1;
            for (int64_t k = 0; k < kc; ++k) dst[k * kGemmMR + r] = to_f32(src[k * a.s1]);
          }
        }
        for (int64_t jp = 0; jp < cols; jp += kGemmNR) {
          const float* bp = bblock + k0 * panel_ld + jp;
          int64_t ldb = panel_ld;
          if (cols - jp < kGemmNR) {  // edge columns: a zero-padded copy
            const int64_t n = cols - jp;
            for (int64_t k = 0; k < kc; ++k) {
              for (int64_t j = 0; j < kGemmNR; ++j)
                edge[k * kGemmNR + j] = j < n ? bp[k * ldb + j] : 0.0f;
            }
            bp = edge;
            ldb = kGemmNR;
          }
          for (int64_t g = 0; g < groups; ++g) {
            detail::gemm_micro(kc, apack + g * kGemmMR * kGemmKC, bp, ldb,
                               tile + g * kGemmMR * kGemmNC + jp, kGemmNC, k0 > 0);
          }
        }
      }
      for (int64_t r = 0; r < rows; ++r) store_row(bb, i0 + r, j0, cols, tile + r * kGemmNC);
    }
  });
  return AOTC_ABI_OK;
}

// -- convolution ------------------------------------------------------------------

// Shapes of a convolution over three spatial dims (depth, height, width):
// input [n, c_in, in...], output [n, c_out, out...] contiguous, weight
// [c_out, c_in/groups, kernel...] or, transposed, [c_in, c_out/groups,
// kernel...] (output_padding only changes |out|, which is given). conv2d is
// depth 1 (kernel 1, stride 1, padding 0, dilation 1); conv1d also height 1.
struct ConvNdShape {
  int64_t n, c_in, c_out, groups;
  Dims3 in, out, kernel, stride, pad, dil;
  bool transposed;
};

// The 2-D shape (conv1d is h = 1), for conv2d's 4-D operands.
struct ConvShape {
  int64_t n, c_in, h, w;
  int64_t c_out, h_out, w_out;
  int64_t kh, kw;
  int64_t stride_h, stride_w;
  int64_t pad_h, pad_w;
  int64_t dil_h, dil_w;
  int64_t groups;
  bool transposed;
};

namespace detail {

inline bool any_empty(const Dims3& d) { return d[0] <= 0 || d[1] <= 0 || d[2] <= 0; }

// The input position that output position |o| reads through kernel tap |k|
// of spatial dim |d|, or -1 when there is none: outside the input or, when
// transposed (o = i*stride - pad + k*dil), off the stride grid.
inline int64_t conv_input_pos(const ConvNdShape& p, int d, int64_t o, int64_t k) {
  int64_t i;
  if (!p.transposed) {
    i = o * p.stride[d] - p.pad[d] + k * p.dil[d];
  } else {
    const int64_t num = o + p.pad[d] - k * p.dil[d];
    if (num < 0 || num % p.stride[d] != 0) return -1;
    i = num / p.stride[d];
  }
  return i >= 0 && i < p.in[d] ? i : -1;
}

// Adds to acc[r][0, cols) the sums of output row (od, oh), columns
// [ow0, ow0 + cols), of output channels col + r (r < nco) of group |g|,
// image |nn| (col counts channels within the group). Weight [c_out,
// c_in/groups, k...]; one axpy over the tile per (c_in, kz, ky, kx).
template <bool kDeep, int64_t kCo, int64_t kCols, typename T>
void conv_tile(const ConvNdShape& p, const Tensor5<T>& x, const Tensor5<T>& weight, int64_t nn,
               int64_t g, int64_t col, int64_t nco, int64_t od, int64_t oh, int64_t ow0,
               int64_t cols, float (*acc)[kCols]) {
  const int64_t cin_g = p.c_in / p.groups;
  const int64_t co0 = g * (p.c_out / p.groups) + col;
  const int64_t sw = p.stride[2];
  float wv[kCo];
  for (int64_t ci = 0; ci < cin_g; ++ci) {
    const T* plane = x.data + nn * x.s[0] + (g * cin_g + ci) * x.s[1];
    const T* wbase = weight.data + co0 * weight.s[0] + ci * weight.s[1];
    for (int64_t kz = 0; kz < (kDeep ? p.kernel[0] : 1); ++kz) {
      const int64_t id = kDeep ? conv_input_pos(p, 0, od, kz) : 0;
      if (id < 0) continue;
      for (int64_t ky = 0; ky < p.kernel[1]; ++ky) {
        const int64_t ih = conv_input_pos(p, 1, oh, ky);
        if (ih < 0) continue;
        const T* xrow = plane + id * x.s[2] + ih * x.s[3];
        const T* wrow = wbase + kz * weight.s[2] + ky * weight.s[3];
        for (int64_t kx = 0; kx < p.kernel[2]; ++kx) {
          const int64_t offset = kx * p.dil[2] - p.pad[2];  // iw = ow*stride + offset
          int64_t lo, hi;
          valid_range(sw, offset, p.in[2], ow0, ow0 + cols, &lo, &hi);
          if (lo >= hi) continue;
          for (int64_t r = 0; r < nco; ++r) {
            wv[r] = to_f32(wrow[r * weight.s[0] + kx * weight.s[4]]);
          }
          axpy_rows<kCols>(acc, wv, nco, lo - ow0, 1, xrow + (lo * sw + offset) * x.s[4],
                           sw * x.s[4], hi - lo);
        }
      }
    }
  }
}

// conv_tile for a transposed convolution (weight [c_in, c_out/groups, k...]):
// output column ow takes input column iw where ow = iw*stride + kx*dil - pad.
// Kernel taps are the outer loop: a tap's sum over input channels is made in
// |part| (indexed by iw, so unit stride), then added to the tile, in eager's
// order ([Note: extern kernel numerics]); the channel loop also avoids the
// strided stores a stride > 1 put in the hot loop (3.6x faster).
template <bool kDeep, int64_t kCo, int64_t kCols, typename T>
void conv_transposed_tile(const ConvNdShape& p, const Tensor5<T>& x, const Tensor5<T>& weight,
                          int64_t nn, int64_t g, int64_t col, int64_t nco, int64_t od, int64_t oh,
                          int64_t ow0, int64_t cols, float (*acc)[kCols], float (*part)[kCols]) {
  const int64_t cin_g = p.c_in / p.groups;
  const int64_t sw = p.stride[2];
  float wv[kCo];
  for (int64_t kz = 0; kz < (kDeep ? p.kernel[0] : 1); ++kz) {
    const int64_t id = kDeep ? conv_input_pos(p, 0, od, kz) : 0;
    if (id < 0) continue;
    for (int64_t ky = 0; ky < p.kernel[1]; ++ky) {
      const int64_t ih = conv_input_pos(p, 1, oh, ky);
      if (ih < 0) continue;
      for (int64_t kx = 0; kx < p.kernel[2]; ++kx) {
        const int64_t offset = kx * p.dil[2] - p.pad[2];
        const int64_t lo = std::max<int64_t>(0, ceil_div(ow0 - offset, sw));
        const int64_t hi = std::min(p.in[2], floor_div(ow0 + cols - 1 - offset, sw) + 1);
        if (lo >= hi) continue;
        const int64_t count = hi - lo;  // <= cols: distinct iw land on distinct ow
        for (int64_t r = 0; r < nco; ++r) {
          for (int64_t k = 0; k < count; ++k) part[r][k] = 0.0f;
        }
        for (int64_t ci = 0; ci < cin_g; ++ci) {
          const int64_t c = g * cin_g + ci;
          const T* xrow = x.data + nn * x.s[0] + c * x.s[1] + id * x.s[2] + ih * x.s[3];
          const T* wtap = weight.data + c * weight.s[0] + col * weight.s[1] + kz * weight.s[2] +
                          ky * weight.s[3] + kx * weight.s[4];
          for (int64_t r = 0; r < nco; ++r) wv[r] = to_f32(wtap[r * weight.s[1]]);
          fma_rows<kCols>(part, wv, nco, xrow + lo * x.s[4], x.s[4], count);
        }
        const int64_t dst0 = lo * sw + offset - ow0;
        for (int64_t r = 0; r < nco; ++r) {
          float* a = acc[r] + dst0;
          for (int64_t k = 0; k < count; ++k) a[k * sw] += part[r][k];
        }
      }
    }
  }
}

// Output rows [begin, end) of a convolution (see conv): a row is (n, group,
// block of kCo output channels, od, oh).
template <bool kDeep, int64_t kCo, int64_t kCols, typename T>
void conv_rows(const ConvNdShape& p, const Tensor5<T>& x, const Tensor5<T>& weight, const T* bias,
               int64_t bias_stride, T* out, int64_t begin, int64_t end) {
  float acc[kCo][kCols];
  float part[kCo][kCols];  // transposed: one tap's sums
  const int64_t cout_g = p.c_out / p.groups;
  const int64_t co_blocks = (cout_g + kCo - 1) / kCo;
  const int64_t rows = p.out[0] * p.out[1];  // output rows per channel
  for (int64_t unit = begin; unit < end; ++unit) {
    const int64_t row = unit % rows;
    const int64_t cb = (unit / rows) % co_blocks;
    const int64_t g = (unit / rows / co_blocks) % p.groups;
    const int64_t nn = unit / rows / co_blocks / p.groups;
    const int64_t col = cb * kCo;  // first output channel within the group
    const int64_t nco = std::min(kCo, cout_g - col);
    const int64_t co0 = g * cout_g + col;
    for (int64_t ow0 = 0; ow0 < p.out[2]; ow0 += kCols) {
      const int64_t cols = std::min(kCols, p.out[2] - ow0);
      for (int64_t r = 0; r < nco; ++r) {
        for (int64_t j = 0; j < cols; ++j) acc[r][j] = 0.0f;
      }
      const int64_t od = row / p.out[1], oh = row % p.out[1];
      if (p.transposed) {
        conv_transposed_tile<kDeep, kCo, kCols>(p, x, weight, nn, g, col, nco, od, oh, ow0, cols,
                                                acc, part);
      } else {
        conv_tile<kDeep, kCo, kCols>(p, x, weight, nn, g, col, nco, od, oh, ow0, cols, acc);
      }
      for (int64_t r = 0; r < nco; ++r) {
        const float bv = bias ? to_f32(bias[(co0 + r) * bias_stride]) : 0.0f;
        T* orow = out + ((nn * p.c_out + co0 + r) * rows + row) * p.out[2] + ow0;
        for (int64_t j = 0; j < cols; ++j) orow[j] = from_f32<T>(acc[r][j] + bv);
      }
    }
  }
}

}  // namespace detail

// Direct convolution: each task computes one output row (n, block of 4
// output channels, od, oh) as rows of float accumulators, adding one weight
// times a strided input row per (c_in, kz, ky, kx); the inner loop runs over
// output columns (unit stride when the width stride is 1). Transposed
// convolution gathers the same way: output column ow takes input column iw
// where ow = iw*stride - pad + kx*dil. The rows are instantiated with and
// without the depth loop, as pooling's ([Note: N-d pooling]).
template <typename T>
int32_t conv(const KernelContext& ctx, const ConvNdShape& p, Tensor5<T> x, Tensor5<T> weight,
             const T* bias, int64_t bias_stride, T* out) {
  constexpr int64_t kCo = 4;      // output channels per task
  constexpr int64_t kCols = 256;  // output columns per accumulator tile
  if (p.groups <= 0 || p.c_in % p.groups != 0 || p.c_out % p.groups != 0) {
    return fail(ctx, AOTC_ABI_INVALID_ARGUMENT,
                "convolution: groups %lld must divide input channels %lld and output channels %lld",
                static_cast<long long>(p.groups), static_cast<long long>(p.c_in),
                static_cast<long long>(p.c_out));
  }
  for (int d = 0; d < 3; ++d) {
    if (p.stride[d] <= 0 || p.dil[d] <= 0) {
      return fail(ctx, AOTC_ABI_INVALID_ARGUMENT, "%s",
                  "convolution: stride and dilation must be > 0");
    }
  }
  if (p.n <= 0 || p.c_out <= 0 || detail::any_empty(p.out)) return AOTC_ABI_OK;
  const int64_t co_blocks = (p.c_out / p.groups + kCo - 1) / kCo;
  const int64_t units = p.n * p.groups * co_blocks * p.out[0] * p.out[1];
  const int64_t taps = p.c_in / p.groups * p.kernel[0] * p.kernel[1] * p.kernel[2];
  const int64_t grain =
      detail::grain_for(kCo * p.out[2] * std::max<int64_t>(taps, 1), int64_t{1} << 16);
  const bool deep = p.in[0] != 1 || p.out[0] != 1 || p.kernel[0] != 1 || p.pad[0] != 0;
  parallel_for(ctx, 0, units, grain, [&](int64_t begin, int64_t end) {
    if (deep) {
      detail::conv_rows<true, kCo, kCols>(p, x, weight, bias, bias_stride, out, begin, end);
    } else {
      detail::conv_rows<false, kCo, kCols>(p, x, weight, bias, bias_stride, out, begin, end);
    }
  });
  return AOTC_ABI_OK;
}

// conv on 4-D operands: depth 1.
template <typename T>
int32_t conv2d(const KernelContext& ctx, const ConvShape& p, Tensor4<T> x, Tensor4<T> weight,
               const T* bias, int64_t bias_stride, T* out) {
  const ConvNdShape nd{p.n,
                       p.c_in,
                       p.c_out,
                       p.groups,
                       {1, p.h, p.w},
                       {1, p.h_out, p.w_out},
                       {1, p.kh, p.kw},
                       {1, p.stride_h, p.stride_w},
                       {0, p.pad_h, p.pad_w},
                       {1, p.dil_h, p.dil_w},
                       p.transposed};
  return conv<T>(ctx, nd, with_depth(x), with_depth(weight), bias, bias_stride, out);
}

// -- attention ----------------------------------------------------------------------

// q [batch, heads, q_len, head_dim], k [batch, kv_heads, kv_len, head_dim],
// v [batch, kv_heads, kv_len, v_dim]; out [batch, heads, q_len, v_dim]
// contiguous. Query head h reads key/value head h / (heads / kv_heads)
// (grouped-query attention; kv_heads == heads otherwise).
struct SdpaShape {
  int64_t batch, heads, kv_heads;
  int64_t q_len, kv_len;
  int64_t head_dim, v_dim;
  float scale;
  bool causal;  // row i attends keys j <= i (top-left aligned, as eager)
};

// Attention with an online softmax: a task takes 32 query rows of one
// (batch, head), walks the keys in blocks of 64 (packed to float32, keys
// transposed so both products vectorise over independent accumulators),
// and keeps a running max, sum and output row per query; the L x S score
// matrix never exists. |mask| (data nullptr: none) is broadcast through its
// strides over [batch, heads, q_len, kv_len]; a bool mask keeps true
// positions (false adds -inf), any other mask is added to the scaled
// scores. |lse| (nullable) receives logsumexp [batch, heads, q_len] in
// float32 (-inf for a fully masked row).
template <typename T, typename M>
int32_t sdpa(const KernelContext& ctx, const SdpaShape& p, Tensor4<T> q, Tensor4<T> k, Tensor4<T> v,
             Tensor4<M> mask, T* out, float* lse) {
  constexpr int64_t kRows = 32;  // query rows per task
  constexpr int64_t kKeys = 64;  // keys per block
  if (p.kv_heads <= 0 || p.heads % p.kv_heads != 0) {
    return fail(ctx, AOTC_ABI_INVALID_ARGUMENT,
                "scaled_dot_product_attention: %lld query heads are not a multiple of %lld "
                "key/value heads",
                static_cast<long long>(p.heads), static_cast<long long>(p.kv_heads));
  }
  if (p.batch <= 0 || p.heads <= 0 || p.q_len <= 0) return AOTC_ABI_OK;
  const int64_t E = p.head_dim;
  const int64_t Ev = p.v_dim;
  const int64_t group = p.heads / p.kv_heads;
  const int64_t q_tiles = (p.q_len + kRows - 1) / kRows;
  const int64_t units = p.batch * p.heads * q_tiles;
  // Per chunk: key block (transposed), value block, query rows, output rows,
  // scores, running max and sum.
  const int64_t scratch = kKeys * E + kKeys * Ev + kRows * E + kRows * Ev + kKeys + 2 * kRows;
  detail::ChunkError alloc_error;

  parallel_for(ctx, 0, units, 1, [&](int64_t begin, int64_t end) {
    detail::Scratch buffer;
    if (!buffer.allocate(scratch)) {
      alloc_error.set();
      return;
    }
    float* kt = buffer.data();         // [E][kKeys]
    float* vb = kt + kKeys * E;        // [kKeys][Ev]
    float* qf = vb + kKeys * Ev;       // [kRows][E]
    float* acc = qf + kRows * E;       // [kRows][Ev]
    float* s = acc + kRows * Ev;       // [kKeys]
    float* row_max = s + kKeys;        // [kRows]
    float* row_sum = row_max + kRows;  // [kRows]
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t tile = unit % q_tiles;
      const int64_t bh = unit / q_tiles;
      const int64_t h = bh % p.heads;
      const int64_t bb = bh / p.heads;
      const int64_t hk = h / group;
      const int64_t i0 = tile * kRows;
      const int64_t rows = std::min(kRows, p.q_len - i0);
      const T* qbase = q.data + bb * q.s[0] + h * q.s[1];
      const T* kbase = k.data + bb * k.s[0] + hk * k.s[1];
      const T* vbase = v.data + bb * v.s[0] + hk * v.s[1];
      const M* mbase = mask.data ? mask.data + bb * mask.s[0] + h * mask.s[1] : nullptr;

      for (int64_t r = 0; r < rows; ++r) {
        const T* qrow = qbase + (i0 + r) * q.s[2];
        for (int64_t e = 0; e < E; ++e) qf[r * E + e] = to_f32(qrow[e * q.s[3]]);
        for (int64_t d = 0; d < Ev; ++d) acc[r * Ev + d] = 0.0f;
        row_max[r] = -detail::kInf;
        row_sum[r] = 0.0f;
      }
      const int64_t kv_end = p.causal ? std::min(p.kv_len, i0 + rows) : p.kv_len;
      for (int64_t j0 = 0; j0 < kv_end; j0 += kKeys) {
        const int64_t nk = std::min(kKeys, kv_end - j0);
        for (int64_t jj = 0; jj < nk; ++jj) {
          const T* krow = kbase + (j0 + jj) * k.s[2];
          for (int64_t e = 0; e < E; ++e) kt[e * kKeys + jj] = to_f32(krow[e * k.s[3]]);
          const T* vrow = vbase + (j0 + jj) * v.s[2];
          for (int64_t d = 0; d < Ev; ++d) vb[jj * Ev + d] = to_f32(vrow[d * v.s[3]]);
        }
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t i = i0 + r;
          // Scores: s[jj] = scale * q_i . k_j, summed over e in order.
          for (int64_t jj = 0; jj < nk; ++jj) s[jj] = 0.0f;
          for (int64_t e = 0; e < E; ++e) {
            const float qe = qf[r * E + e];
            const float* kte = kt + e * kKeys;
            for (int64_t jj = 0; jj < nk; ++jj) s[jj] += qe * kte[jj];
          }
          for (int64_t jj = 0; jj < nk; ++jj) s[jj] *= p.scale;
          if (mbase) {
            const M* mrow = mbase + i * mask.s[2] + j0 * mask.s[3];
            for (int64_t jj = 0; jj < nk; ++jj) s[jj] += mask_value(mrow[jj * mask.s[3]]);
          }
          if (p.causal) {
            for (int64_t jj = std::max<int64_t>(i + 1 - j0, 0); jj < nk; ++jj)
              s[jj] = -detail::kInf;
          }
          // Online softmax update. NaN scores never win the max but make
          // their exp NaN, so they reach the sum and the output.
          float block_max = -detail::kInf;
          for (int64_t jj = 0; jj < nk; ++jj) block_max = s[jj] > block_max ? s[jj] : block_max;
          const float old_max = row_max[r];
          const float new_max = block_max > old_max ? block_max : old_max;
          // All -inf so far: exp(s - 0) is 0 for -inf and NaN for NaN.
          const float shift = new_max == -detail::kInf ? 0.0f : new_max;
          const float rescale = old_max == new_max ? 1.0f : std::exp(old_max - shift);
          float block_sum = 0.0f;
          for (int64_t jj = 0; jj < nk; ++jj) {
            s[jj] = std::exp(s[jj] - shift);
            block_sum += s[jj];
          }
          row_sum[r] = row_sum[r] * rescale + block_sum;
          row_max[r] = new_max;
          float* arow = acc + r * Ev;
          if (rescale != 1.0f) {
            for (int64_t d = 0; d < Ev; ++d) arow[d] *= rescale;
          }
          for (int64_t jj = 0; jj < nk; ++jj) {
            const float pj = s[jj];
            const float* vj = vb + jj * Ev;
            for (int64_t d = 0; d < Ev; ++d) arow[d] += pj * vj[d];
          }
        }
      }
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = i0 + r;
        T* orow = out + ((bb * p.heads + h) * p.q_len + i) * Ev;
        const float l = row_sum[r];
        const float* arow = acc + r * Ev;
        if (l == 0.0f) {  // every score -inf: eager gives 0
          for (int64_t d = 0; d < Ev; ++d) orow[d] = from_f32<T>(0.0f);
        } else {
          for (int64_t d = 0; d < Ev; ++d) orow[d] = from_f32<T>(arow[d] / l);
        }
        if (lse) lse[(bb * p.heads + h) * p.q_len + i] = row_max[r] + std::log(l);
      }
    }
  });
  if (alloc_error.failed()) {
    return fail(ctx, AOTC_ABI_RESOURCE_EXHAUSTED,
                "scaled_dot_product_attention: cannot allocate %lld bytes of scratch",
                static_cast<long long>(scratch * 4));
  }
  return AOTC_ABI_OK;
}

}  // namespace kernels
}  // namespace aotc_rt

// Pooling (max, average, adaptive, max backward) is its own header. Generated
// code and the tests include this header alone, so it brings pooling along.
#include "aotc_cpu_pool.h"
