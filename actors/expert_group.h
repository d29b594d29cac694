// expert_group: owns one expert-parallel replica's placement (docs/cluster.md §8). The
// engine sends it the ranks' per-expert token counts; every rebalance_interval_s it
// checks the imbalance (max / mean rank load) and, above rebalance_threshold, asks the
// engine to switch every rank to an EPLB-like placement (serve/expert_placement: hot
// experts copied, copies packed evenly) between two steps. Output never changes: every
// copy of an expert has the same weights. (rebalance_atom) forces one now and answers
// the resulting version (unchanged when the load gives no better placement).
#pragma once

#include <caf/all.hpp>
#include <memory>
#include <mutex>

#include "config/server_config.h"
#include "gpu/expert_map.h"
#include "serve/expert_placement.h"

namespace conclave::actors {

/// What /admin/cluster shows of a replica's experts (written by the group).
struct expert_group_view {
  gpu::expert_map placement;
  serve::expert_load load;  ///< since the last rebalance
  double imbalance = 1.0;
  uint64_t rebalances = 0;
};

struct expert_group_board {
  std::mutex mu;
  expert_group_view view;
};

caf::behavior expert_group(caf::event_based_actor* self, gpu::expert_map initial,
                           config::cluster_config cfg, caf::actor engine,
                           std::shared_ptr<expert_group_board> board);

}  // namespace conclave::actors
