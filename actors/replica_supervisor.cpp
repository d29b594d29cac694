// Bring-up and restart of one replica. Backoff doubles from 0.5 s up to 30 s and starts
// over once a replica has served for a minute; too many failures in the window and the
// replica is left dead.
#include "actors/replica_supervisor.h"

#include "actors/cluster_registry.h"
#include "actors/health_checker.h"
#include "actors/replica_supervisor_parts.h"
#include "model/checkpoint.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace conclave::actors {

backend_factory checkpoint_backend_factory(std::string model_dir, config::backend_config backend) {
  return [dir = std::move(model_dir), backend = std::move(backend)]() {
    const model::checkpoint c(dir);
    return std::shared_ptr<gpu::backend>(gpu::make_backend(c, backend));
  };
}

engine_actor_options base_engine_options(const replica_supervisor_state& st) {
  engine_actor_options opts;
  opts.replica = st.status->id();
  opts.status = st.status;
  opts.step_timeout = std::chrono::milliseconds(static_cast<int64_t>(st.rc.step_timeout_s * 1e3));
  opts.hang_s = st.rc.hang_s > 0 ? st.rc.hang_s : st.rc.step_timeout_s + 5.0;
  return opts;
}

void stop_ranks(supervisor_ptr self) {
  auto& st = self->state;
  if (st.group) self->send_exit(st.group, caf::exit_reason::user_shutdown);
  st.group = nullptr;
  for (auto& r : st.ranks) self->send_exit(r, caf::exit_reason::user_shutdown);
  st.ranks.clear();
}

void on_failure(supervisor_ptr self, const std::string& why) {
  auto& st = self->state;
  const auto d = st.restarts->failed(self->clock().now());
  if (d.give_up) {
    spdlog::error("replica {}: {} failures within {:.0f} s; giving up (last: {})", st.status->id(),
                  d.failures_in_window, st.rc.restart_window_s, why);
    st.status->set_state(serve::replica_state::dead, why);
    return;
  }
  st.status->set_state(serve::replica_state::restarting, why);
  spdlog::error("replica {}: {}; restarting in {} ms (attempt {})", st.status->id(), why,
                d.delay.count(), d.attempt);
  self->delayed_send(self, d.delay, restart_atom::value);
}

namespace {

/// One decode-sized and one prefill-sized step so first requests see warm code paths.
void warm_up(gpu::backend& be) {
  const int32_t bs = be.kv_shape().block_size;
  std::vector<int32_t> tokens(static_cast<size_t>(std::min(bs, 8)), 0);
  std::vector<int32_t> table = {0};
  gpu::step_sequence s{tokens, 0, table, false};
  gpu::step_output out;
  be.forward({&s, 1}, out);
}

/// The end of a drain: stops the replica's actors and this supervisor. `why` is empty
/// for a drain that finished cleanly.
void finish_drain(supervisor_ptr self, const std::string& why) {
  auto& st = self->state;
  if (st.engine) self->send_exit(st.engine, caf::exit_reason::user_shutdown);
  if (st.worker) self->send_exit(st.worker, caf::exit_reason::user_shutdown);
  stop_ranks(self);
  if (st.cluster) self->send(st.cluster->registry, release_atom::value, st.status->id());
  st.status->set_state(serve::replica_state::drained, why);
  if (why.empty())
    spdlog::info("replica {} drained and stopped", st.status->id());
  else
    spdlog::warn("replica {} stopped: {}", st.status->id(), why);
  self->quit();
}

void start_drain(supervisor_ptr self, double timeout_s) {
  auto& st = self->state;
  if (st.draining) return;
  st.draining = true;
  st.status->set_state(serve::replica_state::draining);
  spdlog::info("replica {}: draining (timeout {:.0f} s)", st.status->id(), timeout_s);
  if (st.checker) {
    // Its probes would keep the engine busy; it is linked, so unlink before it goes.
    self->unlink_from(st.checker);
    self->send_exit(st.checker, caf::exit_reason::user_shutdown);
    st.checker = nullptr;
  }
  if (!st.engine) return finish_drain(self, {});  // restarting or dead: nothing runs
  self->delayed_send(self,
                     std::chrono::duration_cast<caf::actor_clock::duration_type>(
                         std::chrono::duration<double>(timeout_s)),
                     drain_timeout_atom::value);
  // The router acknowledges first, so every request it placed on the engine is in the
  // engine's mailbox before the engine is asked to report idle.
  const caf::actor engine = st.engine;
  self->request(st.router, caf::infinite, drain_atom::value, engine)
      .then([self, engine](drain_atom) {
        self->request(engine, caf::infinite, drain_atom::value)
            .then([self](drain_atom) { finish_drain(self, {}); },
                  [](caf::error&) {});  // the engine ended: the down handler finishes
      });
}

void bring_up(supervisor_ptr self) {
  auto& st = self->state;
  if (st.status->state() == serve::replica_state::dead || st.draining) return;
  if (st.cluster) {
    if (st.engine) self->send_exit(st.engine, caf::exit_reason::user_shutdown);
    return bring_up_cluster(self);
  }
  try {
    if (st.worker)
      self->send_exit(st.worker, caf::exit_reason::user_shutdown);  // the old one, if any
    if (st.engine) self->send_exit(st.engine, caf::exit_reason::user_shutdown);
    auto backend = st.factory();
    warm_up(*backend);
    auto worker = st.spawn_worker ? st.spawn_worker(self, backend)
                                  : self->spawn<caf::detached>(gpu_worker, backend);
    st.worker = caf::actor_cast<caf::actor>(worker);
    const auto opts = base_engine_options(st);
    auto cfg = st.cfg;  // specs only for a backend that samples them
    cfg.sample_on_device = cfg.sample_on_device && backend->samples_on_device();
    st.engine = self->spawn(engine_actor, worker, backend->config(), backend->kv_shape(), cfg,
                            st.metrics, opts);
    self->monitor(st.engine);
    self->send(st.router, add_engine_atom::value, st.engine);
    if (st.checker) self->send(st.checker, watch_atom::value, st.engine);
    st.status->set_backend(std::string(backend->name()), backend->kv_shape().num_blocks);
    st.status->set_state(serve::replica_state::up);
    st.restarts->came_up(self->clock().now());
    spdlog::info("replica {} up ({} backend, {} KV blocks)", st.status->id(), backend->name(),
                 backend->kv_shape().num_blocks);
  } catch (const std::exception& e) {
    on_failure(self, std::string("failed to start: ") + e.what());
  }
}

}  // namespace

