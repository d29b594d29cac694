// Autoscaling: the policy on hand-made samples, the busy-time sampler on hand-set
// clocks, the autoscaler actor on CAF's deterministic scheduler with a simulated load,
// and drain-before-stop with the real router, supervisor and engine.
#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "actors/autoscaler.h"
#include "actors/engine_actor.h"
#include "actors/gpu_worker.h"
#include "actors/replica_supervisor.h"
#include "actors/router.h"
#include "serve/autoscale_policy.h"
#include "serve/load_sampler.h"
#include "tests/actors/actor_rig.h"

using namespace conclave;
using namespace conclave::actors;
using namespace std::chrono_literals;
using namespace conclave::test;
using action = serve::autoscale_decision::action;

namespace {

config::autoscale_config test_config() {
  config::autoscale_config c;
  c.enabled = true;
  c.interval_s = 10;
  c.sustain_intervals = 3;
  c.cooldown_s = 60;
  c.min_replicas = 1;
  c.max_replicas = 3;
  return c;
}

serve::replica_load up(int id, double util, size_t running = 0) {
  return {id, serve::replica_state::up, util, running, 0};
}

}  // namespace

TEST_CASE("autoscale policy: scale up only after sustained > 80 % with > 10 waiting",
          "[autoscale]") {
  serve::autoscale_policy p(test_config());
  const serve::cluster_load busy{{up(0, 0.9)}, 11};
  CHECK(p.decide(busy, 10).what == action::hold);
  CHECK(p.decide(busy, 20).what == action::hold);
  const auto d = p.decide(busy, 30);
  CHECK(d.what == action::scale_up);
  CHECK(d.reason.find("90 %") != std::string::npos);

  serve::autoscale_policy q(test_config());
  // Busy but only 10 waiting (not more than 10): hold, however long.
  for (int t = 1; t <= 10; ++t) CHECK(q.decide({{up(0, 0.95)}, 10}, t * 10.0).what == action::hold);
  // Exactly 80 % is not above it.
  for (int t = 11; t <= 20; ++t)
    CHECK(q.decide({{up(0, 0.80)}, 50}, t * 10.0).what == action::hold);
  // One quiet interval breaks the streak.
  CHECK(q.decide({{up(0, 0.9)}, 50}, 210).what == action::hold);
  CHECK(q.decide({{up(0, 0.9)}, 50}, 220).what == action::hold);
  CHECK(q.decide({{up(0, 0.5)}, 50}, 230).what == action::hold);
  CHECK(q.decide({{up(0, 0.9)}, 50}, 240).what == action::hold);
  CHECK(q.decide({{up(0, 0.9)}, 50}, 250).what == action::hold);
  CHECK(q.decide({{up(0, 0.9)}, 50}, 260).what == action::scale_up);
}

TEST_CASE("autoscale policy: the mean over up replicas counts, starting and draining hold",
          "[autoscale]") {
  serve::autoscale_policy p(test_config());
  // 95 % and 60 %: mean 77.5 %, not above 80 %.
  for (int t = 1; t <= 5; ++t)
    CHECK(p.decide({{up(0, 0.95), up(1, 0.6)}, 40}, t * 10.0).what == action::hold);
  // A replica coming up: the set is changing, nothing else happens and streaks restart.
  serve::cluster_load starting{{up(0, 0.95), up(1, 0.95)}, 40};
  starting.replicas.push_back({2, serve::replica_state::starting, 0, 0, 0});
  for (int t = 6; t <= 10; ++t) {
    const auto d = p.decide(starting, t * 10.0);
    CHECK(d.what == action::hold);
    CHECK(d.reason == "replica 2 is starting");
  }
  // A restarting or dead replica does not stop decisions; a dead one is not counted.
  serve::cluster_load mixed{{up(0, 0.95), up(1, 0.95)}, 40};
  mixed.replicas.push_back({2, serve::replica_state::dead, 0, 0, 0});
  CHECK(p.decide(mixed, 110).what == action::hold);
  CHECK(p.decide(mixed, 120).what == action::hold);
  CHECK(p.decide(mixed, 130).what == action::scale_up);  // 2 live < max 3
}

