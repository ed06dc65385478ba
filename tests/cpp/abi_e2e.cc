// End-to-end test of the runtime's public C API (aotc.h) against the fixture
// packages (tests/fixture_packages.py builds them; tests/test_abi_fixtures.py
// runs this program). Usage:
//   abi_e2e affine=PATH barrier=PATH dynamic=PATH kernel_error=PATH
//           future_abi=PATH missing_symbol=PATH
// Every argument is optional: checks whose package is missing are skipped.
// Prints one line per check; exits 1 if any check failed.
#include <aotc/aotc.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

int g_failed = 0;
int g_passed = 0;

// Takes ownership of an aotc_status_t*.
class Status {
 public:
  explicit Status(aotc_status_t* status = nullptr) : status_(status) {}
  Status(const Status&) = delete;
  Status& operator=(const Status&) = delete;
  ~Status() { aotc_status_free(status_); }
  bool ok() const { return status_ == nullptr; }
  int code() const { return aotc_status_code(status_); }
  std::string message() const { return aotc_status_message(status_); }
  std::string describe() const {
    if (ok()) return "OK";
    return std::string(aotc_status_code_name(code())) + ": " + message();
  }

 private:
  aotc_status_t* status_;
};

void report(const std::string& name, bool ok, const std::string& detail = "") {
  std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.empty() ? "" : ": ",
              detail.c_str());
  std::fflush(stdout);
  (ok ? g_passed : g_failed)++;
}

// Expects failure with |code| and a message containing |text|.
void expect_error(const std::string& name, aotc_status_t* raw, int code, const std::string& text) {
  Status status(raw);
  if (status.ok()) return report(name, false, "succeeded, expected " + text);
  const bool ok = status.code() == code && status.message().find(text) != std::string::npos;
  report(name, ok,
         ok ? ""
            : "got " + status.describe() + "; expected " + aotc_status_code_name(code) +
                  " containing '" + text + "'");
}

aotc_tensor_view_t view(void* data, int32_t dtype, std::vector<int64_t> sizes) {
  aotc_tensor_view_t v;
  std::memset(&v, 0, sizeof(v));
  v.data = data;
  v.dtype = dtype;
  v.device_type = AOTC_DEVICE_CPU;
  v.ndim = static_cast<int32_t>(sizes.size());
  for (size_t d = 0; d < sizes.size(); ++d) v.sizes[d] = sizes[d];
  aotc_tensor_view_set_contiguous(&v);
  return v;
}

// Owns a package and one loaded model.
struct Loaded {
  aotc_package_t* package = nullptr;
  aotc_model_t* model = nullptr;
  ~Loaded() {
    if (model != nullptr) aotc_model_release(model);
    if (package != nullptr) aotc_package_release(package);
  }
};

aotc_status_t* load(const std::string& path, Loaded* out, int library_loading = 0) {
  aotc_package_options_t options;
  aotc_package_options_initialize(&options);
  options.library_loading = library_loading;
  aotc_status_t* status = aotc_package_open_file(path.c_str(), &options, &out->package);
  if (status != nullptr) return status;
  return aotc_model_load(out->package, nullptr, &out->model);
}

// --- affine: weights and inputs shared with tests/fixture_packages.py --------
// W[k][j] = ((k*16 + j) % 7 - 3) / 4, b[j] = ((j % 5) - 2) / 2: every product
// and sum below is exact in float32, so results are compared exactly.
float affine_w(int k, int j) { return static_cast<float>((k * 16 + j) % 7 - 3) * 0.25f; }
float affine_b(int j) { return static_cast<float>(j % 5 - 2) * 0.5f; }
float affine_x(int seed, int r, int k) {
  return static_cast<float>((seed * 31 + r * 8 + k) % 11 - 5) * 0.5f;
}

