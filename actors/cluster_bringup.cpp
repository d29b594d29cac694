#include "actors/cluster_bringup.h"

#include <fmt/format.h>

#include <algorithm>

namespace conclave::actors {

rank_spec make_rank_spec(const cluster_replica_options& cl, int32_t replica, uint64_t epoch,
                         int32_t rank, int32_t size, int32_t slot,
                         const gpu::expert_map& placement) {
  rank_spec spec;
  spec.replica = replica;
  spec.epoch = epoch;
  spec.rank = rank;
  spec.size = size;
  spec.slot = slot;
  spec.block_size = cl.backend.block_size;
  spec.num_kv_blocks = cl.backend.num_kv_blocks;
  spec.kv_cache_bytes = cl.backend.kv_cache_bytes;
  spec.kv_offload_bytes = cl.backend.kv_offload_bytes;
  spec.kv_host_prefix_bytes = cl.backend.kv_host_prefix_bytes;
  spec.threads = cl.backend.threads;
  spec.rope_inv_freq_dtype = cl.backend.rope_inv_freq_dtype;
  spec.weight_dtype = cl.backend.weight_dtype;
  spec.kv_cache_dtype = cl.backend.kv_cache_dtype;
  spec.placement = placement;
  spec.store = cl.store;
  spec.prefix = fmt::format("r{}/e{}", replica, epoch);
  spec.iface = cl.data_iface;
  spec.collective_timeout_s = cl.collective_timeout_s;
  return spec;
}

gpu::kv_cache_shape common_kv_shape(const std::vector<rank_ready>& ready) {
  gpu::kv_cache_shape kv;
  kv.block_size = ready.front().block_size;
  kv.num_blocks = ready.front().num_blocks;
  kv.bytes_per_block = ready.front().bytes_per_block;
  kv.num_host_blocks = ready.front().num_host_blocks;
  for (const auto& r : ready) {
    kv.num_blocks = std::min(kv.num_blocks, r.num_blocks);
    kv.num_host_blocks = std::min(kv.num_host_blocks, r.num_host_blocks);
  }
  return kv;
}

}  // namespace conclave::actors
