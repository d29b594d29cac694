// Bring-up and restart of one replica. Backoff doubles from 0.5 s up to 30 s and starts
// over once a replica has served for a minute.
#include "actors/replica_supervisor.h"

#include <spdlog/spdlog.h>
#include <algorithm>
#include <numeric>

namespace conclave::actors {
namespace {

using self_ptr = caf::stateful_actor<replica_supervisor_state>*;

/// One decode-sized and one prefill-sized step so first requests see warm code paths.
void warm_up(gpu::backend& be) {
  const int32_t bs = be.kv_shape().block_size;
  std::vector<int32_t> tokens(static_cast<size_t>(std::min(bs, 8)), 0);
  std::vector<int32_t> table = {0};
  gpu::step_sequence s{tokens, 0, table, false};
  gpu::step_output out;
  be.forward({&s, 1}, out);
}

/// Schedules the next bring-up after the backoff for this attempt.
void schedule_restart(self_ptr self) {
  auto& st = self->state;
  const auto backoff = restart_backoff(st.restarts);
  ++st.restarts;
  spdlog::error("restarting the replica in {} ms (attempt {})", backoff.count(), st.restarts);
  self->delayed_send(self, backoff, restart_atom::value);
}

void bring_up(self_ptr self) {
  auto& st = self->state;
  try {
    if (st.worker)
      self->send_exit(st.worker, caf::exit_reason::user_shutdown);  // the old one, if any
    auto backend = st.factory();
    warm_up(*backend);
    auto worker = self->spawn<caf::detached>(gpu_worker, backend);
    st.worker = caf::actor_cast<caf::actor>(worker);
    st.engine = self->spawn(engine_actor, worker, backend->config(), backend->kv_shape(), st.cfg,
                            st.metrics);
    self->monitor(st.engine);
    self->send(st.router, add_engine_atom::value, st.engine);
    st.ready->store(true);
    st.up_since = self->clock().now();
    spdlog::info("replica up ({} backend, {} KV blocks)", backend->name(),
                 backend->kv_shape().num_blocks);
  } catch (const std::exception& e) {
    st.ready->store(false);
    spdlog::error("replica failed to start: {}", e.what());
    schedule_restart(self);
  }
}

}  // namespace

std::chrono::milliseconds restart_backoff(int attempt) {
  return std::chrono::milliseconds(std::min(30000, 500 << std::clamp(attempt, 0, 6)));
}

caf::behavior replica_supervisor(self_ptr self, backend_factory factory, config::engine_config cfg,
                                 std::shared_ptr<server_metrics> metrics, caf::actor router,
                                 std::shared_ptr<std::atomic<bool>> ready) {
  auto& st = self->state;
  st.factory = std::move(factory);
  st.cfg = std::move(cfg);
  st.metrics = std::move(metrics);
  st.router = std::move(router);
  st.ready = std::move(ready);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& s = self->state;
    if (msg.source != s.engine.address()) return;
    s.ready->store(false);
    s.engine = nullptr;
    spdlog::error("replica down ({})", self->system().render(msg.reason));
    if (self->clock().now() - s.up_since >= backoff_reset_after) s.restarts = 0;
    schedule_restart(self);
  });
  self->send(self, restart_atom::value);
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& s = self->state;
    if (s.worker) self->send_exit(s.worker, msg.reason);
    if (s.engine) self->send_exit(s.engine, msg.reason);
    self->quit(msg.reason);
  });
  return {
      [self](restart_atom) { bring_up(self); },
  };
}

}  // namespace conclave::actors
