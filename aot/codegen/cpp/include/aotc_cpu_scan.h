// aotc_cpu_scan.h: CPU extern kernels for the scan family (see aot/codegen/cpp/extern_scan.py).
//
// cumsum, cumprod, logcumsumexp, cummax and cummin along one dim of a strided
// input view, into contiguous outputs of the same sizes.
//
// [Note: scan kernel numerics] As eager's CPU kernels (cpu_cum_base_kernel,
// cummax_cummin_helper in aten/src/ATen/native/cpu/ReduceOpsKernel.cpp):
// - Each input element is first converted to the output dtype (eager scans
//   `self.to(result.dtype)`), then to the accumulator type
//   at::acc_type<T, /*is_cuda=*/false>: double for float and double, float
//   for bf16, int64 for every integer type. Every output is the accumulator
//   rounded to the output dtype, so float32 cumsum matches eager bit for bit.
//   Integer sums and products wrap (computed unsigned: no UB).
// - logcumsumexp: acc = log1p(exp(min - max)) + max of (x, acc), NaN
//   propagating, and x itself when both are the same infinity.
// - cummax/cummin: the running extreme with >= (<=), so ties take the later
//   index; a NaN takes over (the latest NaN's index) and stays.
// - Each line along the scan dim runs sequentially (deterministic); lines run
//   in parallel, in blocks of up to kScanBlock neighbouring lines of the
//   inner dims so that a scan over a leading dim reads and writes rows.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "aotc_cpu.h"
#include "aotc_cpu_kernels.h"

