// open_store, the memory store and SHA-256 (see the header).
#include "store/state_store.h"

#include <openssl/evp.h>

#include <chrono>
#include <map>
#include <mutex>

#include "store/redis_store.h"
#include "store/sqlite_store.h"

namespace conclave::store {
namespace {

class memory final : public state_store {
 public:
  std::string describe() const override { return "memory"; }
  void put_key(const key_record& r) override {
    std::lock_guard lock(mutex_);
    keys_[r.id] = r;
  }
  bool delete_key(const std::string& id) override {
    std::lock_guard lock(mutex_);
    return keys_.erase(id) > 0;
  }
  std::vector<key_record> keys() override {
    std::lock_guard lock(mutex_);
    std::vector<key_record> out;
    for (const auto& [id, r] : keys_) out.push_back(r);
    return out;
  }
  void add_usage(const std::vector<usage_row>& rows) override {
    std::lock_guard lock(mutex_);
    for (const auto& r : rows) add_usage_to(usage_, r);
  }
  std::vector<usage_row> usage() override {
    std::lock_guard lock(mutex_);
    std::vector<usage_row> out;
    for (const auto& [k, u] : usage_) out.push_back(u);
    return out;
  }
  void write_journal(const std::vector<journal_update>& updates) override {
    std::lock_guard lock(mutex_);
    for (const auto& u : updates) apply_journal_update(journal_, u);
  }
  std::optional<journal_entry> journal(const std::string& id) override {
    std::lock_guard lock(mutex_);
    const auto it = journal_.find(id);
    if (it == journal_.end()) return std::nullopt;
    return it->second;
  }
  void expire_journal(int64_t now_ms) override {
    std::lock_guard lock(mutex_);
    std::erase_if(journal_, [&](const auto& kv) { return kv.second.expires_ms < now_ms; });
  }

 private:
  std::mutex mutex_;
  std::map<std::string, key_record> keys_;
  usage_table usage_;
  std::map<std::string, journal_entry> journal_;
};

/// Parses a URL as open_store does, without opening anything.
void check_url(const std::string& url);

class lazy final : public state_store {
 public:
  lazy(std::string url, double retry_s) : url_(std::move(url)), retry_(retry_s) {}
  std::string describe() const override {
    // Never waits for an open in progress (a connect may take seconds).
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock()) return url_ + " (opening)";
    return inner_ ? inner_->describe() : url_ + " (not open)";
  }
  void put_key(const key_record& r) override { get()->put_key(r); }
  bool delete_key(const std::string& id) override { return get()->delete_key(id); }
  std::vector<key_record> keys() override { return get()->keys(); }
  void add_usage(const std::vector<usage_row>& rows) override { get()->add_usage(rows); }
  std::vector<usage_row> usage() override { return get()->usage(); }
  void write_journal(const std::vector<journal_update>& updates) override {
    get()->write_journal(updates);
  }
  std::optional<journal_entry> journal(const std::string& id) override {
    return get()->journal(id);
  }
  void expire_journal(int64_t now_ms) override { get()->expire_journal(now_ms); }

 private:
  std::shared_ptr<state_store> get() {
    std::lock_guard lock(mutex_);
    if (inner_) return inner_;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_try_) throw store_error(url_ + ": not open (" + last_error_ + ")");
    try {
      inner_ = open_store(url_);
    } catch (const store_error& e) {
      last_error_ = e.what();
      next_try_ = now + std::chrono::milliseconds(static_cast<int64_t>(retry_ * 1000));
      throw;
    }
    return inner_;
  }

  const std::string url_;
  const double retry_;
  mutable std::mutex mutex_;
  std::shared_ptr<state_store> inner_;
  std::chrono::steady_clock::time_point next_try_;
  std::string last_error_;
};

}  // namespace

std::unique_ptr<state_store> open_store_lazily(const std::string& url, double retry_s) {
  check_url(url);
  return std::make_unique<lazy>(url, retry_s);
}

void apply_journal_update(std::map<std::string, journal_entry>& streams, const journal_update& u) {
  auto it = streams.find(u.entry.id);
  if (it == streams.end()) {
    if (!u.is_new) return;  // expired meanwhile
    it = streams.emplace(u.entry.id, u.entry).first;
    it->second.events.clear();
  }
  journal_entry& e = it->second;
  e.finished = u.entry.finished;
  e.expires_ms = u.entry.expires_ms;
  // Events land at their numbers; a repeated write of the same numbers changes nothing.
  for (size_t i = 0; i < u.entry.events.size(); ++i) {
    const size_t at = static_cast<size_t>(u.first - 1) + i;
    if (at < e.events.size()) continue;
    if (at > e.events.size()) break;  // a gap: never written that way
    e.events.push_back(u.entry.events[i]);
  }
}

