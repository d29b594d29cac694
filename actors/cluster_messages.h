// cluster_messages: the messages that cross process boundaries between the coordinator
// and `conclave node` processes (docs/cluster.md). Unlike actors/messages.h these are
// serialised by CAF's middleman: every type has an inspect() and is registered by
// add_cluster_types(). No tensors ride here except a step's logits rows; hidden states
// move between ranks through the communicator (Gloo/NCCL), never through CAF.
#pragma once

#include <caf/all.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "gpu/expert_map.h"

namespace conclave::actors {

// Atoms of the cluster protocol.
using join_atom = caf::atom_constant<caf::atom("join")>;
using spawn_rank_atom = caf::atom_constant<caf::atom("spawnrank")>;
using rank_step_atom = caf::atom_constant<caf::atom("rankstep")>;
using rv_set_atom = caf::atom_constant<caf::atom("rvset")>;
using rv_get_atom = caf::atom_constant<caf::atom("rvget")>;
using acquire_atom = caf::atom_constant<caf::atom("acquire")>;
using release_atom = caf::atom_constant<caf::atom("release")>;
using cluster_view_atom = caf::atom_constant<caf::atom("clusterv")>;
using placement_atom = caf::atom_constant<caf::atom("placement")>;
using kill_node_atom = caf::atom_constant<caf::atom("killnode")>;
using expert_load_atom = caf::atom_constant<caf::atom("expload")>;
using rebalance_atom = caf::atom_constant<caf::atom("rebalance")>;
using rebalance_tick_atom = caf::atom_constant<caf::atom("rebaltick")>;

/// A node announcing itself to the coordinator's registry.
struct node_hello {
  std::string host;
  int32_t pid = 0;
  std::string version;
  std::string fingerprint;  ///< of the checkpoint it reads (config + index), must match
  int32_t cpu_ranks = 0;
  std::vector<int32_t> gpus;  ///< device ordinals it offers, one rank each
  std::vector<std::string> gpu_names;
  std::vector<std::string> gpu_ids;  ///< their UUIDs ("" where unknown), as gpus
  int32_t cores = 0;
  uint64_t memory_mib = 0;
  caf::actor node;  ///< its node_actor
};

/// The registry's answer: the node's id and epoch, or why it is refused.
struct node_welcome {
  int32_t node_id = -1;
  uint64_t epoch = 0;
  std::string error;
};

/// Everything a node needs to host one rank of a replica.
struct rank_spec {
  int32_t replica = 0;
  uint64_t epoch = 0;  ///< the replica's incarnation; steps of other epochs are refused
  int32_t rank = 0, size = 1;
  int32_t slot = 0;  ///< which of the node's ranks (cpu ranks first, then its gpus)
  // The coordinator's backend settings (the node picks kind and device from the slot).
  int32_t block_size = 16;
  int32_t num_kv_blocks = 0;
  uint64_t kv_cache_bytes = 0;
  uint64_t kv_offload_bytes = 0;      ///< the rank's host pool for offloaded KV blocks
  uint64_t kv_host_prefix_bytes = 0;  ///< and for the prefix cache's host tier
  int32_t threads = 0;
  std::string rope_inv_freq_dtype = "f32";
  std::string weight_dtype = "bf16";
  std::string kv_cache_dtype = "auto";
  gpu::expert_map placement;
  caf::actor store;    ///< the rendezvous store (rv_set_atom / rv_get_atom)
  std::string prefix;  ///< rendezvous key prefix: replica and epoch
  std::string iface;   ///< [cluster] data_iface
  double collective_timeout_s = 10;
  /// "gloo" or "nccl" (replica_collectives): NCCL's unique id is made by rank 0 and met
  /// under prefix + "/nccl_id".
  std::string collectives = "gloo";
};

/// A rank, loaded and connected to its peers.
struct rank_ready {
  int32_t rank = 0;
  caf::actor worker;
  int32_t block_size = 0, num_blocks = 0, num_host_blocks = 0;
  uint64_t bytes_per_block = 0;
  std::string backend;             ///< "cpu" or "cuda"
  std::string where;               ///< host and device, for /admin/cluster
  bool samples_on_device = false;  ///< the rank's backend samples sequences that ask
};

/// One sequence of a rank's part of a step.
struct wire_sequence {
  std::vector<int32_t> tokens;
  int32_t num_cached = 0;
  std::vector<int32_t> block_table;
  bool all_logits = false;
  /// When set, the step's gpu::device_sampling for this sequence (flattened): a rank whose
  /// backend samples on its device answers the token instead of the logits row.
  bool sample = false;
  float temperature = 0, top_p = 1, min_p = 0, repetition_penalty = 1;
  int32_t top_k = 0, vocab_limit = 0;
  double u = 0;
  std::vector<int32_t> penalty_tokens, penalty_repeated;
  std::vector<float> penalty_subtract;
};

/// A rank's part of one step (possibly empty: the rank still joins the collectives).
struct rank_step {
  uint64_t epoch = 0;
  uint64_t step = 0;
  uint64_t placement_version = 0;
  bool want_load = false;  ///< answer with the per-expert counts since the last ask
  std::vector<wire_sequence> seqs;
  /// KV copies to run before the forward pass (gpu::kv_transfer), as (device block, host
  /// block) pairs flattened: to_host first, then to_device.
  std::vector<int32_t> to_host, to_device;
};

/// A rank's answer: logits rows as gpu::step_output has them, and what the step cost.
struct rank_step_done {
  uint64_t epoch = 0;
  uint64_t step = 0;
  uint64_t vocab = 0;
  std::vector<float> logits;
  std::vector<uint64_t> row_begin;
  double forward_s = 0;
  double expert_s = 0, dispatch_s = 0, combine_s = 0;
  uint64_t bytes_sent = 0;
  std::vector<std::vector<int64_t>> expert_load;  ///< [layer][expert] when asked
  /// Empty, or per sequence the token sampled on the rank (-1: its rows are in logits).
  std::vector<int32_t> sampled;
};

}  // namespace conclave::actors

