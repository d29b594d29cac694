// restart_policy: how long a replica's supervisor waits before bringing a failed replica
// up again (exponential backoff), and when it gives up, as plain rules.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <deque>

namespace conclave::serve {

/// Delay before restart number `attempt` (0-based): `base_s` doubling to at most `max_s`
/// (by default 0.5 s doubling to at most 30 s).
inline std::chrono::milliseconds restart_backoff(int attempt, double base_s = 0.5,
                                                 double max_s = 30.0) {
  const double s = std::min(max_s, base_s * std::ldexp(1.0, std::clamp(attempt, 0, 30)));
  return std::chrono::milliseconds(std::llround(s * 1000.0));
}

/// What to do after a failure: give up (too many within the window), or restart after
/// `delay` (`attempt` counts the consecutive restarts, 1-based).
struct restart_decision {
  bool give_up = false;
  std::chrono::milliseconds delay{0};
  int attempt = 0;
  size_t failures_in_window = 0;
};

/// A replica's failures over time: more than max_restarts within window_s and it is given
/// up; otherwise the next restart waits restart_backoff(consecutive restarts), and a
/// replica that served at least reset_after_s before going down starts the backoff over.
class restart_tracker {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  restart_tracker(int max_restarts, double window_s, double backoff_s, double backoff_max_s,
                  double reset_after_s)
      : max_restarts_(max_restarts),
        window_(seconds(window_s)),
        backoff_s_(backoff_s),
        backoff_max_s_(backoff_max_s),
        reset_after_(seconds(reset_after_s)) {}

  /// A bring-up failed or the running replica went down at `now`.
  restart_decision failed(time_point now) {
    failures_.push_back(now);
    while (!failures_.empty() && now - failures_.front() > window_) failures_.pop_front();
    restart_decision d;
    d.failures_in_window = failures_.size();
    if (static_cast<long>(failures_.size()) > max_restarts_) {
      d.give_up = true;
      return d;
    }
    d.delay = restart_backoff(restarts_, backoff_s_, backoff_max_s_);
    d.attempt = ++restarts_;
    return d;
  }

  /// The replica is up (and serving) from `now`.
  void came_up(time_point now) { up_since_ = now; }

  /// The running replica went down at `now`: after a long enough run, the next restart
  /// waits the base delay again. Call failed(now) next.
  void went_down(time_point now) {
    if (now - up_since_ >= reset_after_) restarts_ = 0;
  }

 private:
  static std::chrono::steady_clock::duration seconds(double s) {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(s));
  }

  long max_restarts_;
  std::chrono::steady_clock::duration window_;
  double backoff_s_, backoff_max_s_;
  std::chrono::steady_clock::duration reset_after_;
  std::deque<time_point> failures_;
  int restarts_ = 0;
  time_point up_since_{};
};

}  // namespace conclave::serve
