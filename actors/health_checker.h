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

#include "actors/health_tracker.h"
#include "actors/messages.h"
#include "actors/replica_status.h"
#include "config/server_config.h"

namespace conclave::actors {

using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>;
using probe_atom = caf::atom_constant<caf::atom("probe")>;
using probe_timeout_atom = caf::atom_constant<caf::atom("probetmo")>;
/// supervisor -> checker: the replica's current engine (after each bring-up).
using watch_atom = caf::atom_constant<caf::atom("watch")>;

struct health_checker_state {
  std::shared_ptr<replica_status> status;
  caf::actor supervisor;
  caf::actor engine;
  std::vector<int32_t> probe_prompt;
  config::replica_config rc;
  std::optional<health_tracker> tracker;
  uint64_t probe_id = 0;  ///< the probe running, 0: none
  uint64_t probes_started = 0;
  int32_t probe_tokens = 0;  ///< tokens it produced so far
  int64_t probe_seq = -1;    ///< its sequence in the engine
  caf::actor_clock::time_point probe_start;
  std::vector<double> rss_mib;  ///< resident memory at recent probes
  static inline const char* name = "health_checker";
};

/// Tokens a probe generates.
inline constexpr int32_t probe_tokens = 10;

caf::behavior health_checker(caf::stateful_actor<health_checker_state>* self,
                             std::shared_ptr<replica_status> status, caf::actor supervisor,
                             std::vector<int32_t> probe_prompt, config::replica_config rc);

/// Resident memory of this process in MiB (0 where unknown).
double resident_mib();

}  // namespace conclave::actors
