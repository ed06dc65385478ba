// aotc_cpu_scatter.h: CPU extern kernels for the scatter family (see
// aot/codegen/cpp/extern_scatter.py and [Note: scatter kernels] in
// aot/lowering/scatter.py).
//
// Two kernels, both `out = copy of self, then scatter into out`:
// - scatter_kernel: scatter / scatter_add / scatter_reduce / index_reduce.
//   out[i0..index[i]..] (op)= src[i] along |dim|, for every i of |index|.
// - index_put_kernel: index_put (accumulate or not; index_add decomposes into
//   it) and put: out[idx0[b], .., rest..] (+)= values[b, rest..].
//
// [Note: scatter determinism]
// - No atomics. Every output element is owned by exactly one work item: the
//   scatter kernel splits work by "unit" (a position of |index| outside |dim|,
//   which can only write the line of out at the same coordinates) and, when
//   there are few units, by ranges of the scattered dim ("per-output-row
//   partitioning": each item scans all of its unit's indices and applies
//   those landing in its range). index_put splits by ranges of the first
//   indexed dim and by ranges of the non-indexed dims. Within an item the
//   indices are applied in index order, so results are deterministic and
//   independent of the thread count.
// - Duplicate indices in a non-accumulating scatter: the last write in index
//   order (along |dim| for scatter, row-major over the index positions for
//   index_put) wins. Eager leaves this unspecified.
// - A GPU version of these kernels needs atomics for accumulation and will be
//   nondeterministic (float sums in arrival order).
// - Out-of-range indices never write: the kernel skips them, finishes, and
//   returns AOTC_ABI_OUT_OF_RANGE "<debug handle>: index V out of range
//   [0, N) for <op>: index" (the first one recorded). scatter-style kernels
//   do not wrap negative indices (eager raises); index_put-style ones wrap
//   once, as eager indexing does.
// - Numerics follow eager's CPU kernels (torch 2.13): scatter, scatter_add
//   and scatter_reduce on bfloat16 accumulate in float32 and round once per
//   output element (|float_acc|); index_reduce and index_put round after
//   every step, in index order. mean divides the (rounded) sum by the count
//   rounded to the element type, integer mean floors. amax/amin propagate
//   NaN. Integer sums and products wrap (two's complement).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <type_traits>

#include "aotc_cpu.h"
#include "aotc_cpu_kernels.h"