void add_usage_to(usage_table& rows, const usage_row& delta) {
  auto& u = rows[{delta.key_id, delta.model}];
  u.key_id = delta.key_id;
  u.model = delta.model;
  u.requests += delta.requests;
  u.prompt_tokens += delta.prompt_tokens;
  u.completion_tokens += delta.completion_tokens;
}

std::unique_ptr<state_store> memory_store() {
  return std::make_unique<memory>();
}

namespace {

struct parsed_url {
  enum class kind { memory, sqlite, redis } what = kind::memory;
  std::string path, host, prefix = "conclave";
  int port = 6379;
};

parsed_url parse_url(const std::string& url) {
  parsed_url p;
  if (url == "memory") return p;
  if (url.rfind("sqlite:", 0) == 0) {
    p.what = parsed_url::kind::sqlite;
    p.path = url.substr(7);
    if (p.path.empty()) throw std::invalid_argument("store URL \"sqlite:\" needs a file path");
    return p;
  }
  if (url.rfind("redis://", 0) == 0) {
    p.what = parsed_url::kind::redis;
    std::string rest = url.substr(8);
    if (const auto slash = rest.find('/'); slash != std::string::npos) {
      if (slash + 1 < rest.size()) p.prefix = rest.substr(slash + 1);
      rest = rest.substr(0, slash);
    }
    p.host = rest;
    if (const auto colon = rest.rfind(':'); colon != std::string::npos) {
      p.host = rest.substr(0, colon);
      try {
        size_t used = 0;
        p.port = std::stoi(rest.substr(colon + 1), &used);
        if (used != rest.size() - colon - 1 || p.port < 1 || p.port > 65535) throw std::exception();
      } catch (const std::exception&) {
        throw std::invalid_argument("store URL \"" + url + "\": bad port");
      }
    }
    if (p.host.empty()) throw std::invalid_argument("store URL \"" + url + "\": no host");
    return p;
  }
  throw std::invalid_argument("store URL \"" + url +
                              "\" must be memory, sqlite:PATH or redis://HOST[:PORT][/PREFIX]");
}

void check_url(const std::string& url) {
  parse_url(url);
}

}  // namespace

std::unique_ptr<state_store> open_store(const std::string& url) {
  const parsed_url p = parse_url(url);
  switch (p.what) {
    case parsed_url::kind::memory:
      return memory_store();
    case parsed_url::kind::sqlite:
      return open_sqlite_store(p.path);
    case parsed_url::kind::redis:
      return open_redis_store(p.host, p.port, p.prefix);
  }
  return memory_store();
}

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

}  // namespace

std::string encode_key(const key_record& r) {
  std::string models;
  for (const auto& m : r.limits.models) models += (models.empty() ? "" : "\x1e") + m;
  const char sep = '\x1f';
  return r.id + sep + r.name + sep + r.secret_hash + sep +
         std::to_string(r.limits.requests_per_min) + sep + std::to_string(r.limits.tokens_per_min) +
         sep + std::to_string(r.limits.concurrent) + sep + std::to_string(r.limits.max_context) +
         sep + models + sep + std::to_string(r.created_ms);
}

key_record decode_key(const std::string& s) {
  const auto f = split(s, '\x1f');
  if (f.size() != 9) throw store_error("a stored key record is malformed");
  key_record r;
  r.id = f[0];
  r.name = f[1];
  r.secret_hash = f[2];
  try {
    r.limits.requests_per_min = std::stoll(f[3]);
    r.limits.tokens_per_min = std::stoll(f[4]);
    r.limits.concurrent = std::stoll(f[5]);
    r.limits.max_context = std::stoll(f[6]);
    r.created_ms = std::stoll(f[8]);
  } catch (const std::exception&) {
    throw store_error("a stored key record has a malformed number");
  }
  if (!f[7].empty()) r.limits.models = split(f[7], '\x1e');
  return r;
}

std::string sha256_hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &n, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

}  // namespace conclave::store
