// Validation of engine_config: ranges only; model-dependent checks happen at load.
#include "config/engine_config.h"

#include <spdlog/fmt/fmt.h>

namespace conclave::config {

std::string engine_config::validate() const {
  if (backend.kind != "cpu" && backend.kind != "cuda") {
    return fmt::format("backend \"{}\" is unknown (expected cpu or cuda)", backend.kind);
  }
  if (backend.block_size <= 0 || backend.block_size > 1024)
    return "block_size must be in [1, 1024]";
  if (backend.num_kv_blocks < 0) return "num_kv_blocks must be >= 0";
  if (backend.num_kv_blocks == 0 && backend.kv_cache_bytes == 0)
    return "kv_cache_bytes must be > 0";
  if (backend.rope_inv_freq_dtype != "f32" && backend.rope_inv_freq_dtype != "bf16") {
    return "rope_inv_freq_dtype must be f32 or bf16";
  }
  if (backend.kv_cache_dtype != "auto" && backend.kv_cache_dtype != "fp8")
    return "kv_cache_dtype must be auto or fp8";
  if (backend.threads < 0) return "threads must be >= 0";
  if (!(backend.gpu_memory_utilization > 0.0 && backend.gpu_memory_utilization <= 1.0))
    return "gpu_memory_utilization must be in (0, 1]";
  if (backend.device < 0) return "device must be >= 0";
  if (backend.weight_dtype != "bf16" && backend.weight_dtype != "f32")
    return "weight_dtype must be bf16 or f32";
  if (scheduler.max_num_seqs <= 0) return "max_num_seqs must be >= 1";
  if (scheduler.max_num_batched_tokens <= 0) return "max_num_batched_tokens must be >= 1";
  if (scheduler.prefill_stall_pairs < 0) return "prefill_stall_pairs must be >= 0";
  if (!(scheduler.decode_slowdown == 0 || scheduler.decode_slowdown > 1))
    return "decode_slowdown must be 0 (off) or greater than 1";
  if (max_model_len < 0) return "max_model_len must be >= 0";
  if (sampling_vocab_size < 0) return "sampling_vocab_size must be >= 0";
  return {};
}

size_t scheduler_config::stall_chunk(size_t computed, size_t remaining) const {
  if (prefill_stall_pairs <= 0 || remaining <= kMinStallChunk) return remaining;
  const auto pairs = [computed](size_t n) {  // n c + n (n + 1) / 2, in long double (no wrap)
    const auto ld = static_cast<long double>(n);
    return ld * static_cast<long double>(computed) + ld * (ld + 1) / 2;
  };
  const auto budget = static_cast<long double>(prefill_stall_pairs);
  if (pairs(remaining) <= budget) return remaining;
  // The largest n in [kMinStallChunk, remaining) whose pairs fit (pairs grow with n).
  size_t lo = kMinStallChunk, hi = remaining;  // pairs(hi) > budget
  while (hi - lo > 1) {
    const size_t mid = lo + (hi - lo) / 2;
    (pairs(mid) <= budget ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace conclave::config
