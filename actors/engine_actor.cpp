// The engine actor (see the header). While the worker computes a step the engine keeps
// taking submits and cancels, which join the next step.
#include "actors/engine_actor.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <chrono>
#include <thread>

namespace conclave::actors {

namespace {

void publish_stats(engine_state& st) {
  const auto s = st.eng->stats();
  if (st.opts.status) st.opts.status->set_load(s.num_running, s.num_waiting, s.kv_blocks_free);
  if (!st.metrics) return;
  st.metrics->set_engine(st.opts.replica, s.num_running, s.num_waiting,
                         s.kv_blocks_total - s.kv_blocks_free, s.kv_blocks_free);
  st.metrics->add_preemptions(s.preemptions - st.preemptions_reported);
  st.preemptions_reported = s.preemptions;
}

/// Stops tracking sequence `seq` and its session (finished, cancelled or gone).
void forget_session(caf::stateful_actor<engine_state>* self, int64_t seq) {
  auto& s = self->state;
  if (auto it = s.sessions.find(seq); it != s.sessions.end()) {
    self->demonitor(it->second);
    s.seq_of_session.erase(it->second.address());
    s.sessions.erase(it);
  }
  s.unsent_step_seconds.erase(seq);
}

/// Tells every session the replica failed (they fail over) and forgets them.
void fail_sessions(caf::stateful_actor<engine_state>* self, const std::string& why) {
  for (auto& [id, session] : self->state.sessions) {
    self->send(session, failed_atom::value, failure_msg{why});
  }
  self->state.sessions.clear();
  self->state.seq_of_session.clear();
  self->state.unsent_step_seconds.clear();
}

/// Starts the next step if none is running and there is work.
void kick(caf::stateful_actor<engine_state>* self) {
  auto& st = self->state;
  if (st.in_flight) return;
  if (st.sessions.empty() && !st.drain_waiters.empty()) {
    // Draining, and the last request has left: the supervisor may stop the replica.
    for (auto& p : std::exchange(st.drain_waiters, {})) p.deliver(drain_atom::value);
  }
  if (!st.eng->has_work()) return;
  forward_job job;
  if (st.opts.status) job.fault = st.opts.status->take_fault();
  if (job.fault == serve::fault_kind::crash_engine) {
    spdlog::warn("engine: injected crash");
    fail_sessions(self, "the model replica failed: injected engine crash");
    return self->quit(caf::exit_reason::kill);
  }
  job.hang_s = st.opts.hang_s;
  const auto t0 = std::chrono::steady_clock::now();
  auto step = std::make_shared<engine::pending_step>(st.eng->begin_step());
  if (step->empty()) return;
  st.in_flight = true;
  if (st.opts.status) st.opts.status->begin_busy(t0);
  job.step = step;
  self->request(st.worker, st.opts.step_timeout, forward_atom::value, std::move(job))
      .then(
          [self, step, t0](const forward_done& done) {
            auto& s = self->state;
            s.in_flight = false;
            if (s.opts.status) s.opts.status->end_busy(std::chrono::steady_clock::now());
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
              if (e.finished) forget_session(self, e.id);
            }
            publish_stats(s);
            kick(self);
          },
          [self](caf::error& err) {
            auto& s = self->state;
            if (s.opts.status) s.opts.status->end_busy(std::chrono::steady_clock::now());
            std::string why = self->system().render(err);
            if (err == caf::sec::request_timeout) {
              why = fmt::format("watchdog: a step ran longer than {} ms",
                                s.opts.step_timeout.count());
              // The worker may be stuck inside the backend: it is abandoned, and the
              // supervisor brings up a new one.
              self->send_exit(s.worker, caf::exit_reason::kill);
            }
            spdlog::error("engine: step failed: {}", why);
            fail_sessions(self, "the model replica failed: " + why);
            self->quit(err == caf::sec::request_timeout
                           ? caf::make_error(caf::sec::request_timeout, why)
                           : err);
          });
}

}  // namespace

caf::behavior engine_actor(caf::stateful_actor<engine_state>* self, gpu_worker_actor worker,
                           model::model_config model, gpu::kv_cache_shape kv,
                           config::engine_config cfg,
                           std::shared_ptr<serve::server_metrics> metrics,
                           engine_actor_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.eng = std::make_unique<engine::llm_engine>(model, kv, cfg);
  st.worker = worker;
  st.metrics = std::move(metrics);
  self->monitor(worker);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& s = self->state;
    if (msg.source != s.worker.address()) {
      // A session died without cancelling (killed, crashed): its sequence stops here.
      if (auto it = s.seq_of_session.find(msg.source); it != s.seq_of_session.end()) {
        const int64_t seq = it->second;
        s.eng->abort(seq);
        forget_session(self, seq);
        publish_stats(s);
        kick(self);
      }
      return;
    }
    fail_sessions(self, "the model replica's worker stopped");
    self->quit(msg.reason);
  });
  return {
      [self](submit_atom, engine_submit& m) -> submit_reply {
        auto& s = self->state;
        submit_reply r;
        r.engine = caf::actor_cast<caf::actor>(self);
        try {
          r.seq_id = s.eng->add_request(std::move(m.prompt), m.params, m.resume_output);
        } catch (const std::invalid_argument& e) {
          r.error = e.what();
          return r;
        }
        self->monitor(m.session);
        s.seq_of_session[m.session.address()] = r.seq_id;
        s.sessions.emplace(r.seq_id, std::move(m.session));
        publish_stats(s);
        kick(self);
        return r;
      },
      [self](cancel_atom, int64_t seq_id) {
        auto& s = self->state;
        s.eng->abort(seq_id);
        forget_session(self, seq_id);
        publish_stats(s);
        kick(self);
      },
      [self](stats_atom) { return stats_msg{self->state.eng->stats()}; },
      [self](drain_atom) -> caf::result<drain_atom> {
        // Answered once no request runs here; the router already sends no new ones.
        auto promise = self->make_response_promise();
        self->state.drain_waiters.push_back(promise);
        kick(self);
        return promise;
      },
  };
}

}  // namespace conclave::actors
