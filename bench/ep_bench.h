// ep_bench: `conclave bench ep`. One expert-parallel replica of R ranks in this process
// (ranks are threads; they talk over Gloo on loopback, over NCCL with one GPU each, or
// over the in-process device communicator; R = 1 is the plain backend), decoding
// a batch of sequences spread round-robin over the ranks (each rank runs attention for
// its own sequences with its own block tables). Per (R, batch) it reports the decode step
// time and its split into expert compute, dispatch, combine and the rest (attention,
// dense layers, LM head), from backend::take_ep_stats() summed over ranks, plus the bytes
// the MoE layers move per step and tokens/s.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace conclave::bench {

struct ep_bench_options {
  std::string model_dir;  ///< a Hugging Face MoE model folder
  /// Or no checkpoint: random weights of this preset (gen-model's) generated on each
  /// rank's device, only its experts (cuda only), its first `layers` layers (0: all),
  /// projections quantized as `quant` says (none, fp8, awq).
  bool random_weights = false;
  std::string preset = "qwen3-coder-30b-a3b";
  int64_t layers = 0;
  std::string quant = "none";
  /// How the ranks talk: gloo (host buffers; cuda ranks all on GPU 0), nccl (device
  /// buffers; rank r on GPU r, so R GPUs), local (device buffers, the in-process
  /// communicator; rank r on GPU r mod the GPUs there are).
  std::string collectives = "gloo";
  /// Prompt lengths whose time to first token is measured per R: one sequence on rank 0
  /// (the others join every MoE layer with nothing), read `prefill_chunk` tokens a step.
  std::vector<int32_t> prefill_lens;
  int32_t prefill_chunk = 4096;
  std::vector<int32_t> ranks = {1, 2, 4};     ///< replica sizes R
  std::vector<int32_t> batches = {1, 8, 64};  ///< decode sequences per step (whole replica)
  int threads_per_rank = 1;
  int32_t steps = 32;       ///< timed decode steps
  int32_t prompt_len = 16;  ///< prefilled before decoding (not timed)
  std::string backend = "cpu";
  uint64_t seed = 1;
  double collective_timeout_s = 60;
};

struct ep_bench_row {
  int32_t ranks = 0, batch = 0, steps = 0;
  bool expert_parallel = false;  ///< false for R = 1: the plain backend, no split
  double step_ms = 0;            ///< mean decode step: first rank's start to last rank's end
  /// Per-rank means per step (take_ep_stats() summed over ranks, divided by R and steps).
  double expert_ms = 0, dispatch_ms = 0, combine_ms = 0;
  double rest_ms = 0;         ///< a rank's mean forward time minus the three above
  double bytes_per_step = 0;  ///< sent by the MoE layers, summed over ranks (own rows included)
  double tokens_per_s = 0;    ///< batch / step time
  /// tokens_per_s over the R = 1 row's at the same batch (0 when --ranks has no 1, or
  /// it ran later).
  double speedup = 0;
  /// Routed (token, expert) rows the busiest rank computed over the mean (1: even); 0 for R = 1.
  double imbalance = 0;
  uint64_t moe_layer_calls = 0;  ///< MoE layer runs counted by the stats, all ranks and steps
};

/// Time to first token of one prompt on an R-rank replica.
struct ep_prefill_row {
  int32_t ranks = 0, tokens = 0, chunk = 0, steps = 0;
  double ttft_ms = 0;       ///< first chunk's start (first rank) to the last one's end (last rank)
  double tokens_per_s = 0;  ///< tokens / ttft
  double speedup = 0;       ///< tokens_per_s over the one-rank row's at the same length (0: none)
};

/// Runs every (R, batch) pair and prints a table, the machine and one JSON line per row
/// to `out`; then, with prefill_lens, the time to first token per (R, length) in a second
/// table and JSON lines ("bench":"ep_prefill"), returned in `prefill` when given. Throws
/// std::runtime_error when the backend cannot run an expert-parallel rank (or was not built),
/// std::invalid_argument for bad options.
std::vector<ep_bench_row> run_ep_bench(const ep_bench_options& opts, std::FILE* out,
                                       std::vector<ep_prefill_row>* prefill = nullptr);

/// One row as a JSON object on one line (no newline).
std::string ep_row_json(const ep_bench_row& row, const std::string& backend,
                        const std::string& collectives = "gloo");

}  // namespace conclave::bench
