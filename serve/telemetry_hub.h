// telemetry_hub: samples a telemetry frame every [observability] sample_interval_s on its
// own thread, keeps the last history_s of them, evaluates the alert rules on each, and
// hands every frame to its subscribers (the dashboard feeds) and every alert transition
// to the event ring and the notifier (net/alert_webhooks.h: the log and webhooks).
// Plain C++.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "config/observability_config.h"
#include "serve/alerts.h"
#include "serve/telemetry.h"

namespace conclave::serve {

/// Where alert transitions go (net/alert_webhooks.h: a log line and HTTP POSTs).
class alert_notifier {
 public:
  virtual ~alert_notifier() = default;
  virtual void notify(const alert_transition& t) = 0;
};

class telemetry_hub {
 public:
  using frame_ptr = std::shared_ptr<const telemetry_frame>;
  using subscriber = std::function<void(const frame_ptr&)>;

  /// `nvml` may be null; `notifier` may be null (log and events only).
  telemetry_hub(const service& svc, std::shared_ptr<server_metrics> metrics,
                const config::observability_config& cfg, std::shared_ptr<nvml_reader> nvml,
                std::shared_ptr<alert_notifier> notifier);
  ~telemetry_hub();
  telemetry_hub(const telemetry_hub&) = delete;
  telemetry_hub& operator=(const telemetry_hub&) = delete;

  /// Starts the sampling thread (the first frame is taken at once).
  void start();
  /// Stops and joins it; idempotent.
  void stop();

  /// Takes one frame now, evaluates the alerts and notifies (the thread's step; tests call
  /// it directly without start()).
  frame_ptr step();

  /// The frames of the last history_s, oldest first.
  std::vector<frame_ptr> history() const;
  frame_ptr latest() const;
  /// Calls `fn` with every new frame (on the hub's thread; keep it short) until
  /// unsubscribed. Returns the subscription's id.
  uint64_t subscribe(subscriber fn);
  void unsubscribe(uint64_t id);

  std::vector<alert_status> alerts() const { return alerts_.statuses(); }
  const config::observability_config& config() const { return cfg_; }

 private:
  void run();

  config::observability_config cfg_;
  std::shared_ptr<server_metrics> metrics_;
  telemetry_sampler sampler_;
  alert_engine alerts_;
  std::shared_ptr<alert_notifier> notifier_;
  double keep_s_;  ///< frames kept: history_s and the longest rule window

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::deque<frame_ptr> frames_;
  std::map<uint64_t, subscriber> subscribers_;
  uint64_t next_id_ = 1;
  std::mutex step_mutex_;  ///< one step at a time
  std::mutex join_mutex_;  ///< stop() from two threads joins once
  std::thread thread_;
};

}  // namespace conclave::serve
