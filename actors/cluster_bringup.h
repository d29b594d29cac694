// cluster_bringup: the plain parts of an expert-parallel replica's bring-up (no actor
// calls): what each node is asked to load, and the KV shape the engine gets from the ranks
// that came up.
#pragma once

#include <cstdint>
#include <vector>

#include "actors/cluster_messages.h"
#include "actors/replica_supervisor.h"

namespace conclave::actors {

/// Rank `rank` of `size` of replica `replica`'s bring-up number `epoch`, on the node's rank
/// slot `slot`: the coordinator's backend settings, the placement, the collectives
/// ("gloo" or "nccl": replica_collectives) and the rendezvous key prefix "r<replica>/e<epoch>"
/// that keeps incarnations apart.
rank_spec make_rank_spec(const cluster_replica_options& cl, int32_t replica, uint64_t epoch,
                         int32_t rank, int32_t size, int32_t slot, const gpu::expert_map& placement,
                         const std::string& collectives = "gloo");

/// Where one leased rank runs.
struct rank_place {
  std::string host;
  int32_t device = -1;    ///< GPU ordinal; -1: a cpu rank
  std::string device_id;  ///< the GPU's UUID; "" where unknown
};

/// The collectives of a replica whose ranks run at `ranks`, under [cluster] collectives =
/// `setting`: "nccl" (device buffers) where every rank has a GPU of its own and NCCL was
/// built, for "auto" and "nccl"; "gloo" otherwise for "auto",
/// and always for "gloo". A replica of one rank runs no collective ("gloo"). Throws
/// std::invalid_argument, in one line naming the ranks in the way, for "nccl" that cannot
/// hold or an unknown setting. Two ranks share a GPU when both UUIDs are known and equal
/// (nodes of one host numbering their cards differently under CUDA_VISIBLE_DEVICES), else
/// when host and ordinal are equal.
std::string replica_collectives(const std::string& setting, const std::vector<rank_place>& ranks,
                                bool nccl_built);

/// The KV cache every rank can hold: the first rank's block size and bytes per block, the
/// fewest device and host blocks of any rank. `ready` must not be empty.
gpu::kv_cache_shape common_kv_shape(const std::vector<rank_ready>& ready);

}  // namespace conclave::actors