TEST_CASE("autoscale policy: cooldown after an action, in both directions", "[autoscale]") {
  serve::autoscale_policy p(test_config());
  const serve::cluster_load busy{{up(0, 0.9), up(1, 0.9)}, 30};
  p.decide(busy, 10);
  p.decide(busy, 20);
  REQUIRE(p.decide(busy, 30).what == action::scale_up);  // cooldown until 90
  // Still busy with 2 live (the new one failed to show up, say): within the cooldown
  // nothing happens even though the streak is long enough again.
  for (double t : {40.0, 50.0, 60.0, 70.0, 80.0}) {
    const auto d = p.decide(busy, t);
    CHECK(d.what == action::hold);
    CHECK(d.reason.find("cooldown") != std::string::npos);
  }
  CHECK(p.decide(busy, 89.9).what == action::hold);
  CHECK(p.decide(busy, 90).what == action::scale_up);
  // Idle right after: a scale-down waits for the cooldown too.
  const serve::cluster_load idle{{up(0, 0.1), up(1, 0.1), up(2, 0.1)}, 0};
  for (double t : {100.0, 110.0, 120.0, 130.0, 140.0})
    CHECK(p.decide(idle, t).what == action::hold);
  CHECK(p.decide(idle, 150).what == action::scale_down);
}

TEST_CASE("autoscale policy: min and max replicas bound it", "[autoscale]") {
  auto cfg = test_config();
  cfg.cooldown_s = 0;
  cfg.sustain_intervals = 1;
  serve::autoscale_policy p(cfg);
  const serve::cluster_load full{{up(0, 1.0), up(1, 1.0), up(2, 1.0)}, 500};
  for (int t = 1; t <= 5; ++t) {
    const auto d = p.decide(full, t);
    CHECK(d.what == action::hold);
    CHECK(d.reason.find("at max_replicas 3") != std::string::npos);
  }
  const serve::cluster_load idle{{up(0, 0.0)}, 0};
  for (int t = 6; t <= 10; ++t) {
    const auto d = p.decide(idle, t);
    CHECK(d.what == action::hold);
    CHECK(d.reason.find("at min_replicas 1") != std::string::npos);
  }
  // Below the minimum (a replica was lost for good): one is added without any load.
  auto cfg2 = cfg;
  cfg2.min_replicas = 2;
  serve::autoscale_policy q(cfg2);
  serve::cluster_load lost{{up(0, 0.0)}, 0};
  lost.replicas.push_back({1, serve::replica_state::dead, 0, 0, 0});
  CHECK(q.decide(lost, 1).what == action::scale_up);
}

TEST_CASE("autoscale policy: scale down drains the least loaded, hysteresis", "[autoscale]") {
  auto cfg = test_config();
  cfg.sustain_intervals = 2;
  serve::autoscale_policy p(cfg);
  // Between the thresholds nothing happens (the band between 30 and 80 %).
  for (int t = 1; t <= 10; ++t)
    CHECK(p.decide({{up(0, 0.5), up(1, 0.5)}, 0}, t * 10.0).what == action::hold);
  const serve::cluster_load idle{{up(0, 0.2), up(1, 0.05, 3), up(2, 0.05, 1), up(3, 0.3)}, 0};
  CHECK(p.decide(idle, 110).what == action::hold);
  const auto d = p.decide(idle, 120);
  REQUIRE(d.what == action::scale_down);
  CHECK(d.replica == 2);  // least busy; of the two at 5 %, fewer sequences
  CHECK(d.reason.find("draining replica 2") != std::string::npos);

  // With a scale-down threshold close to the scale-up one, removing a replica would push
  // the rest over the top: the policy holds instead of flapping.
  auto close = test_config();
  close.scale_down_utilization = 0.5;
  close.sustain_intervals = 1;
  close.cooldown_s = 0;
  serve::autoscale_policy h(close);
  const auto held = h.decide({{up(0, 0.45), up(1, 0.45)}, 0}, 10);
  CHECK(held.what == action::hold);
  CHECK(held.reason.find("on 1 replicas it would be 90 %") != std::string::npos);
  CHECK(h.decide({{up(0, 0.35), up(1, 0.35)}, 0}, 20).what == action::scale_down);
}

