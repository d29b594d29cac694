// request_stats: one request's token counts and latencies, observed into the server's
// metrics (TTFT at the first token; end-to-end, TPOT and token totals at the end).
#pragma once

#include <chrono>
#include <memory>

#include "serve/client_api.h"
#include "serve/server_metrics.h"

namespace conclave::serve {

class request_stats {
 public:
  using clock_type = std::chrono::steady_clock;
  /// `metrics` may be null (nothing is observed).
  explicit request_stats(std::shared_ptr<server_metrics> metrics)
      : metrics_(std::move(metrics)), start_(clock_type::now()) {}

  /// A token was sampled by a step that took `step_seconds`; true for the first.
  bool token(double step_seconds);
  /// A generation's prompt was submitted (every tool round adds its prompt).
  void add_prompt(size_t tokens) { usage_.prompt_tokens += static_cast<int64_t>(tokens); }
  /// The request finished with `reason`: observes its end-to-end time, TPOT and tokens,
  /// and returns its last event (`logprobs`: those not sent yet).
  client_event finished(std::string reason, std::vector<logprob_entry> logprobs);
  /// The event that tells the client its prompt was accepted.
  client_event started() const;

  const usage& tokens() const { return usage_; }

 private:
  std::shared_ptr<server_metrics> metrics_;
  clock_type::time_point start_, first_;
  usage usage_;
  double engine_seconds_ = 0;
};

}  // namespace conclave::serve
