// The engine `bench long`'s engine-driven parts run: random weights of a model's shape
// generated on the device (cuda), with the command line's engine options.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "config/engine_config.h"
#include "engine/llm_engine.h"
#include "model/model_config.h"

namespace conclave::bench {

struct random_engine_spec {
  std::string model_name;
  model::model_config model;
  float init_std = 0.02f;
  uint64_t seed = 0;
  config::engine_config engine;  ///< the backend kind is set to cuda
};

/// An engine over `spec`'s random weights whose context holds `max_len` tokens (at least
/// the model's), with `seqs` sequences at once (at least the options') and no prefix
/// cache (random prompts share nothing).
std::unique_ptr<engine::llm_engine> make_random_engine(const random_engine_spec& spec,
                                                       int64_t max_len, int32_t seqs);

/// `len` token ids drawn uniformly from [0, vocab).
std::vector<int32_t> random_prompt(std::mt19937_64& rng, int32_t len, int64_t vocab);

}  // namespace conclave::bench
