// The GPU launch path fixture (tests/fixtures/gpu/gpu_launch_model.c) against
// a fake host table that records every call: checks that describe, create,
// plan, run and destroy make exactly the host calls a CUDA model must make,
// with the right values, and that host failures come back as error statuses.
// Needs no GPU and no CUDA driver.
#include <dlfcn.h>

#include <cstring>
#include <string>
#include <vector>

#include "aotc/model_abi.h"
#include "testing.h"

namespace {

struct Launch {
  void* function;
  uint32_t grid[3];
  uint32_t block[3];
  uint32_t shared_bytes;
  void* stream;
  void* x;
  void* y;
  int32_t n;
  std::string debug_handle;
};

// Host context of the fake host: canned answers and a call log.
struct FakeHost {
  std::vector<std::string> calls;  // callback names in call order
  std::vector<std::string> entries_requested;
  std::string image = std::string(
      "\x7f"
      "ELF fake cubin bytes");
  std::string loaded_image;
  std::vector<std::string> functions_requested;
  std::vector<void*> modules_unloaded;
  std::vector<Launch> launches;
  int module_token = 0;
  int function_token = 0;
  // Failure injection: callback name -> message.
  std::string fail_callback;
  std::string fail_message;
  int32_t fail_code = AOTC_ABI_DEVICE_ERROR;

