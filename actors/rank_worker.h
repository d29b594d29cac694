// rank_worker: one rank of an expert-parallel replica, hosted by a node (docs/cluster.md).
// Spawned detached (it blocks in rendezvous, loading and forward passes). On (start_atom)
// it joins its peers through the rendezvous store, loads the dense weights and its experts
// and answers rank_ready; then it runs one (rank_step_atom, rank_step) per step, refusing
// a step of another epoch or placement version (a fenced incarnation's late work).
#pragma once

#include <caf/all.hpp>
#include <filesystem>
#include <string>

#include "actors/cluster_messages.h"

namespace conclave::actors {

/// Where a rank runs: "cpu", or "cuda" on `device`.
struct rank_slot {
  std::string kind = "cpu";
  int32_t device = -1;
};

caf::behavior rank_worker(caf::event_based_actor* self, rank_spec spec, rank_slot slot,
                          std::filesystem::path model_dir, std::string host);

}  // namespace conclave::actors
