// replica_supervisor: brings one model replica up (load the backend, warm it, spawn the
// gpu_worker and engine, register the engine with the router), watches it, and brings
// it up again with exponential backoff when it fails.
#pragma once

#include <atomic>
#include <caf/all.hpp>
#include <chrono>
#include <functional>
#include <memory>

#include "actors/replica.h"
#include "actors/router.h"

namespace conclave::actors {

/// Makes a fresh backend (loads weights); may throw. Called on the supervisor's own thread.
using backend_factory = std::function<std::shared_ptr<gpu::backend>()>;

struct replica_supervisor_state {
  backend_factory factory;
  config::engine_config cfg;
  std::shared_ptr<server_metrics> metrics;
  caf::actor router;
  std::shared_ptr<std::atomic<bool>> ready;
  caf::actor engine;
  caf::actor worker;
  int restarts = 0;
  caf::actor_clock::time_point up_since;  ///< when the running replica came up
  static inline const char* name = "replica_supervisor";
};

/// Delay before restart number `attempt` (0-based): 0.5 s doubling to at most 30 s.
std::chrono::milliseconds restart_backoff(int attempt);

/// A replica that served this long before failing restarts with the shortest backoff
/// again: its failure is news, not a crash loop.
inline constexpr std::chrono::seconds backoff_reset_after{60};

/// Spawn detached (loading blocks). `ready` is true while the replica serves.
caf::behavior replica_supervisor(caf::stateful_actor<replica_supervisor_state>* self,
                                 backend_factory factory, config::engine_config cfg,
                                 std::shared_ptr<server_metrics> metrics, caf::actor router,
                                 std::shared_ptr<std::atomic<bool>> ready);

}  // namespace conclave::actors
