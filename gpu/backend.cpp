// The checks every backend runs before touching its KV cache, and its sizing (part of
// the backend interface; the factory that picks a backend is gpu/factory.cpp).
#include "gpu/backend.h"

#include <spdlog/fmt/fmt.h>
#include <algorithm>
#include <stdexcept>

namespace conclave::gpu {

void validate_batch(std::span<const step_sequence> batch, const model::model_config& config,
                    const kv_cache_shape& kv) {
  const bool windowed = config.all_layers_sliding();
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
    // With every layer windowed, blocks wholly behind the window of the step's first token
    // are never read and may have been released (kNoBlock).
    const int64_t released_ok =
        windowed ? blocks_behind_window(s.num_cached, config.sliding_window, kv.block_size) : 0;
    for (int64_t b = 0; b < blocks_needed; ++b) {
      const int32_t id = s.block_table[static_cast<size_t>(b)];
      if (id == kNoBlock && b < released_ok) continue;
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

size_t kv_row_bytes(const model::model_config& config, size_t element_bytes, bool fp8) {
  const auto width = static_cast<size_t>(config.num_kv_heads * config.head_dim);
  if (!fp8) return width * element_bytes;
  return (width + 4 * static_cast<size_t>(config.num_kv_heads) + 15) / 16 * 16;
}

int32_t kv_blocks_for_bytes(const model::model_config& config, int32_t block_size, size_t bytes,
                            size_t row_bytes) {
  const size_t per_block =
      2 * static_cast<size_t>(config.num_layers) * static_cast<size_t>(block_size) * row_bytes;
  const size_t n = bytes / per_block;
  return static_cast<int32_t>(std::min<size_t>(n, INT32_MAX));
}

}  // namespace conclave::gpu

namespace conclave::gpu {

rank_context checked_rank_context(rank_context rank, const model::model_config& c) {
  if (!rank.expert_parallel()) return {};
  if (c.num_experts <= 0) throw std::runtime_error("an expert-parallel replica needs a MoE model");
  if (const auto why = rank.placement->check(static_cast<int32_t>(c.num_layers),
                                             static_cast<int32_t>(c.num_experts));
      !why.empty())
    throw std::runtime_error("expert placement: " + why);
  if (rank.placement->ranks != rank.size())
    throw std::runtime_error(fmt::format("expert placement is for {} ranks, the replica has {}",
                                         rank.placement->ranks, rank.size()));
  return rank;
}

void backend::transfer_kv(const kv_transfer& t) {
  if (!t.empty()) throw std::logic_error(fmt::format("the {} backend has no host KV pool", name()));
}

void validate_transfer(const kv_transfer& t, const kv_cache_shape& kv) {
  for (const auto* list : {&t.to_host, &t.to_device}) {
    for (const kv_block_copy& c : *list) {
      if (c.device_block < 0 || c.device_block >= kv.num_blocks)
        throw std::invalid_argument(
            fmt::format("KV transfer: device block {} outside the cache ({} blocks)",
                        c.device_block, kv.num_blocks));
      if (c.host_block < 0 || c.host_block >= kv.num_host_blocks)
        throw std::invalid_argument(
            fmt::format("KV transfer: host block {} outside the offload pool ({} blocks)",
                        c.host_block, kv.num_host_blocks));
    }
  }
}

void backend::apply_placement(const model::checkpoint&, std::shared_ptr<const expert_map>) {
  throw std::logic_error(fmt::format("the {} backend is not expert-parallel", name()));
}

}  // namespace conclave::gpu