  bool should_fail(const char* name, aotc_abi_status_t* status) {
    if (fail_callback != name) return false;
    status->code = fail_code;
    std::snprintf(status->message, sizeof(status->message), "%s", fail_message.c_str());
    return true;
  }
};

FakeHost* fake(void* ctx) { return static_cast<FakeHost*>(ctx); }

int32_t fake_get_entry(void* ctx, const char* name, const void** out_data, uint64_t* out_size,
                       aotc_abi_status_t* status) {
  FakeHost* host = fake(ctx);
  host->calls.push_back("get_entry");
  host->entries_requested.push_back(name);
  if (host->should_fail("get_entry", status)) return host->fail_code;
  *out_data = host->image.data();
  *out_size = host->image.size();
  return AOTC_ABI_OK;
}

int32_t fake_module_load(void* ctx, const void* image, uint64_t size, void** out_module,
                         aotc_abi_status_t* status) {
  FakeHost* host = fake(ctx);
  host->calls.push_back("module_load");
  host->loaded_image.assign(static_cast<const char*>(image), size);
  if (host->should_fail("module_load", status)) return host->fail_code;
  *out_module = &host->module_token;
  return AOTC_ABI_OK;
}

void fake_module_unload(void* ctx, void* module) {
  fake(ctx)->calls.push_back("module_unload");
  fake(ctx)->modules_unloaded.push_back(module);
}

int32_t fake_get_function(void* ctx, void* module, const char* name, void** out_function,
                          aotc_abi_status_t* status) {
  FakeHost* host = fake(ctx);
  host->calls.push_back("module_get_function");
  host->functions_requested.push_back(name);
  if (module != &host->module_token) {
    status->code = AOTC_ABI_INTERNAL;
    std::snprintf(status->message, sizeof(status->message), "wrong module handle");
    return AOTC_ABI_INTERNAL;
  }
  if (host->should_fail("module_get_function", status)) return host->fail_code;
  *out_function = &host->function_token;
  return AOTC_ABI_OK;
}

int32_t fake_launch(void* ctx, void* function, const uint32_t grid[3], const uint32_t block[3],
                    uint32_t shared_bytes, void* stream, void** args, const char* debug_handle,
                    aotc_abi_status_t* status) {
  FakeHost* host = fake(ctx);
  host->calls.push_back("launch");
  Launch launch{function,
                {grid[0], grid[1], grid[2]},
                {block[0], block[1], block[2]},
                shared_bytes,
                stream,
                *static_cast<void**>(args[0]),
                *static_cast<void**>(args[1]),
                *static_cast<int32_t*>(args[2]),
                debug_handle != nullptr ? debug_handle : ""};
  host->launches.push_back(launch);
  if (host->should_fail("launch", status)) return host->fail_code;
  return AOTC_ABI_OK;
}

// Callbacks the fixture must not use: recorded so the test can see them.
int32_t fake_device_alloc(void* ctx, uint64_t, void**, aotc_abi_status_t*) {
  fake(ctx)->calls.push_back("device_alloc");
  return AOTC_ABI_INTERNAL;
}
void fake_device_free(void* ctx, void*) { fake(ctx)->calls.push_back("device_free"); }
int32_t fake_memcpy(void* ctx, void*, const void*, uint64_t, int32_t, void*, aotc_abi_status_t*) {
  fake(ctx)->calls.push_back("memcpy_async");
  return AOTC_ABI_INTERNAL;
}
int32_t fake_memset(void* ctx, void*, int32_t, uint64_t, void*, aotc_abi_status_t*) {
  fake(ctx)->calls.push_back("memset_async");
  return AOTC_ABI_INTERNAL;
}
int32_t fake_set_shared(void* ctx, void*, uint32_t, aotc_abi_status_t*) {
  fake(ctx)->calls.push_back("function_set_shared_memory");
  return AOTC_ABI_INTERNAL;
}
int32_t fake_sync(void* ctx, void*, aotc_abi_status_t*) {
  fake(ctx)->calls.push_back("stream_synchronize");
  return AOTC_ABI_INTERNAL;
}

aotc_host_t make_host(FakeHost* ctx) {
  aotc_host_t host;
  std::memset(&host, 0, sizeof(host));
  host.struct_size = sizeof(aotc_host_t);
  host.abi_major = AOTC_MODEL_ABI_MAJOR;
  host.abi_minor = AOTC_MODEL_ABI_MINOR;
  host.ctx = ctx;
  host.device_type = AOTC_ABI_DEVICE_CUDA;
  host.device_index = 0;
  host.get_entry = fake_get_entry;
  host.device_alloc = fake_device_alloc;
  host.device_free = fake_device_free;
  host.memcpy_async = fake_memcpy;
  host.memset_async = fake_memset;
  host.module_load = fake_module_load;
  host.module_unload = fake_module_unload;
  host.module_get_function = fake_get_function;
  host.function_set_shared_memory = fake_set_shared;
  host.launch = fake_launch;
  host.stream_synchronize = fake_sync;
  return host;
}

struct Library {
  void* handle = nullptr;
  aotc_model_describe_fn describe = nullptr;
  aotc_model_create_fn create = nullptr;
  aotc_model_plan_fn plan = nullptr;
  aotc_model_run_fn run = nullptr;
  aotc_model_destroy_fn destroy = nullptr;
};

#ifdef GPU_FIXTURE_PATH
const char* kFixturePath = GPU_FIXTURE_PATH;
#else
const char* kFixturePath = nullptr;
#endif

const Library& library() {
  static Library lib = [] {
    Library l;
    if (kFixturePath == nullptr) {
      std::printf(
          "  built without GPU_FIXTURE_PATH: tests/fixtures/CMakeLists.txt must "
          "add_subdirectory(gpu)\n");
      return l;
    }
    l.handle = dlopen(kFixturePath, RTLD_NOW | RTLD_LOCAL);
    if (l.handle == nullptr) {
      std::printf("  dlopen(%s) failed: %s\n", kFixturePath, dlerror());
      return l;
    }
    l.describe =
        reinterpret_cast<aotc_model_describe_fn>(dlsym(l.handle, AOTC_MODEL_DESCRIBE_SYMBOL));
    l.create = reinterpret_cast<aotc_model_create_fn>(dlsym(l.handle, AOTC_MODEL_CREATE_SYMBOL));
    l.plan = reinterpret_cast<aotc_model_plan_fn>(dlsym(l.handle, AOTC_MODEL_PLAN_SYMBOL));
    l.run = reinterpret_cast<aotc_model_run_fn>(dlsym(l.handle, AOTC_MODEL_RUN_SYMBOL));
    l.destroy = reinterpret_cast<aotc_model_destroy_fn>(dlsym(l.handle, AOTC_MODEL_DESTROY_SYMBOL));
    return l;
  }();
  return lib;
}

bool loaded() {
  const Library& lib = library();
  bool ok = lib.describe && lib.create && lib.plan && lib.run && lib.destroy;
  EXPECT_TRUE(ok);
  return ok;
}

bool contains(const char* haystack, const char* needle) {
  return std::strstr(haystack, needle) != nullptr;
}

}  // namespace

