// replica_supervisor: brings one model replica up (load the backend, warm it, spawn the
// gpu_worker and engine, register the engine with the router), watches it, and brings
// it up again with exponential backoff when it fails; after max_restarts failures within
// restart_window_s it gives up and reports the replica dead.
#pragma once

#include <atomic>
#include <caf/all.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>

#include "actors/replica.h"
#include "actors/replica_status.h"
#include "actors/router.h"
#include "config/server_config.h"

namespace conclave::actors {

/// Makes a fresh backend (loads weights); may throw. Called on the supervisor's own thread.
using backend_factory = std::function<std::shared_ptr<gpu::backend>()>;

struct replica_supervisor_state {
  backend_factory factory;
  config::engine_config cfg;
  config::replica_config rc;
  std::shared_ptr<server_metrics> metrics;
  caf::actor router;
  std::shared_ptr<replica_status> status;
  caf::actor engine;
  caf::actor worker;
  caf::actor checker;  ///< the replica's health checker (none when checks are off)
  int restarts = 0;    ///< consecutive, for the backoff
  std::deque<caf::actor_clock::time_point> failures;  ///< within restart_window_s
  caf::actor_clock::time_point up_since;              ///< when the running replica came up
  static inline const char* name = "replica_supervisor";
};

/// Delay before restart number `attempt` (0-based): 0.5 s doubling to at most 30 s.
std::chrono::milliseconds restart_backoff(int attempt);

/// Spawn detached (loading blocks). `status` shows the replica's state to the service.
/// Handles (restart_atom) to restart the replica now (a health checker's verdict).
caf::behavior replica_supervisor(caf::stateful_actor<replica_supervisor_state>* self,
                                 backend_factory factory, config::engine_config cfg,
                                 config::replica_config rc, std::shared_ptr<server_metrics> metrics,
                                 caf::actor router, std::shared_ptr<replica_status> status,
                                 std::vector<int32_t> probe_prompt);

}  // namespace conclave::actors
