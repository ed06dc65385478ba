#include "thread_pool.h"

#include <sched.h>

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace aotc::internal {
namespace {
thread_local bool t_in_parallel_region = false;

// One spin-wait step: tells the core (and its SMT sibling) that this is a
// busy-wait loop, as OpenMP runtimes do.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}
}  // namespace

struct ThreadPool::Job {
  aotc_abi_range_fn fn;
  void* fn_ctx;
  int64_t begin, end, chunk;
  int64_t num_chunks;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  // Set (under |mutex|) when the caller stops spinning and sleeps on
  // |finished|; the last chunk notifies only then ([Note: spin before sleep]).
  std::atomic<bool> caller_sleeps{false};
  std::mutex mutex;
  std::condition_variable finished;
};

ThreadPool& ThreadPool::shared() {
  // Leaked on purpose: workers may still be parked at exit, and destroying a
  // pool from a static destructor races with late runs in other threads.
  static ThreadPool* pool = new ThreadPool(std::max(0, default_threads() - 1));
  return *pool;
}

int ThreadPool::default_threads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(int workers, std::chrono::microseconds spin)
    : workers_(workers), spin_(spin) {}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true);
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::start_locked() {
  if (!threads_.empty() || workers_ == 0) return;
  for (int i = 0; i < workers_; ++i) threads_.emplace_back([this] { worker_loop(); });
}

template <typename Ready>
bool ThreadPool::spin_until(Ready ready) const {
  if (ready()) return true;
  if (spin_.count() <= 0) return false;
  // Every 64 pauses (a pause is ~10-150 cycles) the clock is read and the
  // core offered to another runnable thread: on a busy machine a spinning
  // worker must not take the core from the caller it shares it with, or a
  // caller from the preempted worker it waits for (measured on 2 cores under
  // load: without the yield, examples/cnn.py ran 5-30% slower than with no
  // spinning at all; with it, no slower).
  auto deadline = std::chrono::steady_clock::now() + spin_;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      cpu_relax();
      if (ready()) return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return ready();
    sched_yield();
  }
}

void ThreadPool::work_on(Job& job) {
  bool was_inside = t_in_parallel_region;
  t_in_parallel_region = true;
  for (;;) {
    int64_t i = job.next.fetch_add(1);
    if (i >= job.num_chunks) break;
    int64_t lo = job.begin + i * job.chunk;
    int64_t hi = std::min(job.end, lo + job.chunk);
    job.fn(job.fn_ctx, lo, hi);
    // Both sequentially consistent: either this load sees the caller's
    // caller_sleeps store, or the caller's re-check sees this done count.
    if (job.done.fetch_add(1) + 1 == job.num_chunks && job.caller_sleeps.load()) {
      std::lock_guard<std::mutex> lock(job.mutex);
      job.finished.notify_all();
    }
  }
  t_in_parallel_region = was_inside;
}

void ThreadPool::worker_loop() {
  for (;;) {
    bool saw_work = spin_until([this] {
      return queued_.load(std::memory_order_relaxed) > 0 ||
             stopping_.load(std::memory_order_relaxed);
    });
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (queue_.empty() && !stopping_.load()) {
        // Another worker took the ticket this one saw: spin again.
        if (saw_work) continue;
        ++sleepers_;
        wake_.wait(lock, [&] { return stopping_.load() || !queue_.empty(); });
        --sleepers_;
      }
      if (stopping_.load()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      queued_.store(static_cast<int64_t>(queue_.size()), std::memory_order_relaxed);
    }
    work_on(*job);
  }
}

void ThreadPool::parallel_for(int max_threads, int64_t begin, int64_t end, int64_t grain,
                              aotc_abi_range_fn fn, void* fn_ctx) {
  if (end <= begin) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t n = end - begin;
  int64_t threads = std::min<int64_t>(std::max(1, max_threads), workers_ + 1);
  int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, threads);
  if (chunks <= 1 || t_in_parallel_region) {
    bool was_inside = t_in_parallel_region;
    t_in_parallel_region = true;
    fn(fn_ctx, begin, end);
    t_in_parallel_region = was_inside;
    return;
  }
  auto job = std::make_shared<Job>();
  job->fn = fn;
  job->fn_ctx = fn_ctx;
  job->begin = begin;
  job->end = end;
  job->chunk = (n + chunks - 1) / chunks;
  job->num_chunks = (n + job->chunk - 1) / job->chunk;
  int64_t to_wake = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    start_locked();
    for (int64_t i = 1; i < job->num_chunks; ++i) queue_.push_back(job);
    queued_.store(static_cast<int64_t>(queue_.size()), std::memory_order_relaxed);
    // Spinning workers see queued_; only sleeping ones need the futex. A
    // worker registers in sleepers_ under this mutex before it waits.
    to_wake = std::min<int64_t>(sleepers_, job->num_chunks - 1);
  }
  for (int64_t i = 0; i < to_wake; ++i) wake_.notify_one();
  work_on(*job);
  auto all_done = [&] { return job->done.load() == job->num_chunks; };
  if (spin_until(all_done)) return;
  std::unique_lock<std::mutex> lock(job->mutex);
  job->caller_sleeps.store(true);
  job->finished.wait(lock, all_done);
}

}  // namespace aotc::internal
