// Actor behaviour where timing matters, on CAF's deterministic test scheduler: nothing
// runs until the test says so, and delayed messages wait for the test's clock.
#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <catch2/catch.hpp>

#include "actors/engine_actor.h"
#include "actors/gpu_worker.h"
#include "actors/health_checker.h"
#include "actors/replica_supervisor.h"
#include "actors/router.h"
#include "tests/actors/actor_rig.h"

using namespace conclave;
using namespace conclave::actors;
using namespace std::chrono_literals;
using namespace conclave::test;

namespace {

/// Stands in for a request_session: submits on start and records what comes back.
struct session_log {
  int64_t seq_id = -1;
  std::vector<int32_t> tokens;
  bool finished = false;
  std::string failure;
};

caf::behavior fake_session(caf::event_based_actor* self, caf::actor engine,
                           std::vector<int32_t> prompt, std::shared_ptr<session_log> log) {
  engine::sampling_params p;
  p.temperature = 0;
  p.max_tokens = 4;
  p.ignore_eos = true;
  self->request(engine, caf::infinite, submit_atom::value,
                engine_submit{std::move(prompt), p, caf::actor_cast<caf::actor>(self), {}, {}})
      .then([log](const submit_reply& r) { log->seq_id = r.seq_id; });
  return {
      [log](token_atom, const token_msg& t) {
        log->tokens.push_back(t.token);
        log->finished = t.finished;
      },
      [log](failed_atom, const failure_msg& f) { log->failure = f.message; },
  };
}

void stats_asker(caf::event_based_actor* self, caf::actor engine,
                 std::shared_ptr<engine::engine_stats> out) {
  self->request(engine, caf::infinite, stats_atom::value).then([out](const stats_msg& m) {
    *out = m.stats;
  });
}

engine::engine_stats stats_of(deterministic_system& d, const caf::actor& engine) {
  auto out = std::make_shared<engine::engine_stats>();
  // Spawned with arguments: CAF 0.17's no-argument spawn path trips UBSan (null tuple).
  d.sys.spawn(stats_asker, engine, out);
  d.sched.run();
  return *out;
}

}  // namespace

