// The CUDA backend's set-up steps (backend_setup.h).
#include "gpu/cuda/backend_setup.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "gpu/cuda/check.h"
#include "gpu/cuda/device_buffer.h"
#include "gpu/memory_plan.h"
#include "model/model_error.h"

namespace conclave::gpu::cuda {

elem parse_elem(const std::string& s) {
  if (s == "bf16") return elem::bf16;
  if (s == "f32") return elem::f32;
  throw std::runtime_error("cuda: weight_dtype must be bf16 or f32, not \"" + s + "\"");
}

bool kernel_switch_on(const char* env, bool fallback) {
  const char* v = std::getenv(env);
  return v == nullptr ? fallback : std::strcmp(v, "0") != 0;
}

size_t kernel_size_setting(const char* env, size_t fallback) {
  const char* v = std::getenv(env);
  if (v == nullptr) return fallback;
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(v, &end, 10);
  if (*v == '\0' || *end != '\0' || errno != 0 || n == 0 || *v == '-')
    throw std::runtime_error(std::string("cuda: ") + env + " must be a positive integer, not \"" +
                             v + "\"");
  return static_cast<size_t>(n);
}

kernel_switches kernel_switches::from_env() {
  kernel_switches k;
  k.decode_mma = kernel_switch_on("CONCLAVE_DECODE_MMA");
  k.expert_mma = kernel_switch_on("CONCLAVE_EXPERT_MMA");
  k.fused_kv = kernel_switch_on("CONCLAVE_FUSED_KV");
  k.fused_moe = kernel_switch_on("CONCLAVE_FUSED_MOE");
  k.fused_router = kernel_switch_on("CONCLAVE_FUSED_ROUTER", k.fused_router);
  k.light_experts = kernel_switch_on("CONCLAVE_LIGHT_EXPERTS");
  k.early_expert_weights = kernel_switch_on("CONCLAVE_EARLY_EXPERT_WEIGHTS");
  k.prefill_wgmma = kernel_switch_on("CONCLAVE_PREFILL_WGMMA");
  k.prefill_split = kernel_switch_on("CONCLAVE_PREFILL_SPLIT", k.prefill_split);
  k.prefill_pack_gqa = kernel_switch_on("CONCLAVE_PREFILL_PACK_GQA", k.prefill_pack_gqa);
  k.prefill_tma = kernel_switch_on("CONCLAVE_PREFILL_TMA", k.prefill_tma);
  k.prefill_wgmma_schedule =
      kernel_size_setting("CONCLAVE_PREFILL_WGMMA_SCHEDULE", k.prefill_wgmma_schedule);
  if (k.prefill_wgmma_schedule > 5)  // 0 is refused by kernel_size_setting
    throw std::runtime_error("CONCLAVE_PREFILL_WGMMA_SCHEDULE must be 1, 2, 3, 4 or 5");
  k.grouped_max_tokens = kernel_size_setting("CONCLAVE_GROUPED_MAX_TOKENS", k.grouped_max_tokens);
  k.route_permute_max_tokens =
      kernel_size_setting("CONCLAVE_ROUTE_PERMUTE_MAX_TOKENS", k.route_permute_max_tokens);
  k.expert_pass_rows = kernel_size_setting("CONCLAVE_EXPERT_PASS_ROWS", k.expert_pass_rows);
  k.quant_row_gemv = kernel_switch_on("CONCLAVE_QUANT_ROW_GEMV", k.quant_row_gemv);
  k.quant_row_mma = kernel_switch_on("CONCLAVE_QUANT_ROW_MMA", k.quant_row_mma);
  k.quant_mma = kernel_switch_on("CONCLAVE_QUANT_MMA", k.quant_mma);
  k.quant_mma_min_rows = kernel_size_setting("CONCLAVE_QUANT_MMA_MIN_ROWS", k.quant_mma_min_rows);
  if (k.quant_mma_min_rows > 16)  // 0 is refused by kernel_size_setting
    throw std::runtime_error("CONCLAVE_QUANT_MMA_MIN_ROWS must be between 1 and 16");
  return k;
}

int32_t kv_block_count(const model::model_config& c, const backend_options& opts, size_t kv_row) {
  int32_t blocks = 0;
  if (opts.num_kv_blocks > 0) {
    blocks = opts.num_kv_blocks;
  } else if (opts.kv_cache_bytes_given) {
    blocks = kv_blocks_for_bytes(c, opts.block_size, opts.kv_cache_bytes, kv_row);
  } else {
    const auto [free_b, total_b] = memory_info();
    const double reserve = (1.0 - opts.gpu_memory_utilization) * static_cast<double>(total_b);
    const double budget = static_cast<double>(free_b) - reserve;
    blocks = budget > 0
                 ? kv_blocks_for_bytes(c, opts.block_size, static_cast<size_t>(budget), kv_row)
                 : 0;
  }
  if (blocks <= 0) throw std::runtime_error("cuda backend: no memory left for a single KV block");
  return blocks;
}

void select_device(int device) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    cudaGetLastError();
    throw std::runtime_error(std::string("cuda backend: no usable GPU (") +
                             (e != cudaSuccess ? cudaGetErrorString(e) : "no device") + ")");
  }
  if (device >= n)
    throw std::runtime_error("cuda backend: device " + std::to_string(device) + " of " +
                             std::to_string(n));
  CONCLAVE_CUDA_CHECK(cudaSetDevice(device));
}

