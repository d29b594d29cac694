// What the actor tests share: CAF's deterministic test scheduler, a fake backend, and a
// worker that holds each step until the test releases it.
#pragma once

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <memory>
#include <utility>
#include <vector>

#include "actors/engine_actor.h"
#include "actors/gpu_worker.h"
#include "gpu/backend.h"

namespace conclave::test {

/// An actor system on the test coordinator: nothing runs until the test says so, and
/// delayed messages wait for the test's clock.
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

using release_atom = caf::atom_constant<caf::atom("release")>;

/// What the holding worker has been asked to run and not yet answered.
struct held_steps {
  std::vector<std::pair<caf::response_promise, actors::forward_job>> pending;
  std::shared_ptr<gpu::backend> backend;
};

/// A worker that holds each step until it gets release_atom (promises are delivered
/// from inside the actor, as CAF requires).
inline caf::behavior holding_worker(caf::event_based_actor* self,
                                    std::shared_ptr<held_steps> held) {
  return {
      [self, held](actors::forward_atom, const actors::forward_job& job) {
        auto promise = self->make_response_promise();
        held->pending.emplace_back(promise, job);
        return promise;
      },
      [held](release_atom) {
        for (auto& [promise, job] : std::exchange(held->pending, {})) {
          auto out = std::make_shared<gpu::step_output>();
          held->backend->forward(job.step->batch, *out);
          promise.deliver(actors::forward_done{std::move(out)});
        }
      },
  };
}

}  // namespace conclave::test
