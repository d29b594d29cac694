// alert_webhooks: the alert notifier of a server: every transition is logged (one JSON
// line) and POSTed to each [alerting] webhook in Alertmanager's webhook format, from one
// delivery thread, in order per webhook, retried with exponential backoff (webhook_backoff_s
// doubling up to webhook_backoff_max_s) until webhook_max_attempts, then dropped (logged).
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/observability_config.h"
#include "net/telemetry_json.h"
#include "serve/telemetry_hub.h"
#include "toolkit/tool.h"

namespace conclave::net {

class alert_webhooks final : public serve::alert_notifier {
 public:
  /// `external_url` is the dashboard's address, sent as Alertmanager's externalURL.
  alert_webhooks(const config::observability_config& cfg, std::string external_url);
  ~alert_webhooks() override;

  void notify(const serve::alert_transition& t) override;
  std::vector<webhook_stats> stats() const;
  /// Stops the delivery thread; notifications still queued are dropped (logged).
  void stop();

 private:
  struct delivery {
    size_t hook;
    std::string body;
    int attempts = 0;
    std::chrono::steady_clock::time_point due;
  };
  void run();

  config::observability_config cfg_;
  std::string external_url_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::deque<delivery> queue_;
  std::vector<webhook_stats> stats_;
  std::shared_ptr<toolkit::cancel_flag> cancel_ = std::make_shared<toolkit::cancel_flag>();
  std::thread thread_;
};

}  // namespace conclave::net
