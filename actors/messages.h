// messages: every atom and message type the conclave actors exchange, and the typed
// interfaces of the actors that have one. In-process only: payloads hold shared
// pointers, so they are registered as local-only types.
//
// Protocols (who sends what to whom):
//   engine       (submit_atom, engine_submit) -> submit_reply   [router delegates]
//                (cancel_atom, int64_t seq_id)                   [session, checker]
//                (stats_atom) -> stats_msg                       [health checker]
//                (drain_atom) -> drain_atom, once no request runs [supervisor]
//                sends each session (token_atom, token_msg) per token and
//                (failed_atom, failure_msg) when the replica fails
//   gpu_worker   gpu_worker_actor below: one forward per step
//   router       (add_engine_atom, actor engine)                 [supervisor]
//                (submit_atom, engine_submit)                    [session; delegated]
//                (finished_atom, actor_addr engine, int64_t reservation) [session]
//                (drain_atom, actor engine) -> drain_atom        [supervisor]
//   supervisor   (restart_atom) [health checker]; (drain_atom, double timeout_s) [service];
//                (drain_timeout_atom) [itself]
//   checker      (watch_atom, actor engine) [supervisor]; heartbeat_atom, probe_atom,
//                (probe_timeout_atom, uint64_t) [itself]
//   session      token/failed [engine]; (retry_atom) [itself]; (end_request_atom,
//                string why) [service]; (tool_result_atom, tool_call_result)
//                [tool_invocation]; (cancel_atom) [service: the client left]
//   autoscaler   (scale_tick_atom) [itself]
//   tool actor   tool_actor below: a custom tool (examples/custom_tool)
#pragma once

#include <caf/all.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/llm_engine.h"
#include "engine/sampling_params.h"
#include "gpu/backend.h"
#include "serve/replica_status.h"
#include "serve/tool_runtime.h"

namespace conclave::actors {

// Replica: engine, worker, router, supervisor.
using forward_atom = caf::atom_constant<caf::atom("forward")>;
using submit_atom = caf::atom_constant<caf::atom("submit")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using token_atom = caf::atom_constant<caf::atom("token")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using start_atom = caf::atom_constant<caf::atom("start")>;
using failed_atom = caf::atom_constant<caf::atom("failed")>;
using restart_atom = caf::atom_constant<caf::atom("restart")>;
/// session -> router: a request left an engine; frees its reservation there.
using finished_atom = caf::atom_constant<caf::atom("finished")>;
/// Scale-down: stop placing requests on a replica, let its running ones finish.
using drain_atom = caf::atom_constant<caf::atom("drain")>;
/// supervisor -> itself: a drain ran out of time.
using drain_timeout_atom = caf::atom_constant<caf::atom("draintmo")>;
/// supervisor -> router: a replica's engine is up.
using add_engine_atom = caf::atom_constant<caf::atom("addengine")>;

// Request sessions and tools.
/// session -> itself: try the router again after a replica failure.
using retry_atom = caf::atom_constant<caf::atom("retry")>;
/// service -> session: end the request now with a 503 error event carrying the text (the
/// server's drain timeout ran out).
using end_request_atom = caf::atom_constant<caf::atom("endreq")>;
using tool_result_atom = caf::atom_constant<caf::atom("toolres")>;
using run_tool_atom = caf::atom_constant<caf::atom("runtool")>;

// Health checks and autoscaling.
using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>;
using probe_atom = caf::atom_constant<caf::atom("probe")>;
using probe_timeout_atom = caf::atom_constant<caf::atom("probetmo")>;
/// supervisor -> checker: the replica's current engine (after each bring-up).
using watch_atom = caf::atom_constant<caf::atom("watch")>;
using scale_tick_atom = caf::atom_constant<caf::atom("scaletick")>;

/// A scheduled step for the gpu_worker; the batch points into sequences `step` keeps alive.
struct forward_job {
  std::shared_ptr<const engine::pending_step> step;
  serve::fault_kind fault = serve::fault_kind::none;  ///< injected for drills
  double hang_s = 0;                                  ///< for fault_kind::hang_step
};
/// The worker's answer: logits rows (or device-sampled tokens) for the step.
struct forward_done {
  std::shared_ptr<gpu::step_output> out;
};
/// A request for an engine: prompt ids, sampling, and the session to stream tokens to.
struct engine_submit {
  std::vector<int32_t> prompt;
  engine::sampling_params params;
  caf::actor session;
  /// Failover: tokens the request already produced on a replica that failed; the new
  /// engine continues after them.
  std::vector<int32_t> resume_output;
  /// Failover: the engine that failed, which the router skips while others live.
  caf::actor_addr avoid;
};
/// What an engine answers to submit: the sequence id, or the reason it was refused.
struct submit_reply {
  int64_t seq_id = -1;
  std::string error;  ///< non-empty: invalid request (HTTP 400)
  caf::actor engine;  ///< where to send cancel_atom
  int replica = -1;   ///< the engine's replica id (the request log names it)
};
/// One sampled token for a session.
struct token_msg {
  int64_t seq_id = 0;
  int32_t token = 0;
  bool finished = false;
  engine::finish_reason reason = engine::finish_reason::none;
  std::optional<engine::token_logprobs> logprobs;
  /// Seconds the step that sampled this token took (forward on the worker + sampling).
  double step_seconds = 0;
};
/// The engine failed (worker crash or device error): its requests end with this message.
struct failure_msg {
  std::string message;
};
/// A snapshot of an engine's counters.
struct stats_msg {
  engine::engine_stats stats;
};

/// The gpu_worker: runs one forward pass per message on the backend it owns.
using gpu_worker_actor =
    caf::typed_actor<caf::replies_to<forward_atom, forward_job>::with<forward_done>>;

/// A custom tool actor: arguments (JSON text, already checked against the schema) in,
/// (ok, text) out; ok false is a definite error (not retried); an actor that does not
/// answer within the tool's timeout or dies is retried.
using tool_actor =
    caf::typed_actor<caf::replies_to<run_tool_atom, std::string>::with<bool, std::string>>;

}  // namespace conclave::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::actors::forward_job)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::actors::forward_done)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::actors::engine_submit)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::actors::token_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::actors::submit_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::actors::failure_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::actors::stats_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::serve::tool_call_result)
