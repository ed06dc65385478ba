// aotc_cpu_pool.h: pooling extern kernels for the CPU backend: max, average,
// adaptive average and adaptive max pooling over up to three spatial dims,
// and the gradient of max pooling. Conventions (element types, strides,
// numerics, return codes) are those of aotc_cpu_kernels.h, which includes
// this header at its end: include that one (it orders the families).
//
// [Note: N-d pooling] One kernel per op serves 1-, 2- and 3-D pooling: shapes
// are (depth, height, width) and operands 5-D, 2-D pooling being depth 1
// (kernel 1, stride 1, padding 0, dilation 1, a size-1 operand dim) and 1-D
// pooling also height 1. A task is one output row (n, c, od, oh): loops over
// the window's depth and height around an inner loop over a tile of output
// columns. The row functions are instantiated twice, with and without the
// depth loops (kDeep): a depth loop of one trip cost 5-20% on small 2-D
// windows (2x2 pooling, adaptive windows of a few elements).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "aotc_cpu.h"
#include "aotc_cpu_kernels.h"

namespace aotc_rt {
namespace kernels {

// -- pooling ----------------------------------------------------------------------

// Shapes of a pooling over three spatial dims (depth, height, width): input
// [n, c, in...] (an unbatched input is n = 1), output [n, c, out...]
// contiguous. 2-D pooling is depth 1 (kernel 1, stride 1, padding 0,
// dilation 1); average pooling has dilation 1, adaptive pooling uses only
// n, c, in and out.
struct PoolNdShape {
  int64_t n, c;
  Dims3 in, out, kernel, stride, pad, dil;
};

// The 2-D shape, for the 2-D entry points' 4-D operands.
struct PoolShape {
  int64_t n, c, h, w;
  int64_t h_out, w_out;
  int64_t kh, kw;
  int64_t stride_h, stride_w;
  int64_t pad_h, pad_w;
  int64_t dil_h, dil_w;  // 1 for avg_pool2d
};

inline PoolNdShape pool_nd(const PoolShape& p) {
  return PoolNdShape{p.n,
                     p.c,
                     {1, p.h, p.w},
                     {1, p.h_out, p.w_out},
                     {1, p.kh, p.kw},
                     {1, p.stride_h, p.stride_w},
                     {0, p.pad_h, p.pad_w},
                     {1, p.dil_h, p.dil_w}};
}

namespace detail {

inline int32_t check_pool(const KernelContext& ctx, const char* name, const PoolNdShape& p) {
  for (int d = 0; d < 3; ++d) {
    if (p.kernel[d] <= 0 || p.stride[d] <= 0 || p.dil[d] <= 0 || p.pad[d] < 0) {
      return fail(ctx, AOTC_ABI_INVALID_ARGUMENT,
                  "%s: kernel size, stride and dilation must be > 0 and padding >= 0", name);
    }
  }
  return AOTC_ABI_OK;
}

// Whether the depth dim is more than 2-D pooling's single position.
inline bool pool_is_deep(const PoolNdShape& p) {
  return p.in[0] != 1 || p.out[0] != 1 || p.kernel[0] != 1 || p.pad[0] != 0;
}

// Output rows (n, c, od, oh): the parallel range of every pooling kernel.
inline int64_t pool_rows(const PoolNdShape& p) {
  return p.n <= 0 || p.c <= 0 || any_empty(p.out) ? 0 : p.n * p.c * p.out[0] * p.out[1];
}

// The output rows of a pooling in output order, walked from row |first| by
// counting: short rows (2x2 windows) would spend about as much on dividing
// the row number as on the window. |plane| is the input's (n, c) plane.
template <typename T>
class PoolRow {
 public:
  PoolRow(const PoolNdShape& p, const Tensor5<T>& x, int64_t first)
      : unit(first), od(first / p.out[1] % p.out[0]), oh(first % p.out[1]), p_(p), x_(x) {
    plane_index_ = first / (p.out[0] * p.out[1]);
    locate();
  }
  void next() {
    ++unit;
    if (++oh < p_.out[1]) return;
    oh = 0;
    if (++od < p_.out[0]) return;
    od = 0;
    ++plane_index_;
    locate();
  }

