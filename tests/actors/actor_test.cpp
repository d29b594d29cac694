// Actor behaviour where timing matters, on CAF's deterministic test scheduler: nothing
// runs until the test says so, and delayed messages wait for the test's clock.
#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <catch2/catch.hpp>

#include "actors/replica.h"
#include "actors/replica_supervisor.h"
#include "actors/router.h"

using namespace conclave;
using namespace conclave::actors;
using namespace std::chrono_literals;

namespace {

/// A backend with a four-token vocabulary whose logits favour token p % 4 for the token
/// at position p: deterministic, instant, and it checks each batch like a real one.
class fake_backend final : public gpu::backend {
 public:
  fake_backend() {
    config_.vocab_size = 4;
    config_.num_layers = 1;
    config_.num_kv_heads = 1;
    config_.head_dim = 4;
    config_.max_position_embeddings = 64;
    kv_.block_size = 4;
    kv_.num_blocks = 16;
    kv_.bytes_per_block = 128;
  }
  std::string_view name() const override { return "fake"; }
  const model::model_config& config() const override { return config_; }
  gpu::kv_cache_shape kv_shape() const override { return kv_; }
  void forward(std::span<const gpu::step_sequence> batch, gpu::step_output& out) override {
    gpu::validate_batch(batch, config_, kv_);
    out.vocab = 4;
    out.logits.clear();
    out.row_begin.assign(1, 0);
    for (const auto& s : batch) {
      const auto pos = static_cast<size_t>(s.num_cached) + s.tokens.size();
      for (size_t v = 0; v < 4; ++v) out.logits.push_back(v == pos % 4 ? 5.0f : 0.0f);
      out.row_begin.push_back(out.row_begin.back() + 1);
    }
    ++steps;
  }
  int steps = 0;

 private:
  model::model_config config_;
  gpu::kv_cache_shape kv_;
};

struct deterministic_system {
  static caf::actor_system_config& configure(caf::actor_system_config& cfg) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.verbosity", caf::atom("quiet"));
    return cfg;
  }
  caf::actor_system_config cfg;
  caf::actor_system sys{configure(cfg)};
  caf::scheduler::test_coordinator& sched =
      dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
};

using release_atom = caf::atom_constant<caf::atom("release")>;

/// What the holding worker has been asked to run and not yet answered.
struct held_steps {
  std::vector<std::pair<caf::response_promise, forward_job>> pending;
  std::shared_ptr<gpu::backend> backend;
};

/// A worker that holds each step until it gets release_atom (promises are delivered
/// from inside the actor, as CAF requires).
caf::behavior holding_worker(caf::event_based_actor* self, std::shared_ptr<held_steps> held) {
  return {
      [self, held](forward_atom, const forward_job& job) {
        auto promise = self->make_response_promise();
        held->pending.emplace_back(promise, job);
        return promise;
      },
      [held](release_atom) {
        for (auto& [promise, job] : std::exchange(held->pending, {})) {
          auto out = std::make_shared<gpu::step_output>();
          held->backend->forward(job.step->batch, *out);
          promise.deliver(forward_done{std::move(out)});
        }
      },
  };
}

/// Stands in for a request_session: submits on start and records what comes back.
struct session_log {
  int64_t seq_id = -1;
  std::vector<int32_t> tokens;
  bool finished = false;
};

caf::behavior fake_session(caf::event_based_actor* self, caf::actor engine,
                           std::vector<int32_t> prompt, std::shared_ptr<session_log> log) {
  engine::sampling_params p;
  p.temperature = 0;
  p.max_tokens = 4;
  p.ignore_eos = true;
  self->request(engine, caf::infinite, submit_atom::value,
                engine_submit{std::move(prompt), p, caf::actor_cast<caf::actor>(self)})
      .then([log](const submit_reply& r) { log->seq_id = r.seq_id; });
  return {
      [log](token_atom, const token_msg& t) {
        log->tokens.push_back(t.token);
        log->finished = t.finished;
      },
      [](failed_atom, const failure_msg&) {},
  };
}

engine::engine_stats stats_of(deterministic_system& d, const caf::actor& engine) {
  auto out = std::make_shared<engine::engine_stats>();
  auto asker = d.sys.spawn([engine, out](caf::event_based_actor* self) {
    self->request(engine, caf::infinite, stats_atom::value).then([out](const stats_msg& m) {
      *out = m.stats;
    });
  });
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
  auto engine = d.sys.spawn(engine_actor, caf::actor_cast<gpu_worker_actor>(worker),
                            held->backend->config(), held->backend->kv_shape(), cfg, nullptr);
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

TEST_CASE("restart backoff doubles from 0.5 s to 30 s", "[actors]") {
  CHECK(restart_backoff(0) == 500ms);
  CHECK(restart_backoff(1) == 1000ms);
  CHECK(restart_backoff(2) == 2000ms);
  CHECK(restart_backoff(5) == 16000ms);
  CHECK(restart_backoff(6) == 30000ms);
  CHECK(restart_backoff(60) == 30000ms);
}

TEST_CASE("supervisor: failed bring-ups retry after 0.5 s, 1 s, 2 s on the actor clock",
          "[actors]") {
  deterministic_system d;
  auto calls = std::make_shared<int>(0);
  backend_factory factory = [calls]() -> std::shared_ptr<gpu::backend> {
    if (++*calls <= 3) throw std::runtime_error("device not ready");
    return std::make_shared<fake_backend>();
  };
  auto ready = std::make_shared<std::atomic<bool>>(false);
  auto router = d.sys.spawn(router_actor, std::vector<caf::actor>{});
  auto sup =
      d.sys.spawn(replica_supervisor, factory, config::engine_config{}, nullptr, router, ready);
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
  CHECK(ready->load());
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
  CHECK(!ready->load());
  d.sched.advance_time(4000ms - 1ms);
  d.sched.run();
  CHECK(*calls == 4);
  d.sched.advance_time(1ms);
  d.sched.run();
  CHECK(*calls == 5);
  CHECK(ready->load());

  // After a minute of service a failure restarts after 0.5 s again.
  d.sched.advance_time(61s);
  d.sched.run();
  kill_engine();
  d.sched.advance_time(500ms);
  d.sched.run();
  CHECK(*calls == 6);
  CHECK(ready->load());

  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(router, caf::exit_reason::user_shutdown);
  d.sched.run();
}
