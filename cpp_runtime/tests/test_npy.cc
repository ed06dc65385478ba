// Tests of the NPY reader/writer used by aotc-run (cpp_runtime/tools/npy.h):
// round trips of every dtype, headers as NumPy and other writers spell them,
// and malformed files, which must give an error naming the file, never a
// crash.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "npy.h"
#include "testing.h"

namespace {

using aotc::DType;
using aotc::tools::encode_npy;
using aotc::tools::NpyArray;
using aotc::tools::parse_npy;

// An NPY file with a hand-written header (padded to 64 bytes like NumPy's
// unless |pad| is false) followed by |data|.
std::string make_npy(const std::string& header, const std::string& data, int major = 1,
                     bool pad = true) {
  const size_t prefix = major == 1 ? 10 : 12;
  std::string text = header;
  if (pad) {
    while ((prefix + text.size() + 1) % 64 != 0) text += ' ';
    text += '\n';
  }
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(major);
  out += '\0';
  for (size_t i = 0; i < (major == 1 ? 2u : 4u); ++i) {
    out += static_cast<char>((text.size() >> (8 * i)) & 0xff);
  }
  return out + text + data;
}

aotc::Result<NpyArray> parse(const std::string& bytes) {
  return parse_npy(bytes.data(), bytes.size(), "t.npy");
}

std::string floats(std::vector<float> values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4);
}

TEST(round_trip_every_dtype) {
  const DType dtypes[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat64,
                          DType::kInt8,    DType::kUInt8,   DType::kInt16,    DType::kInt32,
                          DType::kInt64,   DType::kBool};
  for (DType dtype : dtypes) {
    const std::vector<int64_t> shape = {2, 3};
    std::vector<uint8_t> data(6 * aotc::dtype_size(dtype));
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + 1);
    if (dtype == DType::kBool) {
      for (size_t i = 0; i < data.size(); ++i) data[i] = i % 2;
    }
    auto encoded = encode_npy(dtype, shape, data.data());
    EXPECT_OK(encoded);
    if (!encoded.ok()) continue;
    EXPECT_EQ(encoded->size() % 64, data.size() % 64);  // header padded to 64 bytes
    EXPECT_EQ((*encoded)[6], 1);                        // version 1.0
    auto decoded = parse(*encoded);
    EXPECT_OK(decoded);
    if (!decoded.ok()) continue;
    EXPECT_TRUE(decoded->dtype == dtype);
    EXPECT_TRUE(decoded->shape == shape);
    EXPECT_TRUE(decoded->data == data);
  }
}

TEST(round_trip_shapes) {
  const std::vector<std::vector<int64_t>> shapes = {
      {}, {1}, {5}, {0}, {0, 4}, {3, 0, 2}, {2, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2}};
  for (const auto& shape : shapes) {
    int64_t numel = 1;
    for (int64_t dim : shape) numel *= dim;
    std::vector<float> data(static_cast<size_t>(numel));
    for (size_t i = 0; i < data.size(); ++i) data[i] = 0.5f * static_cast<float>(i);
    auto encoded = encode_npy(DType::kFloat32, shape, data.empty() ? nullptr : data.data());
    EXPECT_OK(encoded);
    if (!encoded.ok()) continue;
    auto decoded = parse(*encoded);
    EXPECT_OK(decoded);
    if (!decoded.ok()) continue;
    EXPECT_TRUE(decoded->shape == shape);
    EXPECT_EQ(decoded->numel(), numel);
    EXPECT_EQ(decoded->data.size(), data.size() * 4);
    EXPECT_TRUE(data.empty() ||
                std::memcmp(decoded->data.data(), data.data(), data.size() * 4) == 0);
  }
}

