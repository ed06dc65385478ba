// gpu_smoke: CudaDevice and the CUDA host table on a real GPU. Run by
// scripts/gpu_smoke.sh (and by ctest where nvcc built the cubin):
//
//   gpu_smoke --cubin add_one.cubin --fixture gpu_launch_model.so
//             [--device N] [--require-gpu] [--async-fault]
//
// Exercises open, arch and target checks, memory (plain and stream-ordered),
// module load from the cubin, add_one launches checked element by element,
// shared memory limits, a second thread, the gpu_add model fixture through
// fill_cuda_host_callbacks, sync-debug mode and, last (it kills the context),
// an out-of-bounds launch that must produce a named error and sticky death
// (in sync-debug mode, naming the kernel; with --async-fault, without it, so
// the fault must surface at the next synchronize).
// Prints one line per check and a PASS/FAIL summary. Without a CUDA driver it
// prints "SKIPPED: no CUDA driver" and exits 77 (ctest's skip code) unless
// --require-gpu is given.
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "aotc/model_abi.h"
#include "cuda/cuda_device.h"
#include "cuda/cuda_host.h"

namespace {

using aotc::internal::Code;
using aotc::internal::CudaDevice;
using aotc::internal::CudaHostContext;

int g_passed = 0;
int g_failed = 0;

void check(bool ok, const std::string& what, const std::string& detail = std::string()) {
  std::printf("[%s] %s%s%s\n", ok ? "PASS" : "FAIL", what.c_str(), detail.empty() ? "" : ": ",
              detail.c_str());
  ++(ok ? g_passed : g_failed);
}

template <typename S>
bool ok_or_report(const S& s, const std::string& what) {
  check(s.ok(), what, s.ok() ? "" : s.status().message());
  return s.ok();
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

struct Options {
  std::string cubin;
  std::string fixture;
  int device = 0;
  bool require_gpu = false;
  bool async_fault = false;  // end with an unsynchronised fault instead
};

// Launches add_one over |n| elements of device buffers |x| -> |y|.
aotc::internal::Status launch_add_one(CudaDevice& device, void* function, void* x, void* y, int n,
                                      uint32_t shared_bytes, const char* handle) {
  void* args[] = {&x, &y, &n};
  const uint32_t grid[3] = {static_cast<uint32_t>((n + 255) / 256), 1, 1};
  const uint32_t block[3] = {256, 1, 1};
  return device.launch(function, grid, block, shared_bytes, nullptr, args, handle);
}

// Uploads 0.25*i, runs add_one, downloads and compares every element.
bool add_one_round_trip(CudaDevice& device, void* function, int n, uint32_t shared_bytes,
                        std::string* error) {
  std::vector<float> in(n), out(n, -1.0f);
  for (int i = 0; i < n; ++i) in[i] = 0.25f * static_cast<float>(i % 4096);
  auto x = device.alloc_async(n * sizeof(float), nullptr);
  auto y = device.alloc_async(n * sizeof(float), nullptr);
  if (!x.ok() || !y.ok()) {
    *error = !x.ok() ? x.status().message() : y.status().message();
    return false;
  }
  aotc::internal::Status s = device.memcpy_async(*x, in.data(), n * sizeof(float),
                                                 AOTC_ABI_MEMCPY_HOST_TO_DEVICE, nullptr);
  if (s.ok()) s = device.memset_async(*y, 0xff, n * sizeof(float), nullptr);
  if (s.ok()) s = launch_add_one(device, function, *x, *y, n, shared_bytes, "add_one:smoke");
  if (s.ok()) {
    s = device.memcpy_async(out.data(), *y, n * sizeof(float), AOTC_ABI_MEMCPY_DEVICE_TO_HOST,
                            nullptr);
  }
  if (s.ok()) s = device.synchronize(nullptr);
  device.free_async(*x, nullptr);
  device.free_async(*y, nullptr);
  if (!s.ok()) {
    *error = s.message();
    return false;
  }
  for (int i = 0; i < n; ++i) {
    if (out[i] != in[i] + 1.0f) {
      *error = "y[" + std::to_string(i) + "] = " + std::to_string(out[i]) + ", expected " +
               std::to_string(in[i] + 1.0f);
      return false;
    }
  }
  return true;
}

// ---- The gpu_add fixture through the host table ----

struct SmokeHostContext {
  CudaHostContext cuda;
  const std::string* cubin = nullptr;
};

int32_t smoke_get_entry(void* ctx, const char* name, const void** out_data, uint64_t* out_size,
                        aotc_abi_status_t* status) {
  auto* host = static_cast<SmokeHostContext*>(ctx);
  if (std::strcmp(name, "kernels/add_one.cubin") != 0) {
    status->code = AOTC_ABI_INVALID_ARGUMENT;
    std::snprintf(status->message, sizeof(status->message), "no entry %s", name);
    return status->code;
  }
  *out_data = host->cubin->data();
  *out_size = host->cubin->size();
  return AOTC_ABI_OK;
}

void run_fixture(CudaDevice& device, const Options& options, const std::string& cubin) {
  void* lib = dlopen(options.fixture.c_str(), RTLD_NOW | RTLD_LOCAL);
  check(lib != nullptr, "dlopen fixture " + options.fixture, lib ? "" : dlerror());
  if (lib == nullptr) return;
  auto describe = reinterpret_cast<aotc_model_describe_fn>(dlsym(lib, AOTC_MODEL_DESCRIBE_SYMBOL));
  auto create = reinterpret_cast<aotc_model_create_fn>(dlsym(lib, AOTC_MODEL_CREATE_SYMBOL));
  auto plan = reinterpret_cast<aotc_model_plan_fn>(dlsym(lib, AOTC_MODEL_PLAN_SYMBOL));
  auto run = reinterpret_cast<aotc_model_run_fn>(dlsym(lib, AOTC_MODEL_RUN_SYMBOL));
  auto destroy = reinterpret_cast<aotc_model_destroy_fn>(dlsym(lib, AOTC_MODEL_DESTROY_SYMBOL));
  const aotc_model_description_t* desc = describe();
  aotc::internal::Status target = device.check_target(desc->target, desc->min_driver_version);
  check(target.ok(), std::string("fixture target ") + desc->target + " fits this device",
        target.message());

  SmokeHostContext ctx;
  ctx.cuda.device = &device;
  ctx.cubin = &cubin;
  aotc_host_t host;
  std::memset(&host, 0, sizeof(host));
  host.struct_size = sizeof(host);
  host.abi_major = AOTC_MODEL_ABI_MAJOR;
  host.abi_minor = AOTC_MODEL_ABI_MINOR;
  host.ctx = &ctx;
  host.device_type = AOTC_ABI_DEVICE_CUDA;
  host.device_index = device.index();
  host.get_entry = smoke_get_entry;
  aotc::internal::fill_cuda_host_callbacks(&host);

  aotc_abi_status_t status{};
  aotc_model_instance* instance = nullptr;
  int32_t rc = create(&host, nullptr, 0, &instance, &status);
  check(rc == AOTC_ABI_OK, "fixture create (get_entry, module_load, get_function)",
        rc == AOTC_ABI_OK ? "" : status.message);
  if (rc != AOTC_ABI_OK) return;
  const int n = 100000;
  int64_t in_sizes[1] = {n};
  const int64_t* input_sizes[1] = {in_sizes};
  int64_t out_sizes[1] = {0};
  int64_t* output_sizes[1] = {out_sizes};
  uint64_t workspace = 0;
  rc = plan(instance, input_sizes, output_sizes, &workspace, &status);
  check(rc == AOTC_ABI_OK && out_sizes[0] == n && workspace == 0, "fixture plan",
        rc == AOTC_ABI_OK ? "" : status.message);

  std::vector<float> in(n), out(n);
  for (int i = 0; i < n; ++i) in[i] = static_cast<float>(i);
  void* x = nullptr;
  void* y = nullptr;
  bool ok = host.device_alloc(host.ctx, n * sizeof(float), &x, &status) == AOTC_ABI_OK &&
            host.device_alloc(host.ctx, n * sizeof(float), &y, &status) == AOTC_ABI_OK &&
            host.memcpy_async(host.ctx, x, in.data(), n * sizeof(float),
                              AOTC_ABI_MEMCPY_HOST_TO_DEVICE, nullptr, &status) == AOTC_ABI_OK;
  aotc_abi_tensor_t tx{};
  tx.data = x;
  tx.dtype = AOTC_ABI_DTYPE_FLOAT32;
  tx.ndim = 1;
  tx.sizes[0] = n;
  tx.strides[0] = 1;
  aotc_abi_tensor_t ty = tx;
  ty.data = y;
  aotc_abi_run_args_t args{};
  args.struct_size = sizeof(args);
  args.num_inputs = 1;
  args.inputs = &tx;
  args.num_outputs = 1;
  args.outputs = &ty;
  ok = ok && run(instance, &args, &status) == AOTC_ABI_OK &&
       host.memcpy_async(host.ctx, out.data(), y, n * sizeof(float), AOTC_ABI_MEMCPY_DEVICE_TO_HOST,
                         nullptr, &status) == AOTC_ABI_OK &&
       host.stream_synchronize(host.ctx, nullptr, &status) == AOTC_ABI_OK;
  std::string detail = ok ? "" : status.message;
  for (int i = 0; ok && i < n; ++i) {
    if (out[i] != in[i] + 1.0f) {
      ok = false;
      detail = "y[" + std::to_string(i) + "] = " + std::to_string(out[i]);
    }
  }
  check(ok, "fixture run through the host table computes x + 1", detail);
  host.device_free(host.ctx, x);
  host.device_free(host.ctx, y);
  destroy(instance);
}

bool parse(int argc, char** argv, Options* options) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--cubin" && i + 1 < argc) {
      options->cubin = argv[++i];
    } else if (arg == "--fixture" && i + 1 < argc) {
      options->fixture = argv[++i];
    } else if (arg == "--device" && i + 1 < argc) {
      options->device = std::atoi(argv[++i]);
    } else if (arg == "--require-gpu") {
      options->require_gpu = true;
    } else if (arg == "--async-fault") {
      options->async_fault = true;
    } else {
      std::fprintf(stderr,
                   "usage: gpu_smoke --cubin add_one.cubin [--fixture gpu_launch_model.so] "
                   "[--device N] [--require-gpu] [--async-fault]\n");
      return false;
    }
  }
  return !options->cubin.empty();
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse(argc, argv, &options)) return 2;

  auto opened = CudaDevice::open(options.device);
  if (!opened.ok() && opened.status().code() == Code::kDeviceUnavailable && !options.require_gpu) {
    std::printf("SKIPPED: no CUDA driver (%s)\n", opened.status().message().c_str());
    return 77;
  }
  if (!ok_or_report(opened, "open cuda:" + std::to_string(options.device))) {
    std::printf("gpu_smoke: FAIL\n");
    return 1;
  }
  std::shared_ptr<CudaDevice> device = std::move(opened).value();
  std::printf("cuda:%d is %s, CUDA driver %d\n", device->index(), device->arch().c_str(),
              device->driver_version());
  auto again = CudaDevice::open(options.device);
  check(again.ok() && again->get() == device.get(), "open() shares the device per index");
  check(device->arch().rfind("sm_", 0) == 0, "arch is sm_XY", device->arch());
  check(device->check_target(device->arch(), device->driver_version()).ok(),
        "check_target accepts this device's own arch and driver");
  aotc::internal::Status wrong = device->check_target("sm_10", 0);
  check(!wrong.ok() && contains(wrong.message(), "package built for sm_10 but cuda:"),
        "check_target names both archs", wrong.message());
  aotc::internal::Status newer = device->check_target(device->arch(), 99999);
  check(!newer.ok() && contains(newer.message(), "package needs CUDA driver >= 99999"),
        "check_target names both driver versions", newer.message());

  // Memory.
  {
    std::vector<uint8_t> in(1 << 20), out(1 << 20);
    for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint8_t>(i * 7);
    auto a = device->alloc(in.size());
    auto b = device->alloc_async(in.size(), nullptr);
    if (ok_or_report(a, "alloc 1 MiB") && ok_or_report(b, "alloc_async 1 MiB")) {
      aotc::internal::Status s =
          device->memcpy_async(*a, in.data(), in.size(), AOTC_ABI_MEMCPY_HOST_TO_DEVICE, nullptr);
      if (s.ok())
        s = device->memcpy_async(*b, *a, in.size(), AOTC_ABI_MEMCPY_DEVICE_TO_DEVICE, nullptr);
      if (s.ok())
        s = device->memcpy_async(out.data(), *b, out.size(), AOTC_ABI_MEMCPY_DEVICE_TO_HOST,
                                 nullptr);
      if (s.ok()) s = device->synchronize(nullptr);
      check(s.ok() && in == out, "memcpy H2D, D2D, D2H round trip", s.message());
      s = device->memset_async(*b, 0x5a, 1000, nullptr);
      if (s.ok())
        s = device->memcpy_async(out.data(), *b, 1000, AOTC_ABI_MEMCPY_DEVICE_TO_HOST, nullptr);
      if (s.ok()) s = device->synchronize(nullptr);
      check(s.ok() && out[0] == 0x5a && out[999] == 0x5a && out[1000] == in[1000], "memset_async",
            s.message());
      check(device->owns_pointer(*a) && !device->owns_pointer(in.data()), "owns_pointer");
      device->free(*a);
      device->free_async(*b, nullptr);
    }
    auto huge = device->alloc(uint64_t{1} << 50);
    check(!huge.ok() && huge.status().code() == Code::kResourceExhausted && !device->is_dead(),
          "an impossible allocation is out of memory, not fatal", huge.status().message());
  }

  // Modules and launches.
  std::ifstream file(options.cubin, std::ios::binary);
  std::string cubin((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  check(!cubin.empty(), "read " + options.cubin);
  auto module = device->module_load(cubin.data(), cubin.size());
  auto function = module.ok() ? device->get_function(*module, "add_one")
                              : aotc::internal::Result<void*>(module.status());
  if (ok_or_report(module, "module_load cubin") && ok_or_report(function, "get_function add_one")) {
    std::string error;
    check(add_one_round_trip(*device, *function, (1 << 20) + 3, 0, &error),
          "add_one over 2^20 + 3 elements", error);
    check(add_one_round_trip(*device, *function, 1, 0, &error), "add_one over 1 element", error);
    auto missing = device->get_function(*module, "no_such_kernel");
    check(!missing.ok() && missing.status().code() == Code::kNotFound && !device->is_dead(),
          "a missing kernel is NOT_FOUND, not fatal", missing.status().message());
    std::string bad_ptx = "this is not PTX";
    auto bad = device->module_load(bad_ptx.data(), bad_ptx.size());
    check(!bad.ok() && contains(bad.status().message(), "cuModuleLoadData failed (PTX") &&
              !device->is_dead(),
          "bad PTX is refused by name, not fatal", bad.status().message());

    // Dynamic shared memory above 48 KB: refused until raised.
    auto second = device->module_load(cubin.data(), cubin.size());
    auto fresh = second.ok() ? device->get_function(*second, "add_one")
                             : aotc::internal::Result<void*>(second.status());
    if (ok_or_report(fresh, "second module")) {
      auto x = device->alloc(sizeof(float));
      auto refused = launch_add_one(*device, *fresh, *x, *x, 1, 64 * 1024, "k_shm:0");
      check(!refused.ok() && contains(refused.message(), "'k_shm:0'") && !device->is_dead(),
            "64 KB of shared memory without set_shared_memory is refused", refused.message());
      auto raised = device->set_shared_memory(*fresh, 64 * 1024);
      check(raised.ok(), "set_shared_memory 64 KB", raised.message());
      check(add_one_round_trip(*device, *fresh, 4096, 64 * 1024, &error),
            "add_one with 64 KB dynamic shared memory after raising the limit", error);
      auto too_much = device->set_shared_memory(*fresh, 16u << 20);
      check(!too_much.ok() && too_much.code() == Code::kUnsupported,
            "set_shared_memory beyond the device limit", too_much.message());
      device->free(*x);
      device->module_unload(*second);
    }

    // Another thread: the primary context must be made current there too.
    bool thread_ok = false;
    std::string thread_error;
    std::thread worker(
        [&] { thread_ok = add_one_round_trip(*device, *function, 5000, 0, &thread_error); });
    worker.join();
    check(thread_ok, "add_one from a second thread", thread_error);

    if (!options.fixture.empty()) run_fixture(*device, options, cubin);

    // Sync-debug mode: a good launch still works; then a fault is named.
    device->set_sync_debug(true);
    check(add_one_round_trip(*device, *function, 777, 0, &error), "add_one in sync-debug mode",
          error);
    void* bogus = reinterpret_cast<void*>(uintptr_t{0x10});
    auto y = device->alloc(1 << 22);
    if (options.async_fault) {
      // Without sync-debug the fault surfaces at the next synchronisation.
      device->set_sync_debug(false);
      aotc::internal::Status launched =
          launch_add_one(*device, *function, bogus, *y, 1 << 20, 0, "add_one:oob");
      check(launched.ok(), "out-of-bounds launch is accepted (faults are asynchronous)",
            launched.message());
      aotc::internal::Status fault = device->synchronize(nullptr);
      check(!fault.ok() && contains(fault.message(), "CUDA_ERROR_ILLEGAL_ADDRESS") &&
                contains(fault.message(), "sync-debug mode names the kernel") &&
                fault.code() == Code::kDeviceError,
            "the fault surfaces at synchronize with a sync-debug hint", fault.message());
    } else {
      aotc::internal::Status fault =
          launch_add_one(*device, *function, bogus, *y, 1 << 20, 0, "add_one:oob");
      check(!fault.ok() && contains(fault.message(), "'add_one:oob'") &&
                contains(fault.message(), "CUDA_ERROR_ILLEGAL_ADDRESS") &&
                fault.code() == Code::kDeviceError,
            "out-of-bounds launch fails naming the kernel (sync-debug)", fault.message());
    }
    check(device->is_dead(), "the device is dead after the fault");
    auto after = device->alloc(16);
    check(!after.ok() &&
              contains(after.status().message(), "is unusable after an earlier CUDA error"),
          "later calls fail with the first error", after.status().message());
  }

  std::printf("gpu_smoke: %d passed, %d failed: %s\n", g_passed, g_failed,
              g_failed == 0 ? "PASS" : "FAIL");
  return g_failed == 0 ? 0 : 1;
}
