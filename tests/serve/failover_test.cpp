// The request state machine, phase by phase, without actors or sockets: every phase
// against every event, then the paths a request takes through them.
#include "serve/failover.h"

#include <catch2/catch.hpp>

#include <map>
#include <vector>

using namespace conclave::serve;
using ev_kind = failover_event::kind;
using phase = request_phase;

namespace {

failover_event event(ev_kind k, bool current = true) {
  failover_event e;
  e.what = k;
  e.current = current;
  e.message = "why";
  if (k == ev_kind::abort)
    e.error = client_event::error(500, "internal error: boom", "internal_error");
  return e;
}

/// A machine brought to `p` the way a request gets there (at time 0, policy 3 / 30 s).
failover_machine at(phase p) {
  failover_machine m({3, 30.0});
  auto receiver_down = event(ev_kind::submit_failed);
  receiver_down.receiver_down = true;
  switch (p) {
    case phase::submitting:
      break;
    case phase::running:
      m.on(event(ev_kind::submit_ok), 0);
      break;
    case phase::moving:
      m.on(event(ev_kind::submit_ok), 0);
      m.on(event(ev_kind::engine_down), 0, 5);
      break;
    case phase::waiting:
      m.on(receiver_down, 0);
      break;
    case phase::tools:
      m.on(event(ev_kind::submit_ok), 0);
      m.on(event(ev_kind::tool_round_start), 0);
      break;
    case phase::cancelling:
      m.on(event(ev_kind::cancel), 0);
      break;
    case phase::ended:
      m.on(event(ev_kind::submit_ok), 0);
      m.on(event(ev_kind::generation_done), 0);
      break;
  }
  REQUIRE(m.phase() == p);
  return m;
}

struct expect {
  phase next;
  bool cancel_sequence = false, stop_stale = false, release = false, accept = false, submit = false,
       retry_later = false, error = false, end = false;
};

const std::vector<phase> phases = {phase::submitting, phase::running, phase::moving,
                                   phase::waiting,    phase::tools,   phase::cancelling,
                                   phase::ended};
const std::vector<ev_kind> kinds = {
    ev_kind::token,          ev_kind::engine_down,   ev_kind::submit_ok,
    ev_kind::submit_refused, ev_kind::submit_failed, ev_kind::retry_due,
    ev_kind::cancel,         ev_kind::client_gone,   ev_kind::tool_round_start,
    ev_kind::tool_round_end, ev_kind::drain,         ev_kind::generation_done,
    ev_kind::abort};

/// What each (phase, event) does; a pair not listed changes nothing at all.
std::map<std::pair<phase, ev_kind>, expect> table() {
  std::map<std::pair<phase, ev_kind>, expect> t;
  const auto E = [&](phase p, ev_kind k, expect x) { t[{p, k}] = x; };
  using P = phase;
  // submitting: waiting for the router's answer
  E(P::submitting, ev_kind::token, {P::submitting, false, true});
  E(P::submitting, ev_kind::submit_ok, {.next = P::running, .accept = true});
  E(P::submitting, ev_kind::submit_refused, {.next = P::ended, .error = true, .end = true});
  // (submit_failed without receiver_down: final)
  E(P::submitting, ev_kind::submit_failed, {.next = P::ended, .error = true, .end = true});
  E(P::submitting, ev_kind::cancel, {.next = P::cancelling});
  E(P::submitting, ev_kind::client_gone, {.next = P::cancelling});
  E(P::submitting, ev_kind::drain, {.next = P::ended, .release = true, .error = true, .end = true});
  E(P::submitting, ev_kind::abort, {.next = P::ended, .release = true, .error = true, .end = true});
  // running: tokens flow
  E(P::running, ev_kind::token, {.next = P::running, .accept = true});
  E(P::running, ev_kind::engine_down, {.next = P::moving, .release = true, .submit = true});
  E(P::running, ev_kind::cancel, {P::ended, true, false, true, false, false, false, false, true});
  E(P::running, ev_kind::client_gone,
    {P::ended, true, false, true, false, false, false, false, true});
  E(P::running, ev_kind::tool_round_start, {.next = P::tools, .release = true});
  E(P::running, ev_kind::drain, {P::ended, true, false, true, false, false, false, true, true});
  E(P::running, ev_kind::generation_done, {.next = P::ended, .release = true, .end = true});
  E(P::running, ev_kind::abort, {P::ended, true, false, true, false, false, false, true, true});
  // moving: a resubmit is on its way
  E(P::moving, ev_kind::token, {P::moving, false, true});
  E(P::moving, ev_kind::submit_ok, {.next = P::running, .accept = true});
  E(P::moving, ev_kind::submit_refused, {.next = P::ended, .error = true, .end = true});
  E(P::moving, ev_kind::submit_failed, {.next = P::waiting, .retry_later = true});
  E(P::moving, ev_kind::cancel, {.next = P::cancelling});
  E(P::moving, ev_kind::client_gone, {.next = P::cancelling});
  E(P::moving, ev_kind::drain, {.next = P::ended, .release = true, .error = true, .end = true});
  E(P::moving, ev_kind::abort, {.next = P::ended, .release = true, .error = true, .end = true});
  // waiting: a retry is armed
  E(P::waiting, ev_kind::token, {P::waiting, false, true});
  E(P::waiting, ev_kind::retry_due, {.next = P::moving, .submit = true});
  E(P::waiting, ev_kind::cancel, {.next = P::ended, .end = true});
  E(P::waiting, ev_kind::client_gone, {.next = P::ended, .end = true});
  E(P::waiting, ev_kind::drain, {.next = P::ended, .release = true, .error = true, .end = true});
  E(P::waiting, ev_kind::abort, {.next = P::ended, .release = true, .error = true, .end = true});
  // tools: server-side calls run
  E(P::tools, ev_kind::token, {P::tools, false, true});
  E(P::tools, ev_kind::cancel, {.next = P::ended, .end = true});
  E(P::tools, ev_kind::client_gone, {.next = P::ended, .end = true});
  E(P::tools, ev_kind::tool_round_end, {.next = P::submitting, .submit = true});
  E(P::tools, ev_kind::drain, {.next = P::ended, .release = true, .error = true, .end = true});
  E(P::tools, ev_kind::generation_done, {.next = P::ended, .release = true, .end = true});
  E(P::tools, ev_kind::abort, {.next = P::ended, .release = true, .error = true, .end = true});
  // cancelling: the client left while a submit was on its way
  E(P::cancelling, ev_kind::token, {P::cancelling, false, true});
  E(P::cancelling, ev_kind::submit_ok,
    {P::ended, true, false, true, false, false, false, false, true});
  E(P::cancelling, ev_kind::submit_refused, {.next = P::ended, .end = true});
  E(P::cancelling, ev_kind::submit_failed, {.next = P::ended, .end = true});
  E(P::cancelling, ev_kind::drain, {.next = P::ended, .end = true});
  E(P::cancelling, ev_kind::abort, {.next = P::ended, .end = true});
  return t;
}

}  // namespace

