// replica_supervisor: brings one model replica up (load the backend, warm it, spawn the
// gpu_worker and engine, register the engine with the router), watches it, and brings
// it up again with exponential backoff when it fails; after max_restarts failures within
// restart_window_s it gives up and reports the replica dead. Scale-down drains it first:
// the router stops placing requests on it, its running requests finish (or, after the
// drain timeout, move to other replicas like any failover), then it stops for good.
#pragma once

#include <atomic>
#include <caf/all.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "actors/engine_actor.h"
#include "actors/expert_group.h"
#include "actors/gpu_worker.h"
#include "actors/router.h"
#include "config/server_config.h"
#include "serve/replica_status.h"
#include "serve/restart_policy.h"

namespace conclave::actors {

/// Makes a fresh backend (loads weights); may throw. Called on the supervisor's own thread.
using backend_factory = std::function<std::shared_ptr<gpu::backend>()>;

/// The factory of a replica of the checkpoint in `model_dir` on `backend`: it opens the
/// checkpoint and loads it each time it is called.
backend_factory checkpoint_backend_factory(std::string model_dir, config::backend_config backend);

/// What /admin/cluster shows of one expert-parallel replica.
struct cluster_replica_view {
  uint64_t epoch = 0;
  uint64_t placement_version = 0;
  std::vector<std::string> ranks;  ///< per rank: where it runs
};

/// An expert-parallel replica whose ranks live on nodes (docs/cluster.md).
struct cluster_replica_options {
  caf::actor registry;  ///< leases ranks (cluster_registry)
  caf::actor store;     ///< the ranks' rendezvous store
  int32_t ranks = 2, min_ranks = 1;
  double collective_timeout_s = 10;
  double load_timeout_s = 600;  ///< a rank that is not ready by then fails the bring-up
  std::string data_iface;
  model::model_config model;
  config::backend_config backend;  ///< KV sizing and dtypes every rank uses
  /// Written on every bring-up; read by /admin/cluster.
  std::shared_ptr<std::mutex> view_mutex = std::make_shared<std::mutex>();
  std::shared_ptr<cluster_replica_view> view = std::make_shared<cluster_replica_view>();
  config::cluster_config settings;  ///< rebalancing interval, threshold, redundant copies
  /// The running incarnation's expert group writes its placement and load here.
  std::shared_ptr<expert_group_board> experts = std::make_shared<expert_group_board>();
};

struct replica_supervisor_state {
  backend_factory factory;
  config::engine_config cfg;
  config::replica_config rc;
  std::shared_ptr<serve::server_metrics> metrics;
  caf::actor router;
  std::shared_ptr<serve::replica_status> status;
  caf::actor engine;
  caf::actor worker;
  caf::actor checker;  ///< the replica's health checker (none when checks are off)
  /// Failures within restart_window_s, consecutive restarts for the backoff, up since when.
  std::optional<serve::restart_tracker> restarts;
  bool draining = false;  ///< scale-down under way: no restarts, stop once idle
  /// Spawns the worker; empty: a detached gpu_worker (it blocks in the backend). Tests on
  /// the deterministic scheduler set their own before the first bring-up runs.
  std::function<gpu_worker_actor(caf::local_actor*, std::shared_ptr<gpu::backend>)> spawn_worker;
  /// Set for an expert-parallel replica: its ranks are leased from the registry.
  std::shared_ptr<cluster_replica_options> cluster;
  uint64_t epoch = 0;             ///< bring-ups so far; ranks of older ones are fenced
  std::vector<caf::actor> ranks;  ///< the running incarnation's rank workers
  caf::actor group;               ///< the running incarnation's expert group
  static inline const char* name = "replica_supervisor";
};

/// Spawn detached (loading blocks). `status` shows the replica's state to the service.
/// Handles (restart_atom) to restart the replica now (a health checker's verdict), and
/// (drain_atom, double timeout_s) to remove it: status `draining`, the router places
/// nothing new on it, and once its engine has no request (or after timeout_s, when the
/// rest fail over) the engine and worker stop, the status turns `drained` and the
/// supervisor exits normally. An expert-parallel replica also answers (rebalance_atom)
/// with the placement version in force after a forced rebalance.
caf::behavior replica_supervisor(caf::stateful_actor<replica_supervisor_state>* self,
                                 backend_factory factory, config::engine_config cfg,
                                 config::replica_config rc,
                                 std::shared_ptr<serve::server_metrics> metrics, caf::actor router,
                                 std::shared_ptr<serve::replica_status> status,
                                 std::vector<int32_t> probe_prompt,
                                 std::shared_ptr<cluster_replica_options> cluster = nullptr);

}  // namespace conclave::actors