bool check_affine(const float* x, const float* y, const float* r, std::string* why) {
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 16; ++j) {
      float acc = affine_b(j);
      for (int k = 0; k < 8; ++k) acc += x[i * 8 + k] * affine_w(k, j);
      if (y[i * 16 + j] != acc || r[i * 16 + j] != (acc > 0 ? acc : 0.0f)) {
        *why = "y[" + std::to_string(i) + "][" + std::to_string(j) +
               "] = " + std::to_string(y[i * 16 + j]) + ", expected " + std::to_string(acc);
        return false;
      }
    }
  return true;
}

void affine_basic(aotc_model_t* model) {
  bool ok = aotc_model_input_count(model) == 1 && aotc_model_output_count(model) == 2;
  aotc_tensor_spec_t spec;
  Status s(aotc_model_input_spec(model, 0, &spec));
  ok = ok && s.ok() && std::strcmp(spec.name, "x") == 0 && spec.dtype == AOTC_FLOAT32 &&
       spec.ndim == 2 && spec.sizes[0] == 4 && spec.sizes[1] == 8 && !spec.mutated;
  report("affine specs", ok);

  float x[32], y[64], r[64];
  for (int i = 0; i < 4; ++i)
    for (int k = 0; k < 8; ++k) x[i * 8 + k] = affine_x(1, i, k);
  aotc_tensor_view_t in = view(x, AOTC_FLOAT32, {4, 8});
  aotc_tensor_view_t outs[2] = {view(y, AOTC_FLOAT32, {4, 16}), view(r, AOTC_FLOAT32, {4, 16})};
  Status run(aotc_model_run(model, &in, 1, outs, 2, nullptr));
  std::string why;
  report("affine run into caller memory", run.ok() && check_affine(x, y, r, &why),
         run.ok() ? why : run.describe());

  aotc_tensor_t* allocated[2] = {nullptr, nullptr};
  Status run2(aotc_model_run_alloc(model, &in, 1, nullptr, allocated, 2));
  ok = run2.ok();
  if (ok) {
    const aotc_tensor_view_t* vy = aotc_tensor_view(allocated[0]);
    const aotc_tensor_view_t* vr = aotc_tensor_view(allocated[1]);
    ok = vy->ndim == 2 && vy->sizes[0] == 4 && vy->sizes[1] == 16 && vy->strides[0] == 16 &&
         vy->strides[1] == 1 && vy->data != vr->data && vy->data != in.data &&
         check_affine(x, static_cast<float*>(vy->data), static_cast<float*>(vr->data), &why);
    aotc_tensor_release(allocated[0]);
    aotc_tensor_release(allocated[1]);
  }
  report("affine run_alloc", ok, run2.ok() ? why : run2.describe());
}

void affine_bad_inputs(aotc_model_t* model) {
  float x[64] = {0}, y[64], r[64];
  double xd[32] = {0};
  aotc_tensor_view_t outs[2] = {view(y, AOTC_FLOAT32, {4, 16}), view(r, AOTC_FLOAT32, {4, 16})};
  aotc_tensor_view_t two[2] = {view(x, AOTC_FLOAT32, {4, 8}), view(x, AOTC_FLOAT32, {4, 8})};
  expect_error("bad input count", aotc_model_run(model, two, 2, outs, 2, nullptr),
               AOTC_INVALID_ARGUMENT, "takes 1 input (x), got 2");
  aotc_tensor_view_t wide = view(x, AOTC_FLOAT32, {4, 9});
  expect_error("bad input shape", aotc_model_run(model, &wide, 1, outs, 2, nullptr),
               AOTC_INVALID_ARGUMENT, "input 0 \"x\": expected float32[4, 8], got float32[4, 9]");
  aotc_tensor_view_t dbl = view(xd, AOTC_FLOAT64, {4, 8});
  expect_error("bad input dtype", aotc_model_run(model, &dbl, 1, outs, 2, nullptr),
               AOTC_INVALID_ARGUMENT, "input 0 \"x\": expected float32[4, 8], got float64[4, 8]");
  aotc_tensor_view_t flat = view(x, AOTC_FLOAT32, {32});
  expect_error("bad input rank", aotc_model_run(model, &flat, 1, outs, 2, nullptr),
               AOTC_INVALID_ARGUMENT, "input 0 \"x\": expected float32[4, 8], got float32[32]");
  aotc_tensor_view_t in = view(x, AOTC_FLOAT32, {4, 8});
  aotc_tensor_view_t short_outs[2] = {view(y, AOTC_FLOAT32, {4, 15}),
                                      view(r, AOTC_FLOAT32, {4, 16})};
  expect_error("bad output shape", aotc_model_run(model, &in, 1, short_outs, 2, nullptr),
               AOTC_INVALID_ARGUMENT, "output 0 \"y\"");
  expect_error("bad output count", aotc_model_run(model, &in, 1, outs, 1, nullptr),
               AOTC_INVALID_ARGUMENT, "output");
  // The model still works after all those refusals.
  Status run(aotc_model_run(model, &in, 1, outs, 2, nullptr));
  report("affine usable after bad inputs", run.ok(), run.describe());
}

