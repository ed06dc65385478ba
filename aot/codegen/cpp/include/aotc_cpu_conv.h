// aotc_cpu_conv.h: 1- to 3-D convolution (grouped, depthwise, transposed)
// for the CPU backend. Conventions are those of aotc_cpu_kernels.h, which
// includes this header at its end: include either.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "aotc_cpu_gemm.h"
#include "aotc_cpu_kernels.h"

namespace aotc_rt {
namespace kernels {

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

}  // namespace kernels
}  // namespace aotc_rt
