// cluster_host: the coordinator's side of a cluster inside actor_service (docs/cluster.md):
// the middleman, the registry nodes join (published on 127.0.0.1 for the door to splice
// to), the rendezvous store, and the options every expert-parallel replica is brought up
// with. Nothing here without [cluster].
#pragma once

#include <caf/all.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "actors/cluster_registry.h"
#include "actors/replica_supervisor.h"
#include "config/server_config.h"
#include "model/model_config.h"
#include "serve/cluster_topology.h"

namespace conclave::actors {

class cluster_host {
 public:
  /// Loads the middleman, registers the wire types and sets the heartbeat that bounds
  /// node-loss detection; before the actor system starts.
  static void configure(caf::actor_system_config& cfg, const config::cluster_config& c);

  /// Spawns the store and registry and publishes the registry on 127.0.0.1 (a free port).
  /// Throws std::runtime_error when it cannot.
  cluster_host(caf::actor_system& sys, const config::server_config& cfg,
               const model::model_config& model);
  ~cluster_host();

  uint16_t gate_port() const { return gate_port_; }
  /// Options for replica `id`'s supervisor; null when replicas are one rank.
  std::shared_ptr<cluster_replica_options> replica_options(int id);
  serve::cluster_topology topology() const;
  bool kill_node(int32_t node);
  /// Forces a rebalance of the replica `supervisor` runs; blocks until it is applied (or
  /// fails: the error, else empty) and sets `version` to the placement version in force.
  std::string rebalance(int replica, caf::actor supervisor, uint64_t& version);
  void stop();

 private:
  caf::actor_system& sys_;
  config::server_config cfg_;
  model::model_config model_;
  std::shared_ptr<cluster_board> board_ = std::make_shared<cluster_board>();
  caf::actor registry_, store_;
  uint16_t gate_port_ = 0;
  mutable std::mutex mu_;
  std::vector<std::pair<int, std::shared_ptr<cluster_replica_options>>> replicas_;
};

}  // namespace conclave::actors
