// API keys, limits and usage (see the header).
#include "serve/tenants.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

namespace conclave::serve {
namespace {

constexpr auto kMinute = std::chrono::seconds(60);
/// Flushes between two reads of the store's keys (5 s at the default usage_flush_s).
constexpr unsigned kReloadEvery = 5;

std::string random_hex(size_t bytes) {
  std::random_device rd;  // getrandom(2) on Linux
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    const auto b = static_cast<unsigned>(rd()) & 0xffu;
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Seconds until `at` is a minute old (at least 1).
int retry_after(tenants::clock_type::time_point at, tenants::clock_type::time_point now) {
  const double s = std::chrono::duration<double>(at + kMinute - now).count();
  return std::max(1, static_cast<int>(std::ceil(s)));
}

}  // namespace

tenants::tenants(std::shared_ptr<store::state_store> store,
                 const std::vector<std::string>& static_keys)
    : store_(std::move(store)) {
  int i = 0;
  for (const auto& k : static_keys) {
    store::key_record r;
    r.id = "config-" + std::to_string(++i);
    r.name = "server.api_keys[" + std::to_string(i - 1) + "]";
    r.secret_hash = store::sha256_hex(k);
    static_keys_.push_back(r);
  }
  if (!store_) store_ = store::memory_store();
  std::vector<store::key_record> stored;
  try {
    stored = store_->keys();
    keys_loaded_ = true;
  } catch (const store::store_error& e) {
    note_store_failure(e.what());
  }
  set_keys(std::move(stored));
}

void tenants::set_keys(std::vector<store::key_record> stored) {
  std::lock_guard lock(mutex_);
  by_hash_.clear();
  for (const auto& r : static_keys_) by_hash_[r.secret_hash] = r;
  for (auto& r : stored) by_hash_[r.secret_hash] = std::move(r);
  if (!by_hash_.empty()) auth_required_ = true;
}

std::optional<store::key_record> tenants::find(const std::string& secret) const {
  const std::string hash = store::sha256_hex(secret);
  std::lock_guard lock(mutex_);
  const auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  return it->second;
}

bool tenants::auth_required() const {
  std::lock_guard lock(mutex_);
  return auth_required_ || !keys_loaded_;
}

void tenants::trim(window& w, clock_type::time_point now) {
  while (!w.requests.empty() && now - w.requests.front().first >= kMinute) w.requests.pop_front();
  while (!w.tokens.empty() && now - w.tokens.front().first >= kMinute) w.tokens.pop_front();
}

std::optional<tenant_refusal> tenants::admit(const store::key_record& key, const std::string& model,
                                             clock_type::time_point now) {
  const auto& lim = key.limits;
  if (!lim.models.empty() &&
      std::find(lim.models.begin(), lim.models.end(), model) == lim.models.end())
    return tenant_refusal{403, fmt::format("this API key may not use the model \"{}\"", model),
                          "model_not_allowed", 0};
  std::lock_guard lock(mutex_);
  auto& w = windows_[key.id];
  trim(w, now);
  if (lim.concurrent > 0 && w.running >= lim.concurrent)
    return tenant_refusal{
        429,
        fmt::format("this API key already runs {} requests, its limit (concurrent)", w.running),
        "rate_limit_exceeded", 1};
  if (lim.requests_per_min > 0 && static_cast<int64_t>(w.requests.size()) >= lim.requests_per_min)
    return tenant_refusal{429,
                          fmt::format("this API key made {} requests in the last minute, its "
                                      "limit (requests_per_min)",
                                      w.requests.size()),
                          "rate_limit_exceeded", retry_after(w.requests.front().first, now)};
  if (lim.tokens_per_min > 0) {
    int64_t used = 0;
    for (const auto& [t, n] : w.tokens) used += n;
    if (used >= lim.tokens_per_min) {
      // Until enough of the minute's tokens age out to go below the limit.
      int64_t left = used;
      auto at = w.tokens.front().first;
      for (const auto& [t, n] : w.tokens) {
        at = t;
        left -= n;
        if (left < lim.tokens_per_min) break;
      }
      return tenant_refusal{429,
                            fmt::format("this API key used {} tokens in the last minute, its "
                                        "limit is {} (tokens_per_min)",
                                        used, lim.tokens_per_min),
                            "rate_limit_exceeded", retry_after(at, now)};
    }
  }
  w.requests.emplace_back(now, 1);
  ++w.running;
  return std::nullopt;
}

void tenants::finish(const std::string& key_id, const std::string& model, int64_t prompt_tokens,
                     int64_t completion_tokens, clock_type::time_point now) {
  std::lock_guard lock(mutex_);
  auto& w = windows_[key_id];
  w.running = std::max<int64_t>(0, w.running - 1);
  const int64_t tokens =
      std::max<int64_t>(0, prompt_tokens) + std::max<int64_t>(0, completion_tokens);
  if (tokens > 0) w.tokens.emplace_back(now, tokens);
  trim(w, now);
  store::add_usage_to(pending_, {key_id, model, 1, std::max<int64_t>(0, prompt_tokens),
                                 std::max<int64_t>(0, completion_tokens)});
}

std::pair<store::key_record, std::string> tenants::create_key(const std::string& name,
                                                              const store::key_limits& limits) {
  if (name.empty() || name.size() > 128 || std::any_of(name.begin(), name.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
      }))
    throw std::invalid_argument("name must be 1-128 characters without control characters");
  if (limits.requests_per_min < 0 || limits.tokens_per_min < 0 || limits.concurrent < 0 ||
      limits.max_context < 0)
    throw std::invalid_argument("limits must be >= 0 (0: no limit)");
  for (const auto& m : limits.models)
    if (m.empty() || std::any_of(m.begin(), m.end(), [](char c) {
          return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
        }))
      throw std::invalid_argument("models must be model names");
  store::key_record r;
  r.id = "key-" + random_hex(8);
  r.name = name;
  r.limits = limits;
  r.created_ms = now_ms();
  const std::string secret = "ck-" + random_hex(24);
  r.secret_hash = store::sha256_hex(secret);
  // Stored first: a key the store did not take would vanish at the next restart, so the
  // caller hears of it (a store_error, answered 503) instead.
  store_->put_key(r);
  std::lock_guard lock(mutex_);
  by_hash_[r.secret_hash] = r;
  auth_required_ = true;
  return {r, secret};
}

bool tenants::delete_key(const std::string& id) {
  if (id.rfind("config-", 0) == 0) return false;  // the config's keys change with the config
  const bool stored = store_->delete_key(id);
  std::lock_guard lock(mutex_);
  const auto before = by_hash_.size();
  std::erase_if(by_hash_, [&](const auto& e) { return e.second.id == id; });
  return stored || by_hash_.size() != before;
}

std::vector<store::key_record> tenants::keys() const {
  std::lock_guard lock(mutex_);
  std::vector<store::key_record> out;
  for (const auto& [h, r] : by_hash_)
    if (r.id.rfind("config-", 0) != 0) out.push_back(r);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

std::vector<store::usage_row> tenants::usage() {
  store::usage_table sum;
  try {
    for (auto& r : store_->usage()) sum[{r.key_id, r.model}] = std::move(r);
  } catch (const store::store_error& e) {
    note_store_failure(e.what());
  }
  std::lock_guard lock(mutex_);
  for (const auto& [k, p] : pending_) store::add_usage_to(sum, p);
  std::vector<store::usage_row> out;
  for (auto& [k, v] : sum) out.push_back(std::move(v));
  return out;
}

bool tenants::flush() {
  std::vector<store::usage_row> rows;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [k, v] : pending_) rows.push_back(v);
    pending_.clear();
  }
  bool reload = false;
  {
    std::lock_guard lock(mutex_);
    // The store's keys again now and then (other gateways make and delete keys), and at
    // once when they could not be read before.
    reload = degraded_ || !keys_loaded_ || ++flushes_ % kReloadEvery == 0;
  }
  if (rows.empty() && !reload) return true;
  try {
    if (!rows.empty()) store_->add_usage(rows);
    if (reload) {
      set_keys(store_->keys());
      std::lock_guard lock(mutex_);
      keys_loaded_ = true;
    }
  } catch (const store::store_error& e) {
    note_store_failure(e.what());
    std::lock_guard lock(mutex_);
    for (const auto& r : rows) store::add_usage_to(pending_, r);  // with what came meanwhile
    return false;
  }
  bool recovered = false;
  {
    std::lock_guard lock(mutex_);
    recovered = degraded_;
    degraded_ = false;
  }
  if (recovered)
    spdlog::warn("state store {} answers again: keys loaded, usage written", store_->describe());
  std::lock_guard lock(mutex_);
  return pending_.empty();
}

void tenants::note_store_failure(const std::string& what) {
  std::lock_guard lock(mutex_);
  if (!degraded_)
    spdlog::warn("state store failed ({}); serving from memory, usage kept until it answers", what);
  degraded_ = true;
}

std::string tenants::describe() const {
  const std::string what = store_->describe();  // (not under mutex_: it may wait on the store)
  std::lock_guard lock(mutex_);
  return what + (degraded_ ? " (degraded: memory)" : "");
}

bool tenants::degraded() const {
  std::lock_guard lock(mutex_);
  return degraded_;
}

}  // namespace conclave::serve
