// llm_engine: one replica's generation loop as a plain class: schedule -> forward ->
// sample -> postprocess (nano-vllm's LLMEngine.step). The engine actor (later) is a
// thin shell that calls add_request / abort / step.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "config/engine_config.h"
#include "engine/block_manager.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "gpu/backend.h"

namespace conclave::engine {

/// What one step produced for one sequence.
struct step_event {
  int64_t id = 0;
  int32_t token = -1;  ///< the token sampled this step
  bool finished = false;
  finish_reason reason = finish_reason::none;
};

struct engine_stats {
  size_t num_waiting = 0, num_running = 0;
  int32_t kv_blocks_total = 0, kv_blocks_free = 0;
  uint64_t preemptions = 0, steps = 0, prompt_tokens_computed = 0, tokens_generated = 0;
};

class llm_engine {
 public:
  /// Takes ownership of the backend; `cfg` is validated (std::invalid_argument).
  llm_engine(std::unique_ptr<gpu::backend> backend, const config::engine_config& cfg);

  /// Queues a request. Throws std::invalid_argument (message names the field) for an
  /// empty prompt, token ids outside the vocabulary, invalid sampling values, or
  /// prompt + max_tokens over max_model_len.
  int64_t add_request(std::vector<int32_t> prompt, const sampling_params& params);
  bool abort(int64_t id) { return scheduler_.abort(id); }
  bool has_work() const { return !scheduler_.idle(); }

  /// One schedule -> forward -> sample round.
  std::vector<step_event> step();

  /// Runs one request to completion alone; returns its output tokens.
  std::vector<int32_t> generate(std::vector<int32_t> prompt, const sampling_params& params);

  /// Called with each row of logits a token is sampled from (before any transform).
  std::function<void(int64_t id, std::span<const float> logits)> on_logits;

  engine_stats stats() const;
  const model::model_config& model_config() const { return backend_->config(); }
  size_t max_model_len() const { return max_model_len_; }
  gpu::backend& backend() { return *backend_; }

 private:
  std::unique_ptr<gpu::backend> backend_;
  config::engine_config cfg_;
  size_t max_model_len_;
  block_manager blocks_;
  scheduler scheduler_;
  std::vector<int32_t> eos_ids_;
  int64_t next_id_ = 1;
  gpu::step_output out_;
  engine_stats counters_;
};

}  // namespace conclave::engine
