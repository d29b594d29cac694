// See random_engine.h.
#include "bench/random_engine.h"

#include <algorithm>

#include "gpu/backend.h"

namespace conclave::bench {

std::unique_ptr<engine::llm_engine> make_random_engine(const random_engine_spec& spec,
                                                       int64_t max_len, int32_t seqs) {
  model::model_config c = spec.model;
  c.max_position_embeddings = std::max(c.max_position_embeddings, max_len);
  config::engine_config cfg = spec.engine;
  cfg.backend.kind = "cuda";
  cfg.max_model_len = c.max_position_embeddings;
  cfg.scheduler.max_num_seqs = std::max(cfg.scheduler.max_num_seqs, seqs);
  cfg.scheduler.enable_prefix_caching = false;
  return std::make_unique<engine::llm_engine>(
      gpu::make_random_backend(c, cfg.backend, spec.seed, spec.init_std), cfg);
}

std::vector<int32_t> random_prompt(std::mt19937_64& rng, int32_t len, int64_t vocab) {
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> p(static_cast<size_t>(len));
  for (auto& t : p) t = tok(rng);
  return p;
}

}  // namespace conclave::bench
