// Alert log lines and webhook delivery (see the header).
#include "net/alert_webhooks.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "toolkit/http_fetch.h"

namespace conclave::net {

namespace {

/// Notifications waiting per webhook beyond this: the oldest is dropped (a receiver down
/// for long under a flapping rule must not grow the queue without bound).
constexpr size_t kMaxQueuedPerHook = 256;

/// scheme://host[:port]/...: a webhook URL's path and query often hold its secret token,
/// which neither the log nor /admin/alerts should show.
std::string redact(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const auto path = url.find('/', scheme + 3);
  return path == std::string::npos ? url : url.substr(0, path) + "/...";
}

}  // namespace

alert_webhooks::alert_webhooks(const config::observability_config& cfg, std::string external_url)
    : cfg_(cfg), external_url_(std::move(external_url)) {
  for (const auto& url : cfg_.webhooks) {
    webhook_stats s;
    s.url = redact(url);
    stats_.push_back(std::move(s));
  }
  if (!cfg_.webhooks.empty()) thread_ = std::thread([this] { run(); });
}

alert_webhooks::~alert_webhooks() {
  stop();
}

void alert_webhooks::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  cancel_->cancel();  // a POST in flight stops now
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mutex_);
  if (!queue_.empty())
    spdlog::warn("alerting: {} webhook notification(s) undelivered at shutdown", queue_.size());
  queue_.clear();
}

void alert_webhooks::notify(const serve::alert_transition& t) {
  const std::string line = alert_log_json(t);
  if (t.firing && t.status.rule.severity != "info")
    spdlog::warn("{}", line);
  else
    spdlog::info("{}", line);
  if (cfg_.webhooks.empty()) return;
  const std::string body = alert_webhook_json(t, external_url_);
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    for (size_t i = 0; i < cfg_.webhooks.size(); ++i) {
      if (stats_[i].queued >= kMaxQueuedPerHook) {
        const auto oldest = std::find_if(queue_.begin(), queue_.end(),
                                         [&](const delivery& d) { return d.hook == i; });
        if (oldest != queue_.end()) {
          queue_.erase(oldest);
          --stats_[i].queued;
          ++stats_[i].dropped;
        }
      }
      queue_.push_back({i, body, 0, std::chrono::steady_clock::now()});
      ++stats_[i].queued;
    }
  }
  wake_.notify_all();
}

std::vector<webhook_stats> alert_webhooks::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void alert_webhooks::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (queue_.empty()) {
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      continue;
    }
    // The earliest due delivery; order per webhook is kept because a retry holds back the
    // ones behind it for the same webhook.
    auto it = queue_.begin();
    for (auto j = queue_.begin(); j != queue_.end(); ++j) {
      const bool earlier_same_hook =
          std::any_of(queue_.begin(), j, [&](const delivery& d) { return d.hook == j->hook; });
      if (!earlier_same_hook && j->due < it->due) it = j;
    }
    if (it->due > std::chrono::steady_clock::now()) {
      wake_.wait_until(lock, it->due);
      continue;
    }
    delivery d = *it;
    queue_.erase(it);
    lock.unlock();
    toolkit::run_context ctx;
    ctx.cancel = cancel_;
    ctx.deadline = std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(cfg_.webhook_timeout_s * 1000));
    const auto res = toolkit::http_request("POST", cfg_.webhooks[d.hook], d.body,
                                           "application/json", 64 * 1024, ctx);
    const bool ok = res.status >= 200 && res.status < 300;
    lock.lock();
    auto& st = stats_[d.hook];
    if (ok) {
      ++st.sent;
      --st.queued;
      continue;
    }
    ++st.failed_attempts;
    st.last_error = res.status != 0 ? "HTTP " + std::to_string(res.status) : res.error;
    if (++d.attempts >= cfg_.webhook_max_attempts) {
      ++st.dropped;
      --st.queued;
      spdlog::warn("alerting: webhook {} failed {} times ({}); notification dropped", st.url,
                   d.attempts, st.last_error);
      continue;
    }
    const double delay = std::min(cfg_.webhook_backoff_max_s,
                                  cfg_.webhook_backoff_s * std::ldexp(1.0, d.attempts - 1));
    d.due = std::chrono::steady_clock::now() +
            std::chrono::milliseconds(static_cast<int64_t>(delay * 1000));
    // Back at the front of its webhook's deliveries, so later ones wait behind it.
    auto pos = std::find_if(queue_.begin(), queue_.end(),
                            [&](const delivery& q) { return q.hook == d.hook; });
    queue_.insert(pos, std::move(d));
  }
}

}  // namespace conclave::net