TEST_CASE("failover machine: every phase against every event", "[serve][failover]") {
  const auto t = table();
  for (const auto p : phases) {
    for (const auto k : kinds) {
      INFO("phase " << to_string(p) << ", event " << static_cast<int>(k));
      auto m = at(p);
      const auto s = m.on(event(k), 1.0, 5);
      auto it = t.find({p, k});
      const expect x = it == t.end() ? expect{p} : it->second;
      CHECK(m.phase() == x.next);
      CHECK(s.cancel_sequence == x.cancel_sequence);
      CHECK(s.stop_stale == x.stop_stale);
      CHECK(s.release == x.release);
      CHECK(s.accept == x.accept);
      CHECK(s.submit == x.submit);
      CHECK(s.retry_later == x.retry_later);
      CHECK(s.error.has_value() == x.error);
      CHECK(s.end == x.end);
    }
  }
}

TEST_CASE("failover machine: an engine other than the current one changes nothing",
          "[serve][failover]") {
  auto m = at(phase::running);
  const auto down = m.on(event(ev_kind::engine_down, false), 1.0, 3);
  CHECK(m.phase() == phase::running);
  CHECK_FALSE(down.submit);
  const auto stale = m.on(event(ev_kind::token, false), 1.0, 3);
  CHECK(stale.stop_stale);
  CHECK_FALSE(stale.accept);
  auto last = event(ev_kind::token, false);
  last.finished_token = true;  // its sequence is over anyway: nothing to stop
  CHECK_FALSE(m.on(last, 1.0, 3).stop_stale);
}

