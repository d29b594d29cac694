// cluster_registry: the coordinator's book of nodes and their ranks (docs/cluster.md).
// Nodes join with (join_atom, node_hello) and get a node_welcome (id, epoch) or a refusal;
// the registry monitors each node's actor, so a node whose connection is lost (killed,
// partitioned, paused past the middleman's timeout) is forgotten with its ranks. Replica
// supervisors lease ranks with (acquire_atom, replica, wanted, minimum) — answered once
// `wanted` ranks are free, or after `settle_after` with at least `minimum` — and give them
// back with (release_atom, replica).
#pragma once

#include <caf/all.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "actors/cluster_messages.h"
#include "serve/cluster_topology.h"

namespace conclave::actors {

/// One rank a replica may use: a slot of a node.
struct rank_lease {
  int32_t node_id = -1;
  uint64_t node_epoch = 0;
  int32_t slot = 0;
  caf::actor node;
  std::string where;      ///< host and slot kind, for logs and /admin/cluster
  std::string host;       ///< the node's host name
  int32_t device = -1;    ///< the GPU ordinal of a gpu slot; -1: a cpu rank
  std::string device_id;  ///< that GPU's UUID, "" where the node did not know it
};

/// Shared between the registry (writer) and the HTTP side (reader).
class cluster_board {
 public:
  void set(serve::cluster_topology v) {
    std::lock_guard lock(mu_);
    view_ = std::move(v);
  }
  serve::cluster_topology get() const {
    std::lock_guard lock(mu_);
    return view_;
  }

 private:
  mutable std::mutex mu_;
  serve::cluster_topology view_;
};

struct cluster_registry_options {
  std::string fingerprint;  ///< of the coordinator's checkpoint; nodes must match
  std::chrono::milliseconds settle_after{std::chrono::seconds(10)};
  std::shared_ptr<cluster_board> board;
};

caf::behavior cluster_registry(caf::event_based_actor* self, cluster_registry_options opts);

}  // namespace conclave::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<conclave::actors::rank_lease>)
