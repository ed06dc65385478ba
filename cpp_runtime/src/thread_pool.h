// ThreadPool: the one pool that every model's CPU kernels share through the
// host table's parallel_for, so concurrent runs do not oversubscribe cores.
// The calling thread always works on its own job, so a run makes progress
// even when every worker is busy with other runs (no deadlock, no global
// lock). Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "aotc/model_abi.h"

namespace aotc::internal {

class ThreadPool final {
 public:
  // The process-wide pool (workers start on first parallel use).
  static ThreadPool& shared();
  // Threads a run uses by default: the CPUs this process may run on.
  static int default_threads();

  explicit ThreadPool(int workers);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Runs fn over [begin, end) in at most |max_threads| chunks of at least
  // |grain| items, the caller taking part. Nested calls run inline.
  void parallel_for(int max_threads, int64_t begin, int64_t end, int64_t grain,
                    aotc_abi_range_fn fn, void* fn_ctx);

 private:
  struct Job;
  void start_locked();
  void worker_loop();
  static void work_on(Job& job);

  const int workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;  // one ticket per helper wanted
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

}  // namespace aotc::internal
