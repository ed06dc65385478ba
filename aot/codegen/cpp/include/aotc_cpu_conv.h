// aotc_cpu_conv.h: 1- to 3-D convolution (grouped, depthwise, transposed)
// for the CPU backend. Convolutions with two or more output channels per
// group run as an implicit GEMM on the GEMM micro-kernel ([Note:
// implicit-GEMM convolution]); depthwise and transposed ones as a direct
// convolution ([Note: depthwise rows]).
// Conventions are those of aotc_cpu_kernels.h, which includes
// this header at its end: include that one (it orders the families).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

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

// Output rows [begin, end) of a direct convolution (see conv): a row is (n,
// group, block of kCo output channels, od, oh).
template <bool kDeep, int64_t kCo, int64_t kCols, typename T, typename Epilogue>
void conv_rows(const ConvNdShape& p, const Tensor5<T>& x, const Tensor5<T>& weight, const T* bias,
               int64_t bias_stride, T* out, int64_t begin, int64_t end, const Epilogue& epi) {
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
        const int64_t out_row = (nn * p.c_out + co0 + r) * rows + row;
        T* orow = out + out_row * p.out[2] + ow0;
        for (int64_t j = 0; j < cols; ++j) orow[j] = from_f32<T>(acc[r][j] + bv);
        epi(out_row, ow0, ow0 + cols);
      }
    }
  }
}

// [Note: depthwise rows] With one output channel per group (depthwise)
// nothing is reused across channels, so a GEMM does not pay. The direct
// rows (conv_rows) add each tap's product to accumulators in memory; with
// AVX2/FMA a depthwise row keeps them in registers instead: 32 (then 8)
// output columns at a time sum every (ci, kz, ky, kx) in order with fused
// multiply-adds, over the columns whose taps all fall inside the input (the
// interior; its last 8 columns may overlap the previous strip and are
// stored twice, with the same values). The border columns take each tap's
// bounds check. For input rows read with step 1 or 2 (stride 1 or 2 over a
// unit-stride row) and an interior of at least 8 columns: 1.2-1.8x faster
// than conv_rows (one thread, 3x3 and 5x5 kernels, 14x14 to 112x112).
#if defined(__AVX2__) && defined(__FMA__)
// Eight floats from src[0], src[kStep], ... src[7 * kStep]; kStep 2 also
// reads src[15].
template <int64_t kStep>
inline __m256 dw_load8(const float* src) {
  if (kStep == 1) return _mm256_loadu_ps(src);
  const __m256 even = _mm256_shuffle_ps(_mm256_loadu_ps(src), _mm256_loadu_ps(src + 8), 0x88);
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xd8));
}
template <int64_t kStep>
inline __m256 dw_load8(const bf16* src) {
  if (kStep == 1) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  // The even halves are the low halves of the 32-bit lanes.
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
  return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
}

// The interior [*a, *b) of a depthwise row read with |step|: the columns
// whose every kx tap is inside the input, with one element to spare for
// step 2 (dw_load8 reads one past).
inline void conv_dw_interior(const ConvNdShape& p, int64_t step, int64_t* a, int64_t* b) {
  *a = 0;
  *b = p.out[2];
  for (int64_t kx = 0; kx < p.kernel[2]; ++kx) {
    int64_t lo, hi;
    valid_range(p.stride[2], kx * p.dil[2] - p.pad[2], p.in[2] - (step - 1), 0, p.out[2], &lo, &hi);
    *a = std::max(*a, lo);
    *b = std::min(*b, hi);
  }
  *b = std::max(*a, *b);
}