TEST(describe_declares_a_cuda_model_with_one_kernel) {
  if (!loaded()) return;
  const aotc_model_description_t* desc = library().describe();
  EXPECT_EQ(desc->struct_size, sizeof(aotc_model_description_t));
  EXPECT_EQ(desc->abi_major, AOTC_MODEL_ABI_MAJOR);
  EXPECT_EQ(desc->device_type, AOTC_ABI_DEVICE_CUDA);
  EXPECT_EQ(std::string(desc->target), "cuda:sm_90");
  EXPECT_TRUE(desc->min_driver_version > 0);
  EXPECT_EQ(desc->num_inputs, 1u);
  EXPECT_EQ(desc->inputs[0].dtype, AOTC_ABI_DTYPE_FLOAT32);
  EXPECT_EQ(desc->inputs[0].ndim, 1);
  EXPECT_EQ(desc->inputs[0].dims[0].size, -1);
  EXPECT_EQ(desc->inputs[0].dims[0].min, 1);
  EXPECT_EQ(desc->inputs[0].dims[0].max, 1 << 20);
  EXPECT_EQ(desc->num_outputs, 1u);
  EXPECT_EQ(desc->num_constants, 0u);
  EXPECT_EQ(desc->num_kernels, 1u);
  EXPECT_EQ(std::string(desc->kernels[0].entry), "add_one.cubin");
  EXPECT_EQ(std::string(desc->kernels[0].debug_handle), "add_one:0");
}

TEST(create_plan_run_destroy_make_the_expected_host_calls) {
  if (!loaded()) return;
  const Library& lib = library();
  FakeHost ctx;
  aotc_host_t host = make_host(&ctx);
  aotc_abi_status_t status{};
  aotc_model_instance* model = nullptr;
  EXPECT_EQ(lib.create(&host, nullptr, 0, &model, &status), AOTC_ABI_OK);
  EXPECT_TRUE(model != nullptr);
  if (model == nullptr) {
    std::printf("  create failed: %s\n", status.message);
    return;
  }
  // create: entry relative to data/aotc/<model>/, the exact bytes, "add_one".
  EXPECT_EQ(ctx.calls,
            (std::vector<std::string>{"get_entry", "module_load", "module_get_function"}));
  EXPECT_EQ(ctx.entries_requested, std::vector<std::string>{"kernels/add_one.cubin"});
  EXPECT_EQ(ctx.loaded_image, ctx.image);
  EXPECT_EQ(ctx.functions_requested, std::vector<std::string>{"add_one"});

  // plan: output shaped like the input, no workspace; pure (no host calls).
  int64_t in_sizes[1] = {1000};
  const int64_t* input_sizes[1] = {in_sizes};
  int64_t out_sizes[1] = {-7};
  int64_t* output_sizes[1] = {out_sizes};
  uint64_t workspace = 123;
  EXPECT_EQ(lib.plan(model, input_sizes, output_sizes, &workspace, &status), AOTC_ABI_OK);
  EXPECT_EQ(out_sizes[0], 1000);
  EXPECT_EQ(workspace, 0u);
  EXPECT_EQ(ctx.calls.size(), 3u);

  // run: one launch with the ABI's values.
  alignas(64) static float x_storage[1000];
  alignas(64) static float y_storage[1000];
  aotc_abi_tensor_t x{};
  x.data = x_storage;
  x.dtype = AOTC_ABI_DTYPE_FLOAT32;
  x.ndim = 1;
  x.sizes[0] = 1000;
  x.strides[0] = 1;
  aotc_abi_tensor_t y = x;
  y.data = y_storage;
  int stream_token = 0;
  aotc_abi_run_args_t args{};
  args.struct_size = sizeof(args);
  args.num_inputs = 1;
  args.inputs = &x;
  args.num_outputs = 1;
  args.outputs = &y;
  args.stream = &stream_token;
  EXPECT_EQ(lib.run(model, &args, &status), AOTC_ABI_OK);
  EXPECT_EQ(ctx.launches.size(), 1u);
  if (ctx.launches.size() == 1) {
    const Launch& launch = ctx.launches[0];
    EXPECT_EQ(launch.function, static_cast<void*>(&ctx.function_token));
    EXPECT_EQ(launch.grid[0], 4u);  // ceil(1000 / 256)
    EXPECT_EQ(launch.grid[1], 1u);
    EXPECT_EQ(launch.grid[2], 1u);
    EXPECT_EQ(launch.block[0], 256u);
    EXPECT_EQ(launch.block[1], 1u);
    EXPECT_EQ(launch.block[2], 1u);
    EXPECT_EQ(launch.shared_bytes, 0u);
    EXPECT_EQ(launch.stream, static_cast<void*>(&stream_token));
    EXPECT_EQ(launch.x, static_cast<void*>(x_storage));
    EXPECT_EQ(launch.y, static_cast<void*>(y_storage));
    EXPECT_EQ(launch.n, 1000);
    EXPECT_EQ(launch.debug_handle, "add_one:0");
  }
  // An exact multiple of the block and the smallest size.
  x.sizes[0] = y.sizes[0] = 512;
  EXPECT_EQ(lib.run(model, &args, &status), AOTC_ABI_OK);
  x.sizes[0] = y.sizes[0] = 1;
  EXPECT_EQ(lib.run(model, &args, &status), AOTC_ABI_OK);
  EXPECT_EQ(ctx.launches.size(), 3u);
  if (ctx.launches.size() == 3) {
    EXPECT_EQ(ctx.launches[1].grid[0], 2u);
    EXPECT_EQ(ctx.launches[1].n, 512);
    EXPECT_EQ(ctx.launches[2].grid[0], 1u);
    EXPECT_EQ(ctx.launches[2].n, 1);
  }

  lib.destroy(model);
  EXPECT_EQ(ctx.modules_unloaded, std::vector<void*>{&ctx.module_token});
  EXPECT_EQ(ctx.calls, (std::vector<std::string>{"get_entry", "module_load", "module_get_function",
                                                 "launch", "launch", "launch", "module_unload"}));
}

