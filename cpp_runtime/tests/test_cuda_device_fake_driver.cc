// CudaDriver, CudaDevice and the CUDA host trampolines on a fake driver
// (fake_libcuda.c: device memory is host memory, add_one runs on the host,
// kernel faults are reported asynchronously and stick, as on a GPU). Covers
// the loader errors, arch/driver checks, error messages and codes, sticky
// death, sync-debug mode, shared memory limits and the whole model -> host
// table -> CudaDevice path with the gpu_add fixture. Needs no GPU.
#include <dlfcn.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "aotc/model_abi.h"
#include "cuda/cuda_device.h"
#include "cuda/cuda_driver.h"
#include "cuda/cuda_host.h"
#include "testing.h"

namespace aotc::internal {
class CudaDeviceTestPeer {
 public:
  static Result<std::shared_ptr<CudaDevice>> create(const CudaDriver* driver, int index) {
    return CudaDevice::create(driver, index);
  }
};
}  // namespace aotc::internal

// Fails the test and leaves it when |cond| is false.
#define REQUIRE(cond)    \
  do {                   \
    if (!(cond)) {       \
      EXPECT_TRUE(cond); \
      return;            \
    }                    \
  } while (0)

namespace {

using aotc::internal::Code;
using aotc::internal::CudaDevice;
using aotc::internal::CudaDeviceTestPeer;
using aotc::internal::CudaDriver;
using aotc::internal::CudaHostContext;

constexpr int kIllegalAddress = 700;
constexpr int kOutOfMemory = 2;
constexpr int kNoBinaryForGpu = 209;

// The fake driver's controls (dlsym'ed from the same library instance that
// CudaDriver::load opens).
struct Fake {
  void* handle = nullptr;
  void (*reset)(int device_count, int cc_major, int cc_minor, int driver_version) = nullptr;
  void (*fail_next)(const char* name, int code) = nullptr;
  long long (*counter)(const char* name) = nullptr;
};

const Fake& fake() {
  static Fake f = [] {
    Fake out;
    out.handle = dlopen(FAKE_LIBCUDA_PATH, RTLD_NOW | RTLD_LOCAL);
    if (out.handle == nullptr) return out;
    out.reset = reinterpret_cast<decltype(out.reset)>(dlsym(out.handle, "fake_cuda_reset"));
    out.fail_next =
        reinterpret_cast<decltype(out.fail_next)>(dlsym(out.handle, "fake_cuda_fail_next"));
    out.counter = reinterpret_cast<decltype(out.counter)>(dlsym(out.handle, "fake_cuda_counter"));
    return out;
  }();
  return f;
}

// A driver on the fake library, reset to |cc| and |driver_version|.
std::unique_ptr<CudaDriver> fake_driver(int cc_major = 9, int cc_minor = 0,
                                        int driver_version = 13000, int device_count = 1) {
  if (fake().reset == nullptr) {
    std::printf("  cannot load the fake driver %s\n", FAKE_LIBCUDA_PATH);
    return nullptr;
  }
  fake().reset(device_count, cc_major, cc_minor, driver_version);
  auto driver = CudaDriver::load(FAKE_LIBCUDA_PATH);
  if (!driver.ok()) {
    std::printf("  %s\n", driver.status().message().c_str());
    return nullptr;
  }
  return std::move(driver).value();
}

std::shared_ptr<CudaDevice> open_device(const CudaDriver* driver, int index = 0) {
  auto device = CudaDeviceTestPeer::create(driver, index);
  EXPECT_OK(device);
  return device.ok() ? std::move(device).value() : nullptr;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

long long counter(const char* name) { return fake().counter(name); }

}  // namespace

TEST(missing_library_is_device_unavailable) {
  auto driver = CudaDriver::load("/nonexistent/libcuda.so.1");
  EXPECT_ERROR_CONTAINS(driver, "no CUDA driver found (");
  EXPECT_ERROR_CONTAINS(driver, "/nonexistent/libcuda.so.1");
  EXPECT_TRUE(driver.status().code() == Code::kDeviceUnavailable);
}

TEST(missing_symbol_is_named) {
  auto driver = CudaDriver::load(FAKE_LIBCUDA_INCOMPLETE_PATH);
  EXPECT_ERROR_CONTAINS(driver, "lacks cuMemAllocAsync");
  EXPECT_TRUE(driver.status().code() == Code::kDeviceUnavailable);
}

TEST(open_without_a_driver_on_this_host) {
  // Meaningful on hosts without libcuda (CI); on a GPU host open(0) works.
  void* real = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  auto device = CudaDevice::open(0);
  if (real == nullptr) {
    EXPECT_ERROR_CONTAINS(device, "no CUDA driver found (");
    EXPECT_TRUE(device.status().code() == Code::kDeviceUnavailable);
    // The outcome is cached: same answer again.
    EXPECT_ERROR_CONTAINS(CudaDevice::open(0), "no CUDA driver found (");
  } else {
    dlclose(real);
  }
}

TEST(cuinit_failure_is_reported) {
  auto driver = fake_driver();
  REQUIRE(driver);
  fake().fail_next("cuInit", 100);
  auto again = CudaDriver::load(FAKE_LIBCUDA_PATH);
  EXPECT_ERROR_CONTAINS(again, "cuInit failed: CUDA_ERROR_NO_DEVICE (no CUDA-capable device");
}

TEST(device_index_out_of_range) {
  auto driver = fake_driver();
  REQUIRE(driver);
  auto device = CudaDeviceTestPeer::create(driver.get(), 3);
  EXPECT_ERROR_CONTAINS(device, "cuda:3 requested but the CUDA driver reports 1 device(s)");
  EXPECT_TRUE(device.status().code() == Code::kDeviceUnavailable);
  EXPECT_ERROR_CONTAINS(CudaDeviceTestPeer::create(driver.get(), -1),
                        "cuda:-1 is not a valid device index");
}

TEST(arch_driver_version_and_check_target) {
  auto driver = fake_driver(8, 0, 12020);
  REQUIRE(driver);
  auto a100 = open_device(driver.get());
  if (!a100) return;
  EXPECT_EQ(a100->arch(), "sm_80");
  EXPECT_EQ(a100->driver_version(), 12020);
  EXPECT_OK(a100->check_target("sm_80", 12000));
  EXPECT_OK(a100->check_target("cuda:sm_80", 0));
  auto mismatch = a100->check_target("sm_90", 12000);
  EXPECT_ERROR_CONTAINS(mismatch, "package built for sm_90 but cuda:0 is sm_80");
  EXPECT_TRUE(mismatch.code() == Code::kIncompatible);
  EXPECT_ERROR_CONTAINS(a100->check_target("sm_80", 12040),
                        "package needs CUDA driver >= 12040, this host has 12020");
  EXPECT_ERROR_CONTAINS(a100->check_target("gfx90a", 0), "not a CUDA architecture");
  EXPECT_ERROR_CONTAINS(a100->check_target("sm_86", 0),
                        "package built for sm_86 but cuda:0 is sm_80");
  a100.reset();

  auto ga102_driver = fake_driver(8, 6, 13000);
  REQUIRE(ga102_driver);
  auto ga102 = open_device(ga102_driver.get());
  if (!ga102) return;
  EXPECT_EQ(ga102->arch(), "sm_86");
  EXPECT_OK(ga102->check_target("sm_80", 0));  // same major, older minor
  EXPECT_ERROR_CONTAINS(ga102->check_target("sm_80a", 0),
                        "package built for sm_80a but cuda:0 is sm_86");
  ga102.reset();

  auto h200_driver = fake_driver(9, 0, 13000);
  REQUIRE(h200_driver);
  auto h200 = open_device(h200_driver.get());
  if (!h200) return;
  EXPECT_EQ(h200->arch(), "sm_90");
  EXPECT_OK(h200->check_target("sm_90a", 12040));
  EXPECT_ERROR_CONTAINS(h200->check_target("sm_100", 0),
                        "package built for sm_100 but cuda:0 is sm_90");
}

TEST(primary_context_retained_made_current_and_released) {
  auto driver = fake_driver();
  REQUIRE(driver);
  auto device = open_device(driver.get());
  if (!device) return;
  EXPECT_EQ(counter("retained"), 1);
  EXPECT_EQ(counter("threshold_set"), 1);  // default pool keeps its memory
  long long before = counter("set_current");
  auto ptr = device->alloc(64);
  EXPECT_OK(ptr);
  EXPECT_OK(device->synchronize(nullptr));
  EXPECT_EQ(counter("set_current"), before + 2);  // every method
  device->free(*ptr);
  device.reset();
  EXPECT_EQ(counter("released"), 1);
}

TEST(memory_round_trip_and_ownership) {
  auto driver = fake_driver();
  REQUIRE(driver);
  auto device = open_device(driver.get());
  if (!device) return;
  float host_in[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  float host_out[8] = {};
  auto a = device->alloc(sizeof(host_in));
  auto b = device->alloc_async(sizeof(host_in), nullptr);
  EXPECT_OK(a);
  EXPECT_OK(b);
  if (!a.ok() || !b.ok()) return;
  EXPECT_EQ(counter("async_allocs"), 1);
  EXPECT_OK(
      device->memcpy_async(*a, host_in, sizeof(host_in), AOTC_ABI_MEMCPY_HOST_TO_DEVICE, nullptr));
  EXPECT_OK(
      device->memcpy_async(*b, *a, sizeof(host_in), AOTC_ABI_MEMCPY_DEVICE_TO_DEVICE, nullptr));
  EXPECT_OK(device->memcpy_async(host_out, *b, sizeof(host_out), AOTC_ABI_MEMCPY_DEVICE_TO_HOST,
                                 nullptr));
  EXPECT_TRUE(std::memcmp(host_in, host_out, sizeof(host_in)) == 0);
  EXPECT_OK(device->memset_async(*b, 0, sizeof(host_in), nullptr));
  EXPECT_OK(device->memcpy_async(host_out, *b, sizeof(host_out), AOTC_ABI_MEMCPY_DEVICE_TO_HOST,
                                 nullptr));
  EXPECT_EQ(host_out[3], 0.0f);
  EXPECT_ERROR_CONTAINS(device->memcpy_async(*a, host_in, 4, 7, nullptr), "unknown copy kind 7");
  EXPECT_TRUE(device->owns_pointer(*a));
  EXPECT_TRUE(!device->owns_pointer(host_in));
  EXPECT_TRUE(!device->owns_pointer(nullptr));
  // Zero bytes: no driver call, nullptr; freeing nullptr is a no-op.
  auto empty = device->alloc(0);
  EXPECT_OK(empty);
  EXPECT_TRUE(*empty == nullptr);
  device->free(nullptr);
  device->free_async(nullptr, nullptr);
  device->free(*a);
  device->free_async(*b, nullptr);
  EXPECT_EQ(counter("live_allocs"), 0);
}

TEST(out_of_memory_is_resource_exhausted_and_not_sticky) {
  auto driver = fake_driver();
  REQUIRE(driver);
  auto device = open_device(driver.get());
  if (!device) return;
  auto huge = device->alloc(uint64_t{1} << 40);
  EXPECT_ERROR_CONTAINS(
      huge, "cuMemAlloc failed (1099511627776 bytes): CUDA_ERROR_OUT_OF_MEMORY (out of memory)");
  EXPECT_TRUE(huge.status().code() == Code::kResourceExhausted);
  fake().fail_next("cuMemAllocAsync", kOutOfMemory);
  EXPECT_ERROR_CONTAINS(device->alloc_async(16, nullptr), "cuMemAllocAsync failed (16 bytes)");
  EXPECT_TRUE(!device->is_dead());
  auto small = device->alloc(16);
  EXPECT_OK(small);
  device->free(*small);
}

TEST(modules_functions_and_ptx_termination) {
  auto driver = fake_driver();
  REQUIRE(driver);
  auto device = open_device(driver.get());
  if (!device) return;
  const char cubin[] =
      "\x7f"
      "ELF....";
  auto module = device->module_load(cubin, sizeof(cubin));
  EXPECT_OK(module);
  // PTX text without a trailing NUL: the driver must see exactly its bytes.
  std::string ptx_with_garbage = ".version 8.4\n.target sm_90\nGARBAGE";
  auto ptx_module = device->module_load(ptx_with_garbage.data(), 27);
  EXPECT_OK(ptx_module);
  EXPECT_EQ(counter("last_image_strlen"), 27);
  EXPECT_ERROR_CONTAINS(device->module_load(nullptr, 0), "empty kernel image");
  auto function = device->get_function(*module, "add_one");
  EXPECT_OK(function);
  auto missing = device->get_function(*module, "nope");
  EXPECT_ERROR_CONTAINS(
      missing,
      "cuModuleGetFunction failed for 'nope': CUDA_ERROR_NOT_FOUND (named symbol not found)");
  EXPECT_TRUE(missing.status().code() == Code::kNotFound);
  fake().fail_next("cuModuleLoadData", kNoBinaryForGpu);
  auto wrong_gpu = device->module_load(cubin, sizeof(cubin));
  EXPECT_ERROR_CONTAINS(wrong_gpu,
                        "cuModuleLoadData failed (cubin, 9 bytes): CUDA_ERROR_NO_BINARY_FOR_GPU");
  EXPECT_ERROR_CONTAINS(wrong_gpu, "cuda:0 is sm_90 with CUDA driver 13000");
  EXPECT_TRUE(wrong_gpu.status().code() == Code::kIncompatible);
  EXPECT_TRUE(!device->is_dead());
  device->module_unload(*module);
  device->module_unload(*ptx_module);
  EXPECT_EQ(counter("module_unloads"), 2);
}

TEST(launch_computes_and_honours_shared_memory_limits) {
  auto driver = fake_driver();
  REQUIRE(driver);
  auto device = open_device(driver.get());
  if (!device) return;
  const char cubin[] =
      "\x7f"
      "ELF";
  auto module = device->module_load(cubin, sizeof(cubin));
  auto function = device->get_function(*module, "add_one");
  EXPECT_OK(function);
  int n = 300;
  auto x = device->alloc(n * sizeof(float));
  auto y = device->alloc(n * sizeof(float));
  std::vector<float> host(n);
  for (int i = 0; i < n; ++i) host[i] = static_cast<float>(i);
  EXPECT_OK(device->memcpy_async(*x, host.data(), n * sizeof(float), AOTC_ABI_MEMCPY_HOST_TO_DEVICE,
                                 nullptr));
  void* xp = *x;
  void* yp = *y;
  void* args[] = {&xp, &yp, &n};
  const uint32_t grid[3] = {2, 1, 1};
  const uint32_t block[3] = {256, 1, 1};
  EXPECT_OK(device->launch(*function, grid, block, 0, nullptr, args, "add_one:0"));
  EXPECT_OK(device->memcpy_async(host.data(), *y, n * sizeof(float), AOTC_ABI_MEMCPY_DEVICE_TO_HOST,
                                 nullptr));
  EXPECT_EQ(host[0], 1.0f);
  EXPECT_EQ(host[299], 300.0f);

  // Above 48 KB without raising the limit: the driver refuses; the message says why.
  auto refused = device->launch(*function, grid, block, 64 * 1024, nullptr, args, "k1:0");
  EXPECT_ERROR_CONTAINS(refused,
                        "cuLaunchKernel failed for kernel 'k1:0': CUDA_ERROR_INVALID_VALUE");
  EXPECT_ERROR_CONTAINS(refused, "function_set_shared_memory");
  EXPECT_TRUE(!device->is_dead());
  EXPECT_OK(device->set_shared_memory(*function, 64 * 1024));
  EXPECT_EQ(counter("shared_limit"), 64 * 1024);
  EXPECT_OK(device->launch(*function, grid, block, 64 * 1024, nullptr, args, "k1:0"));
  EXPECT_EQ(counter("last_shared"), 64 * 1024);
  auto too_much = device->set_shared_memory(*function, 300 * 1024);
  EXPECT_ERROR_CONTAINS(too_much,
                        "kernel needs 307200 bytes of dynamic shared memory but cuda:0 (sm_90) "
                        "allows at most 232448 per block");
  EXPECT_TRUE(too_much.code() == Code::kUnsupported);
  device->free(*x);
  device->free(*y);
  device->module_unload(*module);
}

TEST(launch_error_names_the_kernel_and_kills_the_device) {
  auto driver = fake_driver();
  REQUIRE(driver);
  auto device = open_device(driver.get());
  if (!device) return;
  const char cubin[] =
      "\x7f"
      "ELF";
  auto module = device->module_load(cubin, sizeof(cubin));
  auto function = device->get_function(*module, "add_one");
  fake().fail_next("cuLaunchKernel", kIllegalAddress);
  void* null_ptr = nullptr;
  int n = 1;
  void* args[] = {&null_ptr, &null_ptr, &n};
  const uint32_t one[3] = {1, 1, 1};
  auto failed = device->launch(*function, one, one, 0, nullptr, args, "k0:3");
  EXPECT_ERROR_CONTAINS(failed,
                        "cuLaunchKernel failed for kernel 'k0:3': CUDA_ERROR_ILLEGAL_ADDRESS (an "
                        "illegal memory access was encountered)");
  EXPECT_ERROR_CONTAINS(failed, "cuda:0 is now unusable");
  EXPECT_TRUE(failed.code() == Code::kDeviceError);
  EXPECT_TRUE(device->is_dead());
  auto later = device->alloc(16);
  EXPECT_ERROR_CONTAINS(later,
                        "cuda:0 is unusable after an earlier CUDA error: cuLaunchKernel failed for "
                        "kernel 'k0:3': CUDA_ERROR_ILLEGAL_ADDRESS");
  EXPECT_TRUE(later.status().code() == Code::kDeviceError);
  EXPECT_ERROR_CONTAINS(device->synchronize(nullptr), "cuda:0 is unusable");
  EXPECT_TRUE(!device->owns_pointer(&n));
}

TEST(async_fault_surfaces_at_synchronize_with_a_hint) {
  auto driver = fake_driver();
  REQUIRE(driver);
  auto device = open_device(driver.get());
  if (!device) return;
  const char cubin[] =
      "\x7f"
      "ELF";
  auto module = device->module_load(cubin, sizeof(cubin));
  auto function = device->get_function(*module, "add_one");
  void* bogus = reinterpret_cast<void*>(uintptr_t{0x10});
  int n = 1000;
  void* args[] = {&bogus, &bogus, &n};
  const uint32_t grid[3] = {4, 1, 1};
  const uint32_t block[3] = {256, 1, 1};
  EXPECT_OK(device->launch(*function, grid, block, 0, nullptr, args, "add_one:0"));  // async
  auto sync = device->synchronize(nullptr);
  EXPECT_ERROR_CONTAINS(sync, "cuStreamSynchronize failed: CUDA_ERROR_ILLEGAL_ADDRESS");
  EXPECT_ERROR_CONTAINS(sync, "sync-debug mode names the kernel");
  EXPECT_TRUE(device->is_dead());
}

TEST(sync_debug_names_the_faulting_kernel) {
  auto driver = fake_driver();
  REQUIRE(driver);
  auto device = open_device(driver.get());
  if (!device) return;
  device->set_sync_debug(true);
  EXPECT_TRUE(device->sync_debug());
  const char cubin[] =
      "\x7f"
      "ELF";
  auto module = device->module_load(cubin, sizeof(cubin));
  auto function = device->get_function(*module, "add_one");
  auto x = device->alloc(1024 * sizeof(float));
  void* xp = *x;
  int n = 1024;
  void* good[] = {&xp, &xp, &n};
  const uint32_t grid[3] = {4, 1, 1};
  const uint32_t block[3] = {256, 1, 1};
  long long syncs = counter("syncs");
  EXPECT_OK(device->launch(*function, grid, block, 0, nullptr, good, "add_one:0"));
  EXPECT_EQ(counter("syncs"), syncs + 1);  // synchronised after the launch
  void* bogus = reinterpret_cast<void*>(uintptr_t{0x10});
  void* bad[] = {&bogus, &xp, &n};
  auto failed = device->launch(*function, grid, block, 0, nullptr, bad, "add_one:1");
  EXPECT_ERROR_CONTAINS(failed, "kernel execution failed for kernel 'add_one:1' (sync-debug");
  EXPECT_ERROR_CONTAINS(failed, "CUDA_ERROR_ILLEGAL_ADDRESS");
  EXPECT_TRUE(device->is_dead());
}

// ---- The model library through the real trampolines and CudaDevice ----

namespace {

struct Model {
  void* handle = nullptr;
  aotc_model_create_fn create = nullptr;
  aotc_model_plan_fn plan = nullptr;
  aotc_model_run_fn run = nullptr;
  aotc_model_destroy_fn destroy = nullptr;
};

Model load_fixture() {
  Model m;
#ifdef GPU_FIXTURE_PATH
  m.handle = dlopen(GPU_FIXTURE_PATH, RTLD_NOW | RTLD_LOCAL);
#endif
  if (m.handle == nullptr) {
    std::printf("  cannot load the gpu_add fixture (GPU_FIXTURE_PATH)\n");
    return m;
  }
  m.create = reinterpret_cast<aotc_model_create_fn>(dlsym(m.handle, AOTC_MODEL_CREATE_SYMBOL));
  m.plan = reinterpret_cast<aotc_model_plan_fn>(dlsym(m.handle, AOTC_MODEL_PLAN_SYMBOL));
  m.run = reinterpret_cast<aotc_model_run_fn>(dlsym(m.handle, AOTC_MODEL_RUN_SYMBOL));
  m.destroy = reinterpret_cast<aotc_model_destroy_fn>(dlsym(m.handle, AOTC_MODEL_DESTROY_SYMBOL));
  return m;
}

// Host context of these tests: the device plus the one archive entry.
struct TestHostContext {
  CudaHostContext cuda;  // what the plain fill_cuda_host_callbacks reads
  std::string cubin = std::string(
      "\x7f"
      "ELF fake",
      8);
  std::vector<std::string> entries;
};

int32_t test_get_entry(void* ctx, const char* name, const void** out_data, uint64_t* out_size,
                       aotc_abi_status_t* status) {
  auto* host = static_cast<TestHostContext*>(ctx);
  host->entries.push_back(name);
  if (std::string(name) != "kernels/add_one.cubin") {
    status->code = AOTC_ABI_INVALID_ARGUMENT;
    std::snprintf(status->message, sizeof(status->message), "no entry %s", name);
    return status->code;
  }
  *out_data = host->cubin.data();
  *out_size = host->cubin.size();
  return AOTC_ABI_OK;
}

aotc_host_t cuda_host(void* ctx) {
  aotc_host_t host;
  std::memset(&host, 0, sizeof(host));
  host.struct_size = sizeof(host);
  host.abi_major = AOTC_MODEL_ABI_MAJOR;
  host.abi_minor = AOTC_MODEL_ABI_MINOR;
  host.ctx = ctx;
  host.device_type = AOTC_ABI_DEVICE_CUDA;
  host.get_entry = test_get_entry;
  return host;
}

// For the template overload: the device lives in a context of our own shape.
struct OtherContext {
  std::string unrelated = "first member is not a CudaHostContext";
  TestHostContext inner;
};
CudaDevice* device_of_other(void* ctx) {
  return static_cast<OtherContext*>(ctx)->inner.cuda.device;
}
int32_t other_get_entry(void* ctx, const char* name, const void** data, uint64_t* size,
                        aotc_abi_status_t* status) {
  return test_get_entry(&static_cast<OtherContext*>(ctx)->inner, name, data, size, status);
}

// create, plan, run on |n| elements, check y = x + 1, destroy.
void run_gpu_add(const Model& model, aotc_host_t* host, CudaDevice* device, int n) {
  aotc_abi_status_t status{};
  aotc_model_instance* instance = nullptr;
  EXPECT_EQ(model.create(host, nullptr, 0, &instance, &status), AOTC_ABI_OK);
  if (instance == nullptr) return (void)std::printf("  create: %s\n", status.message);
  int64_t in_sizes[1] = {n};
  const int64_t* input_sizes[1] = {in_sizes};
  int64_t out_sizes[1] = {0};
  int64_t* output_sizes[1] = {out_sizes};
  uint64_t workspace = 1;
  EXPECT_EQ(model.plan(instance, input_sizes, output_sizes, &workspace, &status), AOTC_ABI_OK);
  EXPECT_EQ(out_sizes[0], n);
  auto x = device->alloc(n * sizeof(float));
  auto y = device->alloc(n * sizeof(float));
  std::vector<float> host_x(n), host_y(n);
  for (int i = 0; i < n; ++i) host_x[i] = 0.5f * i;
  EXPECT_EQ(host->memcpy_async(host->ctx, *x, host_x.data(), n * sizeof(float),
                               AOTC_ABI_MEMCPY_HOST_TO_DEVICE, nullptr, &status),
            AOTC_ABI_OK);
  aotc_abi_tensor_t tx{};
  tx.data = *x;
  tx.dtype = AOTC_ABI_DTYPE_FLOAT32;
  tx.ndim = 1;
  tx.sizes[0] = n;
  tx.strides[0] = 1;
  aotc_abi_tensor_t ty = tx;
  ty.data = *y;
  aotc_abi_run_args_t args{};
  args.struct_size = sizeof(args);
  args.num_inputs = 1;
  args.inputs = &tx;
  args.num_outputs = 1;
  args.outputs = &ty;
  EXPECT_EQ(model.run(instance, &args, &status), AOTC_ABI_OK);
  EXPECT_EQ(host->stream_synchronize(host->ctx, nullptr, &status), AOTC_ABI_OK);
  EXPECT_EQ(host->memcpy_async(host->ctx, host_y.data(), *y, n * sizeof(float),
                               AOTC_ABI_MEMCPY_DEVICE_TO_HOST, nullptr, &status),
            AOTC_ABI_OK);
  bool all = true;
  for (int i = 0; i < n; ++i) all = all && host_y[i] == host_x[i] + 1.0f;
  EXPECT_TRUE(all);
  EXPECT_EQ(counter("last_grid_x"), (n + 255) / 256);
  EXPECT_EQ(counter("last_block_x"), 256);
  model.destroy(instance);
  device->free(*x);
  device->free(*y);
}

}  // namespace

TEST(fixture_runs_through_trampolines_on_the_fake_driver) {
  Model model = load_fixture();
  auto driver = fake_driver();
  REQUIRE(model.handle != nullptr && driver);
  auto device = open_device(driver.get());
  if (!device) return;
  TestHostContext ctx;
  ctx.cuda.device = device.get();
  aotc_host_t host = cuda_host(&ctx);
  aotc::internal::fill_cuda_host_callbacks(&host);
  EXPECT_TRUE(host.device_alloc && host.device_free && host.memcpy_async && host.memset_async &&
              host.module_load && host.module_unload && host.module_get_function &&
              host.function_set_shared_memory && host.launch && host.stream_synchronize);
  run_gpu_add(model, &host, device.get(), 1000);
  EXPECT_EQ(ctx.entries, std::vector<std::string>{"kernels/add_one.cubin"});
  EXPECT_EQ(counter("module_loads"), 1);
  EXPECT_EQ(counter("module_unloads"), 1);

  // device_alloc / device_free / memset / set_shared_memory trampolines.
  aotc_abi_status_t status{};
  void* ptr = nullptr;
  EXPECT_EQ(host.device_alloc(host.ctx, 64, &ptr, &status), AOTC_ABI_OK);
  EXPECT_TRUE(ptr != nullptr);
  EXPECT_EQ(host.memset_async(host.ctx, ptr, 7, 64, nullptr, &status), AOTC_ABI_OK);
  host.device_free(host.ctx, ptr);
  EXPECT_EQ(counter("live_allocs"), 0);
  EXPECT_EQ(host.device_alloc(host.ctx, uint64_t{1} << 40, &ptr, &status),
            AOTC_ABI_RESOURCE_EXHAUSTED);
  EXPECT_TRUE(contains(status.message, "CUDA_ERROR_OUT_OF_MEMORY"));
  EXPECT_EQ(status.code, AOTC_ABI_RESOURCE_EXHAUSTED);
}

TEST(template_getter_finds_the_device_in_any_context) {
  Model model = load_fixture();
  auto driver = fake_driver();
  REQUIRE(model.handle != nullptr && driver);
  auto device = open_device(driver.get());
  if (!device) return;
  OtherContext ctx;
  ctx.inner.cuda.device = device.get();
  aotc_host_t host = cuda_host(&ctx);
  host.get_entry = other_get_entry;
  aotc::internal::fill_cuda_host_callbacks<&device_of_other>(&host);
  run_gpu_add(model, &host, device.get(), 256);
}

TEST(trampoline_errors_reach_the_model_caller) {
  Model model = load_fixture();
  auto driver = fake_driver();
  REQUIRE(model.handle != nullptr && driver);
  auto device = open_device(driver.get());
  if (!device) return;
  TestHostContext ctx;
  ctx.cuda.device = device.get();
  aotc_host_t host = cuda_host(&ctx);
  aotc::internal::fill_cuda_host_callbacks(&host);
  aotc_abi_status_t status{};
  aotc_model_instance* instance = nullptr;

  // A cubin for another GPU: kIncompatible -> AOTC_ABI_UNSUPPORTED, message kept.
  fake().fail_next("cuModuleLoadData", kNoBinaryForGpu);
  EXPECT_EQ(model.create(&host, nullptr, 0, &instance, &status), AOTC_ABI_UNSUPPORTED);
  EXPECT_TRUE(contains(status.message,
                       "loading kernel kernels/add_one.cubin: cuModuleLoadData "
                       "failed (cubin, 8 bytes): CUDA_ERROR_NO_BINARY_FOR_GPU"));
  EXPECT_TRUE(instance == nullptr);

  // A kernel fault in sync-debug mode: the run fails naming the call site.
  device->set_sync_debug(true);
  EXPECT_EQ(model.create(&host, nullptr, 0, &instance, &status), AOTC_ABI_OK);
  if (instance == nullptr) return;
  aotc_abi_tensor_t tx{};
  tx.data = reinterpret_cast<void*>(uintptr_t{0x40});  // not device memory
  tx.dtype = AOTC_ABI_DTYPE_FLOAT32;
  tx.ndim = 1;
  tx.sizes[0] = 16;
  tx.strides[0] = 1;
  aotc_abi_tensor_t ty = tx;
  ty.data = reinterpret_cast<void*>(uintptr_t{0x80});
  aotc_abi_run_args_t args{};
  args.struct_size = sizeof(args);
  args.num_inputs = 1;
  args.inputs = &tx;
  args.num_outputs = 1;
  args.outputs = &ty;
  EXPECT_EQ(model.run(instance, &args, &status), AOTC_ABI_DEVICE_ERROR);
  EXPECT_TRUE(contains(status.message, "kernel 'add_one:0'"));
  EXPECT_TRUE(contains(status.message, "CUDA_ERROR_ILLEGAL_ADDRESS"));
  // Sticky: the next run fails before reaching the driver.
  EXPECT_EQ(model.run(instance, &args, &status), AOTC_ABI_DEVICE_ERROR);
  EXPECT_TRUE(contains(status.message, "cuda:0 is unusable after an earlier CUDA error"));
  model.destroy(instance);
}

TEST(trampolines_without_a_device_fail_cleanly) {
  CudaHostContext empty;
  aotc_host_t host = cuda_host(&empty);
  aotc::internal::fill_cuda_host_callbacks(&host);
  aotc_abi_status_t status{};
  void* module = nullptr;
  EXPECT_EQ(host.module_load(host.ctx, "x", 1, &module, &status), AOTC_ABI_INTERNAL);
  EXPECT_TRUE(contains(status.message, "no CUDA device is bound"));
  host.device_free(host.ctx, nullptr);  // must not crash
  host.module_unload(host.ctx, nullptr);
}

AOTC_TEST_MAIN()
