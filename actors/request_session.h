// request_session: one actor per request. Message handling only: the request is
// prepared by serve/request_setup, its tokens become client events in
// serve/text_pipeline, and where it stands (running, moving to another replica after a
// failure, running server-side tools, cancelled) is serve/failover's state machine. The
// session submits through the router, watches its engine and its tool invocations, and
// does what the machine's steps say. It ends when the request finishes, fails or is
// cancelled; however it ends (even killed), its session_guard gives the client a last
// event and the router its reservation back.
#pragma once

#include <atomic>
#include <caf/all.hpp>
#include <map>
#include <memory>
#include <optional>

#include "actors/live_actors.h"
#include "actors/messages.h"
#include "actors/session_env.h"
#include "serve/admission.h"
#include "serve/failover.h"
#include "serve/request_setup.h"
#include "serve/request_stats.h"
#include "serve/session_guard.h"
#include "serve/text_pipeline.h"

namespace conclave::actors {

struct session_state {
  serve::generation_request req;
  std::shared_ptr<serve::session_guard> sink;
  std::shared_ptr<const session_env> env;
  caf::actor router;
  std::optional<serve::failover_machine> machine;
  std::optional<serve::text_pipeline> text;
  std::optional<serve::server_rounds> rounds;  ///< when the request enabled server-side tools
  std::optional<serve::request_stats> stats;
  caf::actor engine;            ///< the engine that holds its sequence (running)
  int replica = -1;             ///< that engine's replica id
  caf::actor_addr last_engine;  ///< the engine it ran on last (skipped after it fails)
  int64_t seq_id = -1;
  std::vector<int32_t> prompt;     ///< as submitted (kept for failover)
  std::vector<int32_t> generated;  ///< every token of this generation, in order
  /// Counted in the service's queue until its first token (or its end).
  std::shared_ptr<std::atomic<bool>> queued = std::make_shared<std::atomic<bool>>(true);
  std::shared_ptr<toolkit::cancel_flag> tool_cancel = std::make_shared<toolkit::cancel_flag>();
  /// This round's running tool invocations, by actor: one that goes down before its
  /// result came is started again (serve::tool_restarts).
  std::map<caf::actor_addr, serve::tool_call_request> tool_actors;
  serve::tool_restarts restarts;
  static inline const char* name = "request_session";
};

/// The service's handle on a running request: cancel() tells its session the client left.
class session_handle final : public serve::request_handle {
 public:
  explicit session_handle(caf::actor session) : session_(std::move(session)) {}
  void cancel() override {
    if (!cancelled_.exchange(true)) caf::anon_send(session_, cancel_atom::value);
  }

 private:
  caf::actor session_;
  std::atomic<bool> cancelled_{false};
};

/// Spawned per request by the service. Handles (token_atom, token_msg),
/// (failed_atom, failure_msg), (retry_atom), (end_request_atom, why),
/// (tool_result_atom, tool_call_result) and (cancel_atom) from the client side.
caf::behavior request_session(caf::stateful_actor<session_state>* self,
                              serve::generation_request req,
                              std::shared_ptr<serve::session_guard> sink,
                              std::shared_ptr<const session_env> env, caf::actor router);

}  // namespace conclave::actors
