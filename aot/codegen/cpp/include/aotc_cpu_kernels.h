// aotc_cpu_kernels.h: extern kernels for the CPU backend (GEMM, batched GEMM,
// convolution, pooling, attention). Header-only C++17, no intrinsics, no BLAS:
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
//   from MKL's blocking only by rounding.
// - Kernels return an aotc_abi_code_e. Scratch memory (packed GEMM panels,
//   attention tiles) comes from malloc; failure is RESOURCE_EXHAUSTED.
//
// Every function takes sizes and element strides explicitly, so strided
// views (transposes, expands with stride 0, slices) are read in place.
#pragma once

#include <algorithm>
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

// -- operand descriptions ------------------------------------------------------

// A batch of matrices: element (b, i, j) at data[b*sb + i*s0 + j*s1].
template <typename T>
struct Matrix {
  const T* data;
  int64_t sb;
  int64_t s0;
  int64_t s1;
};

// A 4-D strided tensor: element (i0, i1, i2, i3) at data[sum(ik * s[k])].
template <typename T>
struct Tensor4 {
  const T* data;
  int64_t s[4];
};

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

}  // namespace detail

// -- GEMM -------------------------------------------------------------------------

// out[b, i, j] = alpha * sum_k a[b, i, k] * b[b, k, j] + beta * bias[b, i, j]
// for b < batch, i < M, j < N; |out| is contiguous [batch, M, N]. |bias| is
// optional (data == nullptr) and broadcast through its strides (0 for a
// broadcast dim); beta == 0 ignores it entirely (NaN in it does not
// propagate), as addmm does. mm: batch 1, no bias; addmm: batch 1;
// bmm: no bias. Operands with sb == 0 are shared by every batch.
template <typename T>
int32_t gemm(const KernelContext& ctx, int64_t batch, int64_t M, int64_t N, int64_t K, Matrix<T> a,
             Matrix<T> b, Matrix<T> bias, float alpha, float beta, T* out) {
  constexpr int64_t kRows = 4;    // rows of C computed together (share B loads)
  constexpr int64_t kCols = 256;  // columns of C per accumulator tile (4 KB per row)
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
  // A task computes one tile: kRows rows by kCols columns of one batch.
  const int64_t row_blocks = (M + kRows - 1) / kRows;
  const int64_t col_blocks = (N + kCols - 1) / kCols;
  const int64_t grain =
      detail::grain_for(kRows * kCols * std::max<int64_t>(K, 1), int64_t{1} << 18);
  parallel_for(ctx, 0, batch * row_blocks * col_blocks, grain, [&](int64_t begin, int64_t end) {
    float acc[kRows][kCols];
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t j0 = (unit % col_blocks) * kCols;
      const int64_t i0 = (unit / col_blocks % row_blocks) * kRows;
      const int64_t bb = unit / col_blocks / row_blocks;
      const int64_t rows = std::min(kRows, M - i0);
      const int64_t cols = std::min(kCols, N - j0);
      const T* arow = a.data + bb * a.sb + i0 * a.s0;
      const float* bpanel = panel + bb * panel_sb + j0;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < cols; ++j) acc[r][j] = 0.0f;
      }
      for (int64_t k = 0; k < K; ++k) {
        float av[kRows];
        for (int64_t r = 0; r < rows; ++r) av[r] = to_f32(arow[r * a.s0 + k * a.s1]);
        detail::axpy_rows<kCols>(acc, av, rows, 0, 1, bpanel + k * panel_ld, 1, cols);
      }
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t i = i0 + r;
        T* crow = out + (bb * M + i) * N + j0;
        if (use_bias) {
          const T* brow = bias.data + bb * bias.sb + i * bias.s0 + j0 * bias.s1;
          const int64_t bs = bias.s1;
          for (int64_t j = 0; j < cols; ++j) {
            crow[j] = from_f32<T>(alpha * acc[r][j] + beta * to_f32(brow[j * bs]));
          }
        } else {
          for (int64_t j = 0; j < cols; ++j) crow[j] = from_f32<T>(alpha * acc[r][j]);
        }
      }
    }
  });
  return AOTC_ABI_OK;
}

