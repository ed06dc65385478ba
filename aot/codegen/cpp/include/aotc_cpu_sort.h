// aotc_cpu_sort.h: CPU extern kernels for the sort family (see aot/codegen/cpp/extern_sort.py):
// sort, topk, kthvalue, median (per dim and of all elements), nanmedian and mode.
//
// [Note: sort kernel numerics] Every kernel reproduces eager's CPU kernel
// (aten/src/ATen/native/cpu/SortingKernel.cpp, TopKImpl.h, Sorting.cpp,
// TensorCompareKernel.cpp as of torch 2.13) step for step: the same standard
// algorithm (std::sort, std::stable_sort, std::partial_sort, std::nth_element,
// or eager's own quickselect for kthvalue) over the same (value, index)
// sequence with the same comparator. Results are deterministic functions of
// the comparisons, so values AND indices match eager bit for bit, ties
// included, also where eager's choice among equal elements is an artefact
// of its algorithm (unstable sort of more than 16 elements, topk, kthvalue,
// mode), as long as libstdc++'s algorithms are the ones eager was built with
// (they have not changed in many releases).
// - NaN is larger than +inf: ascending puts NaN last, descending first; all
//   NaNs compare equal. -0.0 and 0.0 compare equal (ties).
// - sort: stable=false runs std::sort, which is NOT stable beyond 16
//   elements, exactly like eager; stable=true runs std::stable_sort. Eager
//   also gives the stable order for a stride-0 dim and for 1-d integer
//   ascending sorts of >= 32768 elements (fbgemm's radix sort); the lowering
//   and the kernel reproduce both.
// - bfloat16 compares as float32 (eager's BFloat16 operators); topk writes
//   its values back through float, so a bf16 NaN comes out as 0x7FC0 like
//   eager's. Other kernels copy the selected element's bits.
// - median (not nanmedian) returns the first NaN of a row and its index;
//   median of all elements returns the canonical quiet NaN.
//
// Operands: the input is read in place through its strides (SortOperand:
// sizes, element strides, the dim to sort along); outputs are contiguous:
// sort [.., n, ..], topk [.., k, ..], the reductions [..] with the dim
// removed (or kept as 1: the same memory). Rows are processed in parallel
// through the host's pool; each chunk mallocs its scratch (failure:
// RESOURCE_EXHAUSTED). A dead output (nullptr) is skipped.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <type_traits>
#include <utility>

#include "aotc_cpu.h"
#include "aotc_cpu_kernels.h"