namespace aotc_rt {
namespace kernels {

// The input view: |rank| >= 1 sizes and element strides, scanned along |dim|.
// (A 0-d input is passed as sizes {1}, strides {0}.)
struct ScanShape {
  int32_t rank;
  const int64_t* sizes;
  const int64_t* strides;
  int32_t dim;
};

namespace scan_detail {

constexpr int64_t kScanBlock = 64;

// at::acc_type<T, false>.
template <typename T>
struct AccOf {
  using type = std::conditional_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int64_t, T>;
};
template <>
struct AccOf<float> {
  using type = double;
};
template <>
struct AccOf<bf16> {
  using type = float;
};

// The arithmetic type of a stored element (bf16 compares as float).
template <typename T>
struct ValueOf {
  using type = T;
};
template <>
struct ValueOf<bf16> {
  using type = float;
};

// c10's conversions: static_cast, with bf16 going through float.
template <typename To, typename From>
inline To cast(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<From, bf16>) {
    return cast<To>(bf16_to_f32(v.bits));
  } else if constexpr (std::is_same_v<To, bf16>) {
    return bf16{f32_to_bf16(static_cast<float>(v))};
  } else {
    return static_cast<To>(v);
  }
}

template <typename V>
inline bool is_nan(V v) {
  if constexpr (std::is_floating_point_v<V>) {
    return std::isnan(v);
  } else {
    return false;
  }
}

template <typename A>
inline A add(A a, A b) {
  if constexpr (std::is_integral_v<A>) {
    using U = std::make_unsigned_t<A>;
    return static_cast<A>(static_cast<U>(a) + static_cast<U>(b));
  } else {
    return a + b;
  }
}

template <typename A>
inline A mul(A a, A b) {
  if constexpr (std::is_integral_v<A>) {
    using U = std::make_unsigned_t<A>;
    return static_cast<A>(static_cast<U>(a) * static_cast<U>(b));
  } else {
    return a * b;
  }
}

// eager's _log_add_exp_helper(x, y) (std::min/std::max return their first
// argument when the comparison involves NaN).
template <typename A>
inline A log_add_exp(A x, A y) {
  const A lo = std::isnan(y) ? y : std::min(x, y);
  const A hi = std::isnan(y) ? y : std::max(x, y);
  if (lo != hi || std::isfinite(lo)) return std::log1p(std::exp(lo - hi)) + hi;
  return x;
}

// Accumulating scans: state is the accumulator; out = acc rounded to T. The
// element at i == 0 starts the accumulator (Combine::first), later ones are
// folded in with Combine::next(acc, v).
template <typename T, typename Combine>
struct AccumulateOp {
  using Acc = typename AccOf<T>::type;
  static constexpr bool kIndices = false;
  struct State {
    Acc acc;
  };
  static void step(State& s, T x, int64_t i) {
    const Acc v = cast<Acc>(x);
    s.acc = i == 0 ? Combine::first(v) : Combine::next(s.acc, v);
  }
  static T value(const State& s) { return cast<T>(s.acc); }
  static int64_t index(const State&) { return 0; }
};

struct SumCombine {
  template <typename A>
  static A first(A v) {
    return v;
  }
  template <typename A>
  static A next(A acc, A v) {
    return add(acc, v);
  }
};

struct ProdCombine {
  template <typename A>
  static A first(A v) {
    return v;
  }
  template <typename A>
  static A next(A acc, A v) {
    return mul(acc, v);
  }
};

// log_add_exp(v, -inf) for the first element keeps eager's NaN handling.
struct LogAddExpCombine {
  template <typename A>
  static A first(A v) {
    return log_add_exp(v, -std::numeric_limits<A>::infinity());
  }
  template <typename A>
  static A next(A acc, A v) {
    return log_add_exp(v, acc);
  }
};

template <typename T>
using SumOp = AccumulateOp<T, SumCombine>;
template <typename T>
using ProdOp = AccumulateOp<T, ProdCombine>;
template <typename T>
using LogCumSumExpOp = AccumulateOp<T, LogAddExpCombine>;

// cummax (kMax) / cummin: eager's `isnan(x) || (!isnan(out) && x >= out)`.
template <typename T, bool kMax>
struct ExtremeOp {
  using V = typename ValueOf<T>::type;
  static constexpr bool kIndices = true;
  struct State {
    V best;
    int64_t index;
  };
  static void step(State& s, T x, int64_t i) {
    const V v = cast<V>(x);
    bool take = i == 0 || is_nan(v);
    if (!take && !is_nan(s.best)) take = kMax ? v >= s.best : v <= s.best;
    if (take) {
      s.best = v;
      s.index = i;
    }
  }
  static T value(const State& s) { return cast<T>(s.best); }
  static int64_t index(const State& s) { return s.index; }
};

// Element offset of the flat (row-major) index |flat| over dims [begin, end).
inline int64_t offset_of(int64_t flat, const ScanShape& s, int32_t begin, int32_t end) {
  int64_t offset = 0;
  for (int32_t d = end - 1; d >= begin; --d) {
    const int64_t size = s.sizes[d];
    offset += (flat % size) * s.strides[d];
    flat /= size;
  }
  return offset;
}

// out/indices may be nullptr (a dead output).
template <typename Op, typename In, typename T>
inline int32_t run_scan(const KernelContext& ctx, const ScanShape& s, const In* x, T* out,
                        int64_t* indices) {
  int64_t outer = 1, inner = 1;
  for (int32_t d = 0; d < s.dim; ++d) outer *= s.sizes[d];
  for (int32_t d = s.dim + 1; d < s.rank; ++d) inner *= s.sizes[d];
  const int64_t n = s.sizes[s.dim];
  const int64_t step = s.strides[s.dim];
  if (outer == 0 || inner == 0 || n == 0) return AOTC_ABI_OK;
  if (out == nullptr && indices == nullptr) return AOTC_ABI_OK;
  const int64_t blocks = (inner + kScanBlock - 1) / kScanBlock;
  const int64_t width_max = std::min(inner, kScanBlock);
  const int64_t grain = detail::grain_for(n * width_max);
  parallel_for(ctx, 0, outer * blocks, grain, [&](int64_t begin, int64_t end) {
    typename Op::State state[kScanBlock];
    int64_t in_offset[kScanBlock];
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t o = unit / blocks;
      const int64_t first = (unit % blocks) * kScanBlock;
      const int64_t width = std::min(kScanBlock, inner - first);
      const int64_t in_base = offset_of(o, s, 0, s.dim);
      for (int64_t j = 0; j < width; ++j) {
        in_offset[j] = in_base + offset_of(first + j, s, s.dim + 1, s.rank);
      }
      const int64_t out_base = o * n * inner + first;
      for (int64_t i = 0; i < n; ++i) {
        const In* xi = x + i * step;
        const int64_t row = out_base + i * inner;
        for (int64_t j = 0; j < width; ++j) {
          Op::step(state[j], cast<T>(xi[in_offset[j]]), i);
        }
        if (out != nullptr) {
          for (int64_t j = 0; j < width; ++j) out[row + j] = Op::value(state[j]);
        }
        if constexpr (Op::kIndices) {
          if (indices != nullptr) {
            for (int64_t j = 0; j < width; ++j) indices[row + j] = Op::index(state[j]);
          }
        }
      }
    }
  });
  return AOTC_ABI_OK;
}

}  // namespace scan_detail

// In: the input's element type; T: the output's (only cumsum/cumprod convert).
template <typename In, typename T>
inline int32_t cumsum(const KernelContext& ctx, const ScanShape& s, const In* x, T* out) {
  return scan_detail::run_scan<scan_detail::SumOp<T>>(ctx, s, x, out, nullptr);
}

template <typename In, typename T>
inline int32_t cumprod(const KernelContext& ctx, const ScanShape& s, const In* x, T* out) {
  return scan_detail::run_scan<scan_detail::ProdOp<T>>(ctx, s, x, out, nullptr);
}

template <typename In, typename T>
inline int32_t logcumsumexp(const KernelContext& ctx, const ScanShape& s, const In* x, T* out) {
  return scan_detail::run_scan<scan_detail::LogCumSumExpOp<T>>(ctx, s, x, out, nullptr);
}

template <typename T>
inline int32_t cummax(const KernelContext& ctx, const ScanShape& s, const T* x, T* values,
                      int64_t* indices) {
  return scan_detail::run_scan<scan_detail::ExtremeOp<T, true>>(ctx, s, x, values, indices);
}

template <typename T>
inline int32_t cummin(const KernelContext& ctx, const ScanShape& s, const T* x, T* values,
                      int64_t* indices) {
  return scan_detail::run_scan<scan_detail::ExtremeOp<T, false>>(ctx, s, x, values, indices);
}

}  // namespace kernels
}  // namespace aotc_rt
