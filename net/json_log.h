// json_log: conclave's log lines as JSON, one object per line (the default for `serve` and
// `node`; `--log-format text` for people at a terminal). Every line has the same keys:
// timestamp, level, message, and the request fields (request_id, model, tenant, replica,
// latency_ms, prompt_tokens, completion_tokens, status, error), null where they do not
// apply. A message that is itself a JSON object (the request log, alerts) has its fields
// merged into the line instead of being quoted.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace conclave::net {

/// Sets the format of every spdlog logger: "json" or "text" (throws std::invalid_argument
/// for anything else).
void set_log_format(const std::string& format);

/// "2026-12-05T16:40:00.123Z": UTC with milliseconds (log lines, alert webhooks).
std::string utc_timestamp(int64_t unix_ns);

/// One log line (no newline) as the JSON format writes it; `unix_ns` is the time.
std::string json_log_line(std::string_view level, std::string_view message, int64_t unix_ns);

}  // namespace conclave::net