namespace aotc_rt {
namespace kernels {

constexpr int kScatterMaxRank = 8;

// A strided view of up to kScatterMaxRank dims: element (i0, .., i{rank-1})
// at sum(ik * stride[k]). Rank 0 is one element.
struct ScatterLayout {
  int rank;
  int64_t size[kScatterMaxRank];
  int64_t stride[kScatterMaxRank];
};

enum class ScatterReduce : int32_t { kNone = 0, kSum, kProd, kMean, kMax, kMin };

// Arguments of index_put_kernel; see there.
struct IndexPutArgs {
  ScatterLayout self;
  int num_indices;
  int index_dim[kScatterMaxRank];
  const int64_t* index[kScatterMaxRank];
  ScatterLayout index_layout[kScatterMaxRank];
  ScatterLayout values_batch;
  ScatterLayout values_rest;
  bool accumulate;
};

namespace scatter_detail {

// Element load/store: arithmetic in Acc (float for bf16).
template <typename T>
struct ElemOps {
  using Acc = T;
  static Acc load(T v) { return v; }
  static T store(Acc a) { return a; }
};
template <>
struct ElemOps<bf16> {
  using Acc = float;
  static float load(bf16 v) { return to_f32(v); }
  static bf16 store(float a) { return from_f32<bf16>(a); }
};

// An accumulator slot of storage type S: the output element itself (S == T,
// rounded after every step) or a float32 scratch element (S == Acc).
template <typename T, typename S>
struct Slot {
  using Acc = typename ElemOps<T>::Acc;
  static Acc load(S s) {
    if constexpr (std::is_same<S, T>::value) {
      return ElemOps<T>::load(s);
    } else {
      return s;
    }
  }
  static S store(Acc a) {
    if constexpr (std::is_same<S, T>::value) {
      return ElemOps<T>::store(a);
    } else {
      return a;
    }
  }
};

template <typename A>
inline A add(A a, A b) {
  if constexpr (std::is_integral<A>::value) {
    using U = typename std::make_unsigned<A>::type;
    return static_cast<A>(static_cast<U>(a) + static_cast<U>(b));
  } else {
    return a + b;
  }
}

template <typename A>
inline A mul(A a, A b) {
  if constexpr (std::is_integral<A>::value) {
    using U = typename std::make_unsigned<A>::type;
    return static_cast<A>(static_cast<U>(a) * static_cast<U>(b));
  } else {
    return a * b;
  }
}

// NaN-propagating max/min (eager: isnan(src) ? src : std::max(self, src)).
template <typename A>
inline A max(A a, A b) {
  if constexpr (std::is_floating_point<A>::value) {
    if (a != a) return a;
    if (b != b) return b;
  }
  return b > a ? b : a;
}

template <typename A>
inline A min(A a, A b) {
  if constexpr (std::is_floating_point<A>::value) {
    if (a != a) return a;
    if (b != b) return b;
  }
  return b < a ? b : a;
}

template <typename A>
inline A combine(ScatterReduce r, A acc, A v) {
  switch (r) {
    case ScatterReduce::kSum:
    case ScatterReduce::kMean:
      return add(acc, v);
    case ScatterReduce::kProd:
      return mul(acc, v);
    case ScatterReduce::kMax:
      return max(acc, v);
    case ScatterReduce::kMin:
      return min(acc, v);
    case ScatterReduce::kNone:
      break;
  }
  return v;
}

// The start value of a reduction that leaves self out (include_self=False).
template <typename A>
inline A identity(ScatterReduce r) {
  switch (r) {
    case ScatterReduce::kProd:
      return A(1);
    case ScatterReduce::kMax:
      return std::numeric_limits<A>::has_infinity ? -std::numeric_limits<A>::infinity()
                                                  : std::numeric_limits<A>::lowest();
    case ScatterReduce::kMin:
      return std::numeric_limits<A>::has_infinity ? std::numeric_limits<A>::infinity()
                                                  : std::numeric_limits<A>::max();
    default:
      return A(0);
  }
}

// mean's last step: the sum rounded to T, divided by the count rounded to T
// (eager divides two T tensors); integers floor.
template <typename T>
inline T mean_of(typename ElemOps<T>::Acc sum, int64_t count) {
  using Ops = ElemOps<T>;
  using Acc = typename Ops::Acc;
  if (count <= 0) return Ops::store(sum);
  if constexpr (std::is_integral<Acc>::value) {
    Acc n = static_cast<Acc>(count);
    Acc q = sum / n;
    if ((sum % n != 0) && ((sum < 0) != (n < 0))) --q;
    return q;
  } else {
    Acc s = Ops::load(Ops::store(sum));
    Acc n = Ops::load(Ops::store(static_cast<Acc>(count)));
    return Ops::store(s / n);
  }
}

// Walks positions of an N-D range in row-major order, keeping one offset per
// stride set (up to kMaxSets operands over the same sizes).
struct Cursor {
  static constexpr int kMaxSets = kScatterMaxRank + 1;
  int rank = 0;
  int sets = 0;
  int64_t size[kScatterMaxRank] = {};
  int64_t stride[kMaxSets][kScatterMaxRank] = {};
  int64_t idx[kScatterMaxRank] = {};
  int64_t off[kMaxSets] = {};

