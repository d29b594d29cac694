// moe_bench (`conclave bench moe`): one MoE layer's routed part alone on the GPU - the
// router projection, top-k and permutation, the experts (gate/up with SwiGLU, down), the
// router-weighted combine - at several token counts, with random weights of a real shape.
// Each count runs the kernels a step of that many tokens would run, replayed as a CUDA
// graph where a decode step would be one (else launched, with the per-expert cuBLAS path's
// host sync). It prints the mean time per layer, the experts the tokens reached, the weight
// bytes those experts and the router hold, and the bandwidth that makes against the
// card's copy ceiling. tools/moe_grouped_mm.py times PyTorch's grouped GEMM
// (torch._grouped_mm) on the same shape and reads this output for a side-by-side table.
// Plain C++ interface; without CUDA it throws.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "config/engine_config.h"
#include "model/model_config.h"

namespace conclave::gpu {

struct moe_bench_options {
  std::string model_name;
  model::model_config model;  ///< at least one MoE layer; only the first is built
  float init_std = 0.02f;
  uint64_t seed = 0;
  config::backend_config backend;  ///< kind must be cuda
  std::vector<int32_t> tokens = {1, 8, 64, 128, 512};
  int32_t iters = 100;  ///< timed runs per token count
};

struct moe_bench_row {
  int32_t tokens = 0;
  double us = 0;
  size_t experts = 0;  ///< experts that got rows
  double bytes = 0;    ///< weight bytes of the router and those experts
  double tbps = 0;     ///< bytes / time
  double of_copy = 0;  ///< tbps / the measured copy ceiling
  bool graph = false;
  std::string kernels;
};

/// Runs every token count and prints the table to `out`.
std::vector<moe_bench_row> run_moe_bench(const moe_bench_options& opts, std::FILE* out);

}  // namespace conclave::gpu