// Output row (od, oh) of channel co (group co) of image nn into |orow|, with
// interior [a, b) (b - a >= 8).
template <int64_t kStep, typename T>
void conv_depthwise_row(const ConvNdShape& p, const Tensor5<T>& x, const Tensor5<T>& weight,
                        int64_t nn, int64_t co, int64_t od, int64_t oh, int64_t a, int64_t b,
                        float bias, T* orow) {
  const int64_t cin_g = p.c_in / p.groups;
  const T* xg = x.data + nn * x.s[0] + co * cin_g * x.s[1];
  const T* wg = weight.data + co * weight.s[0];
  // Calls tap(kx, weight, input row) for every tap in order whose depth and
  // row are inside the input.
  auto for_taps = [&](auto&& tap) {
    for (int64_t ci = 0; ci < cin_g; ++ci) {
      for (int64_t kz = 0; kz < p.kernel[0]; ++kz) {
        const int64_t id = conv_input_pos(p, 0, od, kz);
        if (id < 0) continue;
        for (int64_t ky = 0; ky < p.kernel[1]; ++ky) {
          const int64_t ih = conv_input_pos(p, 1, oh, ky);
          if (ih < 0) continue;
          const T* xrow = xg + ci * x.s[1] + id * x.s[2] + ih * x.s[3];
          const T* wrow = wg + ci * weight.s[1] + kz * weight.s[2] + ky * weight.s[3];
          for (int64_t kx = 0; kx < p.kernel[2]; ++kx) {
            tap(kx, to_f32(wrow[kx * weight.s[4]]), xrow);
          }
        }
      }
    }
  };
  // Border column ow, each tap checked.
  auto border = [&](int64_t ow) {
    float sum = 0.0f;
    for_taps([&](int64_t kx, float wv, const T* xrow) {
      const int64_t iw = conv_input_pos(p, 2, ow, kx);
      if (iw >= 0) sum = fused_madd(wv, to_f32(xrow[iw * x.s[4]]), sum);
    });
    orow[ow] = from_f32<T>(sum + bias);
  };
  // Interior columns [ow, ow + kVecs * 8), sums in registers.
  auto strip = [&](int64_t ow, auto vecs) {
    constexpr int kVecs = decltype(vecs)::value;
    __m256 v[kVecs];
    for (int i = 0; i < kVecs; ++i) v[i] = _mm256_setzero_ps();
    for_taps([&](int64_t kx, float wv, const T* xrow) {
      const T* src = xrow + (ow * p.stride[2] + kx * p.dil[2] - p.pad[2]) * x.s[4];
      const __m256 w = _mm256_set1_ps(wv);
#pragma GCC unroll 4
      for (int i = 0; i < kVecs; ++i) {
        v[i] = _mm256_fmadd_ps(w, dw_load8<kStep>(src + i * 8 * kStep), v[i]);
      }
    });
    float acc[kVecs * 8];
    for (int i = 0; i < kVecs; ++i) _mm256_storeu_ps(acc + i * 8, v[i]);
    for (int64_t j = 0; j < kVecs * 8; ++j) orow[ow + j] = from_f32<T>(acc[j] + bias);
  };
  for (int64_t ow = 0; ow < a; ++ow) border(ow);
  int64_t ow = a;
  for (; ow + 32 <= b; ow += 32) strip(ow, std::integral_constant<int, 4>{});
  for (; ow + 8 <= b; ow += 8) strip(ow, std::integral_constant<int, 1>{});
  if (ow < b) strip(b - 8, std::integral_constant<int, 1>{});
  for (ow = b; ow < p.out[2]; ++ow) border(ow);
}

// Output rows [begin, end) of a depthwise convolution: a row is (n, channel,
// od, oh).
template <int64_t kStep, typename T, typename Epilogue>
void conv_depthwise_rows(const ConvNdShape& p, const Tensor5<T>& x, const Tensor5<T>& weight,
                         const T* bias, int64_t bias_stride, T* out, int64_t begin, int64_t end,
                         const Epilogue& epi) {
  int64_t a, b;
  conv_dw_interior(p, kStep, &a, &b);
  const int64_t rows = p.out[0] * p.out[1];
  for (int64_t unit = begin; unit < end; ++unit) {
    const int64_t row = unit % rows, co = unit / rows % p.c_out, nn = unit / rows / p.c_out;
    const float bv = bias ? to_f32(bias[co * bias_stride]) : 0.0f;
    conv_depthwise_row<kStep>(p, x, weight, nn, co, row / p.out[1], row % p.out[1], a, b, bv,
                              out + unit * p.out[2]);
    epi(unit, 0, p.out[2]);
  }
}
#endif  // __AVX2__ && __FMA__