TEST(plan_refuses_sizes_outside_the_range_naming_dim_and_range) {
  if (!loaded()) return;
  const Library& lib = library();
  FakeHost ctx;
  aotc_host_t host = make_host(&ctx);
  aotc_abi_status_t status{};
  aotc_model_instance* model = nullptr;
  EXPECT_EQ(lib.create(&host, nullptr, 0, &model, &status), AOTC_ABI_OK);
  if (model == nullptr) return;
  for (int64_t n : {int64_t{0}, int64_t{-5}, (int64_t{1} << 20) + 1}) {
    int64_t in_sizes[1] = {n};
    const int64_t* input_sizes[1] = {in_sizes};
    int64_t out_sizes[1] = {0};
    int64_t* output_sizes[1] = {out_sizes};
    uint64_t workspace = 0;
    aotc_abi_status_t plan_status{};
    EXPECT_EQ(lib.plan(model, input_sizes, output_sizes, &workspace, &plan_status),
              AOTC_ABI_INVALID_ARGUMENT);
    EXPECT_EQ(plan_status.code, AOTC_ABI_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(plan_status.message, "input 0 \"x\" dim 0 (s0)"));
    EXPECT_TRUE(contains(plan_status.message, std::to_string(n).c_str()));
    EXPECT_TRUE(contains(plan_status.message, "[1, 1048576]"));
  }
  lib.destroy(model);
}

TEST(module_load_failure_propagates_with_the_host_message) {
  if (!loaded()) return;
  const Library& lib = library();
  FakeHost ctx;
  ctx.fail_callback = "module_load";
  ctx.fail_code = AOTC_ABI_UNSUPPORTED;
  ctx.fail_message = "cuModuleLoadData failed (cubin, 24 bytes): CUDA_ERROR_NO_BINARY_FOR_GPU";
  aotc_host_t host = make_host(&ctx);
  aotc_abi_status_t status{};
  aotc_model_instance* model = nullptr;
  EXPECT_EQ(lib.create(&host, nullptr, 0, &model, &status), AOTC_ABI_UNSUPPORTED);
  EXPECT_TRUE(model == nullptr);
  EXPECT_EQ(status.code, AOTC_ABI_UNSUPPORTED);
  EXPECT_TRUE(contains(status.message, "kernels/add_one.cubin"));
  EXPECT_TRUE(contains(status.message, ctx.fail_message.c_str()));
  // Nothing after the failed load, nothing to unload.
  EXPECT_EQ(ctx.calls, (std::vector<std::string>{"get_entry", "module_load"}));
}

