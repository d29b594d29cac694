#include "actors/cluster_bringup.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace conclave::actors {

rank_spec make_rank_spec(const cluster_replica_options& cl, int32_t replica, uint64_t epoch,
                         int32_t rank, int32_t size, int32_t slot, const gpu::expert_map& placement,
                         const std::string& collectives) {
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
  spec.collectives = collectives;
  return spec;
}

std::string replica_collectives(const std::string& setting, const std::vector<rank_place>& ranks,
                                bool nccl_built) {
  if (setting != "auto" && setting != "gloo" && setting != "nccl")
    throw std::invalid_argument("collectives must be auto, gloo or nccl, not \"" + setting + "\"");
  if (setting == "gloo" || ranks.size() < 2) return "gloo";
  // Why NCCL cannot carry these ranks: a cpu rank, or two ranks on one device.
  std::string why;
  for (size_t r = 0; r < ranks.size() && why.empty(); ++r) {
    if (ranks[r].device < 0) {
      why = fmt::format("rank {} ({}) is a cpu rank", r, ranks[r].host);
      break;
    }
    for (size_t o = 0; o < r; ++o) {
      const rank_place &a = ranks[o], &b = ranks[r];
      const bool ids = !a.device_id.empty() && !b.device_id.empty();
      if (ids ? a.device_id == b.device_id : a.host == b.host && a.device == b.device) {
        why = fmt::format("ranks {} and {} share {} gpu {}{}", o, r, b.host, b.device,
                          ids ? " (" + b.device_id + ")" : "");
        break;
      }
    }
  }
  if (why.empty() && !nccl_built) why = "this conclave was built without NCCL";
  if (why.empty()) return "nccl";
  if (setting == "auto") return "gloo";
  throw std::invalid_argument("collectives = nccl needs every rank on a GPU of its own, but " +
                              why);
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
