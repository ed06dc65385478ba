#include "thread_pool.h"

#include <sched.h>

#include <algorithm>
#include <atomic>

namespace aotc::internal {
namespace {
thread_local bool t_in_parallel_region = false;
}

struct ThreadPool::Job {
  aotc_abi_range_fn fn;
  void* fn_ctx;
  int64_t begin, end, chunk;
  int64_t num_chunks;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
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

ThreadPool::ThreadPool(int workers) : workers_(workers) {}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::start_locked() {
  if (!threads_.empty() || workers_ == 0) return;
  for (int i = 0; i < workers_; ++i) threads_.emplace_back([this] { worker_loop(); });
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
    if (job.done.fetch_add(1) + 1 == job.num_chunks) {
      std::lock_guard<std::mutex> lock(job.mutex);
      job.finished.notify_all();
    }
  }
  t_in_parallel_region = was_inside;
}

void ThreadPool::worker_loop() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
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
  {
    std::lock_guard<std::mutex> lock(mutex_);
    start_locked();
    for (int64_t i = 1; i < job->num_chunks; ++i) queue_.push_back(job);
  }
  wake_.notify_all();
  work_on(*job);
  std::unique_lock<std::mutex> lock(job->mutex);
  job->finished.wait(lock, [&] { return job->done.load() == job->num_chunks; });
}

}  // namespace aotc::internal