TEST(header_spellings) {
  const std::string six = floats({1, 2, 3, 4, 5, 6});
  // As NumPy writes it.
  EXPECT_OK(parse(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", six)));
  // Other key order, double quotes, no trailing comma, no padding.
  EXPECT_OK(parse(make_npy("{\"shape\": (2, 3), \"fortran_order\": False, \"descr\": \"<f4\"}", six,
                           1, false)));
  // Python 2 longs and odd spacing.
  EXPECT_OK(parse(make_npy("{ 'descr' :'<f4','fortran_order':False,'shape':(2L,3L,) }", six)));
  // 1-d, scalar, 2.0 and 3.0 headers.
  EXPECT_OK(parse(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", six)));
  EXPECT_OK(
      parse(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", floats({1}))));
  EXPECT_OK(parse(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", six, 2)));
  EXPECT_OK(parse(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", six, 3)));
  // One-byte types spelled with '<', and '=' for native order.
  auto i1 = parse(make_npy("{'descr': '<i1', 'fortran_order': False, 'shape': (2,), }", "ab"));
  EXPECT_OK(i1);
  if (i1.ok()) EXPECT_TRUE(i1->dtype == DType::kInt8);
  auto native = parse(
      make_npy("{'descr': '=i4', 'fortran_order': False, 'shape': (1,), }", std::string(4, '\0')));
  EXPECT_OK(native);
  if (native.ok()) EXPECT_TRUE(native->dtype == DType::kInt32);
  // '<u2' is bfloat16 bits.
  auto bf16 = parse(make_npy("{'descr': '<u2', 'fortran_order': False, 'shape': (1,), }",
                             std::string("\x80\x3f", 2)));
  EXPECT_OK(bf16);
  if (bf16.ok()) EXPECT_TRUE(bf16->dtype == DType::kBFloat16);
}

TEST(malformed_files) {
  const std::string six = floats({1, 2, 3, 4, 5, 6});
  auto with_header = [&](const std::string& header) { return parse(make_npy(header, six)); };
  EXPECT_ERROR_CONTAINS(parse(""), "not an NPY file");
  EXPECT_ERROR_CONTAINS(parse("\x93NUMP"), "not an NPY file");
  EXPECT_ERROR_CONTAINS(parse("PK\x03\x04 not npy at all"), "t.npy");
  EXPECT_ERROR_CONTAINS(parse(std::string("\x93NUMPY\x01", 7)), "not an NPY file");
  EXPECT_ERROR_CONTAINS(parse(std::string("\x93NUMPY\x04\x00", 8)), "version 4.0");
  EXPECT_ERROR_CONTAINS(parse(std::string("\x93NUMPY\x01\x00\x10", 9)), "header length");
  EXPECT_ERROR_CONTAINS(parse(std::string("\x93NUMPY\x01\x00\xff\xff{}", 12)), "exceeds");
  EXPECT_ERROR_CONTAINS(parse(std::string("\x93NUMPY\x02\x00\xff\xff\xff\xff", 12)), "exceeds");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), "),
                        "malformed NPY header");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)"),
                        "expected ',' or '}'");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<f4', 'shape': (2, 3), }"),
                        "missing key 'fortran_order'");
  EXPECT_ERROR_CONTAINS(with_header("{'fortran_order': False, 'shape': (2, 3), }"),
                        "missing key 'descr'");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<f4', 'fortran_order': False}"),
                        "missing key 'shape'");
  EXPECT_ERROR_CONTAINS(
      with_header("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (6,)}"),
      "duplicate key 'descr'");
  EXPECT_ERROR_CONTAINS(
      with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}"),
      "unexpected key 'x'");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3)}"),
                        "fortran_order=True is not supported");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3)}"),
                        "expected True or False");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3)}"),
                        "big-endian");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<c8', 'fortran_order': False, 'shape': (3,)}"),
                        "unsupported dtype '<c8'");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '|f4', 'fortran_order': False, 'shape': (6,)}"),
                        "unsupported dtype");
  EXPECT_ERROR_CONTAINS(
      with_header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,)}"),
      "structured dtypes");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (6)}"),
                        "not a tuple");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': [6]}"),
                        "shape must be a tuple");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-6,)}"),
                        "non-negative integer");
  EXPECT_ERROR_CONTAINS(
      with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}"),
      "dimension too large");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': "
                                    "(4294967296, 4294967296, 4294967296)}"),
                        "overflows");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': "
                                    "(1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,6)}"),
                        "more than 16 dimensions");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<f\\x34', 'fortran_order': False, 'shape': (6,)}"),
                        "escapes");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<f4, 'fortran_order': False, 'shape': (6,)}"),
                        "t.npy");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (6,)} x"),
                        "unexpected text");
  EXPECT_ERROR_CONTAINS(with_header(""), "expected '{'");
  // Data size must match the shape exactly.
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (7,)}"),
                        "truncated");
  EXPECT_ERROR_CONTAINS(with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (5,)}"),
                        "trailing bytes");
  // bool elements are 0 or 1.
  EXPECT_ERROR_CONTAINS(
      parse(make_npy("{'descr': '|b1', 'fortran_order': False, 'shape': (2,)}", "\x01\x02")),
      "bool element 1 is 2");
}

