// Tests of the value types of the header-only C++ API (aotc.hpp): Status,
// Result, TensorView, Device, BFloat16/Float16 conversions. Packages and
// models are exercised end to end by the runtime's own tests.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "aotc/aotc.hpp"
#include "testing.h"

namespace {

static_assert(!std::is_copy_constructible<aotc::Result<int>>::value, "Result is move-only");
static_assert(std::is_move_constructible<aotc::Result<int>>::value, "Result moves");
static_assert(!std::is_copy_constructible<aotc::Package>::value, "Package is not copyable");
static_assert(!std::is_copy_constructible<aotc::Model>::value, "Model is not copyable");
static_assert(!std::is_copy_constructible<aotc::Tensor>::value, "Tensor is not copyable");
static_assert(std::is_nothrow_move_constructible<aotc::Model>::value, "Model moves");
static_assert(aotc::dtype_of<float>() == aotc::DType::kFloat32, "");
static_assert(aotc::dtype_of<const int64_t>() == aotc::DType::kInt64, "");
static_assert(aotc::dtype_of<aotc::BFloat16>() == aotc::DType::kBFloat16, "");
static_assert(aotc::dtype_size(aotc::DType::kFloat16) == 2, "");
static_assert(static_cast<int>(aotc::StatusCode::kIncompatible) == AOTC_INCOMPATIBLE, "");

float from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

TEST(status_and_result) {
  aotc::Status ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_TRUE(aotc::Status(nullptr).ok());
  aotc::Status error(aotc::StatusCode::kNotFound, "no model 'x'");
  EXPECT_TRUE(!error.ok());
  EXPECT_TRUE(error.code() == aotc::StatusCode::kNotFound);
  EXPECT_EQ(error.message(), "no model 'x'");

  aotc::Result<int> value = 7;
  EXPECT_OK(value);
  EXPECT_EQ(*value, 7);
  aotc::Result<int> failed = error;
  EXPECT_ERROR_CONTAINS(failed, "no model");
  // A Result from an OK status becomes INTERNAL, never "ok without a value".
  aotc::Result<int> bogus = aotc::Status();
  EXPECT_TRUE(!bogus.ok());
  EXPECT_TRUE(bogus.status().code() == aotc::StatusCode::kInternal);

  aotc::Result<std::vector<int>> moved = std::vector<int>{1, 2};
  std::vector<int> taken = std::move(moved).value();
  EXPECT_EQ(taken.size(), 2u);
}

aotc::Status returns_early(bool fail, int* reached) {
  AOTC_CPP_RETURN_IF_ERROR(fail ? aotc::Status(aotc::StatusCode::kInternal, "boom")
                                : aotc::Status());
  *reached = 1;
  return aotc::Status();
}

aotc::Result<int> doubled(aotc::Result<int> input) {
  AOTC_CPP_ASSIGN_OR_RETURN(int x, std::move(input));
  return 2 * x;
}

TEST(propagation_macros) {
  int reached = 0;
  EXPECT_ERROR_CONTAINS(returns_early(true, &reached), "boom");
  EXPECT_EQ(reached, 0);
  EXPECT_OK(returns_early(false, &reached));
  EXPECT_EQ(reached, 1);
  EXPECT_EQ(*doubled(21), 42);
  EXPECT_ERROR_CONTAINS(doubled(aotc::Status(aotc::StatusCode::kIoError, "disk")), "disk");
}

TEST(tensor_view) {
  std::vector<float> data(24);
  auto view = aotc::TensorView::of(data.data(), {2, 3, 4});
  EXPECT_OK(view);
  EXPECT_EQ(view->ndim(), 3);
  EXPECT_TRUE(view->strides() == (std::vector<int64_t>{12, 4, 1}));
  EXPECT_EQ(view->numel(), 24);
  EXPECT_EQ(view->nbytes(), 96u);
  EXPECT_TRUE(view->is_contiguous());
  EXPECT_TRUE(view->data<float>() == data.data());
  EXPECT_TRUE(view->data<int32_t>() == nullptr);
  EXPECT_TRUE(view->device() == aotc::Device::cpu());
  EXPECT_EQ(view->c_view().dtype, AOTC_FLOAT32);

  auto scalar = aotc::TensorView::of(data.data(), {});
  EXPECT_OK(scalar);
  EXPECT_EQ(scalar->numel(), 1);
  auto empty = aotc::TensorView::contiguous(nullptr, aotc::DType::kInt64, {3, 0});
  EXPECT_OK(empty);
  EXPECT_EQ(empty->numel(), 0);
  EXPECT_TRUE(empty->strides() == (std::vector<int64_t>{1, 1}));

  auto transposed = aotc::TensorView::strided(data.data(), aotc::DType::kFloat32, {4, 6}, {1, 4});
  EXPECT_OK(transposed);
  EXPECT_TRUE(!transposed->is_contiguous());
  auto on_gpu =
      aotc::TensorView::contiguous(data.data(), aotc::DType::kFloat32, {24}, aotc::Device::cuda(1));
  EXPECT_OK(on_gpu);
  EXPECT_EQ(on_gpu->c_view().device_type, AOTC_DEVICE_CUDA);
  EXPECT_EQ(on_gpu->c_view().device_index, 1);

  EXPECT_ERROR_CONTAINS(aotc::TensorView::of(data.data(), std::vector<int64_t>(17, 1)),
                        "at most 16");
  EXPECT_ERROR_CONTAINS(aotc::TensorView::of(data.data(), {2, -1}), "negative size");
  EXPECT_ERROR_CONTAINS(aotc::TensorView::of(data.data(), {1LL << 40, 1LL << 40}), "overflows");
  EXPECT_ERROR_CONTAINS(aotc::TensorView::contiguous(nullptr, aotc::DType::kFloat32, {2}),
                        "NULL data");
  EXPECT_ERROR_CONTAINS(
      aotc::TensorView::contiguous(data.data(), static_cast<aotc::DType>(77), {2}), "bad dtype");
  EXPECT_ERROR_CONTAINS(aotc::TensorView::strided(data.data(), aotc::DType::kFloat32, {2, 3}, {1}),
                        "strides");
}

TEST(device) {
  EXPECT_TRUE(*aotc::Device::parse("cpu") == aotc::Device::cpu());
  EXPECT_TRUE(*aotc::Device::parse("cuda") == aotc::Device::cuda(0));
  EXPECT_TRUE(*aotc::Device::parse("cuda:3") == aotc::Device::cuda(3));
  EXPECT_EQ(aotc::Device::cuda(2).to_string(), "cuda:2");
  EXPECT_ERROR_CONTAINS(aotc::Device::parse("cuda:"), "bad device");
  EXPECT_ERROR_CONTAINS(aotc::Device::parse("cuda:x"), "bad device");
  EXPECT_ERROR_CONTAINS(aotc::Device::parse("gpu"), "bad device");
  EXPECT_ERROR_CONTAINS(aotc::Device::parse("cuda:99999999999"), "bad device");
}

TEST(bfloat16) {
  EXPECT_EQ(aotc::BFloat16::from_float(1.0f).bits, 0x3f80);
  EXPECT_EQ(aotc::BFloat16::from_float(-2.0f).bits, 0xc000);
  // Ties round to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7.
  EXPECT_EQ(aotc::BFloat16::from_float(from_bits(0x3f808000)).bits, 0x3f80);
  EXPECT_EQ(aotc::BFloat16::from_float(from_bits(0x3f818000)).bits, 0x3f82);
  EXPECT_EQ(aotc::BFloat16::from_float(from_bits(0x3f808001)).bits, 0x3f81);
  EXPECT_EQ(aotc::BFloat16::from_float(INFINITY).bits, 0x7f80);
  EXPECT_EQ(aotc::BFloat16::from_float(std::numeric_limits<float>::max()).bits, 0x7f80);
  EXPECT_TRUE(std::isnan(aotc::BFloat16::from_float(NAN).to_float()));
  EXPECT_TRUE(std::isnan(aotc::BFloat16::from_float(from_bits(0x7f800001)).to_float()));
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const aotc::BFloat16 value{static_cast<uint16_t>(bits)};
    if (std::isnan(value.to_float())) continue;
    EXPECT_EQ(aotc::BFloat16::from_float(value.to_float()).bits, bits);
  }
}

