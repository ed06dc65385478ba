// Layout helpers for tensor views: contiguity, byte sizes, and the strided
// gather/scatter that stages non-contiguous CPU inputs (docs/ABI.md: inputs
// reach the model library contiguous; mutated ones are written back).
#pragma once

#include <cstddef>
#include <cstdint>

#include "aotc/aotc.h"
#include "status.h"

namespace aotc::internal {

// Row-major strides (in elements) for |sizes|.
void set_contiguous_strides(const int64_t* sizes, int ndim, int64_t* strides);
// True when |view| is row-major dense (strides of size-1 dims ignored).
bool is_contiguous(const aotc_tensor_view_t& view);
int64_t view_numel(const aotc_tensor_view_t& view);
// numel * element size.
uint64_t view_bytes(const aotc_tensor_view_t& view);
// Copies |src| (any strides) into dense memory at |dst|.
void gather_strided(const aotc_tensor_view_t& src, void* dst);
// Copies dense |src| back into |dst|'s strided layout.
void scatter_strided(const void* src, const aotc_tensor_view_t& dst);
// Caller-provided outputs must not overlap inputs or each other.
Status check_no_overlap(const aotc_tensor_view_t* inputs, size_t num_inputs,
                        const aotc_tensor_view_t* outputs, size_t num_outputs);

}  // namespace aotc::internal