// -- convolution ------------------------------------------------------------------

// Shapes of a 2-D convolution (conv1d is H = 1). Input [n, c_in, h, w];
// output [n, c_out, h_out, w_out] contiguous. Weight [c_out, c_in/groups,
// kh, kw], or for a transposed convolution [c_in, c_out/groups, kh, kw]
// (output_padding only changes h_out/w_out, which are given).
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

// Adds to acc[r][0, cols) the sums of output row |oh|, columns
// [ow0, ow0 + cols), of output channels col + r (r < nco) of group |g|,
// image |nn| (col counts channels within the group).
template <int64_t kCo, int64_t kCols, typename T>
void conv_tile(const ConvShape& p, const Tensor4<T>& x, const Tensor4<T>& weight, int64_t nn,
               int64_t g, int64_t col, int64_t nco, int64_t oh, int64_t ow0, int64_t cols,
               float (*acc)[kCols]) {
  const int64_t cin_g = p.c_in / p.groups;
  const int64_t co0 = g * (p.c_out / p.groups) + col;
  float wv[kCo];
  for (int64_t ci = 0; ci < cin_g; ++ci) {
    const int64_t c = g * cin_g + ci;
    const T* plane = x.data + nn * x.s[0] + c * x.s[1];
    // Weight [c_out, c_in/groups, kh, kw], or [c_in, c_out/groups, kh, kw] transposed.
    const T* wbase = p.transposed ? weight.data + c * weight.s[0] + col * weight.s[1]
                                  : weight.data + co0 * weight.s[0] + ci * weight.s[1];
    const int64_t wstride = p.transposed ? weight.s[1] : weight.s[0];  // next output channel
    for (int64_t ky = 0; ky < p.kh; ++ky) {
      int64_t ih;
      if (!p.transposed) {
        ih = oh * p.stride_h - p.pad_h + ky * p.dil_h;
      } else {  // oh = ih*stride - pad + ky*dil
        const int64_t num = oh + p.pad_h - ky * p.dil_h;
        if (num < 0 || num % p.stride_h != 0) continue;
        ih = num / p.stride_h;
      }
      if (ih < 0 || ih >= p.h) continue;
      const T* xrow = plane + ih * x.s[2];
      for (int64_t kx = 0; kx < p.kw; ++kx) {
        for (int64_t r = 0; r < nco; ++r) {
          wv[r] = to_f32(wbase[r * wstride + ky * weight.s[2] + kx * weight.s[3]]);
        }
        const int64_t offset = kx * p.dil_w - p.pad_w;
        if (!p.transposed) {  // iw = ow*stride + offset
          int64_t lo, hi;
          valid_range(p.stride_w, offset, p.w, ow0, ow0 + cols, &lo, &hi);
          if (lo >= hi) continue;
          axpy_rows<kCols>(acc, wv, nco, lo - ow0, 1, xrow + (lo * p.stride_w + offset) * x.s[3],
                           p.stride_w * x.s[3], hi - lo);
        } else {  // ow = iw*stride + offset for iw in [0, w), ow in [ow0, ow0 + cols)
          const int64_t lo = std::max<int64_t>(0, ceil_div(ow0 - offset, p.stride_w));
          const int64_t hi = std::min(p.w, floor_div(ow0 + cols - 1 - offset, p.stride_w) + 1);
          if (lo >= hi) continue;
          axpy_rows<kCols>(acc, wv, nco, lo * p.stride_w + offset - ow0, p.stride_w,
                           xrow + lo * x.s[3], x.s[3], hi - lo);
        }
      }
    }
  }
}

}  // namespace detail