// [Note: implicit-GEMM convolution] Per image and group a convolution is the
// GEMM out[co, pixel] = sum_k W[co, k] * X_col[k, pixel], with k = (ci, kz,
// ky, kx) in that order (eager's im2col order) and pixel = (od, oh, ow)
// flattened, run on gemm's micro-kernel ([Note: GEMM micro-kernel]):
// - A is the weight, packed once per call (conv_pack_weight) into float
//   panels of kGemmMR output channels, k-major, zero rows past the group's
//   channels, K cut into blocks of equal depth <= kGemmKC.
// - B, the im2col matrix, is never built whole. A task (image, group, block
//   of kConvNC pixels, block of <= kConvMaxPanels channel panels) gathers
//   one K block of it at a time (conv_gather) into a kc x kConvNC float
//   buffer (L2-resident; zeros for padding and past the last pixel): per k,
//   its pixels split into runs at output rows, each a (strided) input row
//   segment, so the reads stream. Every 16-column panel of the buffer then
//   meets every channel panel of the block, into a float tile [channels]
//   [kConvNC] that the K blocks accumulate. A float 1x1 convolution with
//   stride 1, no padding and dense pixels is a plain GEMM and reads B in
//   place instead (conv_b_in_place).
// - The tile is stored with the bias, one output row segment (and epilogue
//   call) at a time.
// A gathered element feeds one multiply-add per channel of the block, and a
// 1x1 copy is cheap next to that from two channels on (conv_uses_gemm);
// depthwise and transposed convolutions take the direct path. Each output's
// sum runs over k in order, as gemm's, so results do not depend on the
// blocking or the thread count; padding enters as zeros, so a NaN weight
// reaches padded outputs, as with eager's im2col.
constexpr int64_t kConvNC = 8 * kGemmNR;  // pixels per task
constexpr int64_t kConvMaxPanels = 24;    // channel panels per task (144 channels)
constexpr int64_t kConvLdb = kConvNC;     // row stride of the gathered B block

// Whether a convolution takes the implicit GEMM: not transposed, with at
// least two output channels per group and a nonzero depth. Measured with one
// thread at 32x32 to 224x224 against conv_rows: 1.1-5x faster from 2
// channels and any depth (even 1x1 with 2 input channels); with 1 channel
// per group (depthwise) 1.4-1.9x slower.
inline bool conv_uses_gemm(const ConvNdShape& p) {
  const int64_t taps = p.kernel[0] * p.kernel[1] * p.kernel[2];
  return !p.transposed && p.c_out / p.groups >= 2 && p.c_in / p.groups * taps >= 1;
}

// The implicit GEMM's sizes (see the note).
struct ConvGemm {
  int64_t cin_g, cout_g, K;    // K = cin_g * kernel taps
  int64_t panels;              // kGemmMR-channel panels per group
  int64_t kc;                  // depth of each K block (the last may be less)
  int64_t block_panels;        // channel panels per task
  int64_t co_blocks;           // channel blocks per group
  int64_t pixels, pix_blocks;  // output pixels per image, blocks of kConvNC
};

inline ConvGemm conv_gemm_geometry(const ConvNdShape& p) {
  ConvGemm gm;
  gm.cin_g = p.c_in / p.groups;
  gm.cout_g = p.c_out / p.groups;
  gm.K = gm.cin_g * p.kernel[0] * p.kernel[1] * p.kernel[2];
  gm.panels = (gm.cout_g + kGemmMR - 1) / kGemmMR;
  const int64_t k_blocks = (gm.K + kGemmKC - 1) / kGemmKC;
  gm.kc = (gm.K + k_blocks - 1) / k_blocks;
  gm.co_blocks = (gm.panels + kConvMaxPanels - 1) / kConvMaxPanels;
  gm.block_panels = (gm.panels + gm.co_blocks - 1) / gm.co_blocks;
  gm.pixels = p.out[0] * p.out[1] * p.out[2];
  gm.pix_blocks = (gm.pixels + kConvNC - 1) / kConvNC;
  return gm;
}

// A depth index k as its (input channel, kernel tap), stepped in k order.
struct ConvTap {
  int64_t ci, kz, ky, kx;
  ConvTap(const ConvNdShape& p, int64_t k) {
    kx = k % p.kernel[2];
    ky = k / p.kernel[2] % p.kernel[1];
    kz = k / p.kernel[2] / p.kernel[1] % p.kernel[0];
    ci = k / p.kernel[2] / p.kernel[1] / p.kernel[0];
  }
  void next(const ConvNdShape& p) {
    if (++kx < p.kernel[2]) return;
    kx = 0;
    if (++ky < p.kernel[1]) return;
    ky = 0;
    if (++kz < p.kernel[0]) return;
    kz = 0;
    ++ci;
  }
};