  int64_t unit, od, oh;
  const T* plane = nullptr;

 private:
  void locate() {
    plane = x_.data + (plane_index_ / p_.c) * x_.s[0] + (plane_index_ % p_.c) * x_.s[1];
  }
  const PoolNdShape& p_;
  const Tensor5<T>& x_;
  int64_t plane_index_ = 0;  // n * c + c
};

// The first position >= 0 of a dilated window starting at |start| (eager's
// index for a window without a winner).
inline int64_t first_inside(int64_t start, int64_t dil) {
  while (start < 0) start += dil;
  return start;
}

// Max pooling of output rows [begin, end) (see max_pool).
template <bool kDeep, typename T>
void max_pool_rows(const PoolNdShape& p, const Tensor5<T>& x, T* out, int64_t* indices,
                   int64_t begin, int64_t end) {
  constexpr int64_t kCols = 256;
  float best[kCols];
  int64_t where[kCols];
  const int64_t sw = p.stride[2];
  const int64_t kd = kDeep ? p.kernel[0] : 1;
  for (PoolRow<T> r(p, x, begin); r.unit < end; r.next()) {
    const int64_t id0 = kDeep ? r.od * p.stride[0] - p.pad[0] : 0;
    const int64_t ih0 = r.oh * p.stride[1] - p.pad[1];
    const int64_t first_row =
        (first_inside(id0, p.dil[0]) * p.in[1] + first_inside(ih0, p.dil[1])) * p.in[2];
    for (int64_t ow0 = 0; ow0 < p.out[2]; ow0 += kCols) {
      const int64_t cols = std::min(kCols, p.out[2] - ow0);
      for (int64_t j = 0; j < cols; ++j) {
        best[j] = -kInf;
        where[j] = first_row + first_inside((ow0 + j) * sw - p.pad[2], p.dil[2]);
      }
      for (int64_t kz = 0; kz < kd; ++kz) {
        const int64_t id = id0 + kz * p.dil[0];
        if (kDeep && (id < 0 || id >= p.in[0])) continue;
        for (int64_t ky = 0; ky < p.kernel[1]; ++ky) {
          const int64_t ih = ih0 + ky * p.dil[1];
          if (ih < 0 || ih >= p.in[1]) continue;
          const T* xrow = r.plane + id * x.s[2] + ih * x.s[3];
          for (int64_t kx = 0; kx < p.kernel[2]; ++kx) {
            const int64_t offset = kx * p.dil[2] - p.pad[2];
            int64_t lo, hi;
            valid_range(sw, offset, p.in[2], ow0, ow0 + cols, &lo, &hi);
            if (lo >= hi) continue;
            const int64_t step = sw * x.s[4];
            const T* src = xrow + (lo * sw + offset) * x.s[4];
            float* bst = best + (lo - ow0);
            if (indices) {
              int64_t* whr = where + (lo - ow0);
              const int64_t first = (id * p.in[1] + ih) * p.in[2] + lo * sw + offset;
              for (int64_t j = 0; j < hi - lo; ++j) {
                const float v = to_f32(src[j * step]);
                const bool take = v > bst[j] || v != v;
                bst[j] = take ? v : bst[j];
                whr[j] = take ? first + j * sw : whr[j];
              }
            } else {
              for (int64_t j = 0; j < hi - lo; ++j) {
                const float v = to_f32(src[j * step]);
                bst[j] = (v > bst[j] || v != v) ? v : bst[j];
              }
            }
          }
        }
      }
      T* orow = out + r.unit * p.out[2] + ow0;
      for (int64_t j = 0; j < cols; ++j) orow[j] = from_f32<T>(best[j]);
      if (indices) {
        int64_t* irow = indices + r.unit * p.out[2] + ow0;
        for (int64_t j = 0; j < cols; ++j) irow[j] = where[j];
      }
    }
  }
}

// An average pooling window along one dim: its length clipped to the padded
// input, and its part [lo, hi) inside the input.
struct AvgSpan {
  int64_t padded, lo, hi;
};
inline AvgSpan avg_span(const PoolNdShape& p, int d, int64_t o) {
  const int64_t start = o * p.stride[d] - p.pad[d];
  const int64_t end = std::min(start + p.kernel[d], p.in[d] + p.pad[d]);
  return AvgSpan{end - start, std::max<int64_t>(start, 0), std::min(end, p.in[d])};
}

// Average pooling of output rows [begin, end) (see avg_pool).
template <bool kDeep, typename T>
void avg_pool_rows(const PoolNdShape& p, bool count_include_pad, int64_t divisor_override,
                   const Tensor5<T>& x, T* out, int64_t begin, int64_t end) {
  constexpr int64_t kCols = 256;
  float sum[kCols];
  const int64_t sw = p.stride[2];
  for (PoolRow<T> r(p, x, begin); r.unit < end; r.next()) {
    const AvgSpan sd = kDeep ? avg_span(p, 0, r.od) : AvgSpan{1, 0, 1};
    const AvgSpan sh = avg_span(p, 1, r.oh);
    for (int64_t ow0 = 0; ow0 < p.out[2]; ow0 += kCols) {
      const int64_t cols = std::min(kCols, p.out[2] - ow0);
      for (int64_t j = 0; j < cols; ++j) sum[j] = 0.0f;
      for (int64_t id = sd.lo; id < sd.hi; ++id) {
        for (int64_t ih = sh.lo; ih < sh.hi; ++ih) {
          const T* xrow = r.plane + id * x.s[2] + ih * x.s[3];
          for (int64_t kx = 0; kx < p.kernel[2]; ++kx) {
            // iw = ow*stride - pad + kx, kept when inside [0, w): the padded
            // window end min(ws + kw, w + pad) never cuts an in-bounds column.
            const int64_t offset = kx - p.pad[2];
            int64_t lo, hi;
            valid_range(sw, offset, p.in[2], ow0, ow0 + cols, &lo, &hi);
            if (lo >= hi) continue;
            const int64_t step = sw * x.s[4];
            const T* src = xrow + (lo * sw + offset) * x.s[4];
            float* s = sum + (lo - ow0);
            for (int64_t j = 0; j < hi - lo; ++j) s[j] += to_f32(src[j * step]);
          }
        }
      }
      T* orow = out + r.unit * p.out[2] + ow0;
      for (int64_t j = 0; j < cols; ++j) {
        const AvgSpan s = avg_span(p, 2, ow0 + j);
        if (sd.lo >= sd.hi || sh.lo >= sh.hi || s.lo >= s.hi) {
          orow[j] = from_f32<T>(0.0f);
          continue;
        }
        const int64_t divisor = divisor_override != 0 ? divisor_override
                                : count_include_pad
                                    ? sd.padded * sh.padded * s.padded
                                    : (sd.hi - sd.lo) * (sh.hi - sh.lo) * (s.hi - s.lo);
        orow[j] = from_f32<T>(sum[j] / static_cast<float>(divisor));
      }
    }
  }
}

// Adaptive pooling windows, as eager: output o of |out| along a dim covers
// input [floor(o*in/out), ceil((o+1)*in/out)).
inline int64_t adaptive_start(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
inline int64_t adaptive_stop(int64_t o, int64_t in, int64_t out) {
  return ((o + 1) * in + out - 1) / out;
}

// Calls window(out_index, plane, lo, hi) with the input box [lo, hi) of every
// output element of rows [begin, end).
template <bool kDeep, typename T, typename Window>
void adaptive_rows(const PoolNdShape& p, const Tensor5<T>& x, int64_t begin, int64_t end,
                   Window&& window) {
  for (PoolRow<T> r(p, x, begin); r.unit < end; r.next()) {
    Dims3 lo{0, adaptive_start(r.oh, p.in[1], p.out[1]), 0};
    Dims3 hi{1, adaptive_stop(r.oh, p.in[1], p.out[1]), 0};
    if (kDeep) {
      lo[0] = adaptive_start(r.od, p.in[0], p.out[0]);
      hi[0] = adaptive_stop(r.od, p.in[0], p.out[0]);
    }
    for (int64_t ow = 0; ow < p.out[2]; ++ow) {
      lo[2] = adaptive_start(ow, p.in[2], p.out[2]);
      hi[2] = adaptive_stop(ow, p.in[2], p.out[2]);
      window(r.unit * p.out[2] + ow, r.plane, lo, hi);
    }
  }
}

// Adaptive pooling: window(o, plane, lo, hi, depth) over every output element
// in parallel, depth an integral_constant telling whether lo[0], hi[0] may
// be other than 0, 1.
template <typename T, typename Window>
void for_each_adaptive_window(const KernelContext& ctx, const PoolNdShape& p, const Tensor5<T>& x,
                              Window&& window) {
  const int64_t work = p.in[2] * (p.in[0] / std::max<int64_t>(p.out[0], 1) + 2) *
                       (p.in[1] / std::max<int64_t>(p.out[1], 1) + 2);
  const bool deep = p.in[0] != 1 || p.out[0] != 1;
  parallel_for(ctx, 0, pool_rows(p), grain_for(work), [&](int64_t begin, int64_t end) {
    auto shallow_window = [&](int64_t o, const T* plane, const Dims3& lo, const Dims3& hi) {
      window(o, plane, lo, hi, std::false_type{});
    };
    auto deep_window = [&](int64_t o, const T* plane, const Dims3& lo, const Dims3& hi) {
      window(o, plane, lo, hi, std::true_type{});
    };
    if (deep) {
      adaptive_rows<true>(p, x, begin, end, deep_window);
    } else {
      adaptive_rows<false>(p, x, begin, end, shallow_window);
    }
  });
}

}  // namespace detail

// Max pooling as eager's CPU kernel: the window is visited in row-major
// order, an element wins when `v > max || isnan(v)`, the index of the winner
// ((id*h + ih)*w + iw within its plane) goes to |indices| when that is
// non-null, and a window without a winner reports its first in-bounds
// position. Each output row is a tile of columns updated per kernel tap.
template <typename T>
int32_t max_pool(const KernelContext& ctx, const PoolNdShape& p, Tensor5<T> x, T* out,
                 int64_t* indices) {
  if (int32_t code = detail::check_pool(ctx, "max_pool", p)) return code;
  const int64_t work = p.out[2] * p.kernel[0] * p.kernel[1] * p.kernel[2];
  const bool deep = detail::pool_is_deep(p);
  parallel_for(ctx, 0, detail::pool_rows(p), detail::grain_for(work),
               [&](int64_t begin, int64_t end) {
                 if (deep) {
                   detail::max_pool_rows<true>(p, x, out, indices, begin, end);
                 } else {
                   detail::max_pool_rows<false>(p, x, out, indices, begin, end);
                 }
               });
  return AOTC_ABI_OK;
}

// Average pooling as eager's CPU kernel: the window is clipped to the padded
// input, then to the input; the divisor is |divisor_override| when it is not
// 0 (negative ones included, as eager), else the padded window size
// (count_include_pad) or the clipped one; an empty window gives 0. Sums are
// row-major in float32.
template <typename T>
int32_t avg_pool(const KernelContext& ctx, const PoolNdShape& p, bool count_include_pad,
                 int64_t divisor_override, Tensor5<T> x, T* out) {
  if (int32_t code = detail::check_pool(ctx, "avg_pool", p)) return code;
  const int64_t work = p.out[2] * p.kernel[0] * p.kernel[1] * p.kernel[2];
  const bool deep = detail::pool_is_deep(p);
  parallel_for(
      ctx, 0, detail::pool_rows(p), detail::grain_for(work), [&](int64_t begin, int64_t end) {
        if (deep) {
          detail::avg_pool_rows<true>(p, count_include_pad, divisor_override, x, out, begin, end);
        } else {
          detail::avg_pool_rows<false>(p, count_include_pad, divisor_override, x, out, begin, end);
        }
      });
  return AOTC_ABI_OK;
}

// Adaptive average pooling (|p| gives n, c, in and out): each window's mean,
// as eager (sum row-major in float32, then / kd / kh / kw).
template <typename T>
int32_t adaptive_avg_pool(const KernelContext& ctx, const PoolNdShape& p, Tensor5<T> x, T* out) {
  detail::for_each_adaptive_window(
      ctx, p, x, [&](int64_t o, const T* plane, const Dims3& lo, const Dims3& hi, auto deep) {
        float sum = 0.0f;
        for (int64_t id = lo[0]; id < (deep ? hi[0] : 1); ++id) {
          for (int64_t ih = lo[1]; ih < hi[1]; ++ih) {
            const T* xrow = plane + id * x.s[2] + ih * x.s[3];
            for (int64_t iw = lo[2]; iw < hi[2]; ++iw) sum += to_f32(xrow[iw * x.s[4]]);
          }
        }
        if (deep) sum /= static_cast<float>(hi[0] - lo[0]);  // (else exactly / 1)
        sum = sum / static_cast<float>(hi[1] - lo[1]) / static_cast<float>(hi[2] - lo[2]);
        out[o] = from_f32<T>(sum);
      });
  return AOTC_ABI_OK;
}

// Adaptive max pooling over the same windows, as eager's CPU kernel: the
// first maximum wins, a NaN always replaces the running value (so NaN
// propagates); indices are (id*h + ih)*w + iw within the plane.
template <typename T>
int32_t adaptive_max_pool(const KernelContext& ctx, const PoolNdShape& p, Tensor5<T> x, T* out,
                          int64_t* indices) {
  detail::for_each_adaptive_window(
      ctx, p, x, [&](int64_t o, const T* plane, const Dims3& lo, const Dims3& hi, auto deep) {
        float best = -detail::kInf;
        int64_t where = (lo[0] * p.in[1] + lo[1]) * p.in[2] + lo[2];
        for (int64_t id = lo[0]; id < (deep ? hi[0] : 1); ++id) {
          for (int64_t ih = lo[1]; ih < hi[1]; ++ih) {
            const T* xrow = plane + id * x.s[2] + ih * x.s[3];
            for (int64_t iw = lo[2]; iw < hi[2]; ++iw) {
              const float v = to_f32(xrow[iw * x.s[4]]);
              if (v > best || v != v) {
                best = v;
                where = (id * p.in[1] + ih) * p.in[2] + iw;
              }
            }
          }
        }
        out[o] = from_f32<T>(best);
        if (indices) indices[o] = where;
      });
  return AOTC_ABI_OK;
}

// The gradient of max pooling with respect to its input, as eager's CPU
// kernel: grad_input[n, c] is zero but for grad_input[n, c].flat[i] +=
// grad_output[n, c, o] with i = indices[n, c, o], output positions o in order
// (overlapping windows add up). Sums are float32, rounded once. Index -1 (no
// maximum) is skipped, as eager; any other index outside the plane makes the
// kernel return OUT_OF_RANGE naming |handle|.
template <typename T>
int32_t max_pool_backward(const KernelContext& ctx, const char* handle, int64_t n, int64_t c,
                          const Dims3& in, const Dims3& out, Tensor5<T> grad_output,
                          Tensor5<int64_t> indices, T* grad_input) {
  const int64_t in_plane = in[0] * in[1] * in[2];
  if (n <= 0 || c <= 0 || in_plane <= 0) return AOTC_ABI_OK;
  IndexError error;
  detail::ChunkError alloc_error;
  const int64_t work = in_plane + out[0] * out[1] * out[2];
  parallel_for(ctx, 0, n * c, detail::grain_for(work), [&](int64_t begin, int64_t end) {
    detail::Scratch scratch;  // bf16: the plane's float sums
    if (!std::is_same<T, float>::value && !scratch.allocate(in_plane)) {
      alloc_error.set();
      return;
    }
    for (int64_t plane = begin; plane < end; ++plane) {
      T* gi = grad_input + plane * in_plane;
      float* acc;
      if constexpr (std::is_same<T, float>::value) {
        acc = gi;
      } else {
        acc = scratch.data();
      }
      for (int64_t i = 0; i < in_plane; ++i) acc[i] = 0.0f;
      const int64_t nn = plane / c, cc = plane % c;
      const T* go = grad_output.data + nn * grad_output.s[0] + cc * grad_output.s[1];
      const int64_t* ix = indices.data + nn * indices.s[0] + cc * indices.s[1];
      for (int64_t od = 0; od < out[0]; ++od) {
        for (int64_t oh = 0; oh < out[1]; ++oh) {
          const T* go_row = go + od * grad_output.s[2] + oh * grad_output.s[3];
          const int64_t* ix_row = ix + od * indices.s[2] + oh * indices.s[3];
          for (int64_t ow = 0; ow < out[2]; ++ow) {
            const int64_t i = ix_row[ow * indices.s[4]];
            if (i == -1) continue;
            if (i < 0 || i >= in_plane) {
              error.record(i, in_plane);
              continue;
            }
            acc[i] += to_f32(go_row[ow * grad_output.s[4]]);
          }
        }
      }
      if constexpr (!std::is_same<T, float>::value) {
        for (int64_t i = 0; i < in_plane; ++i) gi[i] = from_f32<T>(acc[i]);
      }
    }
  });
  if (alloc_error.failed()) {
    return fail(ctx, AOTC_ABI_RESOURCE_EXHAUSTED,
                "max pooling backward: cannot allocate %lld bytes of scratch",
                static_cast<long long>(in_plane * 4));
  }
  return error.report(ctx, handle, "max pooling backward: indices");
}

// The 2-D entry points (4-D operands): depth 1.
template <typename T>
int32_t max_pool2d(const KernelContext& ctx, const PoolShape& p, Tensor4<T> x, T* out,
                   int64_t* indices) {
  return max_pool<T>(ctx, pool_nd(p), with_depth(x), out, indices);
}
template <typename T>
int32_t avg_pool2d(const KernelContext& ctx, const PoolShape& p, bool count_include_pad,
                   int64_t divisor_override, Tensor4<T> x, T* out) {
  return avg_pool<T>(ctx, pool_nd(p), count_include_pad, divisor_override, with_depth(x), out);
}
template <typename T>
int32_t adaptive_avg_pool2d(const KernelContext& ctx, int64_t n, int64_t c, int64_t h, int64_t w,
                            int64_t h_out, int64_t w_out, Tensor4<T> x, T* out) {
  const PoolNdShape p{n, c, {1, h, w}, {1, h_out, w_out}, {}, {}, {}, {}};
  return adaptive_avg_pool<T>(ctx, p, with_depth(x), out);
}
template <typename T>
int32_t adaptive_max_pool2d(const KernelContext& ctx, int64_t n, int64_t c, int64_t h, int64_t w,
                            int64_t h_out, int64_t w_out, Tensor4<T> x, T* out, int64_t* indices) {
  const PoolNdShape p{n, c, {1, h, w}, {1, h_out, w_out}, {}, {}, {}, {}};
  return adaptive_max_pool<T>(ctx, p, with_depth(x), out, indices);
}

}  // namespace kernels
}  // namespace aotc_rt