namespace aotc_rt {
namespace kernels {

// The operand of a sort-family kernel: element (i0, .., i{rank-1}) at
// data[sum(ik * strides[k])]; the kernel works along |dim|.
template <typename T>
struct SortOperand {
  const T* data;
  int64_t rank;
  const int64_t* sizes;
  const int64_t* strides;
  int64_t dim;
};

namespace sort_detail {

// The value elements compare as: float for bf16 (eager's BFloat16
// operators convert), the element itself otherwise.
inline float key(bf16 v) { return bf16_to_f32(v.bits); }
template <typename T>
inline T key(T v) {
  return v;
}

template <typename K>
inline bool is_nan(K v) {
  if constexpr (std::is_floating_point<K>::value) {
    return std::isnan(v);
  } else {
    return false;
  }
}

// Ascending order with NaN last (eager's KeyValueCompAsc, topk smallest).
struct LessNanLast {
  template <typename K>
  bool operator()(K a, K b) const {
    return (!is_nan(a) && is_nan(b)) || (a < b);
  }
};

// Descending order with NaN first (KeyValueCompDesc, topk largest, and
// kthvalue's gt_or_nan).
struct GreaterNanFirst {
  template <typename K>
  bool operator()(K a, K b) const {
    return (is_nan(a) && !is_nan(b)) || (a > b);
  }
};

// A value and its position along the sorted dim.
template <typename T>
struct Elem {
  T value;
  int64_t index;
};

// Compares Elems by their values' keys with |Cmp|.
template <typename Cmp>
struct ByValue {
  template <typename T>
  bool operator()(const Elem<T>& a, const Elem<T>& b) const {
    return Cmp()(key(a.value), key(b.value));
  }
};

// A topk value as eager writes it: bf16 goes through float, and
// c10::BFloat16(float) turns every NaN into 0x7FC0.
inline bf16 topk_value(bf16 v) { return std::isnan(bf16_to_f32(v.bits)) ? bf16{0x7FC0} : v; }
template <typename T>
inline T topk_value(T v) {
  return v;
}

template <typename T>
inline T quiet_nan() {
  if constexpr (std::is_floating_point<T>::value) {
    return std::numeric_limits<T>::quiet_NaN();
  } else {
    return T{};
  }
}
template <>
inline bf16 quiet_nan<bf16>() {
  return bf16{0x7FC0};
}

// malloc'd bytes owned by one scope (elements are trivially copyable).
class ScratchBytes {
 public:
  ScratchBytes() = default;
  ScratchBytes(const ScratchBytes&) = delete;
  ScratchBytes& operator=(const ScratchBytes&) = delete;
  ~ScratchBytes() { std::free(data_); }
  bool allocate(int64_t bytes) {
    data_ = std::malloc(static_cast<size_t>(std::max<int64_t>(bytes, 1)));
    return data_ != nullptr;
  }
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
};

// The rows of an operand along its dim: |count| rows of |n| elements, the
// elements of a row |stride| apart in the input. Outputs are contiguous
// with the dim of size m in place: row r starts at out_offset(r, m) and
// its elements are |inner| apart.
struct Rows {
  int64_t count = 1;
  int64_t n = 1;
  int64_t stride = 0;
  int64_t inner = 1;
  int64_t rank = 0;
  int64_t dim = 0;
  const int64_t* sizes = nullptr;
  const int64_t* strides = nullptr;

  template <typename T>
  explicit Rows(const SortOperand<T>& x)
      : rank(x.rank), dim(x.dim), sizes(x.sizes), strides(x.strides) {
    n = sizes[dim];
    stride = strides[dim];
    for (int64_t d = 0; d < rank; ++d) {
      if (d == dim) continue;
      count *= sizes[d];
      if (d > dim) inner *= sizes[d];
    }
  }

  // Offset in the input of row r's first element.
  int64_t in_offset(int64_t r) const {
    int64_t offset = 0;
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (d == dim) continue;
      offset += (r % sizes[d]) * strides[d];
      r /= sizes[d];
    }
    return offset;
  }

