// rank_step_plan: the plain parts of an expert-parallel step on the engine's side (no
// actor calls): the message each rank gets, and what its answers add up to.
#pragma once

#include <cstdint>
#include <vector>

#include "actors/cluster_messages.h"
#include "engine/rank_split.h"
#include "gpu/backend.h"
#include "gpu/sampling_spec.h"

namespace conclave::actors {

/// Step `step` of epoch `epoch` for one rank: its sequences with their sampling specs
/// (an idle rank's part is empty: it still joins the collectives), its KV block moves (to_host,
/// then to_device, as (device block, host block) pairs), and whether it should report its expert
/// load.
rank_step make_rank_step(const engine::rank_batch& part, const gpu::kv_transfer& moves,
                         uint64_t epoch, uint64_t step, uint64_t placement_version, bool want_load);

/// Adds one rank's per-expert counts ([layer][expert]) to the step's sum (the first
/// rank's counts are taken as they are).
void add_expert_load(std::vector<std::vector<int64_t>>& total,
                     std::vector<std::vector<int64_t>>& part);

/// A rank's answer as the step output its rows are merged from (with the tokens it
/// sampled, if any).
gpu::step_output rank_output(rank_step_done& done);

/// Writes a sequence's sampling spec into its wire form (sample = true).
void to_wire(const gpu::device_sampling& spec, wire_sequence& w);
/// The spec a wire sequence carries; its penalties point into `penalties`, which must
/// outlive the spec. Throws std::invalid_argument when the penalty lists disagree in length.
gpu::device_sampling from_wire(const wire_sequence& w, std::vector<gpu::penalty_entry>& penalties);

}  // namespace conclave::actors