namespace {

/// The planner's inputs for the current device as it is now (total and free memory).
plan_inputs device_inputs(const model::model_config& c, const backend_options& opts, elem t,
                          int ranks) {
  size_t free_b = 0, total_b = 0;
  CONCLAVE_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  plan_inputs in;
  in.model = c;
  // f32 (the exactness mode) dequantizes a quantized checkpoint's weights on upload.
  if (t == elem::f32) in.model.quant = {};
  in.model_name = c.architecture_name;
  in.ranks = ranks;
  in.device_bytes = total_b;
  in.device_used_bytes = total_b - free_b;
  in.device_used_measured = true;
  in.gpu_memory_utilization = opts.gpu_memory_utilization;
  in.weight_elem_bytes = elem_size(t);
  in.kv_fp8 = opts.kv_cache_dtype == "fp8";
  in.block_size = opts.block_size;
  in.num_kv_blocks = opts.num_kv_blocks;
  in.kv_cache_bytes = opts.kv_cache_bytes_given ? opts.kv_cache_bytes : 0;
  in.cuda_graphs = opts.cuda_graphs;
  if (opts.max_step_tokens > 0) in.max_num_batched_tokens = opts.max_step_tokens;
  return in;
}

}  // namespace

void preflight_on_device(const model::model_config& c, const config::engine_config& cfg,
                         int ranks) {
  const elem t = parse_elem(cfg.backend.weight_dtype);
  select_device(cfg.backend.device);
  plan_inputs in = device_inputs(c, cfg.backend, t, ranks);
  in.max_model_len = cfg.max_model_len > 0
                         ? std::min<int64_t>(cfg.max_model_len, c.max_position_embeddings)
                         : c.max_position_embeddings;
  in.max_num_batched_tokens = cfg.scheduler.max_num_batched_tokens;
  in.max_num_seqs = cfg.scheduler.max_num_seqs;
  const memory_plan plan = plan_memory(in);
  if (!plan.fits) throw model::model_error(plan.verdict());
  spdlog::info("cuda: {}", plan.verdict());
}

void plan_before_load(const model::model_config& c, const backend_options& opts, elem t,
                      int ranks) {
  plan_inputs in = device_inputs(c, opts, t, ranks);
  const memory_plan full = plan_memory(in, false);
  for (const auto& line : full.summary_lines()) spdlog::info("cuda backend: {}", line);
  in.max_model_len = std::min<int64_t>(opts.block_size, c.max_position_embeddings);
  const memory_plan plan = plan_memory(in);
  if (!plan.fits) throw model::model_error("cuda backend: " + plan.verdict());
  if (!full.fits)
    spdlog::warn("cuda backend: the KV cache will hold {} tokens, less than one {}-token sequence",
                 full.kv_tokens, full.max_model_len);
}

}  // namespace conclave::gpu::cuda
