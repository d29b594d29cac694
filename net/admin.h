// admin: the operator's routes. GET /admin/cluster shows every replica (state, load,
// restarts, health history); POST /admin/fault injects a fault into one replica when the
// config enables it (tests and drills).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "actors/replica_status.h"

namespace conclave::net {

std::string cluster_json(const std::vector<actors::replica_snapshot>& replicas);

/// {"replica": N, "fault": "fail_step"|"hang_step"|"crash_worker"|"crash_engine"}.
struct fault_request {
  int replica = 0;
  actors::fault_kind kind = actors::fault_kind::none;
};
/// Throws std::invalid_argument with a message naming the field.
fault_request decode_fault_request(std::string_view body);

}  // namespace conclave::net