  void seek(int64_t flat) {
    for (int n = 0; n < sets; ++n) off[n] = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const int64_t i = flat % size[d];
      flat /= size[d];
      idx[d] = i;
      for (int n = 0; n < sets; ++n) off[n] += i * stride[n][d];
    }
  }
  void next() {
    for (int d = rank - 1; d >= 0; --d) {
      for (int n = 0; n < sets; ++n) off[n] += stride[n][d];
      if (++idx[d] < size[d]) return;
      for (int n = 0; n < sets; ++n) off[n] -= stride[n][d] * size[d];
      idx[d] = 0;
    }
  }
};

inline int64_t numel(const ScatterLayout& l) {
  int64_t n = 1;
  for (int d = 0; d < l.rank; ++d) n *= l.size[d];
  return n;
}

inline void contiguous_strides(const ScatterLayout& l, int64_t* strides) {
  int64_t s = 1;
  for (int d = l.rank - 1; d >= 0; --d) {
    strides[d] = s;
    s *= l.size[d];
  }
}

inline bool is_contiguous(const ScatterLayout& l) {
  int64_t s = 1;
  for (int d = l.rank - 1; d >= 0; --d) {
    if (l.size[d] != 1 && l.stride[d] != s) return false;
    s *= l.size[d];
  }
  return true;
}

// out[e] = f(self element e) for every element, out contiguous.
template <typename T, typename Fn>
inline void copy_self(const KernelContext& ctx, const ScatterLayout& l, const T* self,
                      int64_t count, Fn&& fn) {
  const bool contiguous = is_contiguous(l);
  parallel_for(ctx, 0, count, int64_t{1} << 14, [&](int64_t begin, int64_t end) {
    if (contiguous) {
      for (int64_t e = begin; e < end; ++e) fn(e, self[e]);
      return;
    }
    Cursor c;
    c.rank = l.rank;
    c.sets = 1;
    for (int d = 0; d < l.rank; ++d) {
      c.size[d] = l.size[d];
      c.stride[0][d] = l.stride[d];
    }
    c.seek(begin);
    for (int64_t e = begin; e < end; ++e, c.next()) fn(e, self[c.off[0]]);
  });
}

// malloc'd scratch of |count| elements (at least one) owned by one scope.
template <typename U>
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { std::free(data_); }
  bool allocate(int64_t count) {
    data_ =
        static_cast<U*>(std::malloc(static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(U)));
    return data_ != nullptr;
  }
  U* data() const { return data_; }

 private:
  U* data_ = nullptr;
};

inline int32_t check_layout(const KernelContext& ctx, const char* handle, const char* what,
                            const char* name, const ScatterLayout& l) {
  if (l.rank < 0 || l.rank > kScatterMaxRank)
    return fail(ctx, AOTC_ABI_INVALID_ARGUMENT, "%s: %s: %s has rank %d (at most %d)", handle, what,
                name, l.rank, kScatterMaxRank);
  for (int d = 0; d < l.rank; ++d) {
    if (l.size[d] < 0)
      return fail(ctx, AOTC_ABI_INVALID_ARGUMENT, "%s: %s: %s has a negative size", handle, what,
                  name);
  }
  return AOTC_ABI_OK;
}

// The part |p| of |parts| equal ranges of [0, n).
inline void part_range(int64_t n, int64_t parts, int64_t p, int64_t* lo, int64_t* hi) {
  *lo = n * p / parts;
  *hi = n * (p + 1) / parts;
}

// The scatter loop of scatter_kernel with accumulator slots of type S
// (acc == out when S == T).
template <typename T, typename S>
void scatter_loop(const KernelContext& ctx, const ScatterLayout& self_l, int dim,
                  const ScatterLayout& index_l, const int64_t* index, const ScatterLayout& src_l,
                  const T* src, T value, ScatterReduce reduce, bool include_self, T* out, S* acc,
                  int64_t* count, IndexError& error) {
  using SlotT = Slot<T, S>;
  using Acc = typename ElemOps<T>::Acc;
  int64_t out_stride[kScatterMaxRank];
  contiguous_strides(self_l, out_stride);
  const int rank = self_l.rank;
  const int64_t dim_size = self_l.size[dim];
  const int64_t k_size = index_l.size[dim];
  const int64_t k_index = index_l.stride[dim];
  const int64_t k_src = src != nullptr ? src_l.stride[dim] : 0;
  const int64_t k_out = out_stride[dim];
  // Units: positions of |index| outside |dim|, with offsets into index, src, out.
  Cursor proto;
  proto.sets = 3;
  for (int d = 0; d < rank; ++d) {
    if (d == dim) continue;
    const int j = proto.rank++;
    proto.size[j] = index_l.size[d];
    proto.stride[0][j] = index_l.stride[d];
    proto.stride[1][j] = src != nullptr ? src_l.stride[d] : 0;
    proto.stride[2][j] = out_stride[d];
  }
  int64_t units = 1;
  for (int j = 0; j < proto.rank; ++j) units *= proto.size[j];
  if (units == 0 || k_size == 0) return;
  // Few units with many indices each: split the scattered dim into parts.
  int64_t parts = 1;
  if (units < 16 && units * k_size >= (int64_t{1} << 15))
    parts = std::max<int64_t>(1, std::min<int64_t>(dim_size, (16 + units - 1) / units));
  const bool init = reduce != ScatterReduce::kNone && !include_self;
  const Acc start = identity<Acc>(reduce);
  const Acc scalar = ElemOps<T>::load(value);

  parallel_for(ctx, 0, units * parts, detail::grain_for(k_size), [&](int64_t begin, int64_t end) {
    Cursor c = proto;
    int64_t unit = begin / parts;
    c.seek(unit);
    for (int64_t item = begin; item < end; ++item) {
      if (item / parts != unit) {
        unit = item / parts;
        c.next();
      }
      int64_t lo = 0, hi = dim_size;
      if (parts > 1) part_range(dim_size, parts, item % parts, &lo, &hi);
      const int64_t* ix = index + c.off[0];
      const int64_t base = c.off[2];
      if (init) {
        for (int64_t k = 0; k < k_size; ++k) {
          const int64_t pos = ix[k * k_index];
          if (pos < lo || pos >= hi) continue;
          acc[base + pos * k_out] = SlotT::store(start);
        }
      }
      const T* sx = src != nullptr ? src + c.off[1] : nullptr;
      for (int64_t k = 0; k < k_size; ++k) {
        const int64_t pos = ix[k * k_index];
        if (pos < 0 || pos >= dim_size) {
          error.record(pos, dim_size);
          continue;
        }
        if (pos < lo || pos >= hi) continue;
        const int64_t o = base + pos * k_out;
        if (reduce == ScatterReduce::kNone) {
          out[o] = sx != nullptr ? sx[k * k_src] : value;
          continue;
        }
        const Acc v = sx != nullptr ? ElemOps<T>::load(sx[k * k_src]) : scalar;
        acc[o] = SlotT::store(combine(reduce, SlotT::load(acc[o]), v));
        if (count != nullptr) ++count[o];
      }
    }
  });
}

}  // namespace scatter_detail

