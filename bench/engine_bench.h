// engine_bench: prefill and decode throughput of the engine on one model, at several
// batch sizes, measured through the real scheduler and backend.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "config/engine_config.h"
#include "model/model_config.h"

namespace conclave::bench {

/// A preset's shape for random weights, cut to its first `layers` layers when > 0, its
/// projections quantized as `quant` says (none, fp8, awq; " fp8" appended to the name)
/// (the `--preset` / `--layers` / `--quant` of `bench engine --random-weights`, `bench ep`
/// and `bench long`); throws model_error for an unknown preset or quant or a depth
/// outside 1..its layers.
struct random_model {
  std::string name;  ///< the preset's, "(first N layers)" appended for a slice
  model::model_config config;
  float init_std = 0.02f;
};
random_model random_model_of(const std::string& preset, int64_t layers,
                             const std::string& quant = "none");

struct engine_bench_options {
  std::string model_dir;
  config::engine_config engine;
  int32_t prompt_len = 512;      ///< tokens per prompt for the prefill measurement
  int32_t decode_tokens = 32;    ///< tokens generated per sequence for the decode measurement
  int32_t decode_context = 128;  ///< prompt length before decoding starts
  std::vector<int32_t> batches = {1, 16};
  uint64_t seed = 1;
  /// Random weights generated in device memory for `preset` (cuda backend only; no
  /// model_dir): runs gpu::run_device_bench, with batches / decode_context /
  /// prefill_lens when given (`*_given`), else its defaults (1..128 at 1K; 512, 4K, 32K).
  bool random_weights = false;
  std::string preset;
  int64_t layers = 0;  ///< a slice of the preset's depth (0: all)
  /// With random weights: "none", "fp8" or "awq" (projections quantized on the device,
  /// group 128; the preset's quantization otherwise).
  std::string quant = "none";
  std::vector<int32_t> prefill_lens;
  bool batches_given = false, decode_context_given = false;
};

struct engine_bench_row {
  int32_t batch = 0;
  double prefill_tokens_per_s = 0;
  double decode_tokens_per_s = 0;
  double tpot_ms = 0;  ///< mean time per decode step
};

/// Runs the benchmark and prints a table (and the machine) to `out`.
std::vector<engine_bench_row> run_engine_bench(const engine_bench_options& opts, std::FILE* out);

}  // namespace conclave::bench
