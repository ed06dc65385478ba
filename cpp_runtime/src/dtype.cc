#include "dtype.h"

namespace aotc::internal {
namespace {
struct DtypeInfo {
  const char* name;
  size_t size;
};
constexpr DtypeInfo kDtypes[kNumDtypes] = {
    {"float32", 4}, {"float16", 2}, {"bfloat16", 2}, {"float64", 8}, {"int8", 1},
    {"uint8", 1},   {"int16", 2},   {"int32", 4},    {"int64", 8},   {"bool", 1},
};
}  // namespace

const char* dtype_name(int dtype) {
  return dtype >= 0 && dtype < kNumDtypes ? kDtypes[dtype].name : "unknown";
}

size_t dtype_size(int dtype) { return dtype >= 0 && dtype < kNumDtypes ? kDtypes[dtype].size : 0; }

int dtype_from_name(std::string_view name) {
  for (int i = 0; i < kNumDtypes; ++i)
    if (name == kDtypes[i].name) return i;
  return -1;
}

std::string format_shape(int dtype, const int64_t* sizes, int ndim) {
  std::string out = dtype_name(dtype);
  out += "[";
  for (int i = 0; i < ndim; ++i) {
    if (i) out += ", ";
    out += std::to_string(sizes[i]);
  }
  out += "]";
  return out;
}

}  // namespace aotc::internal