// 8 threads x 200 runs, each on its own input, every output checked.
void affine_concurrency(aotc_model_t* model) {
  constexpr int kThreads = 8;
  constexpr int kRuns = 200;
  std::atomic<int> failures{0};
  std::string first_failure;
  std::atomic<bool> have_failure{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRuns; ++i) {
        const int seed = t * kRuns + i;
        float x[32], y[64], r[64];
        for (int row = 0; row < 4; ++row)
          for (int k = 0; k < 8; ++k) x[row * 8 + k] = affine_x(seed, row, k);
        aotc_tensor_view_t in = view(x, AOTC_FLOAT32, {4, 8});
        std::string why;
        bool ok;
        if (i % 2 == 0) {
          aotc_tensor_view_t outs[2] = {view(y, AOTC_FLOAT32, {4, 16}),
                                        view(r, AOTC_FLOAT32, {4, 16})};
          Status s(aotc_model_run(model, &in, 1, outs, 2, nullptr));
          ok = s.ok() && check_affine(x, y, r, &why);
          if (!s.ok()) why = s.describe();
        } else {
          aotc_tensor_t* allocated[2] = {nullptr, nullptr};
          Status s(aotc_model_run_alloc(model, &in, 1, nullptr, allocated, 2));
          ok = s.ok() &&
               check_affine(x, static_cast<float*>(aotc_tensor_view(allocated[0])->data),
                            static_cast<float*>(aotc_tensor_view(allocated[1])->data), &why);
          if (!s.ok()) why = s.describe();
          if (s.ok()) {
            aotc_tensor_release(allocated[0]);
            aotc_tensor_release(allocated[1]);
          }
        }
        if (!ok) {
          failures++;
          bool expected = false;
          if (have_failure.compare_exchange_strong(expected, true))
            first_failure =
                "thread " + std::to_string(t) + " run " + std::to_string(i) + ": " + why;
        }
      }
    });
  for (auto& th : threads) th.join();
  report("affine 8 threads x 200 runs", failures.load() == 0,
         failures.load() == 0
             ? ""
             : std::to_string(failures.load()) + " bad runs, first: " + first_failure);
}

void affine_update_constants(const std::string& path) {
  Loaded loaded;
  Status s(load(path, &loaded));
  if (!s.ok()) return report("update constants", false, s.describe());
  std::vector<float> w(8 * 16, 0.0f), b(16, 1.5f);
  const char* names[2] = {"W", "b"};
  aotc_tensor_view_t values[2] = {view(w.data(), AOTC_FLOAT32, {8, 16}),
                                  view(b.data(), AOTC_FLOAT32, {16})};
  Status u(aotc_model_update_constants(loaded.model, names, values, 2));
  if (!u.ok()) return report("update constants", false, u.describe());
  w.assign(w.size(), 99.0f);  // the runtime copied them
  float x[32], y[64], r[64];
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i);
  aotc_tensor_view_t in = view(x, AOTC_FLOAT32, {4, 8});
  aotc_tensor_view_t outs[2] = {view(y, AOTC_FLOAT32, {4, 16}), view(r, AOTC_FLOAT32, {4, 16})};
  Status run(aotc_model_run(loaded.model, &in, 1, outs, 2, nullptr));
  bool ok = run.ok();
  for (int i = 0; ok && i < 64; ++i) ok = y[i] == 1.5f && r[i] == 1.5f;
  report("update constants", ok, run.describe());
  const char* one_name[1] = {"W"};
  expect_error("update constants needs the complete set",
               aotc_model_update_constants(loaded.model, one_name, values, 1),
               AOTC_INVALID_ARGUMENT, "b");
}