// Direct convolution: each task computes one output row (n, block of 4
// output channels, oh) as rows of float accumulators, adding one weight times
// a strided input row per (c_in, ky, kx); the inner loop runs over output
// columns (unit stride when stride_w == 1). Transposed convolution gathers
// the same way: output column ow takes input column iw where
// ow = iw*stride - pad + kx*dil.
template <typename T>
int32_t conv2d(const KernelContext& ctx, const ConvShape& p, Tensor4<T> x, Tensor4<T> weight,
               const T* bias, int64_t bias_stride, T* out) {
  constexpr int64_t kCo = 4;      // output channels per task
  constexpr int64_t kCols = 256;  // output columns per accumulator tile
  if (p.groups <= 0 || p.c_in % p.groups != 0 || p.c_out % p.groups != 0) {
    return fail(ctx, AOTC_ABI_INVALID_ARGUMENT,
                "convolution: groups %lld must divide input channels %lld and output channels %lld",
                static_cast<long long>(p.groups), static_cast<long long>(p.c_in),
                static_cast<long long>(p.c_out));
  }
  if (p.stride_h <= 0 || p.stride_w <= 0 || p.dil_h <= 0 || p.dil_w <= 0) {
    return fail(ctx, AOTC_ABI_INVALID_ARGUMENT, "%s",
                "convolution: stride and dilation must be > 0");
  }
  if (p.n <= 0 || p.c_out <= 0 || p.h_out <= 0 || p.w_out <= 0) return AOTC_ABI_OK;
  const int64_t cout_g = p.c_out / p.groups;
  const int64_t co_blocks = (cout_g + kCo - 1) / kCo;
  const int64_t units = p.n * p.groups * co_blocks * p.h_out;
  const int64_t work = kCo * p.w_out * std::max<int64_t>(p.c_in / p.groups * p.kh * p.kw, 1);
  const int64_t grain = detail::grain_for(work, int64_t{1} << 16);

  parallel_for(ctx, 0, units, grain, [&](int64_t begin, int64_t end) {
    float acc[kCo][kCols];
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t oh = unit % p.h_out;
      const int64_t cb = (unit / p.h_out) % co_blocks;
      const int64_t g = (unit / p.h_out / co_blocks) % p.groups;
      const int64_t nn = unit / p.h_out / co_blocks / p.groups;
      const int64_t col = cb * kCo;  // first output channel within the group
      const int64_t nco = std::min(kCo, cout_g - col);
      const int64_t co0 = g * cout_g + col;
      for (int64_t ow0 = 0; ow0 < p.w_out; ow0 += kCols) {
        const int64_t cols = std::min(kCols, p.w_out - ow0);
        for (int64_t r = 0; r < nco; ++r) {
          for (int64_t j = 0; j < cols; ++j) acc[r][j] = 0.0f;
        }
        detail::conv_tile<kCo, kCols>(p, x, weight, nn, g, col, nco, oh, ow0, cols, acc);
        for (int64_t r = 0; r < nco; ++r) {
          const float bv = bias ? to_f32(bias[(co0 + r) * bias_stride]) : 0.0f;
          T* orow = out + ((nn * p.c_out + co0 + r) * p.h_out + oh) * p.w_out + ow0;
          for (int64_t j = 0; j < cols; ++j) orow[j] = from_f32<T>(acc[r][j] + bv);
        }
      }
    }
  });
  return AOTC_ABI_OK;
}

// -- pooling ----------------------------------------------------------------------

// Shapes of a 2-D pooling: input [n, c, h, w] (an unbatched input is n = 1),
// output [n, c, h_out, w_out] contiguous.
struct PoolShape {
  int64_t n, c, h, w;
  int64_t h_out, w_out;
  int64_t kh, kw;
  int64_t stride_h, stride_w;
  int64_t pad_h, pad_w;
  int64_t dil_h, dil_w;  // 1 for avg_pool2d
};