TEST(float16) {
  EXPECT_EQ(aotc::Float16::from_float(1.0f).bits, 0x3c00);
  EXPECT_EQ(aotc::Float16::from_float(-2.0f).bits, 0xc000);
  EXPECT_EQ(aotc::Float16::from_float(65504.0f).bits, 0x7bff);
  EXPECT_EQ(aotc::Float16::from_float(65519.0f).bits, 0x7bff);
  EXPECT_EQ(aotc::Float16::from_float(65520.0f).bits, 0x7c00);  // rounds to infinity
  EXPECT_EQ(aotc::Float16::from_float(-INFINITY).bits, 0xfc00);
  EXPECT_EQ(aotc::Float16::from_float(std::ldexp(1.0f, -24)).bits, 0x0001);  // min subnormal
  EXPECT_EQ(aotc::Float16::from_float(std::ldexp(1.0f, -25)).bits, 0x0000);  // tie to even
  EXPECT_EQ(aotc::Float16::from_float(std::ldexp(3.0f, -26)).bits, 0x0001);
  EXPECT_EQ(aotc::Float16::from_float(std::ldexp(1.0f, -14)).bits, 0x0400);         // min normal
  EXPECT_EQ(aotc::Float16::from_float(1.0f + std::ldexp(1.0f, -11)).bits, 0x3c00);  // tie
  EXPECT_EQ(aotc::Float16::from_float(1.0f + std::ldexp(3.0f, -11)).bits, 0x3c02);  // tie
  EXPECT_TRUE(std::isnan(aotc::Float16::from_float(NAN).to_float()));
  EXPECT_TRUE(std::isnan(aotc::Float16{0x7e00}.to_float()));
  EXPECT_TRUE(aotc::Float16{0x0001}.to_float() == std::ldexp(1.0f, -24));
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const aotc::Float16 value{static_cast<uint16_t>(bits)};
    if (std::isnan(value.to_float())) continue;
    EXPECT_EQ(aotc::Float16::from_float(value.to_float()).bits, bits);
  }
}

}  // namespace

AOTC_TEST_MAIN()