// Columns [j0, j0 + len) of a B block: pixels of output row |row| (= od*H +
// oh) from column ow; d0, h0 are the input depth and row that tap 0 reads.
struct ConvRun {
  int64_t j0, len, ow, row, d0, h0;
};

// Splits pixels [pix, pix + count) of an image into runs; returns how many.
inline int64_t conv_runs(const ConvNdShape& p, int64_t pix, int64_t count, ConvRun* runs) {
  int64_t ow = pix % p.out[2];
  int64_t row = pix / p.out[2];
  int64_t oh = row % p.out[1], od = row / p.out[1];
  int64_t n = 0;
  for (int64_t j = 0; j < count; ++row) {
    const int64_t len = std::min(count - j, p.out[2] - ow);
    runs[n++] = ConvRun{j, len, ow, row, od * p.stride[0] - p.pad[0], oh * p.stride[1] - p.pad[1]};
    j += len;
    ow = 0;
    if (++oh == p.out[1]) {
      oh = 0;
      ++od;
    }
  }
  return n;
}

// Packs the weight [c_out, c_in/groups, k...] for units [begin, end) of
// (group, panel): group g's block at depth k0 (kcb deep) holds panel q at
// wpack + g*panels*MR*K + k0*panels*MR + q*MR*kcb, element (k, r) at k*MR + r.
template <typename T>
void conv_pack_weight(const ConvNdShape& p, const ConvGemm& gm, const Tensor5<T>& w, float* wpack,
                      int64_t begin, int64_t end) {
  for (int64_t unit = begin; unit < end; ++unit) {
    const int64_t g = unit / gm.panels, q = unit % gm.panels;
    float* group = wpack + g * gm.panels * kGemmMR * gm.K;
    for (int64_t k0 = 0; k0 < gm.K; k0 += gm.kc) {
      const int64_t kcb = std::min(gm.kc, gm.K - k0);
      float* dst = group + k0 * gm.panels * kGemmMR + q * kGemmMR * kcb;
      // k outer: six sequential reads and contiguous writes per k.
      const int64_t live = std::min(kGemmMR, gm.cout_g - q * kGemmMR);
      const T* src = w.data + (g * gm.cout_g + q * kGemmMR) * w.s[0];
      ConvTap tap(p, k0);
      for (int64_t k = 0; k < kcb; ++k, tap.next(p)) {
        const T* at = src + tap.ci * w.s[1] + tap.kz * w.s[2] + tap.ky * w.s[3] + tap.kx * w.s[4];
        float* d = dst + k * kGemmMR;
        for (int64_t r = 0; r < live; ++r) d[r] = to_f32(at[r * w.s[0]]);
        for (int64_t r = live; r < kGemmMR; ++r) d[r] = 0.0f;
      }
    }
  }
}

// B block for depths [k0, k0 + kc) (|tap| is k0's) and the pixels of
// |runs|: dst[k * ldb + j] for j < count, then zeros up to |cols|; zero for
// padding. |xg| is the group's first input channel of the image;
// wvalid[2*kx], wvalid[2*kx + 1] bound the output columns whose tap-kx input
// column is inside the input.
template <typename T>
void conv_gather(const ConvNdShape& p, const T* xg, const int64_t* xs, ConvTap tap, int64_t kc,
                 const ConvRun* runs, int64_t nruns, int64_t count, int64_t cols,
                 const int64_t* wvalid, float* dst, int64_t ldb) {
  const int64_t step = p.stride[2] * xs[4];
  for (int64_t k = 0; k < kc; ++k, tap.next(p)) {
    float* row = dst + k * ldb;
    const T* plane = xg + tap.ci * xs[1];
    const int64_t dz = tap.kz * p.dil[0], dy = tap.ky * p.dil[1];
    const int64_t wlo = wvalid[2 * tap.kx], whi = wvalid[2 * tap.kx + 1];
    const int64_t shift = tap.kx * p.dil[2] - p.pad[2];  // iw = ow*stride + shift
    for (int64_t r = 0; r < nruns; ++r) {
      const ConvRun& run = runs[r];
      float* d = row + run.j0;
      const int64_t id = run.d0 + dz, ih = run.h0 + dy;
      int64_t lo = 0, hi = 0;  // columns of the run inside the input
      if (id >= 0 && id < p.in[0] && ih >= 0 && ih < p.in[1]) {
        lo = std::min(std::max<int64_t>(wlo - run.ow, 0), run.len);
        hi = std::min(std::max<int64_t>(whi - run.ow, lo), run.len);
      }
      for (int64_t j = 0; j < lo; ++j) d[j] = 0.0f;
      if (lo < hi) {
        const T* src =
            plane + id * xs[2] + ih * xs[3] + ((run.ow + lo) * p.stride[2] + shift) * xs[4];
        if (step == 1) {
          for (int64_t j = lo; j < hi; ++j) d[j] = to_f32(src[j - lo]);
        } else if (step == 2) {  // stride 2: a constant step that g++ vectorises
          for (int64_t j = lo; j < hi; ++j) d[j] = to_f32(src[(j - lo) * 2]);
        } else {
          for (int64_t j = lo; j < hi; ++j) d[j] = to_f32(src[(j - lo) * step]);
        }
      }
      for (int64_t j = hi; j < run.len; ++j) d[j] = 0.0f;
    }
    for (int64_t j = count; j < cols; ++j) row[j] = 0.0f;
  }
}

