// The telemetry thread (see the header).
#include "serve/telemetry_hub.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "serve/server_metrics.h"

namespace conclave::serve {

telemetry_hub::telemetry_hub(const service& svc, std::shared_ptr<server_metrics> metrics,
                             const config::observability_config& cfg,
                             std::shared_ptr<nvml_reader> nvml,
                             std::shared_ptr<alert_notifier> notifier)
    : cfg_(cfg),
      metrics_(metrics),
      sampler_(svc, std::move(metrics), std::move(nvml), cfg.window_s),
      alerts_(cfg.rules()),
      notifier_(std::move(notifier)),
      keep_s_(cfg.history_s) {
  for (const auto& r : cfg_.rules()) keep_s_ = std::max(keep_s_, r.window_s);
}

telemetry_hub::~telemetry_hub() {
  stop();
}

void telemetry_hub::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { run(); });
}

void telemetry_hub::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  std::lock_guard join(join_mutex_);
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void telemetry_hub::run() {
  const auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(cfg_.sample_interval_s));
  auto next = std::chrono::steady_clock::now();
  for (;;) {
    try {
      step();
    } catch (const std::exception& e) {
      spdlog::warn("telemetry: sampling failed: {}", e.what());
    }
    next += interval;
    const auto now = std::chrono::steady_clock::now();
    if (next < now) next = now;  // a slow step: no burst of catch-up samples
    std::unique_lock lock(mutex_);
    if (wake_.wait_until(lock, next, [this] { return stopping_; })) return;
  }
}

telemetry_hub::frame_ptr telemetry_hub::step() {
  std::lock_guard step_lock(step_mutex_);
  frame_ptr previous = latest();
  auto f = std::make_shared<telemetry_frame>(sampler_.sample(previous.get()));
  f->interval_s = previous ? f->interval_s : cfg_.sample_interval_s;

  // The alert values see the new frame at the end of the kept history.
  std::vector<const telemetry_frame*> history;
  {
    std::lock_guard lock(mutex_);
    for (const auto& h : frames_) history.push_back(h.get());
  }
  history.push_back(f.get());
  const auto& live = metrics_->live();
  const auto transitions = alerts_.evaluate(
      [&](const config::alert_rule_config& r) { return alert_value(r, history, live); }, f->steady,
      f->time);
  for (const auto& t : transitions) {
    metrics_->live().add_event("alert",
                               fmt::format("{} {}: {}", t.status.rule.name,
                                           t.firing ? "firing" : "resolved", t.status.summary),
                               t.at);
    if (notifier_) notifier_->notify(t);
  }
  f->alerts = alerts_.active();
  if (!transitions.empty()) f->events = metrics_->live().events(50);

  std::vector<subscriber> subs;
  {
    std::lock_guard lock(mutex_);
    frames_.push_back(f);
    while (!frames_.empty() &&
           std::chrono::duration<double>(f->steady - frames_.front()->steady).count() > keep_s_)
      frames_.pop_front();
    for (const auto& [id, fn] : subscribers_) subs.push_back(fn);
  }
  for (const auto& fn : subs) fn(f);
  return f;
}

std::vector<telemetry_hub::frame_ptr> telemetry_hub::history() const {
  std::lock_guard lock(mutex_);
  std::vector<frame_ptr> out;
  const auto& newest = frames_.empty() ? nullptr : frames_.back();
  for (const auto& f : frames_)
    if (!newest ||
        std::chrono::duration<double>(newest->steady - f->steady).count() <= cfg_.history_s)
      out.push_back(f);
  return out;
}

telemetry_hub::frame_ptr telemetry_hub::latest() const {
  std::lock_guard lock(mutex_);
  return frames_.empty() ? nullptr : frames_.back();
}

uint64_t telemetry_hub::subscribe(subscriber fn) {
  std::lock_guard lock(mutex_);
  const uint64_t id = next_id_++;
  subscribers_.emplace(id, std::move(fn));
  return id;
}

void telemetry_hub::unsubscribe(uint64_t id) {
  std::lock_guard lock(mutex_);
  subscribers_.erase(id);
}

}  // namespace conclave::serve
