// ThreadPool (cpp_runtime/src/thread_pool.h): every item covered exactly once
// in chunks of at least the grain, nested calls inline, many back-to-back
// calls from concurrent callers with correct results (both with spinning and
// with the sleep-only path, [Note: spin before sleep]), idle workers that stop
// using CPU, and pools destroyed while workers spin or sleep.
#include <time.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "testing.h"
#include "thread_pool.h"

using aotc::internal::ThreadPool;
using std::chrono::microseconds;

namespace {

// Adds |delta| to data[begin, end) and counts the chunks and items it saw.
struct AddContext {
  int64_t* data;
  int64_t delta;
  int64_t grain;
  int64_t size;
  std::atomic<int64_t> items{0};
  std::atomic<int64_t> bad_chunks{0};
};

void add_chunk(void* ctx_ptr, int64_t begin, int64_t end) {
  auto* ctx = static_cast<AddContext*>(ctx_ptr);
  if (begin < 0 || end > ctx->size || begin >= end ||
      (end - begin < ctx->grain && end != ctx->size))
    ctx->bad_chunks.fetch_add(1);
  for (int64_t i = begin; i < end; ++i) ctx->data[i] += ctx->delta;
  ctx->items.fetch_add(end - begin);
}

// |calls| back-to-back parallel_fors over one array, each adding its call
// number; returns the number of wrong items or chunks.
int64_t back_to_back(ThreadPool& pool, int threads, int64_t size, int64_t grain, int calls) {
  std::vector<int64_t> data(size, 0);
  int64_t wrong = 0;
  for (int call = 1; call <= calls; ++call) {
    AddContext ctx{data.data(), call, grain, size};
    pool.parallel_for(threads, 0, size, grain, add_chunk, &ctx);
    wrong += ctx.bad_chunks.load() + (ctx.items.load() != size ? 1 : 0);
  }
  const int64_t expected = int64_t{calls} * (calls + 1) / 2;
  for (int64_t v : data) wrong += v != expected ? 1 : 0;
  return wrong;
}

// Runs back_to_back on |callers| threads at once; returns the total wrong.
int64_t concurrent_back_to_back(ThreadPool& pool, int callers, int calls) {
  std::atomic<int64_t> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t)
    threads.emplace_back([&, t] {
      // Different sizes and grains per caller: uneven chunk counts.
      wrong.fetch_add(back_to_back(pool, 4, 1000 + 37 * t, 16 + t, calls));
    });
  for (auto& th : threads) th.join();
  return wrong.load();
}

double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

}  // namespace

TEST(covers_every_item_once_in_chunks_of_at_least_grain) {
  ThreadPool pool(3);
  for (int threads : {1, 2, 4, 16})
    for (int64_t size : {1, 2, 7, 64, 1000, 4097})
      for (int64_t grain : {1, 3, 64, 5000})
        EXPECT_EQ(back_to_back(pool, threads, size, grain, 3), 0);
}

TEST(empty_range_does_not_call_fn) {
  ThreadPool pool(2);
  AddContext ctx{nullptr, 1, 1, 0};
  pool.parallel_for(4, 5, 5, 1, add_chunk, &ctx);
  pool.parallel_for(4, 7, 3, 1, add_chunk, &ctx);
  EXPECT_EQ(ctx.items.load(), 0);
}

namespace {
struct NestedContext {
  ThreadPool* pool;
  int64_t* data;
  std::atomic<int64_t> inner_calls{0};
  std::atomic<int64_t> inner_other_thread{0};
};

void nested_inner(void* ctx_ptr, int64_t begin, int64_t end) {
  auto* ctx = static_cast<std::pair<NestedContext*, std::thread::id>*>(ctx_ptr);
  ctx->first->inner_calls.fetch_add(1);
  if (std::this_thread::get_id() != ctx->second) ctx->first->inner_other_thread.fetch_add(1);
  (void)begin;
  (void)end;
}

void nested_outer(void* ctx_ptr, int64_t begin, int64_t end) {
  auto* ctx = static_cast<NestedContext*>(ctx_ptr);
  for (int64_t i = begin; i < end; ++i) {
    std::pair<NestedContext*, std::thread::id> inner{ctx, std::this_thread::get_id()};
    ctx->pool->parallel_for(4, 0, 100, 1, nested_inner, &inner);
    ctx->data[i] += 1;
  }
}
}  // namespace

TEST(nested_calls_run_inline) {
  ThreadPool pool(3);
  std::vector<int64_t> data(64, 0);
  NestedContext ctx{&pool, data.data()};
  pool.parallel_for(4, 0, 64, 1, nested_outer, &ctx);
  EXPECT_EQ(ctx.inner_calls.load(), 64);  // one inline call per outer item
  EXPECT_EQ(ctx.inner_other_thread.load(), 0);
  for (int64_t v : data) EXPECT_EQ(v, 1);
}

TEST(back_to_back_from_two_threads_spinning) {
  ThreadPool pool(1);  // the 2-core case: one worker, two callers
  EXPECT_EQ(concurrent_back_to_back(pool, 2, 20000), 0);
  ThreadPool wide(3);
  EXPECT_EQ(concurrent_back_to_back(wide, 2, 20000), 0);
}

TEST(back_to_back_from_two_threads_sleeping) {
  ThreadPool pool(1, microseconds(0));  // every wait blocks: the futex path
  EXPECT_EQ(concurrent_back_to_back(pool, 2, 5000), 0);
  ThreadPool wide(3, microseconds(0));
  EXPECT_EQ(concurrent_back_to_back(wide, 2, 5000), 0);
}

TEST(more_callers_than_workers) {
  ThreadPool pool(2);
  EXPECT_EQ(concurrent_back_to_back(pool, 8, 2000), 0);
  ThreadPool sleepy(2, microseconds(0));
  EXPECT_EQ(concurrent_back_to_back(sleepy, 8, 1000), 0);
}

TEST(calls_after_idle_periods) {
  // Workers fall asleep between calls; each call must still wake them.
  ThreadPool pool(2, microseconds(20));
  for (int round = 0; round < 20; ++round) {
    EXPECT_EQ(back_to_back(pool, 3, 5000, 8, 2), 0);
    std::this_thread::sleep_for(microseconds(round % 2 ? 200 : 5));
  }
}

TEST(idle_workers_stop_spinning) {
  ThreadPool pool(3);
  EXPECT_EQ(back_to_back(pool, 4, 10000, 1, 100), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // past the spin time
  double before = process_cpu_seconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  double used = process_cpu_seconds() - before;
  // Three workers spinning for the whole 300 ms would use about 0.9 s.
  EXPECT_TRUE(used < 0.05);
  if (used >= 0.05) std::printf("  idle pool used %.3f s of CPU in 0.3 s\n", used);
}

TEST(destroy_while_workers_spin_or_sleep) {
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool(2, microseconds(i % 2 ? 1000 : 0));
    EXPECT_EQ(back_to_back(pool, 3, 100, 1, 3), 0);
    if (i % 5 == 0) std::this_thread::sleep_for(microseconds(50));
  }  // ~ThreadPool joins workers in either state
}

AOTC_TEST_MAIN()
