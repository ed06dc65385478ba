// Element types: names and sizes shared by the runtime's checks and messages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "aotc/model_abi.h"

namespace aotc::internal {

inline constexpr int kNumDtypes = 10;

// "float32", ...; "unknown" for a value outside aotc_abi_dtype_e.
const char* dtype_name(int dtype);
// Bytes per element; 0 when unknown.
size_t dtype_size(int dtype);
// Inverse of dtype_name; -1 when unknown.
int dtype_from_name(std::string_view name);

// "float32[8, 64]" for messages.
std::string format_shape(int dtype, const int64_t* sizes, int ndim);

}  // namespace aotc::internal
