// admin_keys: the JSON of the gateway's admin routes. POST /admin/keys takes
// {"name", "requests_per_min"?, "tokens_per_min"?, "concurrent"?, "max_context"?,
// "models"?} and answers the key with its secret (once); GET /admin/keys lists the keys
// (no secrets); GET /admin/usage sums usage per key and model.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "store/state_store.h"

namespace conclave::net {

/// Throws std::invalid_argument naming the field.
std::pair<std::string, store::key_limits> decode_key_request(std::string_view body);
/// One key; with `secret` when it was just made.
std::string key_json(const store::key_record& k, const std::string& secret = {});
std::string keys_json(const std::vector<store::key_record>& keys);
std::string usage_json(const std::vector<store::usage_row>& rows, const std::string& store,
                       bool degraded);

}  // namespace conclave::net
