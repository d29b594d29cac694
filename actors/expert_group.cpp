// The expert group actor (see the header).
#include "actors/expert_group.h"

#include <spdlog/spdlog.h>

#include "actors/cluster_messages.h"
#include "actors/messages.h"

namespace conclave::actors {
namespace {

struct group_state {
  gpu::expert_map placement;
  serve::expert_load load;
  config::cluster_config cfg;
  caf::actor engine;
  std::shared_ptr<expert_group_board> board;
  bool applying = false;
  uint64_t rebalances = 0;
};

void publish(group_state& st) {
  if (!st.board) return;
  std::lock_guard lock(st.board->mu);
  st.board->view.placement = st.placement;
  st.board->view.load = st.load;
  st.board->view.imbalance = serve::expert_placement::imbalance(st.load, st.placement).overall;
  st.board->view.rebalances = st.rebalances;
}

int32_t slots_per_rank(const group_state& st) {
  int32_t experts = 0;
  for (const auto& layer : st.placement.holders)
    experts = std::max(experts, static_cast<int32_t>(layer.size()));
  const int32_t copies = experts + std::max(0, st.cfg.redundant_experts);
  return (copies + st.placement.ranks - 1) / st.placement.ranks;
}

/// Proposes a placement for the load so far and has the engine apply it; answers `rp`
/// (if valid) with the version in force afterwards.
void rebalance(caf::event_based_actor* self, const std::shared_ptr<group_state>& st,
               caf::response_promise rp, const char* why) {
  if (st->applying) {
    if (rp.pending())
      rp.deliver(caf::make_error(caf::sec::invalid_argument, "a rebalance is under way"));
    return;
  }
  gpu::expert_map next;
  try {
    next = serve::expert_placement::rebalance(st->load, st->placement, slots_per_rank(*st),
                                              st->cfg.redundant_experts);
  } catch (const std::exception& e) {
    spdlog::error("expert group: rebalance failed: {}", e.what());
    if (rp.pending()) rp.deliver(caf::make_error(caf::sec::runtime_error, e.what()));
    return;
  }
  if (next.version == st->placement.version) {
    if (rp.pending()) rp.deliver(st->placement.version);
    return;
  }
  const double before = serve::expert_placement::imbalance(st->load, st->placement).overall;
  const double after = serve::expert_placement::imbalance(st->load, next).overall;
  spdlog::info("expert group: {} rebalance to v{} (imbalance {:.2f} -> {:.2f})", why, next.version,
               before, after);
  st->applying = true;
  self->request(st->engine, caf::infinite, placement_atom::value, next)
      .then(
          [st, next, rp](uint64_t version) mutable {
            st->applying = false;
            st->placement = next;
            for (auto& layer : st->load) std::fill(layer.begin(), layer.end(), 0);
            ++st->rebalances;
            publish(*st);
            if (rp.pending()) rp.deliver(version);
          },
          [st, rp](caf::error& err) mutable {
            st->applying = false;
            if (rp.pending()) rp.deliver(err);
          });
}

}  // namespace

caf::behavior expert_group(caf::event_based_actor* self, gpu::expert_map initial,
                           config::cluster_config cfg, caf::actor engine,
                           std::shared_ptr<expert_group_board> board) {
  auto st = std::make_shared<group_state>();
  st->placement = std::move(initial);
  st->cfg = std::move(cfg);
  st->engine = std::move(engine);
  st->board = std::move(board);
  st->load.resize(st->placement.holders.size());
  for (size_t l = 0; l < st->load.size(); ++l)
    st->load[l].assign(st->placement.holders[l].size(), 0);
  publish(*st);
  const auto interval = std::chrono::duration_cast<caf::timespan>(
      std::chrono::duration<double>(st->cfg.rebalance_interval_s));
  if (st->cfg.rebalance_interval_s > 0)
    self->delayed_send(self, interval, rebalance_tick_atom::value);
  return {
      [st](expert_load_atom, std::vector<std::vector<int64_t>>& counts) {
        for (size_t l = 0; l < st->load.size() && l < counts.size(); ++l)
          for (size_t e = 0; e < st->load[l].size() && e < counts[l].size(); ++e)
            st->load[l][e] += static_cast<uint64_t>(std::max<int64_t>(0, counts[l][e]));
        publish(*st);
      },
      [self, st, interval](rebalance_tick_atom) {
        self->delayed_send(self, interval, rebalance_tick_atom::value);
        const double now = serve::expert_placement::imbalance(st->load, st->placement).overall;
        if (now > st->cfg.rebalance_threshold)
          rebalance(self, st, caf::response_promise{}, "periodic");
      },
      [st](add_engine_atom, caf::actor& e) { st->engine = std::move(e); },
      [self, st](rebalance_atom) -> caf::result<uint64_t> {
        if (!st->engine) return caf::make_error(caf::sec::invalid_argument, "no engine yet");
        auto rp = self->make_response_promise();
        rebalance(self, st, rp, "forced");
        return rp;
      },
  };
}

}  // namespace conclave::actors
