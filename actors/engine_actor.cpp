// The engine actor (see the header). While the worker computes a step the engine keeps
// taking submits and cancels, which join the next step.
#include "actors/engine_actor.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <algorithm>
#include <chrono>
#include <thread>

#include "actors/cluster_messages.h"
#include "engine/rank_split.h"

namespace conclave::actors {

namespace {

void publish_stats(engine_state& st) {
  const auto s = st.eng->stats();
  if (st.opts.status) st.opts.status->set_load(s.num_running, s.num_waiting, s.kv_blocks_free);
  if (!st.metrics) return;
  st.metrics->publish_engine(st.opts.replica, s, st.reported);
  st.reported = s;
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

void kick(caf::stateful_actor<engine_state>* self);
void fail_step(caf::stateful_actor<engine_state>* self, const caf::error& err);

/// A step's forward pass came back: sample, stream the tokens, start the next step.
void finish_step(caf::stateful_actor<engine_state>* self, const engine::pending_step& step,
                 const gpu::step_output& out, std::chrono::steady_clock::time_point t0) {
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

/// A step failed or outlived the watchdog: the replica ends, its requests fail over.
void fail_step(caf::stateful_actor<engine_state>* self, const caf::error& err) {
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

/// Switches every rank to the waiting placement between two steps, then steps on.
void apply_placement(caf::stateful_actor<engine_state>* self) {
  auto& st = self->state;
  st.applying = true;
  auto map = std::move(*st.next_placement);
  st.next_placement.reset();
  auto pending = std::make_shared<size_t>(st.opts.ranks.size());
  auto failed = std::make_shared<bool>(false);
  const uint64_t version = map.version;
  for (auto& r : st.opts.ranks) {
    self->request(r, st.opts.step_timeout, placement_atom::value, map)
        .then(
            [self, pending, failed, version](uint64_t) {
              if (*failed || --*pending > 0) return;
              auto& s = self->state;
              s.applying = false;
              s.opts.placement_version = version;
              spdlog::info("engine: replica {} switched to placement v{}", s.opts.replica, version);
              s.placement_promise.deliver(version);
              kick(self);
            },
            [self, failed](caf::error& err) {
              if (*failed) return;
              *failed = true;
              self->state.placement_promise.deliver(err);
              fail_step(self, err);
            });
  }
}

/// Adds one rank's per-expert counts to the step's sum.
void add_load(std::vector<std::vector<int64_t>>& total, std::vector<std::vector<int64_t>>& part) {
  if (total.empty()) {
    total = std::move(part);
    return;
  }
  for (size_t l = 0; l < total.size() && l < part.size(); ++l)
    for (size_t e = 0; e < total[l].size() && e < part[l].size(); ++e) total[l][e] += part[l][e];
}

/// An expert-parallel step: one part per rank (idle ranks get an empty one: they join the
/// collectives), answers joined, then one end_step.
void send_to_ranks(caf::stateful_actor<engine_state>* self,
                   std::shared_ptr<engine::pending_step> step,
                   std::chrono::steady_clock::time_point t0, serve::fault_kind fault) {
  auto& st = self->state;
  const int ranks = static_cast<int>(st.opts.ranks.size());
  struct fan_in {
    std::vector<engine::rank_batch> parts;
    std::vector<gpu::step_output> outputs;
    std::vector<std::vector<int64_t>> load;  ///< summed over ranks when asked for
    size_t pending = 0;
    bool failed = false;
  };
  auto f = std::make_shared<fan_in>();
  f->parts = engine::split_by_rank(step->batch, step->entry_rank, ranks);
  f->outputs.resize(static_cast<size_t>(ranks));
  f->pending = static_cast<size_t>(ranks);
  const uint64_t step_no = ++st.steps;
  if (fault == serve::fault_kind::crash_worker) {
    spdlog::warn("engine: injected crash of rank 0");
    self->send_exit(st.opts.ranks[0], caf::exit_reason::kill);
  }
  for (int r = 0; r < ranks; ++r) {
    rank_step msg;
    msg.epoch = st.opts.epoch;
    msg.step = step_no;
    msg.placement_version = st.opts.placement_version;
    msg.want_load = st.opts.expert_group && step_no % 16 == 0;
    for (const auto& seq : f->parts[static_cast<size_t>(r)].batch) {
      msg.seqs.push_back(
          {std::vector<int32_t>(seq.tokens.begin(), seq.tokens.end()), seq.num_cached,
           std::vector<int32_t>(seq.block_table.begin(), seq.block_table.end()), seq.all_logits});
    }
    for (const auto& c : step->transfer(r).to_host)
      msg.to_host.insert(msg.to_host.end(), {c.device_block, c.host_block});
    for (const auto& c : step->transfer(r).to_device)
      msg.to_device.insert(msg.to_device.end(), {c.device_block, c.host_block});
    if (fault == serve::fault_kind::fail_step && r == 0) msg.epoch = ~uint64_t{0};
    self->request(st.opts.ranks[static_cast<size_t>(r)], st.opts.step_timeout,
                  rank_step_atom::value, std::move(msg))
        .then(
            [self, step, t0, f, r, step_no](rank_step_done& done) {
              if (f->failed) return;
              if (done.step != step_no) {
                f->failed = true;
                return fail_step(
                    self, caf::make_error(caf::sec::runtime_error, "a rank answered another step"));
              }
              auto& out = f->outputs[static_cast<size_t>(r)];
              out.vocab = done.vocab;
              out.logits = std::move(done.logits);
              out.row_begin.assign(done.row_begin.begin(), done.row_begin.end());
              if (!done.expert_load.empty()) add_load(f->load, done.expert_load);
              if (--f->pending > 0) return;
              if (!f->load.empty() && self->state.opts.expert_group)
                self->send(self->state.opts.expert_group, expert_load_atom::value,
                           std::move(f->load));
              gpu::step_output merged;
              try {
                engine::merge_rank_outputs(f->parts, f->outputs, merged);
              } catch (const std::exception& e) {
                f->failed = true;
                return fail_step(self, caf::make_error(caf::sec::runtime_error, e.what()));
              }
              finish_step(self, *step, merged, t0);
            },
            [self, f](caf::error& err) {
              if (f->failed) return;
              f->failed = true;
              fail_step(self, err);
            });
  }
}

/// Starts the next step if none is running and there is work.
void kick(caf::stateful_actor<engine_state>* self) {
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

}  // namespace

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
