// live_stats: what the dashboard and the alert rules read of a running server, beside
// the Prometheus series: latency observations of the last minutes (for percentiles over
// a sliding window, which a cumulative histogram cannot give), running totals of
// requests, errors, tokens and tool calls, and a ring of recent events (autoscaler
// decisions, replica state changes, alerts). Thread-safe; plain C++.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace conclave::serve {

enum class latency_kind { ttft = 0, tpot = 1, e2e = 2 };

/// Percentiles of the observations in a window (nearest rank); empty when none.
struct latency_quantiles {
  std::optional<double> p50, p90, p99;
  size_t count = 0;
};

/// Running totals since the server started.
struct live_totals {
  uint64_t requests = 0;  ///< generation requests finished (any status)
  uint64_t errors = 0;    ///< those that ended with a 5xx status
  uint64_t prompt_tokens = 0, completion_tokens = 0;
  uint64_t tool_calls = 0, tool_failures = 0;
};

struct live_event {
  std::chrono::system_clock::time_point time;
  std::string kind;  ///< "autoscaler", "replica", "alert", "model", "node"
  std::string text;
};

/// Nearest-rank percentiles of `values` (sorted in place).
latency_quantiles quantiles_of(std::vector<double>& values);

class live_stats {
 public:
  using clock_type = std::chrono::steady_clock;

  /// Observations older than `keep` are dropped; at most `max_samples` are kept per kind
  /// (the oldest go first), so memory is bounded under any load.
  explicit live_stats(std::chrono::seconds keep = std::chrono::seconds(300),
                      size_t max_samples = 50000, size_t max_events = 200);

  void observe(latency_kind k, double seconds, clock_type::time_point now = clock_type::now());
  /// Percentiles of kind `k` over the observations of the last `window`.
  latency_quantiles window(latency_kind k, std::chrono::duration<double> window,
                           clock_type::time_point now = clock_type::now()) const;

  /// A generation request finished with HTTP `status` (5xx counts as an error).
  void count_request(int status);
  void count_tokens(int64_t prompt, int64_t completion);
  /// A tool call finished (cancelled ones are not counted); `failed` unless it was ok.
  void count_tool_call(bool failed);
  live_totals totals() const;

  void add_event(std::string kind, std::string text,
                 std::chrono::system_clock::time_point when = std::chrono::system_clock::now());
  /// The newest `n` events, oldest first.
  std::vector<live_event> events(size_t n) const;

 private:
  struct sample {
    clock_type::time_point when;
    double value;
  };
  void trim(std::deque<sample>& q, clock_type::time_point now) const;

  const std::chrono::seconds keep_;
  const size_t max_samples_, max_events_;
  mutable std::mutex mutex_;
  std::deque<sample> samples_[3];
  live_totals totals_;
  std::deque<live_event> events_;
};

}  // namespace conclave::serve