TEST_CASE("failover machine: the start is announced once, across failovers", "[serve][failover]") {
  failover_machine m({3, 30.0});
  CHECK(m.on(event(ev_kind::submit_ok), 0).announce);
  CHECK(m.started());
  m.on(event(ev_kind::engine_down), 0, 4);
  REQUIRE(m.phase() == phase::moving);
  CHECK(m.avoid_last_engine());
  const auto s = m.on(event(ev_kind::submit_ok), 0.5);
  CHECK(s.accept);
  CHECK_FALSE(s.announce);
  CHECK(m.phase() == phase::running);
}

TEST_CASE("failover machine: attempts count only failures without progress", "[serve][failover]") {
  failover_machine m({2, 30.0});
  m.on(event(ev_kind::submit_ok), 0);
  // Two failures without a new token use up the attempts; the third ends the request.
  CHECK(m.on(event(ev_kind::engine_down), 0, 7).count_failover);
  m.on(event(ev_kind::submit_ok), 0);
  CHECK(m.on(event(ev_kind::engine_down), 0, 7).count_failover);
  CHECK(m.failovers() == 2);
  m.on(event(ev_kind::submit_ok), 0);
  auto last = m.on(event(ev_kind::engine_down), 0, 7);
  REQUIRE(last.error);
  CHECK(last.error->status == 503);
  CHECK(last.error->text == "why (after 2 failovers)");
  CHECK(m.ended());
  // A request that produced tokens between failures starts its count again.
  failover_machine n({1, 30.0});
  n.on(event(ev_kind::submit_ok), 0);
  CHECK(n.on(event(ev_kind::engine_down), 0, 3).submit);
  n.on(event(ev_kind::submit_ok), 0);
  CHECK(n.on(event(ev_kind::engine_down), 0, 4).submit);
  CHECK(n.failovers() == 1);
}

TEST_CASE("failover machine: no replica until the deadline, then 503", "[serve][failover]") {
  failover_machine m({3, 2.0});
  auto failed = event(ev_kind::submit_failed);
  failed.receiver_down = true;  // the engine the router chose died before it answered
  CHECK(m.on(failed, 10.0).retry_later);
  CHECK(m.phase() == phase::waiting);
  CHECK(m.on(event(ev_kind::retry_due), 10.1).submit);
  CHECK(m.on(failed, 11.9).retry_later);  // still before 10 + 2 s
  m.on(event(ev_kind::retry_due), 11.95);
  const auto s = m.on(failed, 12.1);
  REQUIRE(s.error);
  CHECK(s.error->status == 503);
  CHECK(s.error->text == "no model replica is available: why");
  CHECK(m.ended());
}

TEST_CASE("failover machine: a server that shuts down does not fail over", "[serve][failover]") {
  auto m = at(phase::running);
  const auto s = m.on(event(ev_kind::engine_down), 1.0, 5, /*stopping=*/true);
  REQUIRE(s.error);
  CHECK(s.error->text == "the server is shutting down");
  CHECK(s.end);
  auto w = at(phase::moving);
  CHECK(w.on(event(ev_kind::submit_failed), 1.0, 5, true).error);
}

TEST_CASE("failover machine: a refused submit is the client's error", "[serve][failover]") {
  failover_machine m({3, 30.0});
  auto refused = event(ev_kind::submit_refused);
  refused.message = "prompt too long";
  const auto s = m.on(refused, 0);
  REQUIRE(s.error);
  CHECK(s.error->status == 400);
  CHECK(s.error->error_type == "invalid_request_error");
  CHECK(s.error->text == "prompt too long");
}

TEST_CASE("failover machine: a tool round and the next generation", "[serve][failover]") {
  auto m = at(phase::running);
  CHECK(m.on(event(ev_kind::tool_round_start), 0).release);
  // Its engine failing now is no reason to move.
  CHECK_FALSE(m.on(event(ev_kind::engine_down), 0, 9).submit);
  CHECK(m.on(event(ev_kind::tool_round_end), 0).submit);
  CHECK(m.phase() == phase::submitting);
  CHECK_FALSE(m.on(event(ev_kind::submit_ok), 0).announce);  // started in the first round
}

TEST_CASE("failover machine: the abort event carries its own error", "[serve][failover]") {
  auto m = at(phase::running);
  const auto s = m.on(event(ev_kind::abort), 0);
  REQUIRE(s.error);
  CHECK(s.error->status == 500);
  CHECK(s.error->error_type == "internal_error");
  CHECK(s.cancel_sequence);
  CHECK(std::string(to_string(phase::cancelling)) == "cancelling");
}