TEST_CASE("engine actor: a cancel during a step drops that step's token and frees the blocks",
          "[actors]") {
  deterministic_system d;
  auto held = std::make_shared<held_steps>();
  held->backend = std::make_shared<fake_backend>();
  auto worker = d.sys.spawn(holding_worker, held);
  const auto release = [&] {
    caf::anon_send(worker, release_atom::value);
    d.sched.run();
  };
  config::engine_config cfg;
  auto engine =
      d.sys.spawn(engine_actor, caf::actor_cast<gpu_worker_actor>(worker), held->backend->config(),
                  held->backend->kv_shape(), cfg, nullptr, engine_actor_options{});
  auto a = std::make_shared<session_log>();
  auto b = std::make_shared<session_log>();
  d.sys.spawn(fake_session, engine, std::vector<int32_t>{1, 2, 3, 0, 1}, a);
  d.sched.run();
  REQUIRE(a->seq_id >= 0);
  // a's prefill is at the worker; b arrives during it and waits for the step boundary.
  REQUIRE(held->pending.size() == 1);
  d.sys.spawn(fake_session, engine, std::vector<int32_t>{2, 2}, b);
  d.sched.run();
  REQUIRE(b->seq_id >= 0);
  CHECK(held->pending.size() == 1);
  CHECK(stats_of(d, engine).kv_blocks_free == 16 - 2);  // a's 5 tokens; b not scheduled yet

  // a cancels while its step runs: the step's token for a is never delivered.
  caf::anon_send(engine, cancel_atom::value, a->seq_id);
  d.sched.run();
  release();
  CHECK(a->tokens.empty());
  // At that step boundary a's blocks came back and b's prefill went out alone.
  CHECK(stats_of(d, engine).kv_blocks_free == 16 - 1);
  REQUIRE(held->pending.size() == 1);
  CHECK(held->pending[0].second.step->batch.size() == 1);
  for (int i = 0; i < 4; ++i) release();
  CHECK(b->tokens == std::vector<int32_t>{2, 3, 0, 1});
  CHECK(b->finished);
  CHECK(held->pending.empty());
  CHECK(stats_of(d, engine).kv_blocks_free == 16);
  caf::anon_send_exit(engine, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
  d.sched.run();
}

TEST_CASE("supervisor: failed bring-ups retry after 0.5 s, 1 s, 2 s on the actor clock",
          "[actors]") {
  deterministic_system d;
  auto calls = std::make_shared<int>(0);
  backend_factory factory = [calls]() -> std::shared_ptr<gpu::backend> {
    if (++*calls <= 3) throw std::runtime_error("device not ready");
    return std::make_shared<fake_backend>();
  };
  auto status = std::make_shared<serve::replica_status>(0);
  const auto ready = [&] { return status->state() == serve::replica_state::up; };
  auto router = d.sys.spawn(router_actor, std::vector<caf::actor>{});
  config::replica_config rc;
  rc.max_restarts = 100;
  rc.heartbeat_interval_s = 0;  // no health checker: only the supervisor's own timers
  rc.probe_interval_s = 0;
  auto sup =
      d.sys.spawn(replica_supervisor, factory, config::engine_config{}, rc, nullptr, router, status,
                  std::vector<int32_t>{}, std::shared_ptr<cluster_replica_options>{});
  d.sched.run();
  CHECK(*calls == 1);
  const std::pair<std::chrono::milliseconds, int> retries[] = {
      {500ms, 2}, {1000ms, 3}, {2000ms, 4}};
  for (const auto& [wait, expected_calls] : retries) {
    d.sched.advance_time(wait - 1ms);
    d.sched.run();
    CHECK(*calls == expected_calls - 1);  // not a millisecond early
    d.sched.advance_time(1ms);
    d.sched.run();
    CHECK(*calls == expected_calls);
  }
  CHECK(ready());
  CHECK(!d.sched.has_pending_timeout());

  // The replica dies right away: a crash loop keeps the long backoff (attempt 3: 4 s).
  const auto kill_engine = [&] {
    auto state_probe = caf::actor_cast<caf::abstract_actor*>(sup);
    auto* s = dynamic_cast<caf::stateful_actor<replica_supervisor_state>*>(state_probe);
    REQUIRE(s != nullptr);
    caf::anon_send_exit(s->state.engine, caf::exit_reason::kill);
    d.sched.run();
  };
  kill_engine();
  CHECK(!ready());
  d.sched.advance_time(4000ms - 1ms);
  d.sched.run();
  CHECK(*calls == 4);
  d.sched.advance_time(1ms);
  d.sched.run();
  CHECK(*calls == 5);
  CHECK(ready());

  // After a minute of service a failure restarts after 0.5 s again.
  d.sched.advance_time(61s);
  d.sched.run();
  kill_engine();
  d.sched.advance_time(500ms);
  d.sched.run();
  CHECK(*calls == 6);
  CHECK(ready());

  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(router, caf::exit_reason::user_shutdown);
  d.sched.run();
}

TEST_CASE("engine actor: the watchdog ends a step that runs past its timeout", "[actors]") {
  deterministic_system d;
  auto held = std::make_shared<held_steps>();
  held->backend = std::make_shared<fake_backend>();
  auto worker = d.sys.spawn(holding_worker, held);  // never released: a hung step
  engine_actor_options opts;
  opts.step_timeout = 2s;
  auto engine =
      d.sys.spawn(engine_actor, caf::actor_cast<gpu_worker_actor>(worker), held->backend->config(),
                  held->backend->kv_shape(), config::engine_config{}, nullptr, opts);
  auto a = std::make_shared<session_log>();
  d.sys.spawn(fake_session, engine, std::vector<int32_t>{1, 2, 3}, a);
  d.sched.run();
  REQUIRE(held->pending.size() == 1);
  d.sched.advance_time(2s - 1ms);
  d.sched.run();
  CHECK(a->failure.empty());
  CHECK(stats_of(d, engine).kv_blocks_total == 16);  // alive and answering
  d.sched.advance_time(1ms);
  d.sched.run();
  CHECK(a->failure.find("watchdog") != std::string::npos);
  CHECK(stats_of(d, engine).kv_blocks_total == 0);  // gone: no answer
  CHECK(a->tokens.empty());
}

TEST_CASE("supervisor: too many failures within the window leave the replica dead", "[actors]") {
  deterministic_system d;
  auto calls = std::make_shared<int>(0);
  backend_factory factory = [calls]() -> std::shared_ptr<gpu::backend> {
    ++*calls;
    throw std::runtime_error("device lost");
  };
  auto status = std::make_shared<serve::replica_status>(3);
  auto router = d.sys.spawn(router_actor, std::vector<caf::actor>{});
  config::replica_config rc;
  rc.max_restarts = 2;
  rc.restart_window_s = 60;
  rc.heartbeat_interval_s = 0;
  rc.probe_interval_s = 0;
  auto sup =
      d.sys.spawn(replica_supervisor, factory, config::engine_config{}, rc, nullptr, router, status,
                  std::vector<int32_t>{}, std::shared_ptr<cluster_replica_options>{});
  d.sched.run();
  while (d.sched.has_pending_timeout()) {
    d.sched.trigger_timeout();
    d.sched.run();
  }
  CHECK(*calls == 3);  // the first try and two restarts
  CHECK(status->state() == serve::replica_state::dead);
  CHECK(status->snapshot().last_error.find("device lost") != std::string::npos);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(router, caf::exit_reason::user_shutdown);
  d.sched.run();
}

namespace {

/// An engine whose probe generations succeed or time out as `script` says, in order.
/// Tokens follow the submit reply, as a real engine's do.
caf::behavior scripted_engine(caf::event_based_actor* self,
                              std::shared_ptr<std::vector<bool>> script) {
  auto next = std::make_shared<size_t>(0);
  return {
      [self, script, next](submit_atom, const engine_submit& m) {
        const bool ok = *next < script->size() && (*script)[(*next)++];
        const int64_t seq = static_cast<int64_t>(*next);
        if (ok) self->send(self, probe_atom::value, seq, m.session);
        return submit_reply{seq, {}, caf::actor_cast<caf::actor>(self)};
      },
      [self](probe_atom, int64_t seq, const caf::actor& session) {
        for (int i = 0; i < probe_tokens; ++i)
          self->send(session, token_atom::value,
                     token_msg{seq, 1, i + 1 == probe_tokens, engine::finish_reason::length,
                               std::nullopt, 0.0});
      },
      [](cancel_atom, int64_t) {},
      [](stats_atom) { return stats_msg{}; },
  };
}

/// Counts restart requests and names the engine again, as a supervisor's bring-up would.
caf::behavior counting_supervisor(caf::event_based_actor* self, std::shared_ptr<int> restarts,
                                  std::shared_ptr<caf::actor> checker, caf::actor engine) {
  return {
      [self, restarts, checker, engine](restart_atom) {
        ++*restarts;
        self->send(*checker, watch_atom::value, engine);
      },
  };
}

int restarts_for(const std::vector<bool>& probes) {
  deterministic_system d;
  auto script = std::make_shared<std::vector<bool>>(probes);
  auto engine = d.sys.spawn(scripted_engine, script);
  auto restarts = std::make_shared<int>(0);
  auto checker = std::make_shared<caf::actor>();
  auto sup = d.sys.spawn(counting_supervisor, restarts, checker, engine);
  config::replica_config rc;
  rc.heartbeat_interval_s = 0;
  rc.probe_interval_s = 30;
  rc.probe_timeout_s = 10;
  rc.unhealthy_after = 3;
  auto status = std::make_shared<serve::replica_status>(0);
  status->set_state(serve::replica_state::up);
  *checker = d.sys.spawn(health_checker, status, sup, std::vector<int32_t>{1, 2, 3}, rc);
  caf::anon_send(*checker, watch_atom::value, engine);
  d.sched.run();
  for (size_t k = 0; k < probes.size(); ++k) {
    d.sched.advance_time(k == 0 ? std::chrono::seconds(30) : std::chrono::seconds(20));
    d.sched.run();  // the probe runs; a good one finishes here
    d.sched.advance_time(10s);
    d.sched.run();  // a silent one times out here
  }
  const auto history = status->snapshot().history;
  CHECK(history.size() == probes.size());
  for (size_t k = 0; k < std::min(history.size(), probes.size()); ++k) {
    CHECK(history[k].check == "probe");
    CHECK(history[k].ok == probes[k]);
  }
  caf::anon_send_exit(*checker, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(engine, caf::exit_reason::user_shutdown);
  d.sched.run();
  return *restarts;
}

}  // namespace

TEST_CASE("health checker: a flapping replica is not restarted, three failures in a row are",
          "[actors][health]") {
  CHECK(restarts_for({false, true, false, true, false, true, false, true}) == 0);
  CHECK(restarts_for({true, false, false, false, true, true}) == 1);
  CHECK(restarts_for({false, false, false, false, false, false}) == 2);
}