TEST_CASE("busy-time sampler: busy seconds differenced over the interval", "[autoscale]") {
  auto a = std::make_shared<serve::replica_status>(0);
  auto b = std::make_shared<serve::replica_status>(1);
  a->set_state(serve::replica_state::up);
  b->set_state(serve::replica_state::up);
  std::vector<serve::sampled_replica> list{{a, -1}, {b, -1}};
  serve::busy_time_sampler s([&] { return list; }, [] { return int64_t{7}; }, nullptr);
  const auto t0 = std::chrono::steady_clock::time_point{} + 1000s;
  const auto base = s.sample_at(t0);
  CHECK(base.waiting == 7);
  CHECK(base.replicas.at(0).utilization == 0);  // a baseline
  a->begin_busy(t0 + 1s);
  a->end_busy(t0 + 4s);
  const auto l1 = s.sample_at(t0 + 10s);
  CHECK(l1.replicas.at(0).utilization == Approx(0.3));
  CHECK(l1.replicas.at(1).utilization == 0);
  // A step still in flight counts while it runs.
  b->begin_busy(t0 + 12s);
  const auto l2 = s.sample_at(t0 + 20s);
  CHECK(l2.replicas.at(0).utilization == 0);
  CHECK(l2.replicas.at(1).utilization == Approx(0.8));
  b->end_busy(t0 + 25s);
  const auto l3 = s.sample_at(t0 + 30s);
  CHECK(l3.replicas.at(1).utilization == Approx(0.5));
  CHECK(b->snapshot().busy_seconds == Approx(13.0));
  // A replica added later is measured from the sample that first saw it.
  auto c = std::make_shared<serve::replica_status>(2);
  list.push_back({c, -1});
  c->begin_busy(t0 + 30s);
  CHECK(s.sample_at(t0 + 40s).replicas.at(2).utilization == 0);
  CHECK(s.sample_at(t0 + 50s).replicas.at(2).utilization == Approx(1.0));
}

namespace {

/// The simulated cluster: the test sets each replica's load; the pool's actions change
/// the replica list the way the service's would.
struct simulated_cluster final : serve::load_source, scaling_target {
  serve::cluster_load now;
  std::vector<std::string> actions;
  serve::cluster_load sample() override { return now; }
  void add_replica() override {
    actions.push_back("up");
    now.replicas.push_back(
        {static_cast<int>(now.replicas.size()), serve::replica_state::starting, 0, 0, 0});
  }
  void drain_replica(int id) override {
    actions.push_back("down " + std::to_string(id));
    for (auto& r : now.replicas)
      if (r.id == id) r.state = serve::replica_state::draining;
  }
  void set_all(serve::replica_state from, serve::replica_state to) {
    for (auto& r : now.replicas)
      if (r.state == from) r.state = to;
  }
  void load(double util, int64_t waiting) {
    for (auto& r : now.replicas)
      if (r.state == serve::replica_state::up) r.utilization = util;
    now.waiting = waiting;
  }
};

}  // namespace

