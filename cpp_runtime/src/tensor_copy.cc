#include "tensor_copy.h"

#include <cstring>

#include "dtype.h"

namespace aotc::internal {
namespace {

// Walks every element of |view| in row-major order, calling fn(element_offset, dense_index).
template <typename Fn>
void for_each_element(const aotc_tensor_view_t& view, Fn fn) {
  int64_t numel = view_numel(view);
  if (numel == 0) return;
  int64_t index[AOTC_MAX_DIMS] = {0};
  int64_t offset = 0;
  for (int64_t n = 0; n < numel; ++n) {
    fn(offset, n);
    for (int d = view.ndim - 1; d >= 0; --d) {
      if (++index[d] < view.sizes[d]) {
        offset += view.strides[d];
        break;
      }
      offset -= view.strides[d] * (view.sizes[d] - 1);
      index[d] = 0;
    }
  }
}

// [lo, hi) byte range a view can touch.
void byte_range(const aotc_tensor_view_t& view, uintptr_t* lo, uintptr_t* hi) {
  uint64_t span = 0;
  for (int d = 0; d < view.ndim; ++d)
    if (view.sizes[d] > 0) span += uint64_t(view.strides[d]) * uint64_t(view.sizes[d] - 1);
  *lo = reinterpret_cast<uintptr_t>(view.data);
  *hi = *lo + (view_numel(view) > 0 ? (span + 1) * dtype_size(view.dtype) : 0);
}

}  // namespace

void set_contiguous_strides(const int64_t* sizes, int ndim, int64_t* strides) {
  int64_t stride = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    strides[d] = stride;
    stride *= sizes[d] > 0 ? sizes[d] : 1;
  }
}

bool is_contiguous(const aotc_tensor_view_t& view) {
  int64_t expected = 1;
  for (int d = view.ndim - 1; d >= 0; --d) {
    if (view.sizes[d] == 0) return true;
    if (view.sizes[d] != 1 && view.strides[d] != expected) return false;
    expected *= view.sizes[d];
  }
  return true;
}

int64_t view_numel(const aotc_tensor_view_t& view) {
  int64_t numel = 1;
  for (int d = 0; d < view.ndim; ++d) numel *= view.sizes[d];
  return numel;
}

uint64_t view_bytes(const aotc_tensor_view_t& view) {
  return uint64_t(view_numel(view)) * dtype_size(view.dtype);
}

void gather_strided(const aotc_tensor_view_t& src, void* dst) {
  size_t size = dtype_size(src.dtype);
  const auto* from = static_cast<const uint8_t*>(src.data);
  auto* to = static_cast<uint8_t*>(dst);
  for_each_element(src, [&](int64_t offset, int64_t n) {
    std::memcpy(to + n * size, from + offset * int64_t(size), size);
  });
}

void scatter_strided(const void* src, const aotc_tensor_view_t& dst) {
  size_t size = dtype_size(dst.dtype);
  const auto* from = static_cast<const uint8_t*>(src);
  auto* to = static_cast<uint8_t*>(dst.data);
  for_each_element(dst, [&](int64_t offset, int64_t n) {
    std::memcpy(to + offset * int64_t(size), from + n * size, size);
  });
}

Status check_no_overlap(const aotc_tensor_view_t* inputs, size_t num_inputs,
                        const aotc_tensor_view_t* outputs, size_t num_outputs) {
  for (size_t o = 0; o < num_outputs; ++o) {
    uintptr_t lo, hi;
    byte_range(outputs[o], &lo, &hi);
    if (lo == hi) continue;
    auto overlaps = [&](const aotc_tensor_view_t& other) {
      uintptr_t a, b;
      byte_range(other, &a, &b);
      return a < b && a < hi && lo < b;
    };
    for (size_t i = 0; i < num_inputs; ++i)
      if (overlaps(inputs[i]))
        return Error(Code::kInvalidArgument,
                     "output %zu overlaps input %zu: outputs need their own memory", o, i);
    for (size_t p = 0; p < o; ++p)
      if (overlaps(outputs[p]))
        return Error(Code::kInvalidArgument, "output %zu overlaps output %zu", o, p);
  }
  return OkStatus();
}

}  // namespace aotc::internal