namespace detail {
inline int32_t check_pool(const KernelContext& ctx, const char* name, const PoolShape& p) {
  if (p.kh <= 0 || p.kw <= 0 || p.stride_h <= 0 || p.stride_w <= 0 || p.dil_h <= 0 ||
      p.dil_w <= 0 || p.pad_h < 0 || p.pad_w < 0) {
    return fail(ctx, AOTC_ABI_INVALID_ARGUMENT,
                "%s: kernel size, stride and dilation must be > 0 and padding >= 0", name);
  }
  return AOTC_ABI_OK;
}
}  // namespace detail

// Max pooling as eager's CPU kernel: the window is visited row-major, an
// element wins when `v > max || isnan(v)`, the index of the winner (ih*w + iw
// within its plane) goes to |indices| when that is non-null, and a window
// without a winner reports its first in-bounds position.
template <typename T>
int32_t max_pool2d(const KernelContext& ctx, const PoolShape& p, Tensor4<T> x, T* out,
                   int64_t* indices) {
  constexpr int64_t kCols = 256;
  if (int32_t code = detail::check_pool(ctx, "max_pool2d", p)) return code;
  if (p.n <= 0 || p.c <= 0 || p.h_out <= 0 || p.w_out <= 0) return AOTC_ABI_OK;
  const int64_t units = p.n * p.c * p.h_out;
  const int64_t work = p.w_out * p.kh * p.kw;
  parallel_for(ctx, 0, units, detail::grain_for(work), [&](int64_t begin, int64_t end) {
    float best[kCols];
    int64_t where[kCols];
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t oh = unit % p.h_out;
      const int64_t plane_index = unit / p.h_out;  // n * c + c
      const T* plane = x.data + (plane_index / p.c) * x.s[0] + (plane_index % p.c) * x.s[1];
      const int64_t ih0 = oh * p.stride_h - p.pad_h;
      int64_t ih_first = ih0;
      while (ih_first < 0) ih_first += p.dil_h;
      for (int64_t ow0 = 0; ow0 < p.w_out; ow0 += kCols) {
        const int64_t cols = std::min(kCols, p.w_out - ow0);
        for (int64_t j = 0; j < cols; ++j) {
          best[j] = -detail::kInf;
          int64_t iw_first = (ow0 + j) * p.stride_w - p.pad_w;
          while (iw_first < 0) iw_first += p.dil_w;
          where[j] = ih_first * p.w + iw_first;
        }
        for (int64_t ky = 0; ky < p.kh; ++ky) {
          const int64_t ih = ih0 + ky * p.dil_h;
          if (ih < 0 || ih >= p.h) continue;
          const T* xrow = plane + ih * x.s[2];
          for (int64_t kx = 0; kx < p.kw; ++kx) {
            const int64_t offset = kx * p.dil_w - p.pad_w;
            int64_t lo, hi;
            detail::valid_range(p.stride_w, offset, p.w, ow0, ow0 + cols, &lo, &hi);
            if (lo >= hi) continue;
            const int64_t step = p.stride_w * x.s[3];
            const T* src = xrow + (lo * p.stride_w + offset) * x.s[3];
            float* bst = best + (lo - ow0);
            if (indices) {
              int64_t* whr = where + (lo - ow0);
              const int64_t first = ih * p.w + lo * p.stride_w + offset;
              for (int64_t j = 0; j < hi - lo; ++j) {
                const float v = to_f32(src[j * step]);
                const bool take = v > bst[j] || v != v;
                bst[j] = take ? v : bst[j];
                whr[j] = take ? first + j * p.stride_w : whr[j];
              }
            } else {
              for (int64_t j = 0; j < hi - lo; ++j) {
                const float v = to_f32(src[j * step]);
                bst[j] = (v > bst[j] || v != v) ? v : bst[j];
              }
            }
          }
        }
        T* orow = out + unit * p.w_out + ow0;
        for (int64_t j = 0; j < cols; ++j) orow[j] = from_f32<T>(best[j]);
        if (indices) {
          int64_t* irow = indices + unit * p.w_out + ow0;
          for (int64_t j = 0; j < cols; ++j) irow[j] = where[j];
        }
      }
    }
  });
  return AOTC_ABI_OK;
}