TEST_CASE("autoscaler actor: decisions every interval on the actor clock under simulated load",
          "[autoscale][actors]") {
  deterministic_system d;
  auto cluster = std::make_shared<simulated_cluster>();
  cluster->now.replicas.push_back(up(0, 0.0));
  auto scaler = d.sys.spawn(autoscaler, test_config(), std::shared_ptr<serve::load_source>(cluster),
                            std::shared_ptr<scaling_target>(cluster));
  d.sched.run();
  const auto tick = [&] {
    d.sched.advance_time(10s);
    d.sched.run();
  };
  const auto actions = [&] { return cluster->actions; };
  using strings = std::vector<std::string>;

  // Sustained overload: 90 % busy, 25 waiting. The third interval scales up, not before.
  cluster->load(0.9, 25);
  tick();
  tick();
  CHECK(actions().empty());
  tick();  // t = 30 s
  CHECK(actions() == strings{"up"});
  // While the new replica loads the autoscaler waits; then it is up and the load stays
  // high on both. No second scale-up within the 60 s cooldown (until t = 90 s).
  tick();
  tick();
  cluster->set_all(serve::replica_state::starting, serve::replica_state::up);
  cluster->load(0.95, 40);
  tick();  // 60 s
  tick();  // 70 s
  tick();  // 80 s: three high intervals, but in cooldown
  CHECK(actions() == strings{"up"});
  tick();  // 90 s: cooldown over
  CHECK(actions() == strings{"up", "up"});
  cluster->set_all(serve::replica_state::starting, serve::replica_state::up);
  cluster->load(1.0, 500);
  // At max_replicas (3) it never adds more, however long the overload lasts.
  for (int i = 0; i < 30; ++i) tick();
  CHECK(actions() == strings{"up", "up"});

  // The load goes away: replica 1 is the least loaded and is drained first.
  cluster->load(0.1, 0);
  cluster->now.replicas[1].utilization = 0.02;
  tick();
  tick();
  CHECK(actions().size() == 2);
  tick();
  CHECK(actions() == strings{"up", "up", "down 1"});
  // Draining: hold until it is gone, then another cooldown and three quiet intervals.
  for (int i = 0; i < 3; ++i) tick();
  CHECK(actions().size() == 3);
  cluster->set_all(serve::replica_state::draining, serve::replica_state::drained);
  tick();
  tick();
  tick();  // cooldown (60 s from the scale-down) has passed, streak is 3
  CHECK(actions() == strings{"up", "up", "down 1", "down 2"});
  cluster->set_all(serve::replica_state::draining, serve::replica_state::drained);
  // One replica left: at min_replicas, it stays, idle or not.
  for (int i = 0; i < 30; ++i) tick();
  CHECK(actions().size() == 4);
  CHECK(caf::actor_cast<caf::abstract_actor*>(scaler) != nullptr);
  caf::anon_send_exit(scaler, caf::exit_reason::user_shutdown);
  d.sched.run();
}

namespace {

/// What a client-side session saw, and what the replica's state was when it finished.
struct session_log {
  caf::actor engine;
  std::vector<int32_t> tokens;
  bool finished = false;
  bool engine_down = false;
  serve::replica_state replica_when_finished = serve::replica_state::starting;
};

/// Stands in for a request_session: submits through the router and watches its engine.
caf::behavior routed_session(caf::event_based_actor* self, caf::actor router, int32_t max_tokens,
                             std::shared_ptr<session_log> log,
                             std::shared_ptr<serve::replica_status> watched) {
  engine::sampling_params p;
  p.temperature = 0;
  p.max_tokens = max_tokens;
  p.ignore_eos = true;
  self->request(router, caf::infinite, submit_atom::value,
                engine_submit{{1, 2, 3}, p, caf::actor_cast<caf::actor>(self), {}, {}})
      .then([self, log](const submit_reply& r) {
        log->engine = r.engine;
        self->monitor(r.engine);
      });
  self->set_down_handler([log](caf::down_msg&) { log->engine_down = true; });
  return {
      [log, watched](token_atom, const token_msg& t) {
        log->tokens.push_back(t.token);
        log->finished = t.finished;
        if (t.finished) log->replica_when_finished = watched->state();
      },
      [](failed_atom, const failure_msg&) {},
  };
}

/// Another replica's engine: takes every request and never answers with tokens.
caf::behavior sink_engine(caf::event_based_actor* self, std::shared_ptr<int> submits) {
  return {
      [self, submits](submit_atom, const engine_submit&) {
        ++*submits;
        return submit_reply{*submits, {}, caf::actor_cast<caf::actor>(self)};
      },
      [](cancel_atom, int64_t) {},
  };
}

/// One replica under its real supervisor (the one to drain) and another engine, both
/// registered with the router; the other already holds a large request, so without a
/// drain the router would place new requests on the first.
struct drain_rig {
  deterministic_system d;
  std::shared_ptr<held_steps> held = std::make_shared<held_steps>();
  std::shared_ptr<caf::actor> worker = std::make_shared<caf::actor>();
  std::shared_ptr<serve::replica_status> status = std::make_shared<serve::replica_status>(0);
  std::shared_ptr<int> other_submits = std::make_shared<int>(0);
  caf::actor router, other, sup;
  std::shared_ptr<session_log> big = std::make_shared<session_log>();

