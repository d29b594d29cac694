// long_bench (`conclave bench long`): long context on one GPU with random weights of a
// real shape. Time to first token of single long prompts read in chunks (with the
// attention kernels' share, timed by CUDA events, as TFLOP/s and MFU); the decode step at
// long contexts against a 1K context; and the step of other decoding streams while a long
// prompt is read alongside them, per prefill chunk size. Plain C++ interface; without
// CUDA it throws.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "config/engine_config.h"
#include "model/model_config.h"

namespace conclave::gpu {

struct long_bench_options {
  std::string model_name;
  model::model_config model;
  float init_std = 0.02f;
  uint64_t seed = 0;
  config::backend_config backend;  ///< kind must be cuda
  std::vector<int32_t> prompt_lens = {32768, 131072, 262144};
  int32_t chunk = 8192;  ///< prefill tokens per step for the TTFT runs
  std::vector<int32_t> decode_contexts = {1024, 131072, 262144};
  int32_t streams = 8;            ///< decoding streams next to the long prompt
  int32_t stream_context = 1024;  ///< their contexts
  int32_t busy_prompt = 131072;   ///< the long prompt read while they decode
  std::vector<int32_t> busy_chunks = {512, 2048, 8192};
  /// Then chunks sized as the scheduler sizes them under prefill_stall_pairs = each of
  /// these (config::scheduler_config::stall_chunk at each position; empty: skipped).
  std::vector<int64_t> busy_pairs;
  int32_t iters = 10;  ///< timed decode steps
};

/// Runs everything and prints the tables to `out`.
void run_long_bench(const long_bench_options& opts, std::FILE* out);

}  // namespace conclave::gpu