// scatter / scatter_add / scatter_reduce / index_reduce:
//   out = self (copied contiguous), then for every position i of |index|:
//   j = i with j[dim] = index[i]; out[j] = src[i] (or |value| when src is
//   null), or out[j] = op(out[j], src[i]) for a reduction.
// |index_l| and |src_l| give sizes and strides (src may be null); index sizes
// must not exceed src's, nor self's outside |dim| (eager's rule).
// |float_acc|: bf16 accumulates in float32 and rounds once per element (eager's
// scatter kernels); otherwise every step rounds (eager's index_reduce).
// See [Note: scatter determinism] for ordering and errors.
template <typename T>
int32_t scatter_kernel(const KernelContext& ctx, const char* handle, const char* what,
                       const ScatterLayout& self_l, const T* self, int dim,
                       const ScatterLayout& index_l, const int64_t* index,
                       const ScatterLayout& src_l, const T* src, T value, ScatterReduce reduce,
                       bool include_self, bool float_acc, T* out) {
  namespace sd = scatter_detail;
  using Acc = typename sd::ElemOps<T>::Acc;
  for (const ScatterLayout* l : {&self_l, &index_l, &src_l}) {
    if (int32_t code = sd::check_layout(ctx, handle, what, "operand", *l)) return code;
  }
  if (self_l.rank < 1 || dim < 0 || dim >= self_l.rank || index_l.rank != self_l.rank ||
      (src != nullptr && src_l.rank != self_l.rank))
    return fail(ctx, AOTC_ABI_INVALID_ARGUMENT,
                "%s: %s: self, index and src must have one rank >= 1 and 0 <= dim < rank", handle,
                what);
  for (int d = 0; d < self_l.rank; ++d) {
    if (src != nullptr && index_l.size[d] > src_l.size[d])
      return fail(ctx, AOTC_ABI_INVALID_ARGUMENT,
                  "%s: %s: index size %lld exceeds src size %lld in dim %d", handle, what,
                  static_cast<long long>(index_l.size[d]), static_cast<long long>(src_l.size[d]),
                  d);
    if (d != dim && index_l.size[d] > self_l.size[d])
      return fail(ctx, AOTC_ABI_INVALID_ARGUMENT,
                  "%s: %s: index size %lld exceeds self size %lld in dim %d", handle, what,
                  static_cast<long long>(index_l.size[d]), static_cast<long long>(self_l.size[d]),
                  d);
  }
  const int64_t n = sd::numel(self_l);
  if (n == 0) return AOTC_ABI_OK;
  const bool mean = reduce == ScatterReduce::kMean;
  const bool scratch = reduce != ScatterReduce::kNone && float_acc && !std::is_same<Acc, T>::value;
  sd::Buffer<Acc> acc;
  sd::Buffer<int64_t> count;
  if ((scratch && !acc.allocate(n)) || (mean && !count.allocate(n)))
    return fail(ctx, AOTC_ABI_RESOURCE_EXHAUSTED,
                "%s: %s: cannot allocate scratch for %lld elements", handle, what,
                static_cast<long long>(n));
  Acc* a = acc.data();
  int64_t* cnt = mean ? count.data() : nullptr;
  const int64_t start_count = include_self ? 1 : 0;
  // In place (out is self's own memory, [Note: in-place mutations] in
  // aot/scheduler/inplace.py): nothing to copy, only scratch to fill.
  const bool in_place = static_cast<const void*>(out) == self && sd::is_contiguous(self_l);
  if (!in_place || scratch || mean) {
    sd::copy_self(ctx, self_l, self, n, [&](int64_t e, T v) {
      if (!in_place) out[e] = v;
      if (scratch) a[e] = sd::ElemOps<T>::load(v);
      if (mean) cnt[e] = start_count;
    });
  }
  IndexError error;
  if (scratch) {
    sd::scatter_loop<T, Acc>(ctx, self_l, dim, index_l, index, src_l, src, value, reduce,
                             include_self, out, a, cnt, error);
  } else {
    sd::scatter_loop<T, T>(ctx, self_l, dim, index_l, index, src_l, src, value, reduce,
                           include_self, out, out, cnt, error);
  }
  if (scratch || mean) {
    parallel_for(ctx, 0, n, int64_t{1} << 14, [&](int64_t begin, int64_t end) {
      for (int64_t e = begin; e < end; ++e) {
        const Acc v = scratch ? a[e] : sd::ElemOps<T>::load(out[e]);
        out[e] = mean ? sd::mean_of<T>(v, cnt[e]) : sd::ElemOps<T>::store(v);
      }
    });
  }
  return error.report(ctx, handle, what);
}