// Average pooling as eager's CPU kernel: the window is clipped to the padded
// input, then to the input; the divisor is |divisor_override| when > 0, else
// the padded window size (count_include_pad) or the clipped one; an empty
// window gives 0. Sums are row-major in float32.
template <typename T>
int32_t avg_pool2d(const KernelContext& ctx, const PoolShape& p, bool count_include_pad,
                   int64_t divisor_override, Tensor4<T> x, T* out) {
  constexpr int64_t kCols = 256;
  if (int32_t code = detail::check_pool(ctx, "avg_pool2d", p)) return code;
  if (p.n <= 0 || p.c <= 0 || p.h_out <= 0 || p.w_out <= 0) return AOTC_ABI_OK;
  const int64_t units = p.n * p.c * p.h_out;
  const int64_t work = p.w_out * p.kh * p.kw;
  parallel_for(ctx, 0, units, detail::grain_for(work), [&](int64_t begin, int64_t end) {
    float sum[kCols];
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t oh = unit % p.h_out;
      const int64_t plane_index = unit / p.h_out;
      const T* plane = x.data + (plane_index / p.c) * x.s[0] + (plane_index % p.c) * x.s[1];
      const int64_t hs = oh * p.stride_h - p.pad_h;
      const int64_t he = std::min(hs + p.kh, p.h + p.pad_h);
      const int64_t pool_h = he - hs;
      const int64_t hs_in = std::max<int64_t>(hs, 0);
      const int64_t he_in = std::min(he, p.h);
      for (int64_t ow0 = 0; ow0 < p.w_out; ow0 += kCols) {
        const int64_t cols = std::min(kCols, p.w_out - ow0);
        for (int64_t j = 0; j < cols; ++j) sum[j] = 0.0f;
        for (int64_t ih = hs_in; ih < he_in; ++ih) {
          const T* xrow = plane + ih * x.s[2];
          for (int64_t kx = 0; kx < p.kw; ++kx) {
            // iw = ow*stride - pad + kx, kept when inside [0, w): the padded
            // window end min(ws + kw, w + pad) never cuts an in-bounds column.
            const int64_t offset = kx - p.pad_w;
            int64_t lo, hi;
            detail::valid_range(p.stride_w, offset, p.w, ow0, ow0 + cols, &lo, &hi);
            if (lo >= hi) continue;
            const int64_t step = p.stride_w * x.s[3];
            const T* src = xrow + (lo * p.stride_w + offset) * x.s[3];
            float* s = sum + (lo - ow0);
            for (int64_t j = 0; j < hi - lo; ++j) s[j] += to_f32(src[j * step]);
          }
        }
        T* orow = out + unit * p.w_out + ow0;
        for (int64_t j = 0; j < cols; ++j) {
          const int64_t ws = (ow0 + j) * p.stride_w - p.pad_w;
          const int64_t we = std::min(ws + p.kw, p.w + p.pad_w);
          const int64_t pool_w = we - ws;
          const int64_t ws_in = std::max<int64_t>(ws, 0);
          const int64_t we_in = std::min(we, p.w);
          if (hs_in >= he_in || ws_in >= we_in) {
            orow[j] = from_f32<T>(0.0f);
            continue;
          }
          const int64_t divisor = divisor_override > 0 ? divisor_override
                                  : count_include_pad  ? pool_h * pool_w
                                                       : (he_in - hs_in) * (we_in - ws_in);
          orow[j] = from_f32<T>(sum[j] / static_cast<float>(divisor));
        }
      }
    }
  });
  return AOTC_ABI_OK;
}