void affine_loading_paths(const std::string& path) {
  const int modes[2] = {AOTC_LIBRARY_LOADING_MEMFD, AOTC_LIBRARY_LOADING_TEMPFILE};
  const char* names[2] = {"memfd", "tempfile"};
  for (int m = 0; m < 2; ++m) {
    Loaded loaded;
    Status s(load(path, &loaded, modes[m]));
    bool ok = s.ok();
    if (ok) {
      float x[32] = {0}, y[64], r[64];
      aotc_tensor_view_t in = view(x, AOTC_FLOAT32, {4, 8});
      aotc_tensor_view_t outs[2] = {view(y, AOTC_FLOAT32, {4, 16}), view(r, AOTC_FLOAT32, {4, 16})};
      Status run(aotc_model_run(loaded.model, &in, 1, outs, 2, nullptr));
      ok = run.ok() && y[3] == affine_b(3);
    }
    report(std::string("load through ") + names[m], ok, s.describe());
  }
  std::ifstream file(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  aotc_package_t* package = nullptr;
  Status s(aotc_package_open_memory(bytes.data(), bytes.size(), nullptr, &package));
  bool ok = s.ok();
  if (ok) {
    bytes.assign(bytes.size(), 0);  // the runtime copied them
    aotc_model_t* model = nullptr;
    Status l(aotc_model_load(package, nullptr, &model));
    ok = l.ok() && aotc_model_input_count(model) == 1;
    if (model != nullptr) aotc_model_release(model);
    aotc_package_release(package);
  }
  report("open package from memory", ok, s.describe());
}

void dynamic_checks(aotc_model_t* model) {
  int64_t xs[2] = {5, 8}, ys[2] = {10, 8}, zs[AOTC_MAX_DIMS];
  const int64_t* sizes[2] = {xs, ys};
  int64_t* out_sizes[1] = {zs};
  Status s(aotc_model_plan(model, sizes, 2, out_sizes, 1));
  report("dynamic plan", s.ok() && zs[0] == 10 && zs[1] == 8, s.describe());
  xs[0] = 65;
  ys[0] = 130;
  expect_error("dynamic plan range", aotc_model_plan(model, sizes, 2, out_sizes, 1),
               AOTC_INVALID_ARGUMENT, "input 0 \"x\" dim 0 (s0): 65 is outside [2, 64]");
  xs[0] = 4;
  ys[0] = 9;
  expect_error("dynamic plan relation", aotc_model_plan(model, sizes, 2, out_sizes, 1),
               AOTC_INVALID_ARGUMENT, "input 1 \"y\" dim 0: expected 2*s0 = 8, got 9");
  for (int64_t s0 : {2, 7, 64}) {
    std::vector<float> x(s0 * 8), y(2 * s0 * 8), z(2 * s0 * 8, -1.0f);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
    for (size_t i = 0; i < y.size(); ++i) y[i] = 0.5f * static_cast<float>(i);
    aotc_tensor_view_t in[2] = {view(x.data(), AOTC_FLOAT32, {s0, 8}),
                                view(y.data(), AOTC_FLOAT32, {2 * s0, 8})};
    aotc_tensor_view_t out = view(z.data(), AOTC_FLOAT32, {2 * s0, 8});
    Status run(aotc_model_run(model, in, 2, &out, 1, nullptr));
    bool ok = run.ok();
    for (int64_t i = 0; ok && i < 2 * s0; ++i)
      for (int64_t j = 0; ok && j < 8; ++j)
        ok = z[i * 8 + j] == y[i * 8 + j] + 2.0f * x[(i % s0) * 8 + j];
    report("dynamic run s0=" + std::to_string(s0), ok, run.describe());
  }
}

// 8 concurrent runs must all be inside run() at once (the fixture's barrier).
void barrier_check(aotc_model_t* model) {
  std::vector<std::thread> threads;
  std::vector<std::string> errors(8);
  std::vector<float> firsts(8, 0.0f);
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      float x[4] = {static_cast<float>(t), 1, 2, 3}, out[4] = {0};
      aotc_tensor_view_t in = view(x, AOTC_FLOAT32, {4});
      aotc_tensor_view_t o = view(out, AOTC_FLOAT32, {4});
      Status s(aotc_model_run(model, &in, 1, &o, 1, nullptr));
      if (!s.ok()) errors[t] = s.describe();
      firsts[t] = out[0];
    });
  for (auto& th : threads) th.join();
  std::string why;
  for (int t = 0; t < 8; ++t) {
    if (!errors[t].empty() && why.empty()) why = errors[t];
    if (errors[t].empty() && firsts[t] != t + 1.0f && why.empty()) why = "wrong output";
  }
  report("barrier: 8 concurrent runs overlap", why.empty(), why);
}

