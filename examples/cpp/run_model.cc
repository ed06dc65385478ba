// Loads a .pt2 package with the aotc C++ API, runs its first model on inputs
// filled with a ramp, and prints each output's shape and checksum.
//   run_model PKG [DEVICE]
#include <cstdio>
#include <vector>

#include "aotc/aotc.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PKG [DEVICE]\n", argv[0]);
    return 2;
  }
  auto package = aotc::Package::open(argv[1]);
  if (!package.ok()) {
    std::fprintf(stderr, "error: %s\n", package.status().message().c_str());
    return 1;
  }
  aotc::ModelOptions options;
  options.device = argc > 2 ? argv[2] : "cpu";
  auto model = aotc::Model::load(package.value(), options);
  if (!model.ok()) {
    std::fprintf(stderr, "error: %s\n", model.status().message().c_str());
    return 1;
  }
  // One float32 buffer per input, sized from the static spec (dynamic dims: 2).
  std::vector<std::vector<float>> storage;
  std::vector<aotc::TensorView> inputs;
  for (const auto& spec : model.value().inputs()) {
    std::vector<int64_t> sizes;
    int64_t numel = 1;
    for (int64_t size : spec.sizes) {
      sizes.push_back(size >= 0 ? size : 2);
      numel *= sizes.back();
    }
    storage.emplace_back(numel);
    for (int64_t i = 0; i < numel; ++i) storage.back()[i] = 0.01f * float(i % 97) - 0.3f;
    auto view = aotc::TensorView::of(storage.back().data(), sizes);
    if (!view.ok()) {
      std::fprintf(stderr, "error: %s\n", view.status().message().c_str());
      return 1;
    }
    inputs.push_back(view.value());
  }
  auto outputs = model.value().run(inputs);
  if (!outputs.ok()) {
    std::fprintf(stderr, "error: %s\n", outputs.status().message().c_str());
    return 1;
  }
  for (const auto& out : outputs.value()) {
    double sum = 0;
    const float* data = out.data<float>();
    for (int64_t i = 0; data && i < out.numel(); ++i) sum += data[i];
    std::printf("output numel=%lld sum=%.6f\n", static_cast<long long>(out.numel()), sum);
  }
  return 0;
}
