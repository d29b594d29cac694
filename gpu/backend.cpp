// Backend selection and the checks every backend runs before touching its KV cache.
#include "gpu/backend.h"

#include <spdlog/fmt/fmt.h>
#include <stdexcept>

#include "gpu/cpu/cpu_backend.h"
#include "gpu/device_bench.h"
#ifdef CONCLAVE_HAVE_CUDA
#include "gpu/cuda/cuda_backend.h"
#endif

namespace conclave::gpu {

std::unique_ptr<backend> make_backend(const model::checkpoint& ckpt, const backend_options& opts) {
  if (opts.block_size <= 0) throw std::runtime_error("block_size must be positive");
  if (opts.kind == "cpu") return make_cpu_backend(ckpt, opts);
  if (opts.kind == "cuda") {
#ifdef CONCLAVE_HAVE_CUDA
    return cuda::make_cuda_backend(ckpt, opts);
#else
    throw std::runtime_error(
        "this conclave was built without the cuda backend (CONCLAVE_CUDA=OFF or no nvcc); use "
        "--backend cpu");
#endif
  }
  throw std::runtime_error(fmt::format("unknown backend \"{}\" (expected cpu or cuda)", opts.kind));
}

std::unique_ptr<backend> make_random_backend(const model::model_config& config,
                                             const backend_options& opts, uint64_t seed,
                                             float init_std) {
  if (opts.block_size <= 0) throw std::runtime_error("block_size must be positive");
  if (opts.kind != "cuda")
    throw std::runtime_error("random weights in device memory need --backend cuda");
#ifdef CONCLAVE_HAVE_CUDA
  return cuda::make_cuda_backend_random(config, opts, seed, init_std);
#else
  (void)config;
  (void)seed;
  (void)init_std;
  throw std::runtime_error(
      "this conclave was built without the cuda backend (CONCLAVE_CUDA=OFF or no nvcc)");
#endif
}

#ifndef CONCLAVE_HAVE_CUDA
std::vector<device_bench_row> run_device_bench(const device_bench_options&, std::FILE*) {
  throw std::runtime_error(
      "the device benchmark needs the cuda backend; this conclave was built without it");
}
#endif

void validate_batch(std::span<const step_sequence> batch, const model::model_config& config,
                    const kv_cache_shape& kv) {
  for (size_t i = 0; i < batch.size(); ++i) {
    const step_sequence& s = batch[i];
    if (s.tokens.empty())
      throw std::invalid_argument(fmt::format("sequence {} has no tokens to run", i));
    if (s.num_cached < 0)
      throw std::invalid_argument(fmt::format("sequence {}: negative num_cached", i));
    const int64_t end = static_cast<int64_t>(s.num_cached) + static_cast<int64_t>(s.tokens.size());
    if (end > config.max_position_embeddings) {
      throw std::invalid_argument(
          fmt::format("sequence {}: {} positions exceed max_position_embeddings {}", i, end,
                      config.max_position_embeddings));
    }
    const int64_t blocks_needed = (end + kv.block_size - 1) / kv.block_size;
    if (static_cast<int64_t>(s.block_table.size()) < blocks_needed) {
      throw std::invalid_argument(
          fmt::format("sequence {}: block table has {} blocks, {} positions need {}", i,
                      s.block_table.size(), end, blocks_needed));
    }
    for (int64_t b = 0; b < blocks_needed; ++b) {
      const int32_t id = s.block_table[static_cast<size_t>(b)];
      if (id < 0 || id >= kv.num_blocks) {
        throw std::invalid_argument(
            fmt::format("sequence {}: block id {} outside [0, {})", i, id, kv.num_blocks));
      }
    }
    for (int32_t t : s.tokens) {
      if (t < 0 || t >= config.vocab_size) {
        throw std::invalid_argument(fmt::format(
            "sequence {}: token id {} outside the vocabulary [0, {})", i, t, config.vocab_size));
      }
    }
  }
}

int32_t kv_blocks_for_bytes(const model::model_config& config, int32_t block_size, size_t bytes,
                            size_t element_bytes) {
  const size_t per_block =
      2 * static_cast<size_t>(config.num_layers) * static_cast<size_t>(block_size) *
      static_cast<size_t>(config.num_kv_heads * config.head_dim) * element_bytes;
  const size_t n = bytes / per_block;
  return static_cast<int32_t>(std::min<size_t>(n, INT32_MAX));
}

}  // namespace conclave::gpu
