// preflight: the memory check run before any weight loads, where the engine's limits are
// known (max_model_len, step size), so that a model that cannot serve one full-length
// sequence is refused at start-up in one line instead of failing later.
#pragma once

#include "config/engine_config.h"
#include "model/model_config.h"

namespace conclave::gpu {

/// For the cuda backend: plans `c` (gpu/memory_plan.h) on device cfg.backend.device with
/// cfg's max_model_len (0: the model's max_position_embeddings), KV and step settings,
/// logs the plan and throws model::model_error (one line: by how much it does not fit and
/// what would) when the weights and one max_model_len sequence of KV cache do not fit.
/// The cpu backend and CPU-only builds: nothing to check.
void preflight(const model::model_config& c, const config::engine_config& cfg, int ranks = 1);

}  // namespace conclave::gpu
