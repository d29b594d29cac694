// failover: where one request is in its life, as an explicit state machine. The
// request_session actor turns what happens to it (a token, its replica going down, the
// router's answer to a submit, the client leaving, a server-side tool round, the
// server's drain) into `failover_event`s and does what the returned `failover_step`
// says; the rules themselves live here, without actors or sockets, and are tested
// phase by phase.
//
// Phases:
//   submitting  a submit is on its way to the router (first generation, or the next
//               tool round); no engine holds the request yet
//   running     an engine holds its sequence; tokens flow
//   moving      its replica failed; a resubmit (prompt + tokens already streamed) is on
//               its way
//   waiting     no live replica answered the resubmit; a retry is armed, until the
//               failover deadline
//   tools       the generation ended with server-side calls; they run, no engine holds it
//   cancelling  the client left while a submit was on its way; its answer is awaited so
//               the sequence it made can be cancelled
//   ended       the request is over (finished, failed or cancelled); nothing more happens
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "serve/client_api.h"

namespace conclave::serve {

enum class request_phase { submitting, running, moving, waiting, tools, cancelling, ended };
const char* to_string(request_phase p);

/// Failover: how many times one request may move to another replica without making
/// progress, and how long it waits for one to be live.
struct failover_policy {
  int32_t attempts = 3;
  double timeout_s = 30.0;
};

struct failover_event {
  enum class kind {
    token,             ///< a token arrived (`current`: from the engine it runs on now)
    engine_down,       ///< an engine failed or stopped (`current`: the one it runs on)
    submit_ok,         ///< the router placed it: an engine holds its sequence
    submit_refused,    ///< the engine refused it as invalid (`message`)
    submit_failed,     ///< no engine took it (`message`; `receiver_down`: the chosen one died)
    retry_due,         ///< the retry timer of `waiting` fired
    cancel,            ///< the client asked to stop
    client_gone,       ///< the client's connection went away
    tool_round_start,  ///< the generation ended with server-side calls to run
    tool_round_end,    ///< every call has its result; the next generation is submitted
    drain,             ///< the server ends the request now (`message`): drain timeout
    generation_done,   ///< the generation ended (finish reason reached); no tools to run
    abort,             ///< the session must end the request with `error`: an internal
                       ///< error, a next round that cannot be built
  };
  kind what = kind::token;
  bool current = true;          ///< token / engine_down: from the engine it runs on now
  bool finished_token = false;  ///< token: the engine's last for that sequence
  bool receiver_down = false;   ///< submit_failed: the engine chosen died before it answered
  std::string message;          ///< why (engine_down, submit_refused/failed, drain)
  client_event error;           ///< abort: the error event the request ends with

  static failover_event of(kind k, bool current = true, std::string message = {}) {
    failover_event e;
    e.what = k;
    e.current = current;
    e.message = std::move(message);
    return e;
  }
  static failover_event token(bool current, bool finished_token) {
    failover_event e = of(kind::token, current);
    e.finished_token = finished_token;
    return e;
  }
  static failover_event submit_failed(std::string message, bool receiver_down) {
    failover_event e = of(kind::submit_failed, true, std::move(message));
    e.receiver_down = receiver_down;
    return e;
  }
  static failover_event aborting(client_event error) {
    failover_event e = of(kind::abort);
    e.error = std::move(error);
    return e;
  }
};

/// What the session does for an event, in this order: cancel the sequence where it runs,
/// release its router reservation and stop watching the engine, take the token or adopt
/// the engine, announce the start, submit (or arm the retry timer), then end the request
/// with `error` (when set) and quit (`end`).
struct failover_step {
  bool cancel_sequence = false;       ///< the engine it runs on drops its sequence
  bool stop_stale = false;            ///< a token from an engine it left: stop that sequence there
  bool release = false;               ///< give back the reservation; forget and unwatch the engine
  bool accept = false;                ///< token: process it; submit_ok: adopt the engine
  bool announce = false;              ///< submit_ok: the first start, send the `started` event
  bool submit = false;                ///< (re)submit through the router now
  bool retry_later = false;           ///< arm the retry timer (retry_due)
  bool count_failover = false;        ///< a failover happened (metrics, log `why`)
  std::string why;                    ///< count_failover: the failure it moves away from
  std::optional<client_event> error;  ///< end the request for the client with this error
  bool end = false;                   ///< the session quits
};

/// The machine. Time is passed in (seconds on any steady clock) so tests drive it.
class failover_machine {
 public:
  explicit failover_machine(failover_policy policy) : policy_(policy) {}

  /// Handles `e` at time `now_s`. `generated` is how many tokens the request has
  /// produced so far (a request that made progress since its last move starts its
  /// failover count again); `stopping` tells that the server shuts down (no failover).
  failover_step on(const failover_event& e, double now_s, size_t generated = 0,
                   bool stopping = false);

  /// on() at the steady clock's now.
  failover_step on_now(const failover_event& e, size_t generated, bool stopping);

  request_phase phase() const { return phase_; }
  /// Failovers since the request last made progress.
  int32_t failovers() const { return failovers_; }
  /// The request moved at least once and the last failed engine should be avoided.
  bool avoid_last_engine() const { return phase_ == request_phase::moving; }
  /// The client saw `started` already.
  bool started() const { return started_; }
  bool ended() const { return phase_ == request_phase::ended; }

 private:
  failover_step on_submit_failed(const failover_event& e, double now_s, bool stopping);
  failover_step on_engine_down(const failover_event& e, double now_s, size_t generated,
                               bool stopping);
  failover_step on_client_left();
  /// Ends the request with `error` now (drain, abort).
  failover_step end_with(client_event error);
  void start_moving(double now_s);
  /// From `from` to `to`, with `flag` set in the step; nothing in any other phase.
  failover_step advance(request_phase from, request_phase to, bool failover_step::*flag);

  failover_policy policy_;
  request_phase phase_ = request_phase::submitting;
  int32_t failovers_ = 0;
  size_t generated_at_failover_ = 0;
  double deadline_s_ = 0;
  bool started_ = false;
};

}  // namespace conclave::serve
