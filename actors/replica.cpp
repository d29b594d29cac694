// The replica's two actors. The engine never blocks: while the worker computes a step
// the engine keeps taking submits and cancels, which join the next step.
#include "actors/replica.h"

#include <spdlog/spdlog.h>
#include <chrono>

namespace conclave::actors {

gpu_worker_actor::behavior_type gpu_worker(gpu_worker_actor::pointer,
                                           std::shared_ptr<gpu::backend> backend) {
  return {
      [backend](forward_atom, const forward_job& job) {
        auto out = std::make_shared<gpu::step_output>();
        backend->forward(job.step->batch, *out);  // throws on device errors: ends this actor
        return forward_done{std::move(out)};
      },
  };
}

namespace {

void publish_stats(engine_state& st) {
  if (!st.metrics) return;
  const auto s = st.eng->stats();
  st.metrics->set_engine(s.num_running, s.num_waiting, s.kv_blocks_total - s.kv_blocks_free,
                         s.kv_blocks_free);
  st.metrics->add_preemptions(s.preemptions - st.preemptions_reported);
  st.preemptions_reported = s.preemptions;
}

/// Starts the next step if none is running and there is work.
void kick(caf::stateful_actor<engine_state>* self) {
  auto& st = self->state;
  if (st.in_flight || !st.eng->has_work()) return;
  const auto t0 = std::chrono::steady_clock::now();
  auto step = std::make_shared<engine::pending_step>(st.eng->begin_step());
  if (step->empty()) return;
  st.in_flight = true;
  self->request(st.worker, caf::infinite, forward_atom::value, forward_job{step})
      .then(
          [self, step, t0](const forward_done& done) {
            auto& s = self->state;
            s.in_flight = false;
            auto events = s.eng->end_step(*step, *done.out);
            // The engine's own step time (schedule, forward, sample): what a request's
            // latency is made of before the server adds anything.
            const double step_seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            for (const auto& w : step->work) {
              if (s.sessions.count(w.seq->id())) s.unsent_step_seconds[w.seq->id()] += step_seconds;
            }
            for (auto& e : events) {
              auto it = s.sessions.find(e.id);
              if (it == s.sessions.end()) continue;
              self->send(it->second, token_atom::value,
                         token_msg{e.id, e.token, e.finished, e.reason, std::move(e.logprobs),
                                   std::exchange(s.unsent_step_seconds[e.id], 0.0)});
              if (e.finished) {
                s.sessions.erase(it);
                s.unsent_step_seconds.erase(e.id);
              }
            }
            publish_stats(s);
            kick(self);
          },
          [self](caf::error& err) {
            const std::string why = self->system().render(err);
            spdlog::error("engine: step failed: {}", why);
            for (auto& [id, session] : self->state.sessions) {
              self->send(session, failed_atom::value,
                         failure_msg{"the model replica failed: " + why});
            }
            self->state.sessions.clear();
            self->state.unsent_step_seconds.clear();
            self->quit(err);
          });
}

}  // namespace

caf::behavior engine_actor(caf::stateful_actor<engine_state>* self, gpu_worker_actor worker,
                           model::model_config model, gpu::kv_cache_shape kv,
                           config::engine_config cfg, std::shared_ptr<server_metrics> metrics) {
  auto& st = self->state;
  st.eng = std::make_unique<engine::llm_engine>(model, kv, cfg);
  st.worker = worker;
  st.metrics = std::move(metrics);
  self->monitor(worker);
  self->set_down_handler([self](caf::down_msg& msg) {
    for (auto& [id, session] : self->state.sessions) {
      self->send(session, failed_atom::value, failure_msg{"the model replica's worker stopped"});
    }
    self->state.sessions.clear();
    self->quit(msg.reason);
  });
  return {
      [self](submit_atom, engine_submit& m) -> submit_reply {
        auto& s = self->state;
        submit_reply r;
        r.engine = caf::actor_cast<caf::actor>(self);
        try {
          r.seq_id = s.eng->add_request(std::move(m.prompt), m.params);
        } catch (const std::invalid_argument& e) {
          r.error = e.what();
          return r;
        }
        s.sessions.emplace(r.seq_id, std::move(m.session));
        publish_stats(s);
        kick(self);
        return r;
      },
      [self](cancel_atom, int64_t seq_id) {
        auto& s = self->state;
        s.eng->abort(seq_id);
        s.sessions.erase(seq_id);
        s.unsent_step_seconds.erase(seq_id);
        publish_stats(s);
        kick(self);
      },
      [self](stats_atom) { return stats_msg{self->state.eng->stats()}; },
  };
}

}  // namespace conclave::actors
