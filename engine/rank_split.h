// rank_split: one step's batch cut into one part per rank when attention is data-parallel
// (each rank runs the sequences whose KV cache it holds), and the ranks' outputs put back
// together in the batch's order, the form llm_engine::end_step reads. Plain functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "gpu/backend.h"

namespace conclave::engine {

/// One rank's part of a step.
struct rank_batch {
  std::vector<size_t> entries;            ///< indices into the step's batch, ascending
  std::vector<gpu::step_sequence> batch;  ///< batch[k] is the step's entry entries[k]
};

/// Cuts `batch` by `entry_rank` (one rank per entry, in [0, ranks)). Every rank gets a
/// part, possibly empty: an idle rank still joins the step's collectives. The parts point
/// into what `batch` points into. Throws std::invalid_argument for mismatched sizes or a
/// rank out of range.
std::vector<rank_batch> split_by_rank(std::span<const gpu::step_sequence> batch,
                                      std::span<const int32_t> entry_rank, int ranks);

/// Puts `outputs` (outputs[r] answers parts[r].batch) back in the step's order: rows,
/// row_begin and sampled (empty unless some rank sampled on its device; then -1 for every
/// entry no rank sampled). An empty part's output may be empty. Throws
/// std::invalid_argument when an output does not fit its part.
void merge_rank_outputs(const std::vector<rank_batch>& parts,
                        std::span<const gpu::step_output> outputs, gpu::step_output& merged);

}  // namespace conclave::engine