TEST(get_entry_and_get_function_failures_propagate_and_clean_up) {
  if (!loaded()) return;
  const Library& lib = library();
  {
    FakeHost ctx;
    ctx.fail_callback = "get_entry";
    ctx.fail_code = AOTC_ABI_INTERNAL;
    ctx.fail_message = "no entry data/aotc/gpu_add/kernels/add_one.cubin";
    aotc_host_t host = make_host(&ctx);
    aotc_abi_status_t status{};
    aotc_model_instance* model = nullptr;
    EXPECT_EQ(lib.create(&host, nullptr, 0, &model, &status), AOTC_ABI_INTERNAL);
    EXPECT_TRUE(contains(status.message, ctx.fail_message.c_str()));
    EXPECT_EQ(ctx.calls, std::vector<std::string>{"get_entry"});
  }
  {
    FakeHost ctx;
    ctx.fail_callback = "module_get_function";
    ctx.fail_code = AOTC_ABI_INTERNAL;
    ctx.fail_message = "cuModuleGetFunction failed for 'add_one': CUDA_ERROR_NOT_FOUND";
    aotc_host_t host = make_host(&ctx);
    aotc_abi_status_t status{};
    aotc_model_instance* model = nullptr;
    EXPECT_EQ(lib.create(&host, nullptr, 0, &model, &status), AOTC_ABI_INTERNAL);
    EXPECT_TRUE(contains(status.message, ctx.fail_message.c_str()));
    // The module loaded before the failure is unloaded.
    EXPECT_EQ(ctx.modules_unloaded, std::vector<void*>{&ctx.module_token});
  }
}

TEST(launch_failure_propagates_from_run) {
  if (!loaded()) return;
  const Library& lib = library();
  FakeHost ctx;
  aotc_host_t host = make_host(&ctx);
  aotc_abi_status_t status{};
  aotc_model_instance* model = nullptr;
  EXPECT_EQ(lib.create(&host, nullptr, 0, &model, &status), AOTC_ABI_OK);
  if (model == nullptr) return;
  ctx.fail_callback = "launch";
  ctx.fail_code = AOTC_ABI_DEVICE_ERROR;
  ctx.fail_message =
      "cuLaunchKernel failed for kernel 'add_one:0': CUDA_ERROR_ILLEGAL_ADDRESS (an illegal "
      "memory access was encountered)";
  alignas(64) static float buffer[16];
  aotc_abi_tensor_t x{};
  x.data = buffer;
  x.dtype = AOTC_ABI_DTYPE_FLOAT32;
  x.ndim = 1;
  x.sizes[0] = 8;
  x.strides[0] = 1;
  aotc_abi_tensor_t y = x;
  y.data = buffer + 8;
  aotc_abi_run_args_t args{};
  args.struct_size = sizeof(args);
  args.num_inputs = 1;
  args.inputs = &x;
  args.num_outputs = 1;
  args.outputs = &y;
  EXPECT_EQ(lib.run(model, &args, &status), AOTC_ABI_DEVICE_ERROR);
  EXPECT_EQ(std::string(status.message), ctx.fail_message);
  lib.destroy(model);
}

TEST(create_refuses_a_cpu_host) {
  if (!loaded()) return;
  FakeHost ctx;
  aotc_host_t host = make_host(&ctx);
  host.device_type = AOTC_ABI_DEVICE_CPU;
  aotc_abi_status_t status{};
  aotc_model_instance* model = nullptr;
  EXPECT_EQ(library().create(&host, nullptr, 0, &model, &status), AOTC_ABI_UNSUPPORTED);
  EXPECT_TRUE(contains(status.message, "cuda:sm_90"));
  EXPECT_TRUE(ctx.calls.empty());
}

AOTC_TEST_MAIN()
