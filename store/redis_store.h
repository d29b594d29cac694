// The Redis state store (hiredis): keys in the hash PREFIX:keys (field id, value the
// record's fields joined), usage in the hash PREFIX:usage (field key\x1fmodel\x1fcolumn,
// incremented with HINCRBY inside MULTI/EXEC), so several gateways can share them.
#pragma once

#include <memory>
#include <string>

#include "store/state_store.h"

namespace conclave::store {

/// Connects to Redis at host:port (5 s timeout) and checks it with PING. Throws
/// store_error when it cannot. A connection that breaks later is reopened on the next
/// call; a call that fails throws store_error.
std::unique_ptr<state_store> open_redis_store(const std::string& host, int port,
                                              const std::string& prefix);

}  // namespace conclave::store