namespace conclave::gpu {
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, expert_map& x) {
  return f(caf::meta::type_name("expert_map"), x.ranks, x.version, x.holders);
}
}  // namespace conclave::gpu

namespace conclave::actors {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_hello& x) {
  return f(caf::meta::type_name("node_hello"), x.host, x.pid, x.version, x.fingerprint, x.cpu_ranks,
           x.gpus, x.gpu_names, x.gpu_ids, x.cores, x.memory_mib, x.node);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_welcome& x) {
  return f(caf::meta::type_name("node_welcome"), x.node_id, x.epoch, x.error);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rank_spec& x) {
  return f(caf::meta::type_name("rank_spec"), x.replica, x.epoch, x.rank, x.size, x.slot,
           x.block_size, x.num_kv_blocks, x.kv_cache_bytes, x.kv_offload_bytes,
           x.kv_host_prefix_bytes, x.threads, x.rope_inv_freq_dtype, x.weight_dtype,
           x.kv_cache_dtype, x.placement, x.store, x.prefix, x.iface, x.collective_timeout_s,
           x.collectives);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rank_ready& x) {
  return f(caf::meta::type_name("rank_ready"), x.rank, x.worker, x.block_size, x.num_blocks,
           x.num_host_blocks, x.bytes_per_block, x.backend, x.where, x.samples_on_device);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, wire_sequence& x) {
  return f(caf::meta::type_name("wire_sequence"), x.tokens, x.num_cached, x.block_table,
           x.all_logits, x.sample, x.temperature, x.top_p, x.min_p, x.repetition_penalty, x.top_k,
           x.vocab_limit, x.u, x.penalty_tokens, x.penalty_repeated, x.penalty_subtract);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rank_step& x) {
  return f(caf::meta::type_name("rank_step"), x.epoch, x.step, x.placement_version, x.want_load,
           x.seqs, x.to_host, x.to_device);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rank_step_done& x) {
  return f(caf::meta::type_name("rank_step_done"), x.epoch, x.step, x.vocab, x.logits, x.row_begin,
           x.forward_s, x.expert_s, x.dispatch_s, x.combine_s, x.bytes_sent, x.expert_load,
           x.sampled);
}

/// Registers the cluster message types; both the coordinator and every node call it on
/// their actor_system_config before the system starts.
void add_cluster_types(caf::actor_system_config& cfg);

}  // namespace conclave::actors
