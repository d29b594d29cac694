// request_session: one actor per request. Turns the request into prompt ids (chat
// template + tokenizer), submits it through the router, and turns the engine's tokens
// into client events: incremental detokenisation, stop strings, and tool-call parsing.
// It ends when the request finishes, fails or is cancelled; cancelling it cancels its
// sequence in the engine.
#pragma once

#include <atomic>
#include <caf/all.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>

#include "actors/client_api.h"
#include "actors/messages.h"
#include "actors/server_metrics.h"
#include "actors/server_rounds.h"
#include "actors/tool_invocation.h"
#include "engine/stop_matcher.h"
#include "model/tokenizer/tokenizer.h"
#include "model/toolcall/tool_parser.h"

namespace conclave::actors {

/// What every session shares: the tokenizer and limits of the served model.
struct text_resources {
  std::shared_ptr<const tokenizer::tokenizer> tok;
  int64_t max_model_len = 0;
  std::vector<int32_t> eos_ids;
  /// Server-side tools (docs/tools.md): what a request may enable, and its rounds.
  std::shared_ptr<const tool_runtime> tools;
  int32_t max_tool_rounds = 4;
  /// Failover: how many times one request may move to another replica, and how long it
  /// waits for one to be live.
  int32_t failover_attempts = 3;
  double failover_timeout_s = 30.0;
  std::atomic<bool> stopping{false};  ///< the service shuts down: no failover
};

/// Counters the service keeps across sessions (for 429 and draining).
struct session_counters {
  std::atomic<int64_t> active{0};  ///< sessions alive
  std::atomic<int64_t> queued{0};  ///< submitted, no token yet
};

/// The client's sink as a session uses it, and what the session's exit needs once its
/// state is gone: whether the request's last event went out, and the router reservation
/// it holds. Touched by the session and, after it, by its exit functor only.
class session_guard final : public client_sink {
 public:
  explicit session_guard(std::shared_ptr<client_sink> client) : client_(std::move(client)) {}
  void push(client_event e) override;
  /// The client left (cancel): nothing more is sent.
  void client_left() { ended_ = true; }
  /// The request's last event went out (or the client left).
  bool ended() const { return ended_.load(); }
  /// The request now holds `tokens` of `engine`'s load in the router.
  void reserve(caf::actor router, caf::actor_addr engine, int64_t tokens);
  /// Gives the reservation back (once).
  void release();
  /// The session ended: gives back what it held and, when no last event went out (the
  /// session was killed or failed), ends the request for the client with an error.
  void on_exit(const std::string& reason);

 private:
  std::shared_ptr<client_sink> client_;
  std::atomic<bool> ended_{false};
  caf::actor router_;
  caf::actor_addr engine_;
  int64_t reserved_ = 0;
};

struct session_state {
  generation_request req;
  std::shared_ptr<session_guard> sink;
  std::shared_ptr<const text_resources> text;
  std::shared_ptr<server_metrics> metrics;
  std::shared_ptr<session_counters> counters;
  caf::actor engine;
  caf::actor router;
  int64_t seq_id = -1;
  std::vector<int32_t> prompt;       ///< as submitted (kept for failover)
  std::vector<int32_t> generated;    ///< every token received, in order
  int32_t failovers = 0;             ///< moves since the request last made progress
  size_t generated_at_failover = 0;  ///< tokens it had at its last move
  caf::actor_addr last_engine;       ///< the engine it ran on last (skipped after it fails)
  bool moving = false;               ///< between a replica failure and the new engine's reply
  bool submit_pending = false;       ///< a submit is on its way; its reply handler decides
  bool started = false;
  std::chrono::steady_clock::time_point move_deadline;
  bool cancelled = false;
  bool queued = true;
  std::optional<tokenizer::incremental_detokenizer> detok;
  std::optional<toolcall::tool_parser> parser;
  std::optional<engine::stop_matcher> stops;
  std::optional<server_rounds> rounds;  ///< when the request enabled server-side tools
  std::shared_ptr<toolkit::cancel_flag> tool_cancel = std::make_shared<toolkit::cancel_flag>();
  bool tools_running = false;
  /// This round's running tool invocations, by actor: one that goes down before its
  /// result came is started again (at most max_tool_restarts times per call).
  std::map<caf::actor_addr, tool_call_request> tool_actors;
  std::map<std::string, int> tool_restarts;  ///< by call id
  usage tokens;
  std::vector<logprob_entry> pending_logprobs;
  double engine_seconds = 0;  ///< summed step times of the steps that sampled its tokens  ///<
                              ///< sampled, not yet sent with an event
  std::chrono::steady_clock::time_point t_start, t_first;
  static inline const char* name = "request_session";
};

/// service -> session: end the request now with a 503 error event carrying the text (the
/// server's drain timeout ran out).
using end_request_atom = caf::atom_constant<caf::atom("endreq")>;

/// How often one tool call is started again after its invocation actor died.
inline constexpr int max_tool_restarts = 2;

/// Spawned per request by the service. Handles (token_atom, token_msg),
/// (failed_atom, failure_msg) and (cancel_atom) from the client side. However the
/// session ends — even killed — the client gets a last event: a session that dies
/// before sending `finished` or `error` sends an error (500, code "session_stopped").
caf::behavior request_session(caf::stateful_actor<session_state>* self, generation_request req,
                              std::shared_ptr<session_guard> sink,
                              std::shared_ptr<const text_resources> text, caf::actor router,
                              std::shared_ptr<server_metrics> metrics,
                              std::shared_ptr<session_counters> counters);

}  // namespace conclave::actors