  drain_rig() {
    held->backend = std::make_shared<fake_backend>();
    router = d.sys.spawn(router_actor, std::vector<caf::actor>{});
    other = d.sys.spawn(sink_engine, other_submits);
    caf::anon_send(router, add_engine_atom::value, other);
    d.sched.run();
    d.sys.spawn(routed_session, router, 1000, big, status);
    d.sched.run();
    REQUIRE(*other_submits == 1);
    config::replica_config rc;
    rc.heartbeat_interval_s = 0;
    rc.probe_interval_s = 0;
    auto be = held->backend;
    backend_factory factory = [be]() -> std::shared_ptr<gpu::backend> { return be; };
    sup = d.sys.spawn(replica_supervisor, factory, config::engine_config{}, rc, nullptr, router,
                      status, std::vector<int32_t>{}, std::shared_ptr<cluster_replica_options>{});
    // Before its first message runs: the worker holds steps on this scheduler.
    auto* s = dynamic_cast<caf::stateful_actor<replica_supervisor_state>*>(
        caf::actor_cast<caf::abstract_actor*>(sup));
    REQUIRE(s != nullptr);
    s->state.spawn_worker = [h = held, w = worker](caf::local_actor* self,
                                                   std::shared_ptr<gpu::backend>) {
      *w = self->spawn(holding_worker, h);
      return caf::actor_cast<gpu_worker_actor>(*w);
    };
    d.sched.run();
    REQUIRE(status->state() == serve::replica_state::up);
  }
  ~drain_rig() {
    caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(router, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(other, caf::exit_reason::user_shutdown);
    if (*worker) caf::anon_send_exit(*worker, caf::exit_reason::user_shutdown);
    for (auto& s : sessions) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    d.sched.run();
  }
  std::vector<caf::actor> sessions;  ///< kept, or a finished one would exit unreachable
  std::shared_ptr<session_log> submit(int32_t max_tokens) {
    auto log = std::make_shared<session_log>();
    sessions.push_back(d.sys.spawn(routed_session, router, max_tokens, log, status));
    d.sched.run();
    return log;
  }
  void release() {
    caf::anon_send(*worker, release_atom::value);
    d.sched.run();
  }
};

}  // namespace

TEST_CASE("drain before scale-down: no new requests, the running one finishes, then it stops",
          "[autoscale][actors]") {
  drain_rig rig;
  auto a = rig.submit(4);
  REQUIRE(a->engine);
  CHECK(a->engine != rig.other);           // the idle replica took it
  REQUIRE(rig.held->pending.size() == 1);  // a's prefill, held on the worker

  caf::anon_send(rig.sup, drain_atom::value, 60.0);
  rig.d.sched.run();
  CHECK(rig.status->state() == serve::replica_state::draining);

  // A new request goes to the other replica although this one has less outstanding.
  auto b = rig.submit(4);
  CHECK(b->engine == rig.other);
  CHECK(*rig.other_submits == 2);

  // a runs to its end on the draining replica; nothing stops before it finished.
  for (int step = 0; step < 3; ++step) {
    rig.release();
    CHECK(rig.status->state() == serve::replica_state::draining);
    CHECK(!a->engine_down);
  }
  CHECK(!a->finished);
  rig.release();  // a's last token
  CHECK(a->finished);
  CHECK(a->tokens == std::vector<int32_t>{3, 0, 1, 2});
  CHECK(a->replica_when_finished == serve::replica_state::draining);
  // Only then: the replica stopped, its engine is gone, nothing went wrong.
  CHECK(rig.status->state() == serve::replica_state::drained);
  CHECK(a->engine_down);
  CHECK(rig.status->snapshot().last_error.empty());
  CHECK(rig.held->pending.empty());
  // The router forgot it: the next request goes to the other replica again.
  auto c = rig.submit(4);
  CHECK(c->engine == rig.other);
}

TEST_CASE("drain timeout: a request still running then moves away like any failover",
          "[autoscale][actors]") {
  drain_rig rig;
  auto a = rig.submit(4);
  REQUIRE(a->engine);
  REQUIRE(rig.held->pending.size() == 1);
  caf::anon_send(rig.sup, drain_atom::value, 30.0);
  rig.d.sched.run();
  rig.d.sched.advance_time(30s - 1ms);
  rig.d.sched.run();
  CHECK(rig.status->state() == serve::replica_state::draining);
  CHECK(!a->engine_down);
  rig.d.sched.advance_time(1ms);
  rig.d.sched.run();
  CHECK(rig.status->state() == serve::replica_state::drained);
  CHECK(rig.status->snapshot().last_error.find("drain timeout") != std::string::npos);
  // The session sees its engine go (a real session resubmits through the router).
  CHECK(a->engine_down);
  CHECK(!a->finished);
}

TEST_CASE("drain of a replica that is restarting stops it at once", "[autoscale][actors]") {
  drain_rig rig;
  auto* s = dynamic_cast<caf::stateful_actor<replica_supervisor_state>*>(
      caf::actor_cast<caf::abstract_actor*>(rig.sup));
  REQUIRE(s != nullptr);
  caf::anon_send_exit(s->state.engine, caf::exit_reason::kill);
  rig.d.sched.run();
  REQUIRE(rig.status->state() == serve::replica_state::restarting);
  caf::anon_send(rig.sup, drain_atom::value, 30.0);
  rig.d.sched.run();
  CHECK(rig.status->state() == serve::replica_state::drained);
  // The pending restart does not bring it back.
  rig.d.sched.advance_time(1s);
  rig.d.sched.run();
  CHECK(rig.status->state() == serve::replica_state::drained);
}

TEST_CASE("autoscale config: TOML keys, round trip and validation", "[autoscale]") {
  const auto dir = std::filesystem::temp_directory_path() / "conclave_autoscale_test";
  std::filesystem::create_directories(dir);
  const auto write = [&](const std::string& text) {
    const auto path = dir / "c.toml";
    std::ofstream(path) << text;
    return path;
  };
  const auto c = config::load_server_config(write(R"([replicas]
count = 2
[autoscale]
enabled = true
interval_s = 5.0
sustain_intervals = 2
scale_up_utilization = 0.9
scale_up_waiting = 4
scale_down_utilization = 0.2
cooldown_s = 30.0
min_replicas = 1
max_replicas = 6
drain_timeout_s = 15.0
nvml = false
)"));
  CHECK(c.autoscale.enabled);
  CHECK(c.autoscale.interval_s == 5.0);
  CHECK(c.autoscale.sustain_intervals == 2);
  CHECK(c.autoscale.scale_up_utilization == 0.9);
  CHECK(c.autoscale.scale_up_waiting == 4);
  CHECK(c.autoscale.scale_down_utilization == 0.2);
  CHECK(c.autoscale.cooldown_s == 30.0);
  CHECK(c.autoscale.max_replicas == 6);
  CHECK(c.autoscale.drain_timeout_s == 15.0);
  CHECK(!c.autoscale.nvml);
  const auto again = config::load_server_config(write(config::to_toml(c)));
  CHECK(again.autoscale.max_replicas == 6);
  CHECK(again.autoscale.scale_up_waiting == 4);
  CHECK(!again.autoscale.nvml);

  const config::server_config defaults;
  CHECK(!defaults.autoscale.enabled);
  CHECK(defaults.autoscale.scale_up_utilization == 0.8);
  CHECK(defaults.autoscale.scale_up_waiting == 10);
  CHECK(defaults.autoscale.scale_down_utilization == 0.3);

  const auto error_of = [&](const std::string& text) {
    try {
      config::load_server_config(write(text));
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of("[autoscale]\nscale_down_utilization = 0.9\n")
            .find("autoscale.scale_down_utilization must be >= 0 and below "
                  "scale_up_utilization") != std::string::npos);
  CHECK(error_of("[autoscale]\nmin_replicas = 3\nmax_replicas = 2\n")
            .find("autoscale.max_replicas must be in [min_replicas, 64]") != std::string::npos);
  CHECK(error_of("[autoscale]\nenabled = true\nmin_replicas = 2\n")
            .find("replicas.count (1) must be within autoscale.min_replicas and max_replicas "
                  "(2..4)") != std::string::npos);
  CHECK(error_of("[autoscale]\ninterval = 3\n").find("unknown key \"autoscale.interval\"") !=
        std::string::npos);
  CHECK(error_of("[autoscale]\ncooldown_s = \"long\"\n")
            .find("\"autoscale.cooldown_s\" must be a number") != std::string::npos);
  std::filesystem::remove_all(dir);
}