// The input as the B operand itself, or null: a float 1x1 convolution with
// stride 1, no padding and contiguous pixels is a plain GEMM whose B rows
// (input channels) are read in place, as gemm reads a weight.
inline const float* conv_b_in_place(const ConvNdShape& p, const Tensor5<float>& x) {
  for (int d = 0; d < 3; ++d) {
    if (p.kernel[d] != 1 || p.stride[d] != 1 || p.pad[d] != 0) return nullptr;
  }
  const bool dense = x.s[4] == 1 && (p.in[1] == 1 || x.s[3] == p.in[2]) &&
                     (p.in[0] == 1 || x.s[2] == p.in[1] * p.in[2]);
  return dense ? x.data : nullptr;
}
inline const float* conv_b_in_place(const ConvNdShape&, const Tensor5<bf16>&) { return nullptr; }

// Tasks [begin, end) of the implicit GEMM; |scratch| holds the tile
// (block_panels*MR x kConvNC floats) and the B block (kGemmKC x kConvLdb).
template <typename T, typename Epilogue>
void conv_gemm_tasks(const ConvNdShape& p, const ConvGemm& gm, const Tensor5<T>& x,
                     const float* wpack, const int64_t* wvalid, const T* bias, int64_t bias_stride,
                     T* out, float* scratch, int64_t begin, int64_t end, const Epilogue& epi) {
  const float* xf = conv_b_in_place(p, x);
  float* tile = scratch;
  float* block = scratch + gm.block_panels * kGemmMR * kConvNC;
  ConvRun runs[kConvNC];
  const int64_t rows = p.out[0] * p.out[1];  // output rows per channel
  for (int64_t unit = begin; unit < end; ++unit) {
    const int64_t cb = unit % gm.co_blocks;
    const int64_t pb = unit / gm.co_blocks % gm.pix_blocks;
    const int64_t g = unit / gm.co_blocks / gm.pix_blocks % p.groups;
    const int64_t nn = unit / gm.co_blocks / gm.pix_blocks / p.groups;
    const int64_t q0 = cb * gm.block_panels;
    const int64_t nq = std::min(gm.block_panels, gm.panels - q0);
    const int64_t pix0 = pb * kConvNC;
    const int64_t npix = std::min(kConvNC, gm.pixels - pix0);
    const int64_t cols = (npix + kGemmNR - 1) / kGemmNR * kGemmNR;
    const int64_t nruns = conv_runs(p, pix0, npix, runs);
    const T* xg = x.data + nn * x.s[0] + g * gm.cin_g * x.s[1];
    const float* wg = wpack + g * gm.panels * kGemmMR * gm.K;
    for (int64_t k0 = 0; k0 < gm.K; k0 += gm.kc) {
      const int64_t kc = std::min(gm.kc, gm.K - k0);
      const float* b = block;
      int64_t ldb = kConvLdb;
      if (xf) {  // B in place; the edge panel as a zero-padded copy
        b = xf + (nn * x.s[0] + g * gm.cin_g * x.s[1]) + k0 * x.s[1] + pix0;
        ldb = x.s[1];
        const int64_t full = npix / kGemmNR * kGemmNR;
        for (int64_t k = 0; k < kc && full < npix; ++k) {
          for (int64_t j = 0; j < kGemmNR; ++j) {
            block[k * kGemmNR + j] = full + j < npix ? b[k * ldb + full + j] : 0.0f;
          }
        }
      } else {
        conv_gather(p, xg, x.s, ConvTap(p, k0), kc, runs, nruns, npix, cols, wvalid, block,
                    kConvLdb);
      }
      const float* wb = wg + k0 * gm.panels * kGemmMR + q0 * kGemmMR * kc;
      for (int64_t jp = 0; jp < cols; jp += kGemmNR) {
        if (jp + 2 * kGemmNR <= cols && !(xf && jp + 2 * kGemmNR > npix)) {  // two panels
          for (int64_t q = 0; q < nq; ++q) {
            gemm_micro2(kc, wb + q * kGemmMR * kc, b + jp, ldb, tile + q * kGemmMR * kConvNC + jp,
                        kConvNC, k0 > 0);
          }
          jp += kGemmNR;
          continue;
        }
        const bool edge = xf && jp + kGemmNR > npix;
        for (int64_t q = 0; q < nq; ++q) {
          gemm_micro(kc, wb + q * kGemmMR * kc, edge ? block : b + jp, edge ? kGemmNR : ldb,
                     tile + q * kGemmMR * kConvNC + jp, kConvNC, k0 > 0);
        }
      }
    }
    // Store channel by channel, one epilogue call per output row segment.
    const int64_t nco = std::min(nq * kGemmMR, gm.cout_g - q0 * kGemmMR);
    for (int64_t r = 0; r < nco; ++r) {
      const int64_t co = g * gm.cout_g + q0 * kGemmMR + r;
      const float bv = bias ? to_f32(bias[co * bias_stride]) : 0.0f;
      const float* t = tile + r * kConvNC;
      T* orow = out + (nn * p.c_out + co) * gm.pixels + pix0;
      for (int64_t j = 0; j < npix; ++j) orow[j] = from_f32<T>(t[j] + bv);
      for (int64_t i = 0; i < nruns; ++i) {
        epi((nn * p.c_out + co) * rows + runs[i].row, runs[i].ow, runs[i].ow + runs[i].len);
      }
    }
  }
}

