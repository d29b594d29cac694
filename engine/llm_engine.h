// llm_engine: one replica's generation loop as a plain class: schedule -> forward ->
// sample -> postprocess (nano-vllm's LLMEngine.step). The engine actor
// (actors/engine_actor.h) is a thin shell that calls add_request / abort / begin_step /
// end_step, running each step's forward pass on its gpu_worker in between.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "config/engine_config.h"
#include "engine/block_manager.h"
#include "engine/logprobs.h"
#include "engine/prefill_groups.h"
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
  std::optional<token_logprobs> logprobs;  ///< when the request asked for them
};

struct engine_stats {
  size_t num_waiting = 0, num_running = 0;
  int32_t kv_blocks_total = 0, kv_blocks_free = 0;  ///< summed over ranks
  uint64_t preemptions = 0, steps = 0, prompt_tokens_computed = 0, tokens_generated = 0;
  /// KV offload (backend_config::kv_offload_bytes): preemptions that offloaded a sequence
  /// instead of freeing it, resumptions, and blocks copied each way.
  uint64_t swap_outs = 0, swap_ins = 0, blocks_swapped_out = 0, blocks_swapped_in = 0;
  uint64_t blocks_released_behind_window = 0;
  /// Prompt chunks cut short by scheduler_config::prefill_stall_pairs.
  uint64_t stall_bounded_chunks = 0;
  /// Steps in which prompt chunks waited for the decoders (scheduler_config::decode_slowdown).
  uint64_t paced_steps = 0;
  uint64_t host_prefix_stores = 0, host_prefix_hits = 0;  ///< the prefix cache's host tier
  size_t num_swapped = 0;  ///< sequences offloaded now (counted in num_waiting too)
  /// Prompt tokens found in the prefix cache at admission instead of computed.
  uint64_t prefix_hit_tokens = 0;
};

/// A scheduled step waiting for its forward pass: `batch` points into the sequences
/// that `work` keeps alive.
struct pending_step {
  std::vector<scheduled> work;
  std::vector<gpu::step_sequence> batch;
  /// Per batch entry: the rank whose KV cache holds it (its block_table ids are that
  /// rank's); all 0 with one rank. split_by_rank (engine/rank_split.h) cuts by it.
  std::vector<int32_t> entry_rank;
  /// Per batch entry: how the device may sample it (batch[i].sample points here when
  /// set) and the penalty entries that spec refers to. Move-only: batch points into it.
  std::vector<gpu::device_sampling> sampling;
  std::vector<std::vector<gpu::penalty_entry>> penalties;
  /// Per rank: the KV copies to run (backend::transfer_kv) before that rank's forward pass,
  /// even when its part of the batch is empty.
  std::vector<gpu::kv_transfer> transfers;

  pending_step() = default;
  pending_step(pending_step&&) = default;
  pending_step& operator=(pending_step&&) = default;
  pending_step(const pending_step&) = delete;
  pending_step& operator=(const pending_step&) = delete;
  bool empty() const {
    return batch.empty() &&
           std::all_of(transfers.begin(), transfers.end(), [](const auto& t) { return t.empty(); });
  }
  /// Rank r's copies (none when the step has no entry for it).
  const gpu::kv_transfer& transfer(int32_t rank) const {
    static const gpu::kv_transfer none;
    return static_cast<size_t>(rank) < transfers.size() ? transfers[static_cast<size_t>(rank)]
                                                        : none;
  }
};

class llm_engine {
 public:
  /// Takes ownership of the backend; `cfg` is validated (std::invalid_argument).
  llm_engine(std::unique_ptr<gpu::backend> backend, const config::engine_config& cfg);
  /// An engine whose forward passes run elsewhere (a gpu_worker actor): only
  /// begin_step / end_step, not step() or generate(). cfg.sample_on_device must be false
  /// unless that backend samples_on_device(). With `ranks` > 1 attention is
  /// data-parallel: each rank has its own KV cache of shape `kv`, a sequence lives on one
  /// (pending_step::entry_rank) and the caller runs each rank's part of a step there.
  llm_engine(const model::model_config& model, const gpu::kv_cache_shape& kv,
             const config::engine_config& cfg, int32_t ranks = 1);

  /// Queues a request. Throws std::invalid_argument (message names the field) for an
  /// empty prompt, token ids outside the vocabulary, invalid sampling values, or
  /// prompt + max_tokens over max_model_len.
  int64_t add_request(std::vector<int32_t> prompt, const sampling_params& params);
  /// Resumes a request another engine was running: `output` holds the tokens it had
  /// already produced (they count as output for max_tokens and penalties; a seeded
  /// request's draws depend only on its seed and the output position), so generation
  /// continues where it stopped.
  int64_t add_request(std::vector<int32_t> prompt, const sampling_params& params,
                      std::span<const int32_t> output);
  /// Finishes a request wherever it is; during a pending step the abort takes effect
  /// when the step ends (its blocks may still be written). False if unknown.
  bool abort(int64_t id);
  bool has_work() const { return !scheduler_.idle() || groups_.num_held() > 0; }

  /// One schedule -> forward -> sample round (needs the owning constructor).
  std::vector<step_event> step();
  /// Schedules the next step; at most one may be pending. Empty when idle.
  pending_step begin_step();
  /// Samples from the forward output of `p.batch` and advances the sequences.
  std::vector<step_event> end_step(const pending_step& p, const gpu::step_output& out);

  /// Runs one request to completion alone; returns its output tokens.
  std::vector<int32_t> generate(std::vector<int32_t> prompt, const sampling_params& params);

  /// Called with each row of logits a token is sampled from (before any transform); while
  /// set, every row is sampled on the host.
  std::function<void(int64_t id, std::span<const float> logits)> on_logits;

  engine_stats stats() const;
  /// Changes scheduler_config::decode_slowdown (0: off) and the clock that times steps
  /// (default: steady_clock seconds); the pacing starts afresh. Throws
  /// std::invalid_argument for a slowdown that is neither 0 nor above 1.
  void set_decode_pacing(double slowdown, decode_pacer::clock_fn clock = {}) {
    scheduler_.set_decode_pacing(slowdown, std::move(clock));
  }
  const model::model_config& model_config() const { return model_; }
  const config::engine_config& engine_config() const { return cfg_; }
  size_t max_model_len() const { return max_model_len_; }
  int32_t ranks() const { return scheduler_.num_ranks(); }
  /// The owned backend; throws std::logic_error for an engine built without one.
  gpu::backend& backend();

 private:
  /// Whether a request's tokens may be sampled on the backend's device.
  bool device_samplable(const sampling_params& params) const;
  /// Ids below this are sampled.
  size_t sampling_vocab() const;

  std::unique_ptr<gpu::backend> backend_;
  model::model_config model_;
  config::engine_config cfg_;
  size_t max_model_len_;
  /// Queues the held choices whose group's prompt is computed (prefill_groups).
  void queue_released();

  std::deque<block_manager> blocks_;  ///< one per rank (a deque: never moves them)
  scheduler scheduler_;
  prefill_groups groups_;
  std::vector<int32_t> eos_ids_;
  int64_t next_id_ = 1;
  bool step_pending_ = false;
  std::vector<int64_t> deferred_aborts_;
  gpu::step_output out_;
  engine_stats counters_;
};

}  // namespace conclave::engine