namespace detail {
// The windows of adaptive pooling, as eager: output (oh, ow) covers rows
// [floor(oh*h/h_out), ceil((oh+1)*h/h_out)) and the same for columns. Calls
// window(out_index, plane, ih0, ih1, iw0, iw1) for every output element, in
// parallel over (n, c, oh) rows.
template <typename T, typename Window>
void for_each_adaptive_window(const KernelContext& ctx, int64_t n, int64_t c, int64_t h, int64_t w,
                              int64_t h_out, int64_t w_out, const Tensor4<T>& x, Window&& window) {
  if (n <= 0 || c <= 0 || h_out <= 0 || w_out <= 0) return;
  const int64_t units = n * c * h_out;
  const int64_t work = w * ((h + h_out - 1) / h_out + 1);
  parallel_for(ctx, 0, units, grain_for(work), [&](int64_t begin, int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t oh = unit % h_out;
      const int64_t plane_index = unit / h_out;
      const T* plane = x.data + (plane_index / c) * x.s[0] + (plane_index % c) * x.s[1];
      const int64_t ih0 = (oh * h) / h_out;
      const int64_t ih1 = ((oh + 1) * h + h_out - 1) / h_out;
      for (int64_t ow = 0; ow < w_out; ++ow) {
        const int64_t iw0 = (ow * w) / w_out;
        const int64_t iw1 = ((ow + 1) * w + w_out - 1) / w_out;
        window(unit * w_out + ow, plane, ih0, ih1, iw0, iw1);
      }
    }
  });
}
}  // namespace detail

// Adaptive average pooling: each window's mean, as eager (sum row-major in
// float32, then / kh / kw).
template <typename T>
int32_t adaptive_avg_pool2d(const KernelContext& ctx, int64_t n, int64_t c, int64_t h, int64_t w,
                            int64_t h_out, int64_t w_out, Tensor4<T> x, T* out) {
  detail::for_each_adaptive_window(
      ctx, n, c, h, w, h_out, w_out, x,
      [&](int64_t o, const T* plane, int64_t ih0, int64_t ih1, int64_t iw0, int64_t iw1) {
        float sum = 0.0f;
        for (int64_t ih = ih0; ih < ih1; ++ih) {
          const T* xrow = plane + ih * x.s[2];
          for (int64_t iw = iw0; iw < iw1; ++iw) sum += to_f32(xrow[iw * x.s[3]]);
        }
        out[o] = from_f32<T>(sum / static_cast<float>(ih1 - ih0) / static_cast<float>(iw1 - iw0));
      });
  return AOTC_ABI_OK;
}

// Adaptive max pooling over the same windows, as eager's CPU kernel: the
// first maximum wins, a NaN always replaces the running value (so NaN
// propagates); indices are ih * w + iw within the plane.
template <typename T>
int32_t adaptive_max_pool2d(const KernelContext& ctx, int64_t n, int64_t c, int64_t h, int64_t w,
                            int64_t h_out, int64_t w_out, Tensor4<T> x, T* out, int64_t* indices) {
  detail::for_each_adaptive_window(
      ctx, n, c, h, w, h_out, w_out, x,
      [&](int64_t o, const T* plane, int64_t ih0, int64_t ih1, int64_t iw0, int64_t iw1) {
        float best = -std::numeric_limits<float>::infinity();
        int64_t where = ih0 * w + iw0;
        for (int64_t ih = ih0; ih < ih1; ++ih) {
          const T* xrow = plane + ih * x.s[2];
          for (int64_t iw = iw0; iw < iw1; ++iw) {
            const float v = to_f32(xrow[iw * x.s[3]]);
            if (v > best || v != v) {
              best = v;
              where = ih * w + iw;
            }
          }
        }
        out[o] = from_f32<T>(best);
        if (indices) indices[o] = where;
      });
  return AOTC_ABI_OK;
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
