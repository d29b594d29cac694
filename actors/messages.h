// messages: the atoms and message types the conclave actors exchange (in-process only;
// payloads hold shared pointers, so they are registered as local-only types).
#pragma once

#include <caf/all.hpp>
#include <memory>

#include "actors/replica_status.h"
#include "engine/llm_engine.h"
#include "engine/sampling_params.h"
#include "gpu/backend.h"

namespace conclave::actors {

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
/// session -> itself: try the router again after a replica failure.
using retry_atom = caf::atom_constant<caf::atom("retry")>;
/// Scale-down: stop placing requests on a replica, let its running ones finish.
using drain_atom = caf::atom_constant<caf::atom("drain")>;

/// A scheduled step for the gpu_worker; the batch points into sequences `step` keeps alive.
struct forward_job {
  std::shared_ptr<const engine::pending_step> step;
  fault_kind fault = fault_kind::none;  ///< injected for drills: fail, hang or crash
  double hang_s = 0;                    ///< for fault_kind::hang_step
};
/// The worker's answer: logits rows for the step.
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

/// Tokens a request may still make an engine process (its prompt and resumed output are
/// prefilled, the rest of max_tokens decoded): what the router balances on.
inline int64_t reservation(size_t prompt_tokens, int32_t max_tokens) {
  return static_cast<int64_t>(prompt_tokens) + max_tokens;
}
/// What an engine answers to submit: the sequence id, or the reason it was refused.
struct submit_reply {
  int64_t seq_id = -1;
  std::string error;  ///< non-empty: invalid request (HTTP 400)
  caf::actor engine;  ///< where to send cancel_atom
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

}  // namespace conclave::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::actors::forward_job)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::actors::forward_done)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::actors::engine_submit)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::actors::token_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::actors::submit_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::actors::failure_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::actors::stats_msg)
