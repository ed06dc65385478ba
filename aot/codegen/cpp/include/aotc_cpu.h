// aotc_cpu.h: support code compiled into every generated CPU model library.
// The calling convention of generated kernels, parallel loops through the
// host's thread pool, and run-time error reporting. Header-only; included by
// the wrapper (model.cc) and every kernel source. Math and dtype helpers
// live in aotc_cpu_math.h, extern kernels (GEMM, convolution, pooling,
// attention) in aotc_cpu_kernels.h.
#pragma once

#include <cstdint>
#include <cstdio>
#include <utility>

#include "aotc/model_abi.h"

namespace aotc_rt {

// What every kernel receives. Kernels are `int32_t name(const KernelContext&)`
// returning an aotc_abi_code_e; on failure they fill |status|.
struct KernelContext {
  const aotc_host_t* host;
  void* exec;          // the run's executor, for host->parallel_for
  void* const* buf;    // buffer pointers by buffer id (wrapper's table)
  const int64_t* sym;  // values of the size symbols s0, s1, ... by id
  aotc_abi_status_t* status;
};

// Runs fn(begin, end) over [begin, end) on the host's shared pool, in chunks
// of at least |grain|. fn must not throw.
template <typename Fn>
inline void parallel_for(const KernelContext& ctx, int64_t begin, int64_t end, int64_t grain,
                         Fn&& fn) {
  if (end <= begin) return;
  struct Trampoline {
    static void call(void* p, int64_t b, int64_t e) { (*static_cast<Fn*>(p))(b, e); }
  };
  ctx.host->parallel_for(ctx.host->ctx, ctx.exec, begin, end, grain < 1 ? 1 : grain,
                         &Trampoline::call, static_cast<void*>(&fn));
}

// printf-style failure: fills the status slot and returns |code|.
template <typename... Args>
inline int32_t fail(const KernelContext& ctx, int32_t code, const char* format, Args... args) {
  if (ctx.status) {
    ctx.status->code = code;
    std::snprintf(ctx.status->message, sizeof(ctx.status->message), format, args...);
  }
  return code;
}

// An out-of-range indirect index seen inside a parallel loop: the first one
// wins, the kernel returns AOTC_ABI_OUT_OF_RANGE after its loop with
// "<debug handle>: index V out of range [0, N) for <what>".
struct IndexError {
  // 0: no error. Written with __atomic builtins (plain C++17, any compiler).
  int32_t flag = 0;
  int64_t value = 0;
  int64_t size = 0;

  void record(int64_t v, int64_t n) {
    int32_t expected = 0;
    if (__atomic_compare_exchange_n(&flag, &expected, 1, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
      value = v;
      size = n;
    }
  }
  int32_t report(const KernelContext& ctx, const char* handle, const char* what) const {
    if (!__atomic_load_n(&flag, __ATOMIC_ACQUIRE)) return AOTC_ABI_OK;
    return fail(ctx, AOTC_ABI_OUT_OF_RANGE, "%s: index %lld out of range [0, %lld) for %s", handle,
                static_cast<long long>(value), static_cast<long long>(size), what);
  }
};

// Wraps a negative index once (like torch's advanced indexing; wrap=false for
// embedding, gather and index_select, which refuse negatives in eager) and
// checks bounds; on a bad index records it and returns 0 so the loop reads in
// bounds and finishes.
inline int64_t checked_index(int64_t index, int64_t size, IndexError& error, bool wrap = true) {
  int64_t wrapped = (wrap && index < 0) ? index + size : index;
  if (wrapped < 0 || wrapped >= size) {
    error.record(index, size);
    return 0;
  }
  return wrapped;
}

}  // namespace aotc_rt
