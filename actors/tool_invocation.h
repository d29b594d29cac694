// tool_invocation: one actor per server-side tool call, spawned and monitored by its
// request_session. It checks the arguments against the tool's schema, runs the tool
// with the per-tool timeout and retries retryable failures with backoff
// (toolkit/invoke.h), sends the result to its parent and quits. Tools block (a sandboxed
// process, an HTTP call), so the actor is detached: it has its own thread. Cancelling
// the request sets the shared cancel flag: the tool stops and its processes are killed.
//
// Custom tools in C++ are actors too: anything that answers the `tool_actor` interface
// can be registered with register_actor_tool() (examples/custom_tool/).
#pragma once

#include <caf/all.hpp>
#include <functional>
#include <memory>
#include <string>

#include "actors/live_actors.h"
#include "toolkit/invoke.h"
#include "toolkit/registry.h"

namespace prometheus {
class Registry;
class Counter;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace conclave::actors {

using tool_result_atom = caf::atom_constant<caf::atom("toolres")>;
using run_tool_atom = caf::atom_constant<caf::atom("runtool")>;

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

/// Prometheus series of tool calls: conclave_tool_calls_total{tool,outcome},
/// conclave_tool_call_duration_seconds{tool} (all attempts and waits included),
/// conclave_tool_retries_total{tool}.
class tool_metrics {
 public:
  explicit tool_metrics(prometheus::Registry& registry);
  void observe(const tool_call_result& r);

 private:
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
  /// Running invocations by call id (POST /admin/fault kill_tool).
  std::shared_ptr<live_actors> live = std::make_shared<live_actors>();
};

/// Spawns the actor for `call` (detached and monitored by `parent`); it sends
/// (tool_result_atom, tool_call_result) to `parent` and quits. An unknown tool name
/// gives an error result, as do invalid arguments. An invocation killed from outside
/// (runtime->live) stops its tool and ends without a result: the parent sees it go down.
caf::actor spawn_tool_invocation(caf::local_actor* parent,
                                 std::shared_ptr<const tool_runtime> runtime,
                                 tool_call_request call,
                                 std::shared_ptr<const toolkit::cancel_flag> cancel);

/// The interface of a custom tool actor: arguments (JSON text, already checked against
/// the schema) in, (ok, text) out; ok false is a definite error (not retried), an actor
/// that does not answer within the tool's timeout or dies is retried.
using tool_actor =
    caf::typed_actor<caf::replies_to<run_tool_atom, std::string>::with<bool, std::string>>;

/// Registers `actor` as the tool `def` in `tools`, answering within `timeout`.
void register_actor_tool(toolkit::registry& tools, caf::actor_system& system, model::tool_spec def,
                         tool_actor actor,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace conclave::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::actors::tool_call_result)
