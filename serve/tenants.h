// tenants: API keys with limits and usage (#19). Keys managed at run time (POST
// /admin/keys) live in the state store, hashed; the config's server.api_keys are keys
// too, without limits. A request is admitted against its key's limits (requests and
// tokens per minute over a sliding minute, concurrent streams, allowed models); its
// usage is summed per key and model in memory and written to the store in batches
// (flush(), every second from the server), so a restart loses at most the last batch. When
// the store fails, the tenants keep serving from memory, log a warning once, and write
// the usage held back at the next flush that succeeds. Plain C++; thread-safe.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "store/state_store.h"

namespace conclave::serve {

/// Why a request was refused: HTTP status, message, OpenAI error code, and for a 429
/// the seconds after which the same request would pass.
struct tenant_refusal {
  int status = 0;
  std::string message, code;
  int retry_after_s = 0;
};

class tenants {
 public:
  using clock_type = std::chrono::steady_clock;

  /// `store` holds the managed keys and the usage; `static_keys` are the config's keys
  /// (no limits; their ids are "config-1", "config-2"...).
  tenants(std::shared_ptr<store::state_store> store, const std::vector<std::string>& static_keys);

  /// The key a presented secret belongs to, or nothing (looked up by its SHA-256).
  std::optional<store::key_record> find(const std::string& secret) const;
  /// Whether requests must carry a key: once any key existed in this process (config or
  /// store), and while the store's keys could not be read yet (fail closed: a server that
  /// only knows managed keys must not open up because its store is down at start).
  bool auth_required() const;

  /// Admits a request of key `key` for `model`, or says why not. An admitted request
  /// holds a concurrency slot until finish().
  std::optional<tenant_refusal> admit(const store::key_record& key, const std::string& model,
                                      clock_type::time_point now = clock_type::now());
  /// The request admitted for `key_id` ended with these token counts (zeros when it
  /// failed before any): its slot is freed, its tokens counted against tokens_per_min
  /// and added to the usage.
  void finish(const std::string& key_id, const std::string& model, int64_t prompt_tokens,
              int64_t completion_tokens, clock_type::time_point now = clock_type::now());

  /// POST /admin/keys: a new key with `name` and `limits`; returns its record and its
  /// secret ("ck-" + 48 hex digits; shown this once, stored only hashed). Throws
  /// std::invalid_argument for a bad name or limits.
  std::pair<store::key_record, std::string> create_key(const std::string& name,
                                                       const store::key_limits& limits);
  /// DELETE /admin/keys/{id}: false for no such (managed) key.
  bool delete_key(const std::string& id);
  /// The managed keys (not the config's).
  std::vector<store::key_record> keys() const;
  /// GET /admin/usage: the store's sums plus what is not written yet.
  std::vector<store::usage_row> usage();

  /// Writes the usage held in memory to the store; on failure keeps it (and says so in
  /// the log once until a flush succeeds). Returns true when nothing is left to write.
  bool flush();
  /// "sqlite PATH (degraded: memory)" and the like.
  std::string describe() const;
  bool degraded() const;

 private:
  struct window {  ///< the last minute of one key
    std::deque<std::pair<clock_type::time_point, int64_t>> requests, tokens;
    int64_t running = 0;
  };
  static void trim(window& w, clock_type::time_point now);
  void note_store_failure(const std::string& what);

  std::shared_ptr<store::state_store> store_;
  mutable std::mutex mutex_;
  std::map<std::string, store::key_record> by_hash_;  ///< every key, by secret hash
  std::map<std::string, window> windows_;             ///< by key id
  store::usage_table pending_;
  bool degraded_ = false;
  bool keys_loaded_ = false;    ///< the store's keys were read at least once
  bool auth_required_ = false;  ///< sticky: some key existed
  unsigned flushes_ = 0;        ///< the store's keys are read again every kReloadEvery
  std::vector<store::key_record> static_keys_;
  /// Replaces the keys with the config's and `stored` (deletions elsewhere take effect).
  void set_keys(std::vector<store::key_record> stored);
};

}  // namespace conclave::serve
