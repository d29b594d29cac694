// Token counts and latencies of one request (see the header).
#include "serve/request_stats.h"

namespace conclave::serve {
namespace {

double seconds_between(request_stats::clock_type::time_point a,
                       request_stats::clock_type::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

bool request_stats::token(double step_seconds) {
  const bool first = usage_.completion_tokens == 0;
  if (first) {
    first_ = clock_type::now();
    if (metrics_) metrics_->observe_ttft(seconds_between(start_, first_));
  }
  ++usage_.completion_tokens;
  engine_seconds_ += step_seconds;
  return first;
}

client_event request_stats::started() const {
  client_event e;
  e.type = client_event::kind::started;
  e.tokens = usage_;
  return e;
}

client_event request_stats::finished(std::string reason, std::vector<logprob_entry> logprobs) {
  client_event done;
  done.type = client_event::kind::finished;
  done.finish_reason = std::move(reason);
  done.tokens = usage_;
  done.logprobs = std::move(logprobs);
  done.engine_seconds = engine_seconds_;
  if (!metrics_) return done;
  const auto now = clock_type::now();
  metrics_->observe_e2e(seconds_between(start_, now));
  metrics_->add_tokens(usage_.prompt_tokens, usage_.completion_tokens);
  if (usage_.completion_tokens > 1) {
    metrics_->observe_tpot(seconds_between(first_, now) /
                           static_cast<double>(usage_.completion_tokens - 1));
  }
  return done;
}

}  // namespace conclave::serve
