// admin: the operator's routes. GET /admin/cluster shows every replica (state, load,
// restarts, health history); POST /admin/fault injects a fault into one replica when the
// config enables it (tests and drills).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/model_spec.h"
#include "serve/cluster_topology.h"
#include "serve/replica_status.h"
#include "serve/service.h"

namespace conclave::net {

std::string cluster_json(const std::vector<serve::replica_snapshot>& replicas,
                         const serve::cluster_topology& topology = {});

/// {"replica": N, "fault": "fail_step"|"hang_step"|"crash_worker"|"crash_engine"}, or
/// {"fault": "kill_session", "request": ID} / {"fault": "kill_tool", "call": ID} (the id is
/// optional: without it a random running one), or {"fault": "kill_node", "node": N}.
struct fault_request {
  enum class target { replica, session, tool, node };
  target what = target::replica;
  int replica = 0;
  serve::fault_kind kind = serve::fault_kind::none;
  std::string id;    ///< session: request id; tool: call id; empty: a random one
  int32_t node = 0;  ///< kill_node: the node id (GET /admin/cluster lists them)
};
/// Throws std::invalid_argument with a message naming the field.
fault_request decode_fault_request(std::string_view body);
/// {"status":"killed","id":ID}: the answer to a kill_session / kill_tool.
std::string killed_json(const std::string& id);

/// POST /admin/models: {"name", "path", "aliases"?, "tokenizer"?, "chat_template"?,
/// "replicas"?, "backend"?, "device"?, "kv_cache_mib"?} (the keys of [[models]]).
/// Throws std::invalid_argument with a message naming the field.
config::model_spec decode_model_spec(std::string_view body);
/// One model as /admin/models answers: {"id", "aliases", "state", "max_model_len"}.
std::string model_status_json(const serve::model_status& m);

}  // namespace conclave::net