void kernel_error_check(aotc_model_t* model) {
  int64_t idx[6] = {0, 1, 2, 10, 3, 0};
  float out[48];
  aotc_tensor_view_t in = view(idx, AOTC_INT64, {6});
  aotc_tensor_view_t o = view(out, AOTC_FLOAT32, {6, 8});
  expect_error("kernel index error", aotc_model_run(model, &in, 1, &o, 1, nullptr),
               AOTC_OUT_OF_RANGE, "embedding:0: index 10 out of range [0, 4) for input \"idx\"");
  idx[3] = 3;
  Status s(aotc_model_run(model, &in, 1, &o, 1, nullptr));
  report("model usable after kernel error", s.ok(), s.describe());
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> packages;
  for (int i = 1; i < argc; ++i) {
    const char* eq = std::strchr(argv[i], '=');
    if (eq == nullptr) {
      std::fprintf(stderr, "usage: %s name=package.pt2 ...\n", argv[0]);
      return 2;
    }
    packages[std::string(argv[i], static_cast<size_t>(eq - argv[i]))] = eq + 1;
  }
  std::printf("runtime C API %u.%u, model ABI %u.%u\n", aotc_api_version() >> 16,
              aotc_api_version() & 0xffff, aotc_model_abi_version() >> 16,
              aotc_model_abi_version() & 0xffff);

  auto with_model = [&](const char* name, auto&& fn) {
    auto it = packages.find(name);
    if (it == packages.end()) return;
    Loaded loaded;
    Status s(load(it->second, &loaded));
    if (!s.ok()) return report(std::string("load ") + name, false, s.describe());
    fn(loaded.model);
  };
  with_model("affine", [](aotc_model_t* m) {
    affine_basic(m);
    affine_bad_inputs(m);
    affine_concurrency(m);
  });
  if (packages.count("affine")) {
    affine_update_constants(packages["affine"]);
    affine_loading_paths(packages["affine"]);
  }
  with_model("dynamic", dynamic_checks);
  with_model("barrier", barrier_check);
  with_model("kernel_error", kernel_error_check);
  if (packages.count("future_abi")) {
    Loaded loaded;
    expect_error("future ABI refused", load(packages["future_abi"], &loaded), AOTC_INCOMPATIBLE,
                 "model library ABI 2.0 is not supported by this runtime (model ABI 1.0)");
  }
  if (packages.count("missing_symbol")) {
    Loaded loaded;
    expect_error("missing symbol refused", load(packages["missing_symbol"], &loaded),
                 AOTC_INCOMPATIBLE, "aotc_model_plan");
  }
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
