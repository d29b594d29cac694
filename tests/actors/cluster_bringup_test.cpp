// actors/cluster_bringup: what a node is asked to load for each rank, and the KV shape an
// expert-parallel engine gets from the ranks that came up.
#include <catch2/catch.hpp>

#include "actors/cluster_bringup.h"

using namespace conclave;
using namespace conclave::actors;

TEST_CASE("make_rank_spec carries the coordinator's backend settings and fences the epoch",
          "[actors][cluster]") {
  cluster_replica_options cl;
  cl.backend.block_size = 32;
  cl.backend.num_kv_blocks = 77;
  cl.backend.kv_cache_bytes = 1u << 30;
  cl.backend.kv_offload_bytes = 5;
  cl.backend.kv_host_prefix_bytes = 6;
  cl.backend.threads = 3;
  cl.backend.weight_dtype = "f32";
  cl.backend.kv_cache_dtype = "fp8";
  cl.data_iface = "eth1";
  cl.collective_timeout_s = 12.5;
  gpu::expert_map placement;
  placement.version = 4;
  const auto spec = make_rank_spec(cl, 2, 9, 1, 4, 3, placement);
  CHECK((spec.replica == 2 && spec.epoch == 9 && spec.rank == 1 && spec.size == 4));
  CHECK(spec.slot == 3);
  CHECK((spec.block_size == 32 && spec.num_kv_blocks == 77 && spec.kv_cache_bytes == 1u << 30));
  CHECK((spec.kv_offload_bytes == 5 && spec.kv_host_prefix_bytes == 6 && spec.threads == 3));
  CHECK((spec.weight_dtype == "f32" && spec.kv_cache_dtype == "fp8"));
  CHECK(spec.placement.version == 4);
  CHECK(spec.prefix == "r2/e9");  // another bring-up of the replica meets under another key
  CHECK((spec.iface == "eth1" && spec.collective_timeout_s == 12.5));
}

TEST_CASE("common_kv_shape: the fewest device and host blocks of any rank", "[actors][cluster]") {
  std::vector<rank_ready> ready(3);
  for (size_t i = 0; i < ready.size(); ++i) {
    ready[i].rank = static_cast<int32_t>(i);
    ready[i].block_size = 16;
    ready[i].bytes_per_block = 4096;
  }
  ready[0].num_blocks = 900, ready[1].num_blocks = 700, ready[2].num_blocks = 800;
  ready[0].num_host_blocks = 50, ready[1].num_host_blocks = 60, ready[2].num_host_blocks = 0;
  const auto kv = common_kv_shape(ready);
  CHECK((kv.block_size == 16 && kv.bytes_per_block == 4096));
  CHECK(kv.num_blocks == 700);
  CHECK(kv.num_host_blocks == 0);  // one rank without a host pool: none
}
