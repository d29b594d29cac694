// The expert-parallel half of replica_supervisor: lease ranks from the cluster registry,
// have their nodes load them, and start the engine over the ranks that came up.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "actors/cluster_bringup.h"
#include "actors/cluster_registry.h"
#include "actors/replica_supervisor_parts.h"
#include "gpu/collectives.h"

namespace conclave::actors {
namespace {

/// The engine over ready ranks: registered with the router like a one-device replica.
void start_cluster_engine(supervisor_ptr self, uint64_t epoch, std::vector<rank_ready> ready,
                          gpu::expert_map placement) {
  auto& st = self->state;
  auto& cl = *st.cluster;
  std::sort(ready.begin(), ready.end(),
            [](const rank_ready& a, const rank_ready& b) { return a.rank < b.rank; });
  const gpu::kv_cache_shape kv = common_kv_shape(ready);
  cluster_replica_view view;
  view.epoch = epoch;
  view.placement_version = 1;
  for (const auto& r : ready) {
    st.ranks.push_back(r.worker);
    view.ranks.push_back(r.where);
  }
  auto opts = base_engine_options(st);
  opts.ranks = st.ranks;
  opts.epoch = epoch;
  opts.placement_version = placement.version;
  st.group = self->spawn(expert_group, placement, cl.settings, caf::actor{}, cl.experts);
  opts.expert_group = st.group;
  auto cfg = st.cfg;
  // Ranks whose backends all sample on their device answer tokens, not logits rows (the
  // engine still samples what needs the host: logprobs, grammars).
  const bool all_sample = std::all_of(ready.begin(), ready.end(),
                                      [](const rank_ready& r) { return r.samples_on_device; });
  cfg.sample_on_device = cfg.sample_on_device && all_sample;
  st.engine = self->spawn(engine_actor, gpu_worker_actor{}, cl.model, kv, cfg, st.metrics, opts);
  self->monitor(st.engine);
  self->send(st.group, add_engine_atom::value, st.engine);
  self->send(st.router, add_engine_atom::value, st.engine);
  if (st.checker) self->send(st.checker, watch_atom::value, st.engine);
  st.status->set_backend(fmt::format("{} x{}", ready.front().backend, ready.size()),
                         kv.num_blocks * static_cast<int32_t>(ready.size()));
  st.status->set_state(serve::replica_state::up);
  st.restarts->came_up(self->clock().now());
  {
    std::lock_guard lock(*cl.view_mutex);
    *cl.view = view;
  }
  spdlog::info("replica {} up: {} ranks (epoch {}), {} KV blocks per rank", st.status->id(),
               ready.size(), epoch, kv.num_blocks);
}

/// Asks each leased node to load its rank of bring-up `epoch`; the engine starts once all
/// are ready, and the first rank that fails fails the bring-up.
void spawn_ranks(supervisor_ptr self, uint64_t epoch,
                 const std::shared_ptr<cluster_replica_options>& cl,
                 const std::vector<rank_lease>& leases) {
  auto& st = self->state;
  const auto size = static_cast<int32_t>(leases.size());
  if (size < cl->ranks)
    spdlog::warn("replica {}: {} of {} ranks free; starting with {}", st.status->id(), size,
                 cl->ranks, size);
  std::vector<rank_place> places;
  for (const auto& lease : leases) places.push_back({lease.host, lease.device, lease.device_id});
  std::string collectives;
  try {
    collectives = replica_collectives(cl->settings.collectives, places, gpu::have_nccl());
  } catch (const std::invalid_argument& e) {
    on_failure(self, e.what());
    return;
  }
  if (size > 1) spdlog::info("replica {}: {} ranks over {}", st.status->id(), size, collectives);
  auto placement = gpu::expert_map::contiguous(cl->model, size);
  placement.version = 1;
  auto ready = std::make_shared<std::vector<rank_ready>>();
  auto failed = std::make_shared<bool>(false);
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(cl->load_timeout_s * 1e3));
  for (int32_t r = 0; r < size; ++r) {
    const auto& lease = leases[static_cast<size_t>(r)];
    self->request(lease.node, timeout, spawn_rank_atom::value,
                  make_rank_spec(*cl, st.status->id(), epoch, r, size, lease.slot, placement,
                                 collectives))
        .then(
            [self, epoch, ready, size, placement](rank_ready& rr) {
              if (epoch != self->state.epoch) {
                self->send_exit(rr.worker, caf::exit_reason::user_shutdown);
                return;
              }
              self->monitor(rr.worker);
              ready->push_back(std::move(rr));
              if (static_cast<int32_t>(ready->size()) == size)
                start_cluster_engine(self, epoch, std::move(*ready), placement);
            },
            [self, epoch, failed, r](caf::error& err) {
              if (epoch != self->state.epoch || *failed) return;
              *failed = true;
              on_failure(self,
                         fmt::format("rank {} did not start: {}", r, self->system().render(err)));
            });
  }
}

}  // namespace

void bring_up_cluster(supervisor_ptr self) {
  auto& st = self->state;
  stop_ranks(self);
  const uint64_t epoch = ++st.epoch;
  auto cl = st.cluster;
  if (epoch == 1) st.status->set_state(serve::replica_state::starting);
  spdlog::info("replica {}: waiting for {} cluster rank(s)", st.status->id(), cl->ranks);
  self->request(cl->registry, caf::infinite, acquire_atom::value, st.status->id(), cl->ranks,
                cl->min_ranks)
      .then(
          [self, epoch, cl](std::vector<rank_lease>& leases) {
            if (epoch != self->state.epoch || leases.empty()) return;
            spawn_ranks(self, epoch, cl, leases);
          },
          [self, epoch](caf::error& err) {
            if (epoch != self->state.epoch) return;
            on_failure(self, "no cluster ranks: " + self->system().render(err));
          });
}

}  // namespace conclave::actors
