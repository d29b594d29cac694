// Sliding-window latencies, running totals and recent events (see the header).
#include "serve/live_stats.h"

#include <algorithm>
#include <cmath>

namespace conclave::serve {

latency_quantiles quantiles_of(std::vector<double>& values) {
  latency_quantiles q;
  q.count = values.size();
  if (values.empty()) return q;
  std::sort(values.begin(), values.end());
  auto rank = [&](double p) {
    const auto n = static_cast<double>(values.size());
    const auto i = static_cast<size_t>(std::max(1.0, std::ceil(p * n))) - 1;
    return values[std::min(i, values.size() - 1)];
  };
  q.p50 = rank(0.50);
  q.p90 = rank(0.90);
  q.p99 = rank(0.99);
  return q;
}

live_stats::live_stats(std::chrono::seconds keep, size_t max_samples, size_t max_events)
    : keep_(keep),
      max_samples_(std::max<size_t>(1, max_samples)),
      max_events_(std::max<size_t>(1, max_events)) {}

void live_stats::trim(std::deque<sample>& q, clock_type::time_point now) const {
  while (!q.empty() && (q.size() > max_samples_ || now - q.front().when > keep_)) q.pop_front();
}

void live_stats::observe(latency_kind k, double seconds, clock_type::time_point now) {
  if (!std::isfinite(seconds) || seconds < 0) return;
  std::lock_guard lock(mutex_);
  auto& q = samples_[static_cast<int>(k)];
  q.push_back({now, seconds});
  trim(q, now);
}

latency_quantiles live_stats::window(latency_kind k, std::chrono::duration<double> window,
                                     clock_type::time_point now) const {
  std::vector<double> values;
  {
    std::lock_guard lock(mutex_);
    const auto& q = samples_[static_cast<int>(k)];
    const auto from = now - std::chrono::duration_cast<clock_type::duration>(window);
    // Newest last: walk back from the end until the window's start.
    for (auto it = q.rbegin(); it != q.rend() && it->when >= from; ++it)
      if (it->when <= now) values.push_back(it->value);
  }
  return quantiles_of(values);
}

void live_stats::count_request(int status) {
  std::lock_guard lock(mutex_);
  ++totals_.requests;
  if (status >= 500) ++totals_.errors;
}

void live_stats::count_tokens(int64_t prompt, int64_t completion) {
  std::lock_guard lock(mutex_);
  totals_.prompt_tokens += static_cast<uint64_t>(std::max<int64_t>(0, prompt));
  totals_.completion_tokens += static_cast<uint64_t>(std::max<int64_t>(0, completion));
}

void live_stats::count_tool_call(bool failed) {
  std::lock_guard lock(mutex_);
  ++totals_.tool_calls;
  if (failed) ++totals_.tool_failures;
}

live_totals live_stats::totals() const {
  std::lock_guard lock(mutex_);
  return totals_;
}

void live_stats::add_event(std::string kind, std::string text,
                           std::chrono::system_clock::time_point when) {
  std::lock_guard lock(mutex_);
  events_.push_back({when, std::move(kind), std::move(text)});
  while (events_.size() > max_events_) events_.pop_front();
}

std::vector<live_event> live_stats::events(size_t n) const {
  std::lock_guard lock(mutex_);
  const size_t from = events_.size() > n ? events_.size() - n : 0;
  return {events_.begin() + static_cast<std::ptrdiff_t>(from), events_.end()};
}

}  // namespace conclave::serve
