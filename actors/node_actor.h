// node_actor: what a `conclave node` process runs (docs/cluster.md). It hosts the rank
// workers the coordinator places on it: (spawn_rank_atom, rank_spec) spawns a detached
// rank_worker on the slot, which joins its peers and loads from this node's own copy of
// the checkpoint, and answers rank_ready. A new spec for a busy slot replaces its worker
// (the old incarnation is fenced). (kill_node_atom) ends the process at once with 137
// (the kill_node drill).
#pragma once

#include <caf/all.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "actors/rank_worker.h"

namespace conclave::actors {

struct node_options {
  std::filesystem::path model_dir;
  std::vector<rank_slot> slots;  ///< cpu ranks first, then gpus
  std::string host;
};

caf::behavior node_actor(caf::event_based_actor* self, node_options opts);

/// The node's checkpoint fingerprint: xxhash of config.json and the safetensors index
/// (or the single file's header), hex. Both sides compute it; a mismatch refuses the join.
std::string checkpoint_fingerprint(const std::filesystem::path& model_dir);

}  // namespace conclave::actors
