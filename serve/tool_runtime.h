// tool_runtime: the server-side tools of a server and what every request's tool calls
// share (registry, retry policy, metrics, sleeper, jitter), built from the [tools]
// configuration: `math`, `code_interpreter` (with the configured sandbox limits),
// `browser` (when hosts are allowed) and the configured webhooks. Plain C++: the actors
// that run a call (actors/tool_invocation) only carry these.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "config/server_config.h"
#include "serve/client_api.h"
#include "toolkit/invoke.h"
#include "toolkit/registry.h"

namespace prometheus {
class Registry;
class Counter;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace conclave::serve {

class server_metrics;

/// A call the model made.
struct tool_call_request {
  std::string call_id, name, arguments;
};

/// What came of it; `content` is what the model sees (a tool error starts with "error:").
struct tool_call_result {
  std::string call_id, name, content;
  toolkit::outcome status = toolkit::outcome::ok;
  int attempts = 0, retries = 0;
  double seconds = 0;
};

/// The client's event for a result (kind tool_result: call_id, name, text = content,
/// tool_outcome).
client_event tool_result_event(const tool_call_result& r);

/// Prometheus series of tool calls: conclave_tool_calls_total{tool,outcome},
/// conclave_tool_call_duration_seconds{tool} (all attempts and waits included),
/// conclave_tool_retries_total{tool}.
class live_stats;

class tool_metrics {
 public:
  /// `live` (optional) also counts each call and failure for the dashboard and alerts.
  explicit tool_metrics(prometheus::Registry& registry, std::shared_ptr<live_stats> live = nullptr);
  void observe(const tool_call_result& r);

 private:
  std::shared_ptr<live_stats> live_;
  prometheus::Family<prometheus::Counter>* calls_;
  prometheus::Family<prometheus::Histogram>* latency_;
  prometheus::Family<prometheus::Counter>* retries_;
};

/// What every session's tool calls share.
struct tool_runtime {
  std::shared_ptr<toolkit::registry> tools = std::make_shared<toolkit::registry>();
  toolkit::retry_policy retry;
  std::shared_ptr<tool_metrics> metrics;  ///< may be null
  toolkit::sleeper sleep = toolkit::real_sleeper();
  /// Uniform draws in [0, 1) for the backoff jitter (a seeded generator by default).
  std::function<double()> random;
};

/// Runs `call` on `rt`'s tools, blocking (schema check, per-tool timeout, retries with
/// backoff; toolkit/invoke.h). An unknown tool name gives an error result. `cancel` stops
/// the tool and kills its processes. Records the result in rt.metrics.
tool_call_result run_tool_call(const tool_runtime& rt, const tool_call_request& call,
                               std::shared_ptr<const toolkit::cancel_flag> cancel);

/// Throws std::invalid_argument naming the entry for a webhook whose parameters are not a
/// JSON object schema, a bad URL or a duplicate name.
std::shared_ptr<const tool_runtime> make_tool_runtime(
    const config::tools_config& cfg, const std::shared_ptr<server_metrics>& metrics);

}  // namespace conclave::serve
