// ThreadPool: the one pool that every model's CPU kernels share through the
// host table's parallel_for, so concurrent runs do not oversubscribe cores.
// The calling thread always works on its own job, so a run makes progress
// even when every worker is busy with other runs (no deadlock, no global
// lock). Thread-safe.
//
// [Note: spin before sleep]
// A model calls parallel_for once per kernel, back to back, and a kernel
// often takes only microseconds. Sleeping on a condition variable between
// them costs a futex wake-up per region (tens of microseconds of latency),
// more than the kernel. So, as OpenMP runtimes do, an idle worker first
// spins on an atomic ticket count (with a pause instruction) for |spin|
// before it blocks on the condition variable, and a caller that has run out
// of chunks spins on its job's done count for |spin| before it blocks (both
// yield the core now and then while they spin, for a busy machine). A
// caller wakes workers through the condition variable only when some sleep
// (the sleeper count is read under the queue mutex that a worker holds while
// it checks for tickets and goes to sleep, so no wake-up is lost), and the
// last chunk notifies the caller only when it sleeps (Dekker handshake on
// two sequentially consistent atomics, then the job mutex). Spinning is
// bounded: a pool that sees no work for |spin| uses no CPU.
#pragma once

#include <atomic>
#include <chrono>
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
  // How long an idle worker, or a caller waiting for its job, spins before it
  // sleeps ([Note: spin before sleep]).
  static constexpr std::chrono::microseconds kDefaultSpin{100};

  // The process-wide pool (workers start on first parallel use).
  static ThreadPool& shared();
  // Threads a run uses by default: the CPUs this process may run on.
  static int default_threads();

  // |spin| zero: workers and callers block at once (tests use it to exercise
  // the sleeping path).
  explicit ThreadPool(int workers, std::chrono::microseconds spin = kDefaultSpin);
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
  // Spins until |ready| returns true or the spin time is over; returns ready().
  template <typename Ready>
  bool spin_until(Ready ready) const;
  static void work_on(Job& job);

  const int workers_;
  const std::chrono::microseconds spin_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;  // one ticket per helper wanted
  std::atomic<int64_t> queued_{0};          // queue_.size(), for spinning workers
  int sleepers_ = 0;                        // workers waiting on wake_ (under mutex_)
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
};

}  // namespace aotc::internal