  int64_t out_offset(int64_t r, int64_t m) const { return (r / inner) * m * inner + r % inner; }
};

// Runs fn(r, scratch) for every row in parallel (eager's grain: about 32768
// elements per chunk); each chunk mallocs |scratch_bytes| once.
template <typename Fn>
int32_t for_each_row(const KernelContext& ctx, const Rows& rows, int64_t scratch_bytes,
                     const char* what, Fn&& fn) {
  if (rows.count <= 0) return AOTC_ABI_OK;
  detail::ChunkError error;
  parallel_for(ctx, 0, rows.count, detail::grain_for(rows.n), [&](int64_t begin, int64_t end) {
    ScratchBytes scratch;
    if (!scratch.allocate(scratch_bytes)) {
      error.set();
      return;
    }
    for (int64_t r = begin; r < end; ++r) fn(r, scratch.data());
  });
  if (error.failed()) {
    return fail(ctx, AOTC_ABI_RESOURCE_EXHAUSTED, "%s: cannot allocate %lld bytes of scratch", what,
                static_cast<long long>(scratch_bytes));
  }
  return AOTC_ABI_OK;
}

// Copies row r of |x| into e[0, n) as (value, index) pairs.
template <typename T>
inline void load_row(const SortOperand<T>& x, const Rows& rows, int64_t r, Elem<T>* e) {
  const T* in = x.data + rows.in_offset(r);
  for (int64_t j = 0; j < rows.n; ++j) e[j] = Elem<T>{in[j * rows.stride], j};
}

// eager's quick_select_template (Sedgewick's quicksort partitioning, from
// TH), step for step: afterwards arr[k] is the k-th smallest (NaN largest).
template <typename T>
inline void quick_select(Elem<T>* arr, int64_t n, int64_t k) {
  const ByValue<GreaterNanFirst> gt;
  int64_t L = 0;
  int64_t R = n - 1;
  do {
    if (R <= L) return;  // one element
    if (R == L + 1) {    // two elements
      if (gt(arr[L], arr[R])) std::swap(arr[L], arr[R]);
      return;
    }
    // Median of three for the pivot.
    const int64_t P = L + (R - L) / 2;
    std::swap(arr[P], arr[L + 1]);
    if (gt(arr[L + 1], arr[R])) std::swap(arr[L + 1], arr[R]);
    if (gt(arr[L], arr[R])) std::swap(arr[L], arr[R]);
    if (gt(arr[L + 1], arr[L])) std::swap(arr[L + 1], arr[L]);
    int64_t i = L + 1;
    int64_t j = R;
    const Elem<T> pivot = arr[L];
    do {
      do ++i;
      while (gt(pivot, arr[i]));
      do --j;
      while (gt(arr[j], pivot));
      if (j < i) break;
      std::swap(arr[i], arr[j]);
    } while (true);
    std::swap(arr[L], arr[j]);
    if (j <= k) L = i;
    if (j >= k) R = j - 1;
  } while (true);
}

}  // namespace sort_detail

// -- sort ---------------------------------------------------------------------------

// values/indices: contiguous, x's sizes. |radix_1d|: x is 1-d, integer and
// sorted ascending, where eager radix-sorts (stably) from 32768 elements.
template <typename T>
int32_t sort(const KernelContext& ctx, const SortOperand<T>& x, bool descending, bool stable,
             bool radix_1d, T* values, int64_t* indices) {
  using namespace sort_detail;
  const Rows rows(x);
  const int64_t n = rows.n;
  if (rows.stride == 0 || (radix_1d && n >= (int64_t{1} << 15))) stable = true;
  const int64_t bytes = n * static_cast<int64_t>(sizeof(Elem<T>));
  auto row = [&](int64_t r, void* scratch) {
    Elem<T>* e = static_cast<Elem<T>*>(scratch);
    load_row(x, rows, r, e);
    if (descending) {
      if (stable) {
        std::stable_sort(e, e + n, ByValue<GreaterNanFirst>());
      } else {
        std::sort(e, e + n, ByValue<GreaterNanFirst>());
      }
    } else {
      if (stable) {
        std::stable_sort(e, e + n, ByValue<LessNanLast>());
      } else {
        std::sort(e, e + n, ByValue<LessNanLast>());
      }
    }
    const int64_t out = rows.out_offset(r, n);
    for (int64_t j = 0; j < n; ++j) {
      if (values) values[out + j * rows.inner] = e[j].value;
      if (indices) indices[out + j * rows.inner] = e[j].index;
    }
  };
  return for_each_row(ctx, rows, bytes, "sort", row);
}

// -- topk ---------------------------------------------------------------------------

// values/indices: contiguous, x's sizes with the dim of size k.
template <typename T>
int32_t topk(const KernelContext& ctx, const SortOperand<T>& x, int64_t k, bool largest,
             bool sorted, T* values, int64_t* indices) {
  using namespace sort_detail;
  const Rows rows(x);
  const int64_t n = rows.n;
  if (k < 0 || k > n) {
    return fail(ctx, AOTC_ABI_INVALID_ARGUMENT, "topk: k = %lld out of range [0, %lld]",
                static_cast<long long>(k), static_cast<long long>(n));
  }
  if (k == 0) return AOTC_ABI_OK;
  const int64_t bytes = n * static_cast<int64_t>(sizeof(Elem<T>));
  auto row = [&](int64_t r, void* scratch) {
    Elem<T>* e = static_cast<Elem<T>*>(scratch);
    load_row(x, rows, r, e);
    // TopKImpl.h: partial_sort for small k, else nth_element (+ sort of
    // the first k - 1 when sorted).
    if (k * 64 <= n) {
      if (largest) {
        std::partial_sort(e, e + k, e + n, ByValue<GreaterNanFirst>());
      } else {
        std::partial_sort(e, e + k, e + n, ByValue<LessNanLast>());
      }
    } else if (largest) {
      std::nth_element(e, e + k - 1, e + n, ByValue<GreaterNanFirst>());
      if (sorted) std::sort(e, e + k - 1, ByValue<GreaterNanFirst>());
    } else {
      std::nth_element(e, e + k - 1, e + n, ByValue<LessNanLast>());
      if (sorted) std::sort(e, e + k - 1, ByValue<LessNanLast>());
    }
    const int64_t out = rows.out_offset(r, k);
    for (int64_t j = 0; j < k; ++j) {
      if (values) values[out + j * rows.inner] = topk_value(e[j].value);
      if (indices) indices[out + j * rows.inner] = e[j].index;
    }
  };
  return for_each_row(ctx, rows, bytes, "topk", row);
}

// -- kthvalue, median, nanmedian, mode (reductions with indices) ---------------------

inline int32_t empty_reduction(const KernelContext& ctx, const char* what) {
  return fail(ctx, AOTC_ABI_INVALID_ARGUMENT,
              "%s: cannot reduce a dimension of size 0 (the operation has no identity)", what);
}

// values/indices: contiguous, x's sizes without the dim. k is 1-based.
template <typename T>
int32_t kthvalue(const KernelContext& ctx, const SortOperand<T>& x, int64_t k, T* values,
                 int64_t* indices) {
  using namespace sort_detail;
  const Rows rows(x);
  const int64_t n = rows.n;
  if (rows.count > 0 && n == 0) return empty_reduction(ctx, "kthvalue");
  if (k < 1 || k > n) {
    return fail(ctx, AOTC_ABI_INVALID_ARGUMENT, "kthvalue: k = %lld out of range [1, %lld]",
                static_cast<long long>(k), static_cast<long long>(n));
  }
  const int64_t bytes = n * static_cast<int64_t>(sizeof(Elem<T>));
  auto row = [&](int64_t r, void* scratch) {
    Elem<T>* e = static_cast<Elem<T>*>(scratch);
    load_row(x, rows, r, e);
    quick_select(e, n, k - 1);
    if (values) values[r] = e[k - 1].value;
    if (indices) indices[r] = e[k - 1].index;
  };
  return for_each_row(ctx, rows, bytes, "kthvalue", row);
}

// median / nanmedian along the dim (Sorting.cpp, median_with_indices_impl):
// nth_element over indices with ties broken by index.
template <typename T>
int32_t median(const KernelContext& ctx, const SortOperand<T>& x, bool ignore_nan, T* values,
               int64_t* indices) {
  using namespace sort_detail;
  using K = decltype(key(std::declval<T>()));
  const Rows rows(x);
  const int64_t n = rows.n;
  const char* what = ignore_nan ? "nanmedian" : "median";
  if (rows.count > 0 && n == 0) return empty_reduction(ctx, what);
  const int64_t bytes = n * static_cast<int64_t>(sizeof(int64_t) + sizeof(K));
  auto row = [&](int64_t r, void* scratch) {
    int64_t* idx = static_cast<int64_t*>(scratch);
    K* ip = reinterpret_cast<K*>(idx + n);
    const T* in = x.data + rows.in_offset(r);
    int64_t num_nan = 0;
    int64_t first_nan = -1;
    for (int64_t j = 0; j < n; ++j) {
      ip[j] = key(in[j * rows.stride]);
      if (is_nan(ip[j])) {
        if (num_nan++ == 0) first_nan = j;
      }
    }
    int64_t chosen;
    if (!ignore_nan && first_nan >= 0) {
      chosen = first_nan;
    } else {
      std::iota(idx, idx + n, int64_t{0});
      int64_t* nth = idx;
      if (!ignore_nan) {
        nth += (n - 1) / 2;
        std::nth_element(idx, nth, idx + n, [ip](int64_t i, int64_t j) {
          return ip[i] < ip[j] || (ip[i] == ip[j] && i < j);
        });
      } else {
        nth += (n - num_nan - 1) / 2;  // C++ division: all-NaN rows take position 0
        std::nth_element(idx, nth, idx + n, [ip](int64_t i, int64_t j) {
          return ip[i] < ip[j] || (ip[i] == ip[j] && i < j) || (is_nan(ip[j]) && !is_nan(ip[i]));
        });
      }
      chosen = *nth;
    }
    if (values) values[r] = in[chosen * rows.stride];
    if (indices) indices[r] = chosen;
  };
  return for_each_row(ctx, rows, bytes, what, row);
}

// median / nanmedian of all elements of a 1-d operand (Sorting.cpp,
// median_impl): nth_element over the values; out is one element.
template <typename T>
int32_t median_all(const KernelContext& ctx, const SortOperand<T>& x, bool ignore_nan, T* out) {
  using namespace sort_detail;
  const int64_t n = x.sizes[0];
  const int64_t stride = x.strides[0];
  if (n <= 0) {  // eager: NaN for an empty input
    *out = quiet_nan<T>();
    return AOTC_ABI_OK;
  }
  ScratchBytes scratch;
  if (!scratch.allocate(n * static_cast<int64_t>(sizeof(T)))) {
    return fail(ctx, AOTC_ABI_RESOURCE_EXHAUSTED, "%s: cannot allocate %lld bytes of scratch",
                ignore_nan ? "nanmedian" : "median", static_cast<long long>(n * sizeof(T)));
  }
  T* first = static_cast<T*>(scratch.data());
  T* last = first + n;
  int64_t num_nan = 0;
  for (int64_t j = 0; j < n; ++j) {
    first[j] = x.data[j * stride];
    num_nan += is_nan(key(first[j])) ? 1 : 0;
  }
  if (!ignore_nan && num_nan > 0) {
    *out = quiet_nan<T>();
    return AOTC_ABI_OK;
  }
  T* nth = first;
  if (!ignore_nan) {
    nth += (n - 1) / 2;
    std::nth_element(first, nth, last, [](T a, T b) { return key(a) < key(b); });
  } else {
    nth += (n - num_nan - 1) / 2;
    std::nth_element(first, nth, last, [](T a, T b) {
      return key(a) < key(b) || (is_nan(key(b)) && !is_nan(key(a)));
    });
  }
  *out = *nth;
  return AOTC_ABI_OK;
}

// mode along the dim (TensorCompareKernel.cpp, mode_kernel_impl): the most
// frequent value, the smallest among equally frequent ones, with the index
// its run ends at after std::sort.
template <typename T>
int32_t mode(const KernelContext& ctx, const SortOperand<T>& x, T* values, int64_t* indices) {
  using namespace sort_detail;
  const Rows rows(x);
  const int64_t n = rows.n;
  if (rows.count > 0 && n == 0) return empty_reduction(ctx, "mode");
  const int64_t bytes = n * static_cast<int64_t>(sizeof(Elem<T>));
  auto row = [&](int64_t r, void* scratch) {
    Elem<T>* e = static_cast<Elem<T>*>(scratch);
    load_row(x, rows, r, e);
    std::sort(e, e + n,
              [](const Elem<T>& a, const Elem<T>& b) { return key(a.value) < key(b.value); });
    T mode_value{};
    int64_t mode_index = 0;
    int64_t freq = 0;
    int64_t max_freq = 0;
    for (int64_t i = 0; i < n; ++i) {
      ++freq;
      if (i == n - 1 || key(e[i].value) != key(e[i + 1].value)) {
        if (freq > max_freq) {
          mode_value = e[i].value;
          mode_index = e[i].index;
          max_freq = freq;
        }
        freq = 0;
      }
    }
    if (values) values[r] = mode_value;
    if (indices) indices[r] = mode_index;
  };
  return for_each_row(ctx, rows, bytes, "mode", row);
}

}  // namespace kernels
}  // namespace aotc_rt