// Every prefix of a valid file and every single-byte corruption of its header
// must fail cleanly (or, for some corruptions, still parse), never crash.
TEST(truncations_and_corruptions_do_not_crash) {
  std::vector<int16_t> data = {1, -2, 3, -4};
  auto encoded = encode_npy(DType::kInt16, {2, 2}, data.data());
  EXPECT_OK(encoded);
  if (!encoded.ok()) return;
  const std::string& good = *encoded;
  for (size_t n = 0; n < good.size(); ++n) {
    auto result = parse_npy(good.data(), n, "t.npy");
    EXPECT_TRUE(!result.ok());
    if (!result.ok()) EXPECT_TRUE(result.status().message().find("t.npy") != std::string::npos);
  }
  uint32_t state = 12345;
  for (int trial = 0; trial < 4000; ++trial) {
    std::string bad = good;
    state = state * 1664525u + 1013904223u;
    const size_t pos = (state >> 8) % (good.size() - 8);
    state = state * 1664525u + 1013904223u;
    bad[pos] = static_cast<char>(state >> 24);
    auto result = parse(bad);
    if (!result.ok()) {
      EXPECT_TRUE(result.status().message().find("t.npy") != std::string::npos);
    } else {
      EXPECT_EQ(result->data.size(),
                static_cast<size_t>(result->numel()) * aotc::dtype_size(result->dtype));
    }
  }
}

TEST(files) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/aotc_test_npy_" +
                           std::to_string(reinterpret_cast<uintptr_t>(&path) & 0xffff) + ".npy";
  std::vector<double> data = {1.5, -2.25, 1e300};
  EXPECT_OK(aotc::tools::write_npy_file(path, DType::kFloat64, {3}, data.data()));
  auto read = aotc::tools::read_npy_file(path);
  EXPECT_OK(read);
  if (read.ok()) {
    EXPECT_TRUE(read->dtype == DType::kFloat64);
    EXPECT_TRUE(read->shape == std::vector<int64_t>{3});
    EXPECT_TRUE(std::memcmp(read->data.data(), data.data(), 24) == 0);
  }
  std::remove(path.c_str());
  EXPECT_ERROR_CONTAINS(aotc::tools::read_npy_file(path), path);
  EXPECT_ERROR_CONTAINS(
      aotc::tools::write_npy_file("/nonexistent-dir/x.npy", DType::kFloat32, {0}, nullptr),
      "/nonexistent-dir/x.npy");
  EXPECT_ERROR_CONTAINS(encode_npy(DType::kFloat32, {2}, nullptr), "NULL data");
  EXPECT_ERROR_CONTAINS(encode_npy(static_cast<DType>(42), {2}, nullptr), "bad dtype");
}

TEST(descr_names) {
  EXPECT_EQ(std::string(aotc::tools::npy_descr(DType::kBFloat16)), "<u2");
  EXPECT_EQ(std::string(aotc::tools::npy_descr(DType::kBool)), "|b1");
  EXPECT_TRUE(aotc::tools::npy_descr(static_cast<DType>(99)) == nullptr);
}

}  // namespace

AOTC_TEST_MAIN()