// index_put (accumulate or not): out = self (copied contiguous), then for
// every index position b (row-major over the broadcast index shape) and every
// position r of self's non-indexed dims:
//   out[index[0][b], .., index[K-1][b] at dims index_dim[], r at the other
//   dims] = values[b, r]  (+= with |accumulate|, rounding every step).
// Negative indices wrap once. args.values_batch/values_rest hold values'
// strides over the batch and non-indexed sizes (stride 0 where broadcast).
template <typename T>
int32_t index_put_kernel(const KernelContext& ctx, const char* handle, const char* what,
                         const IndexPutArgs& args, const T* self, const T* values, T* out) {
  namespace sd = scatter_detail;
  using Ops = sd::ElemOps<T>;
  const ScatterLayout& self_l = args.self;
  const int num = args.num_indices;
  if (int32_t code = sd::check_layout(ctx, handle, what, "self", self_l)) return code;
  if (num < 1 || num > self_l.rank)
    return fail(ctx, AOTC_ABI_INVALID_ARGUMENT, "%s: %s: %d index tensors for a %d-d tensor",
                handle, what, num, self_l.rank);
  bool used[kScatterMaxRank] = {};
  for (int k = 0; k < num; ++k) {
    const int d = args.index_dim[k];
    if (d < 0 || d >= self_l.rank || used[d] || args.index_layout[k].rank != args.values_batch.rank)
      return fail(ctx, AOTC_ABI_INVALID_ARGUMENT, "%s: %s: bad index tensor %d", handle, what, k);
    used[d] = true;
  }
  if (args.values_rest.rank != self_l.rank - num)
    return fail(ctx, AOTC_ABI_INVALID_ARGUMENT, "%s: %s: values do not fit", handle, what);
  const int64_t n = sd::numel(self_l);
  if (n == 0) return AOTC_ABI_OK;
  // In place (out is self's own memory): nothing to copy.
  if (static_cast<const void*>(out) != self || !sd::is_contiguous(self_l))
    sd::copy_self(ctx, self_l, self, n, [&](int64_t e, T v) { out[e] = v; });
  const int64_t batch = sd::numel(args.values_batch);
  const int64_t rest = sd::numel(args.values_rest);
  if (batch == 0 || rest == 0) return AOTC_ABI_OK;

  int64_t out_stride[kScatterMaxRank];
  sd::contiguous_strides(self_l, out_stride);
  // Batch cursor: one offset per index tensor, then values' batch offset.
  sd::Cursor batch_proto;
  batch_proto.rank = args.values_batch.rank;
  batch_proto.sets = num + 1;
  for (int d = 0; d < batch_proto.rank; ++d) {
    batch_proto.size[d] = args.values_batch.size[d];
    for (int k = 0; k < num; ++k) batch_proto.stride[k][d] = args.index_layout[k].stride[d];
    batch_proto.stride[num][d] = args.values_batch.stride[d];
  }
  // Rest cursor: out's offset and values' offset over the non-indexed dims.
  sd::Cursor rest_proto;
  rest_proto.rank = args.values_rest.rank;
  rest_proto.sets = 2;
  for (int d = 0, j = 0; d < self_l.rank; ++d) {
    if (used[d]) continue;
    rest_proto.size[j] = args.values_rest.size[j];
    rest_proto.stride[0][j] = out_stride[d];
    rest_proto.stride[1][j] = args.values_rest.stride[j];
    ++j;
  }
  const int d0 = args.index_dim[0];
  const int64_t size0 = self_l.size[d0];
  // Work items: |parts| ranges of the first indexed dim (each scans every
  // index position and applies those landing in its range) times |chunks|
  // ranges of the non-indexed positions.
  int64_t parts = 1, chunks = 1;
  if (batch * rest >= (int64_t{1} << 15)) {
    if (rest >= 16) parts = std::max<int64_t>(1, std::min<int64_t>(size0, 16));
    chunks = std::max<int64_t>(1, std::min<int64_t>((16 + parts - 1) / parts, rest / 64));
  }
  IndexError error;
  parallel_for(ctx, 0, parts * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      int64_t lo = 0, hi = size0, r0 = 0, r1 = rest;
      sd::part_range(size0, parts, item % parts, &lo, &hi);
      sd::part_range(rest, chunks, item / parts, &r0, &r1);
      sd::Cursor bc = batch_proto;
      sd::Cursor rc = rest_proto;
      bc.seek(0);
      for (int64_t b = 0; b < batch; ++b, bc.next()) {
        int64_t base = 0;
        bool ok = true;
        for (int k = 0; k < num && ok; ++k) {
          const int d = args.index_dim[k];
          const int64_t raw = args.index[k][bc.off[k]];
          const int64_t pos = raw < 0 ? raw + self_l.size[d] : raw;
          if (pos < 0 || pos >= self_l.size[d]) {
            error.record(raw, self_l.size[d]);
            ok = false;
          } else if (k == 0 && (pos < lo || pos >= hi)) {
            ok = false;
          } else {
            base += pos * out_stride[d];
          }
        }
        if (!ok) continue;
        const T* vb = values + bc.off[num];
        rc.seek(r0);
        for (int64_t r = r0; r < r1; ++r, rc.next()) {
          T* o = out + base + rc.off[0];
          const T v = vb[rc.off[1]];
          *o = args.accumulate ? Ops::store(sd::add(Ops::load(*o), Ops::load(v))) : v;
        }
      }
    }
  });
  return error.report(ctx, handle, what);
}

}  // namespace kernels
}  // namespace aotc_rt
