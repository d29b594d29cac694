// The server-side tools of a server, from its [tools] configuration: `math`,
// `code_interpreter` (with the configured sandbox limits), `browser` (when hosts are
// allowed) and the configured webhooks, with the retry policy and the tool metrics.
#pragma once

#include <memory>

#include "actors/server_metrics.h"
#include "actors/tool_invocation.h"
#include "config/server_config.h"

namespace conclave::actors {

/// Throws std::invalid_argument naming the entry for a webhook whose parameters are not a
/// JSON object schema, a bad URL or a duplicate name.
std::shared_ptr<const tool_runtime> make_tool_runtime(
    const config::tools_config& cfg, const std::shared_ptr<server_metrics>& metrics);

}  // namespace conclave::actors
