// Statistics of `conclave bench serve`: percentiles over samples, folding finished
// streams into per-request latencies, and the slot dispenser that bounds a run.
#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "bench/serve_bench.h"

namespace conclave::bench {

void sample_stats::add(double x) {
  if (!xs_.empty() && x < xs_.back()) sorted_ = false;
  xs_.push_back(x);
}

void sample_stats::sort() const {
  if (sorted_) return;
  std::sort(xs_.begin(), xs_.end());
  sorted_ = true;
}

double sample_stats::mean() const {
  if (xs_.empty()) throw std::logic_error("mean of no samples");
  return std::accumulate(xs_.begin(), xs_.end(), 0.0) / static_cast<double>(xs_.size());
}

double sample_stats::min() const {
  if (xs_.empty()) throw std::logic_error("minimum of no samples");
  sort();
  return xs_.front();
}

double sample_stats::max() const {
  if (xs_.empty()) throw std::logic_error("maximum of no samples");
  sort();
  return xs_.back();
}

double sample_stats::percentile(double p) const {
  if (!(p >= 0 && p <= 100)) throw std::invalid_argument("percentile must be within [0, 100]");
  if (xs_.empty()) throw std::logic_error("percentile of no samples");
  sort();
  const double rank = p / 100.0 * static_cast<double>(xs_.size() - 1);
  const auto lo = static_cast<size_t>(rank);
  if (lo + 1 >= xs_.size()) return xs_.back();
  const double frac = rank - static_cast<double>(lo);
  return xs_[lo] + (xs_[lo + 1] - xs_[lo]) * frac;
}

void serve_bench_result::add_stream(const stream_timing& t) {
  ++completed;
  prompt_tokens += t.prompt_tokens;
  output_tokens += t.completion_tokens;
  content_chunks += static_cast<int64_t>(t.content_times.size());
  e2e.add(t.end);
  if (t.engine_s >= 0) overhead.add(t.end - t.engine_s);
  // A stream whose tokens all decoded to nothing (special tokens, a held-back partial
  // character) has no content chunk; its first output is the end of the stream.
  ttft.add(t.content_times.empty() ? t.end : t.content_times.front());
  const size_t n = t.content_times.size();
  if (n < 2) return;
  for (size_t i = 1; i < n; ++i) gap.add(t.content_times[i] - t.content_times[i - 1]);
  tpot.add((t.content_times.back() - t.content_times.front()) / static_cast<double>(n - 1));
}

void serve_bench_result::add_error(const std::string& kind) {
  ++errors[kind];
}

int64_t serve_bench_result::error_count() const {
  int64_t n = 0;
  for (const auto& [kind, count] : errors) n += count;
  return n;
}

double serve_bench_result::requests_per_s() const {
  return wall_s > 0 ? static_cast<double>(completed) / wall_s : 0.0;
}

double serve_bench_result::output_tokens_per_s() const {
  return wall_s > 0 ? static_cast<double>(output_tokens) / wall_s : 0.0;
}

load_plan::load_plan(int64_t max_requests, double duration_s, clock_type::time_point start)
    : max_requests_(max_requests),
      has_deadline_(duration_s > 0),
      deadline_(start + std::chrono::duration_cast<clock_type::duration>(
                            std::chrono::duration<double>(duration_s))) {}

bool load_plan::next() {
  if (max_requests_ > 0 && issued_ >= max_requests_) return false;
  if (has_deadline_ && clock_type::now() >= deadline_) return false;
  ++issued_;
  return true;
}

}  // namespace conclave::bench
