// NPY files (NumPy's .npy format, versions 1.0, 2.0 and 3.0) for aotc-run:
// read from a file or a memory buffer, write to a file. Only what tensors
// need: little-endian, C order, and the dtypes of aotc::DType, with bfloat16
// stored as raw bits under '<u2' (NumPy has no bfloat16).
//
//   descr  dtype        descr  dtype
//   '<f4'  float32      '<i2'  int16
//   '<f2'  float16      '<i4'  int32
//   '<f8'  float64      '<i8'  int64
//   '|i1'  int8         '|b1'  bool
//   '|u1'  uint8        '<u2'  bfloat16 (raw bits)
//
// Malformed input gives an error Status that names the file, never a crash.
// Thread-compatible: no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "aotc/aotc.hpp"

namespace aotc::tools {

// A decoded array: row-major, little-endian element bytes.
struct NpyArray {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // numel() * dtype_size(dtype) bytes

  int64_t numel() const;
};

// The descr written for |dtype| ("<f4", ...); NULL for an unknown dtype.
const char* npy_descr(DType dtype);

// Parses the NPY bytes at |data| (lent for the call; copied). |name| is the
// source named in error messages, e.g. "x.npy" or "model.pt2:input_0.npy".
Result<NpyArray> parse_npy(const void* data, size_t size, const std::string& name);

// Reads and parses the file at |path|.
Result<NpyArray> read_npy_file(const std::string& path);

// Encodes |shape| and numel * dtype_size(dtype) bytes at |data| (lent for
// the call; may be NULL when empty) as NPY: version 1.0, or 2.0 when the
// header needs it; header padded to 64 bytes like NumPy's.
Result<std::string> encode_npy(DType dtype, const std::vector<int64_t>& shape, const void* data);

// encode_npy() into the file at |path|, written to "<path>.tmp" then renamed.
Status write_npy_file(const std::string& path, DType dtype, const std::vector<int64_t>& shape,
                      const void* data);

}  // namespace aotc::tools
