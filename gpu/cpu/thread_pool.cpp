// A generation-counted fork/join pool: one job at a time, chunk i goes to participant i.
#include "gpu/cpu/thread_pool.h"

#include <algorithm>
#include <utility>

namespace conclave::gpu::cpu {

thread_pool::thread_pool(int threads) {
  const int n = std::max(threads, 1);
  for (int i = 1; i < n; ++i)
    workers_.emplace_back([this, i] { worker_loop(static_cast<size_t>(i)); });
}

thread_pool::~thread_pool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void thread_pool::run_chunk(size_t chunk) {
  const size_t parts = static_cast<size_t>(size());
  const size_t begin = job_n_ * chunk / parts;
  const size_t end = job_n_ * (chunk + 1) / parts;
  if (begin >= end) return;
  try {
    (*job_)(begin, end);
  } catch (...) {
    std::lock_guard lock(mutex_);
    if (!error_) error_ = std::current_exception();
  }
}

void thread_pool::worker_loop(size_t index) {
  size_t seen = 0;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    run_chunk(index);
    {
      std::lock_guard lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }
}

void thread_pool::parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  if (workers_.empty() || n == 1) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    job_ = &fn;
    job_n_ = n;
    pending_ = workers_.size();
    error_ = nullptr;
    ++generation_;
  }
  wake_.notify_all();
  run_chunk(0);
  std::unique_lock lock(mutex_);
  done_.wait(lock, [&] { return pending_ == 0; });
  job_ = nullptr;
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

}  // namespace conclave::gpu::cpu
