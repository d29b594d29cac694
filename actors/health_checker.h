// health_checker: one per replica. Heartbeats (the engine answers a stats request within
// the interval) and, every probe_interval_s, a real generation (the probe prompt, 10
// greedy tokens, within probe_timeout_s). Results go to the replica's status history;
// `unhealthy_after` consecutive failures mark the replica unhealthy and ask its
// supervisor for a restart. Each reading also records the process's resident memory, and
// steady growth across probes is flagged in the history.
#pragma once

#include <caf/all.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "actors/messages.h"
#include "config/server_config.h"
#include "serve/health_tracker.h"
#include "serve/process_memory.h"
#include "serve/replica_status.h"

namespace conclave::actors {

struct health_checker_state {
  std::shared_ptr<serve::replica_status> status;
  caf::actor supervisor;
  caf::actor engine;
  std::vector<int32_t> probe_prompt;
  config::replica_config rc;
  std::optional<serve::health_tracker> tracker;
  uint64_t probe_id = 0;  ///< the probe running, 0: none
  uint64_t probes_started = 0;
  int32_t probe_tokens = 0;  ///< tokens it produced so far
  int64_t probe_seq = -1;    ///< its sequence in the engine
  caf::actor_clock::time_point probe_start;
  serve::memory_growth_watch memory;  ///< resident memory at recent probes
  static inline const char* name = "health_checker";
};

/// Tokens a probe generates.
inline constexpr int32_t probe_tokens = 10;

caf::behavior health_checker(caf::stateful_actor<health_checker_state>* self,
                             std::shared_ptr<serve::replica_status> status, caf::actor supervisor,
                             std::vector<int32_t> probe_prompt, config::replica_config rc);

}  // namespace conclave::actors
