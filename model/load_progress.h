// load_progress: what a user sees while weights load. On a terminal, one redrawn line on
// stderr ("loading weights [#####     ] 47%  6.1/13.0 GiB  2.3 GiB/s"); otherwise (logs,
// pipes, CI) an info line at each quarter, so logs stay short. Thread-safe: loaders on
// several threads call advance().
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>

namespace conclave::model {

class load_progress {
 public:
  /// `total_bytes` may be 0 (nothing to show). `interactive` defaults to whether stderr
  /// is a terminal.
  load_progress(std::string what, size_t total_bytes);
  load_progress(std::string what, size_t total_bytes, bool interactive);
  ~load_progress();
  load_progress(const load_progress&) = delete;
  load_progress& operator=(const load_progress&) = delete;

  void advance(size_t bytes);
  /// Ends the line (also done by the destructor); prints the total time.
  void finish();

  size_t done_bytes() const { return done_.load(); }
  /// The line as it would be drawn now; for tests.
  std::string render() const;

 private:
  void draw(bool force);

  std::string what_;
  size_t total_;
  bool interactive_;
  std::atomic<size_t> done_{0};
  std::mutex mutex_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int last_quarter_ = 0;
  bool finished_ = false;
};

}  // namespace conclave::model