// The implicit-GEMM convolution ([Note: implicit-GEMM convolution]).
template <typename T, typename Epilogue>
int32_t conv_gemm(const KernelContext& ctx, const ConvNdShape& p, const Tensor5<T>& x,
                  const Tensor5<T>& weight, const T* bias, int64_t bias_stride, T* out,
                  const Epilogue& epi) {
  const ConvGemm gm = conv_gemm_geometry(p);
  const int64_t packed = p.groups * gm.panels * kGemmMR * gm.K;
  Scratch wpack;
  std::unique_ptr<int64_t[]> wvalid(new (std::nothrow) int64_t[2 * p.kernel[2]]);
  if (!wvalid || !wpack.allocate(packed)) {
    return fail(ctx, AOTC_ABI_RESOURCE_EXHAUSTED,
                "convolution: cannot allocate %lld bytes to pack the weight",
                static_cast<long long>(packed * 4));
  }
  for (int64_t kx = 0; kx < p.kernel[2]; ++kx) {
    valid_range(p.stride[2], kx * p.dil[2] - p.pad[2], p.in[2], 0, p.out[2], &wvalid[2 * kx],
                &wvalid[2 * kx + 1]);
  }
  float* wp = wpack.data();
  parallel_for(
      ctx, 0, p.groups * gm.panels, grain_for(kGemmMR * gm.K),
      [&](int64_t begin, int64_t end) { conv_pack_weight(p, gm, weight, wp, begin, end); });
  const int64_t units = p.n * p.groups * gm.pix_blocks * gm.co_blocks;
  const int64_t tile_size = gm.block_panels * kGemmMR * kConvNC;
  const int64_t scratch_size = tile_size + kGemmKC * kConvLdb;
  ChunkError alloc_error;
  parallel_for(ctx, 0, units, grain_for(tile_size * gm.K, int64_t{1} << 18),
               [&](int64_t begin, int64_t end) {
                 Scratch tile;
                 if (!tile.allocate(scratch_size)) {
                   alloc_error.set();
                   return;
                 }
                 conv_gemm_tasks(p, gm, x, wp, wvalid.get(), bias, bias_stride, out, tile.data(),
                                 begin, end, epi);
               });
  if (alloc_error.failed()) {
    return fail(ctx, AOTC_ABI_RESOURCE_EXHAUSTED,
                "convolution: cannot allocate %lld bytes of scratch",
                static_cast<long long>(scratch_size * 4));
  }
  return AOTC_ABI_OK;
}

}  // namespace detail