caf::behavior replica_supervisor(supervisor_ptr self, backend_factory factory,
                                 config::engine_config cfg, config::replica_config rc,
                                 std::shared_ptr<serve::server_metrics> metrics, caf::actor router,
                                 std::shared_ptr<serve::replica_status> status,
                                 std::vector<int32_t> probe_prompt,
                                 std::shared_ptr<cluster_replica_options> cluster) {
  auto& st = self->state;
  st.cluster = std::move(cluster);
  st.factory = std::move(factory);
  st.cfg = std::move(cfg);
  st.rc = rc;
  st.metrics = std::move(metrics);
  st.router = std::move(router);
  st.status = std::move(status);
  st.restarts.emplace(rc.max_restarts, rc.restart_window_s, rc.restart_backoff_s,
                      rc.restart_backoff_max_s, rc.backoff_reset_s);
  if (rc.heartbeat_interval_s > 0 || rc.probe_interval_s > 0) {
    st.checker = self->spawn<caf::linked>(
        health_checker, st.status, caf::actor_cast<caf::actor>(self), std::move(probe_prompt), rc);
  }
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& s = self->state;
    if (msg.source != s.engine.address()) return;  // a rank: its engine ends too
    s.engine = nullptr;
    stop_ranks(self);
    if (s.draining)
      return finish_drain(self,
                          "the engine ended while draining: " + self->system().render(msg.reason));
    s.status->count_restart();
    s.restarts->went_down(self->clock().now());
    on_failure(self, "down: " + self->system().render(msg.reason));
  });
  self->send(self, restart_atom::value);
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& s = self->state;
    if (s.worker) self->send_exit(s.worker, msg.reason);
    if (s.engine) self->send_exit(s.engine, msg.reason);
    if (s.checker) self->send_exit(s.checker, msg.reason);
    stop_ranks(self);
    if (s.cluster) self->send(s.cluster->registry, release_atom::value, s.status->id());
    s.status->set_state(serve::replica_state::stopped);
    self->quit(msg.reason);
  });
  return {
      [self](drain_atom, double timeout_s) { start_drain(self, timeout_s); },
      [self](rebalance_atom) -> caf::result<uint64_t> {
        auto& s = self->state;
        if (!s.group || !s.engine)
          return caf::make_error(caf::sec::invalid_argument,
                                 "the replica is not an expert-parallel replica that is up");
        auto rp = self->make_response_promise<uint64_t>();
        self->request(s.group, caf::infinite, rebalance_atom::value)
            .then([rp](uint64_t v) mutable { rp.deliver(v); },
                  [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [self](drain_timeout_atom) {
        auto& s = self->state;
        finish_drain(self, fmt::format("drain timeout: {} running request(s) moved elsewhere",
                                       s.status->snapshot().running));
      },
      [self](restart_atom) {
        auto& s = self->state;
        if (s.draining) return;
        if (s.engine) {
          // A health checker's verdict: take the replica down; its down message
          // schedules the bring-up like any failure.
          spdlog::warn("replica {}: restart requested", s.status->id());
          self->send_exit(s.engine, caf::exit_reason::kill);
          return;
        }
        bring_up(self);
      },
  };
}

}  // namespace conclave::actors
