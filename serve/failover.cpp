// The request state machine (see the header for the phases).
#include "serve/failover.h"

#include "serve/enum_names.h"

#include <spdlog/fmt/fmt.h>

#include <chrono>

namespace conclave::serve {

const char* to_string(request_phase p) {
  static constexpr const char* names[] = {"submitting", "running",    "moving", "waiting",
                                          "tools",      "cancelling", "ended"};
  return enum_name(p, names, "?");
}

namespace {

failover_step ending(int status, std::string message, std::string type) {
  failover_step s;
  s.error = client_event::error(status, std::move(message), std::move(type));
  s.end = true;
  return s;
}

std::string no_replica(const std::string& why) {
  return "no model replica is available: " + why;
}

}  // namespace

failover_step failover_machine::on_now(const failover_event& e, size_t generated, bool stopping) {
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  return on(e, std::chrono::duration<double>(now).count(), generated, stopping);
}

failover_step failover_machine::advance(request_phase from, request_phase to,
                                        bool failover_step::*flag) {
  failover_step s;
  if (phase_ != from) return s;
  phase_ = to;
  s.*flag = true;
  return s;
}

void failover_machine::start_moving(double now_s) {
  phase_ = request_phase::moving;
  deadline_s_ = now_s + policy_.timeout_s;
}

failover_step failover_machine::on(const failover_event& e, double now_s, size_t generated,
                                   bool stopping) {
  using k = failover_event::kind;
  failover_step s;
  if (phase_ == request_phase::ended) return s;
  switch (e.what) {
    case k::token:
      if (phase_ == request_phase::running && e.current) {
        s.accept = true;
      } else if (!e.finished_token) {
        s.stop_stale = true;  // a sequence the request left behind: stop it where it runs
      }
      return s;

    case k::engine_down:
      return on_engine_down(e, now_s, generated, stopping);

    case k::submit_ok:
      if (phase_ == request_phase::cancelling) {
        phase_ = request_phase::ended;
        s.cancel_sequence = true;
        s.release = true;
        s.end = true;
        return s;
      }
      if (phase_ != request_phase::submitting && phase_ != request_phase::moving) return s;
      phase_ = request_phase::running;
      s.accept = true;
      s.announce = !started_;
      started_ = true;
      return s;

    case k::submit_refused:
      if (phase_ == request_phase::cancelling) {
        phase_ = request_phase::ended;
        s.end = true;
        return s;
      }
      if (phase_ != request_phase::submitting && phase_ != request_phase::moving) return s;
      phase_ = request_phase::ended;
      return ending(400, e.message, "invalid_request_error");

    case k::submit_failed:
      return on_submit_failed(e, now_s, stopping);

    case k::retry_due:
      return advance(request_phase::waiting, request_phase::moving, &failover_step::submit);

    case k::cancel:
    case k::client_gone:
      return on_client_left();

    case k::tool_round_start:
      // The round's generation is over: its engine failing now is no reason to move.
      return advance(request_phase::running, request_phase::tools, &failover_step::release);

    case k::tool_round_end:
      return advance(request_phase::tools, request_phase::submitting, &failover_step::submit);

    case k::drain:
      return end_with(client_event::error(503, e.message, "service_unavailable"));

    case k::generation_done:
      if (phase_ != request_phase::running && phase_ != request_phase::tools) return s;
      phase_ = request_phase::ended;
      s.release = true;
      s.end = true;
      return s;

    case k::abort:
      return end_with(e.error);
  }
  return s;
}

failover_step failover_machine::on_engine_down(const failover_event& e, double now_s,
                                               size_t generated, bool stopping) {
  failover_step s;
  // Only the engine it runs on matters; a second report of the same failure, or one
  // from an engine it already left, changes nothing.
  if (phase_ != request_phase::running || !e.current) return s;
  if (stopping) {
    phase_ = request_phase::ended;
    s = ending(503, "the server is shutting down", "service_unavailable");
    s.release = true;
    return s;
  }
  // A request that made progress since its last move starts its count again: only one
  // that keeps failing replicas without producing a token runs out of attempts.
  if (generated > generated_at_failover_) failovers_ = 0;
  generated_at_failover_ = generated;
  if (failovers_ >= policy_.attempts) {
    phase_ = request_phase::ended;
    s = ending(503, e.message + fmt::format(" (after {} failovers)", failovers_),
               "service_unavailable");
    s.release = true;
    return s;
  }
  ++failovers_;
  s.count_failover = true;
  s.why = e.message;
  s.release = true;
  s.submit = true;
  start_moving(now_s);
  return s;
}

failover_step failover_machine::on_submit_failed(const failover_event& e, double now_s,
                                                 bool stopping) {
  failover_step s;
  if (phase_ == request_phase::cancelling) {
    phase_ = request_phase::ended;
    s.end = true;
    return s;
  }
  if (phase_ == request_phase::submitting) {
    // The engine the router chose died before it took the request: a failover like any
    // other (the request had not started anywhere). Anything else is final.
    if (!e.receiver_down || stopping || failovers_ >= policy_.attempts) {
      phase_ = request_phase::ended;
      return ending(503, no_replica(e.message), "service_unavailable");
    }
    ++failovers_;
    start_moving(now_s);
  }
  if (phase_ != request_phase::moving) return s;
  // No live replica (yet): wait for one to come back until the deadline.
  if (now_s < deadline_s_ && !stopping) {
    phase_ = request_phase::waiting;
    s.retry_later = true;
    return s;
  }
  phase_ = request_phase::ended;
  return ending(503, no_replica(e.message), "service_unavailable");
}

failover_step failover_machine::on_client_left() {
  failover_step s;
  switch (phase_) {
    case request_phase::running:
      s.cancel_sequence = true;
      s.release = true;
      s.end = true;
      phase_ = request_phase::ended;
      break;
    case request_phase::submitting:
    case request_phase::moving:
      // A submit is on its way: its answer names the sequence to cancel.
      phase_ = request_phase::cancelling;
      break;
    case request_phase::waiting:
    case request_phase::tools:
      // Nothing runs on any engine (tools stop with the session).
      s.end = true;
      phase_ = request_phase::ended;
      break;
    case request_phase::cancelling:
    case request_phase::ended:
      break;
  }
  return s;
}

failover_step failover_machine::end_with(client_event error) {
  failover_step s;
  const bool running = phase_ == request_phase::running;
  const bool client_left = phase_ == request_phase::cancelling;
  phase_ = request_phase::ended;
  if (client_left) {  // nobody is left to tell
    s.end = true;
    return s;
  }
  s.error = std::move(error);
  s.end = true;
  s.cancel_sequence = running;
  s.release = true;
  return s;
}

}  // namespace conclave::serve