// Convolution (any of conv1d/2d/3d, grouped, transposed): out [n, c_out,
// out...] contiguous = conv(x, weight) + bias (|bias| optional, element co at
// bias[co * bias_stride]). Most convolutions run as an implicit GEMM
// ([Note: implicit-GEMM convolution]), depthwise ones by rows with sums in
// registers where they can ([Note: depthwise rows]). The rest (transposed,
// depthwise otherwise) run directly: each task computes one output row (n,
// block of 4 output channels, od, oh) as rows of float accumulators, adding
// one weight times a strided input row per (c_in, kz, ky, kx); the inner
// loop runs over output columns (unit stride when the width stride is 1).
// Transposed convolution gathers the same way: output column ow takes input
// column iw where ow = iw*stride - pad + kx*dil. The rows are instantiated
// with and without the depth loop, as pooling's ([Note: N-d pooling]).
// |epi| runs on each stored output row segment ([Note: extern epilogues];
// row = ((n*c_out + co)*D + od)*H + oh, columns in w).
template <typename T, typename Epilogue = NoEpilogue>
int32_t conv(const KernelContext& ctx, const ConvNdShape& p, Tensor5<T> x, Tensor5<T> weight,
             const T* bias, int64_t bias_stride, T* out, const Epilogue& epi = Epilogue{}) {
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
  if (detail::conv_uses_gemm(p)) {
    return detail::conv_gemm(ctx, p, x, weight, bias, bias_stride, out, epi);
  }
  const int64_t taps = p.c_in / p.groups * p.kernel[0] * p.kernel[1] * p.kernel[2];
#if defined(__AVX2__) && defined(__FMA__)
  // Depthwise with registers for sums ([Note: depthwise rows]).
  const int64_t step = p.stride[2] * x.s[4];
  int64_t a = 0, b = 0;
  if (!p.transposed && p.c_out == p.groups && (step == 1 || step == 2)) {
    detail::conv_dw_interior(p, step, &a, &b);
  }
  if (b - a >= 8) {
    const int64_t grain = detail::grain_for(p.out[2] * std::max<int64_t>(taps, 1));
    parallel_for(
        ctx, 0, p.n * p.c_out * p.out[0] * p.out[1], grain, [&](int64_t begin, int64_t end) {
          if (step == 1) {
            detail::conv_depthwise_rows<1>(p, x, weight, bias, bias_stride, out, begin, end, epi);
          } else {
            detail::conv_depthwise_rows<2>(p, x, weight, bias, bias_stride, out, begin, end, epi);
          }
        });
    return AOTC_ABI_OK;
  }
#endif
  const int64_t co_blocks = (p.c_out / p.groups + kCo - 1) / kCo;
  const int64_t units = p.n * p.groups * co_blocks * p.out[0] * p.out[1];
  const int64_t grain =
      detail::grain_for(kCo * p.out[2] * std::max<int64_t>(taps, 1), int64_t{1} << 16);
  const bool deep = p.in[0] != 1 || p.out[0] != 1 || p.kernel[0] != 1 || p.pad[0] != 0;
  parallel_for(ctx, 0, units, grain, [&](int64_t begin, int64_t end) {
    if (deep) {
      detail::conv_rows<true, kCo, kCols>(p, x, weight, bias, bias_stride, out, begin, end, epi);
    } else {
      detail::conv_rows<false, kCo, kCols>(p, x, weight, bias, bias_stride, out, begin, end, epi);
    }
  });
  return AOTC_ABI_OK;
}

// conv on 4-D operands: depth 1.
template <typename T, typename Epilogue = NoEpilogue>
int32_t conv2d(const KernelContext& ctx, const ConvShape& p, Tensor4<T> x, Tensor4<T> weight,
               const T* bias, int64_t bias_stride, T* out, const Epilogue& epi = Epilogue{}) {
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
  return conv<T, Epilogue>(ctx, nd, with_depth(x), with_depth(weight), bias, bias_stride, out, epi);
}

}  // namespace kernels
}  // namespace aotc_rt
