// telemetry_json: telemetry frames, alert states and alert notifications as JSON (the
// dashboard feed, GET /admin/telemetry, GET /admin/alerts, the webhook body).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "serve/alerts.h"
#include "serve/telemetry.h"

namespace conclave::net {

/// One frame, as docs/observability.md describes it.
std::string frame_json(const serve::telemetry_frame& f);
/// {"frames":[...]}: the feed's first event.
std::string history_json(const std::vector<std::shared_ptr<const serve::telemetry_frame>>& frames);

/// A webhook target's delivery counts, for GET /admin/alerts.
struct webhook_stats {
  std::string url;
  uint64_t sent = 0, failed_attempts = 0, dropped = 0, queued = 0;
  std::string last_error;
};
/// {"alerts":[active...],"rules":[every rule...],"webhooks":[...]}.
std::string alerts_json(const std::vector<serve::alert_status>& rules,
                        const std::vector<webhook_stats>& webhooks);

/// The webhook body of one transition, in Alertmanager's webhook format (version 4), so
/// receivers written for Alertmanager take it as is.
std::string alert_webhook_json(const serve::alert_transition& t, const std::string& external_url);
/// The log line of a transition (one JSON object; the JSON log format merges its fields).
std::string alert_log_json(const serve::alert_transition& t);

}  // namespace conclave::net
