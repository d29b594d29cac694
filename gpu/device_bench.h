// device_bench: the CUDA backend's speed on real shapes with random weights generated in
// device memory (no checkpoint file): the card's measured ceilings (copy bandwidth, cuBLAS
// bf16 GEMM), decode TPOT / tokens/s per batch size with the bytes floor (MBU), prefill
// tokens/s per prompt length against the measured GEMM peak (MFU). Plain C++ interface;
// without CUDA it throws.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "config/engine_config.h"
#include "model/model_config.h"

namespace conclave::gpu {

struct device_bench_options {
  std::string model_name;  ///< for the header (the preset)
  model::model_config model;
  float init_std = 0.02f;
  uint64_t seed = 0;
  config::backend_config backend;  ///< kind must be cuda
  std::vector<int32_t> decode_batches = {1, 8, 32, 64, 128};
  int32_t decode_context = 1024;  ///< positions per sequence including the decoded token
  std::vector<int32_t> prefill_lens = {512, 4096, 32768};
  int32_t iters = 10;  ///< timed decode steps per batch size
};

struct device_bench_row {
  std::string what;  ///< "decode" or "prefill"
  int32_t batch = 0, tokens = 0;
  double step_ms = 0, forward_ms = 0, tokens_per_s = 0;
  double floor_ms = 0;     ///< bytes / bandwidth (decode) or FLOPs / GEMM peak (prefill)
  double utilization = 0;  ///< floor_ms / forward_ms
};

/// Runs everything and prints the table to `out`.
std::vector<device_bench_row> run_device_bench(const device_bench_options& opts, std::FILE* out);

}  // namespace conclave::gpu
