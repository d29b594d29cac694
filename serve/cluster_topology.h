// cluster_topology: what GET /admin/cluster shows of an expert-parallel cluster
// (docs/cluster.md): the nodes that joined, their rank slots and which replica uses each,
// and where every replica's ranks run. Plain data, filled by actors/, written as JSON by net/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace conclave::serve {

struct cluster_node_info {
  int32_t id = 0;
  uint64_t epoch = 0;
  std::string host, version;
  int32_t pid = 0, cpu_ranks = 0, cores = 0;
  uint64_t memory_mib = 0;
  std::vector<std::string> gpus;
  std::vector<int32_t> slot_replica;  ///< per rank slot: the replica using it, or -1
};

struct cluster_replica_info {
  int replica = 0;
  uint64_t epoch = 0;  ///< bring-ups so far
  uint64_t placement_version = 0;
  std::vector<std::string> ranks;  ///< per rank: host and device
  /// placement[layer][expert]: the ranks holding a copy (dense layers empty).
  std::vector<std::vector<std::vector<int32_t>>> placement;
  /// expert_load[layer][expert]: tokens routed since the last rebalance.
  std::vector<std::vector<uint64_t>> expert_load;
  double imbalance = 1.0;  ///< max / mean rank load over the load above (worst layer)
  uint64_t rebalances = 0;
};

struct cluster_topology {
  bool enabled = false;
  int32_t ranks_per_replica = 0;
  uint16_t door_port = 0;
  std::vector<cluster_node_info> nodes;
  std::vector<cluster_replica_info> replicas;
  uint64_t joins = 0, losses = 0, refusals = 0;
};

}  // namespace conclave::serve
