// The engine actor (see the header). While the worker computes a step the engine keeps
// taking submits and cancels, which join the next step.
#include "actors/engine_actor.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <algorithm>
#include <chrono>
#include <thread>

#include "actors/engine_actor_parts.h"

namespace conclave::actors {

void publish_stats(engine_state& st) {
  const auto s = st.eng->stats();
  if (st.opts.status) st.opts.status->set_load(s.num_running, s.num_waiting, s.kv_blocks_free);
  if (!st.metrics) return;
  st.metrics->publish_engine(st.opts.replica, s, st.reported);
  st.reported = s;
}

namespace {

/// Stops tracking sequence `seq` and its session (finished, cancelled or gone).
void forget_session(engine_ptr self, int64_t seq) {
  auto& s = self->state;
  if (auto it = s.sessions.find(seq); it != s.sessions.end()) {
    self->demonitor(it->second);
    s.seq_of_session.erase(it->second.address());
    s.sessions.erase(it);
  }
  s.unsent_step_seconds.erase(seq);
}

}  // namespace

void fail_sessions(engine_ptr self, const std::string& why) {
  for (auto& [id, session] : self->state.sessions) {
    self->send(session, failed_atom::value, failure_msg{why});
  }
  self->state.sessions.clear();
  self->state.seq_of_session.clear();
  self->state.unsent_step_seconds.clear();
}

void finish_step(engine_ptr self, const engine::pending_step& step, const gpu::step_output& out,
                 std::chrono::steady_clock::time_point t0) {
  auto& s = self->state;
  s.in_flight = false;
  if (s.opts.status) s.opts.status->end_busy(std::chrono::steady_clock::now());
  auto events = s.eng->end_step(step, out);
  // The engine's own step time (schedule, forward, sample): what a request's
  // latency is made of before the server adds anything.
  const double step_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const auto& w : step.work) {
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
}

void fail_step(engine_ptr self, const caf::error& err) {
  auto& s = self->state;
  if (s.opts.status) s.opts.status->end_busy(std::chrono::steady_clock::now());
  std::string why = self->system().render(err);
  if (err == caf::sec::request_timeout) {
    why = fmt::format("watchdog: a step ran longer than {} ms", s.opts.step_timeout.count());
    // The worker may be stuck inside the backend: it is abandoned, and the
    // supervisor brings up a new one.
    if (s.opts.ranks.empty()) self->send_exit(s.worker, caf::exit_reason::kill);
    for (auto& r : s.opts.ranks) self->send_exit(r, caf::exit_reason::kill);
  }
  spdlog::error("engine: step failed: {}", why);
  fail_sessions(self, "the model replica failed: " + why);
  self->quit(err == caf::sec::request_timeout ? caf::make_error(caf::sec::request_timeout, why)
                                              : err);
}

void kick(engine_ptr self) {
  auto& st = self->state;
  if (st.in_flight || st.applying) return;
  if (st.next_placement) return apply_placement(self);
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
  if (!st.opts.ranks.empty()) return send_to_ranks(self, step, t0, job.fault);
  job.step = step;
  self->request(st.worker, st.opts.step_timeout, forward_atom::value, std::move(job))
      .then([self, step, t0](const forward_done& done) { finish_step(self, *step, *done.out, t0); },
            [self](caf::error& err) { fail_step(self, err); });
}

caf::behavior engine_actor(caf::stateful_actor<engine_state>* self, gpu_worker_actor worker,
                           model::model_config model, gpu::kv_cache_shape kv,
                           config::engine_config cfg,
                           std::shared_ptr<serve::server_metrics> metrics,
                           engine_actor_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  const auto ranks = std::max<int32_t>(1, static_cast<int32_t>(st.opts.ranks.size()));
  st.eng = std::make_unique<engine::llm_engine>(model, kv, cfg, ranks);
  st.worker = worker;
  st.metrics = std::move(metrics);
  if (st.opts.ranks.empty()) self->monitor(worker);
  for (auto& r : st.opts.ranks) self->monitor(r);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& s = self->state;
    const bool a_rank = std::any_of(s.opts.ranks.begin(), s.opts.ranks.end(),
                                    [&](const caf::actor& r) { return r.address() == msg.source; });
    if (a_rank) {
      fail_sessions(self,
                    "a rank of the model replica stopped: " + self->system().render(msg.reason));
      return self->quit(msg.reason);
    }
    if (!s.opts.ranks.empty() || msg.source != s.worker.address()) {
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
        if (s.opts.status) r.replica = s.opts.status->id();
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
      [self](placement_atom, gpu::expert_map& map) -> caf::result<uint64_t> {
        auto& s = self->state;
        if (s.opts.ranks.empty())
          return caf::make_error(caf::sec::invalid_argument, "this replica has one rank");
        if (s.next_placement || s.applying)
          return caf::make_error(caf::sec::invalid_argument, "a placement is being applied");
        s.next_placement = std::move(map);
        s.placement_promise = self->make_response_promise();
        kick(self);
        return s.placement_promise;
      },
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
