// state_store: what a gateway keeps across restarts (API keys with their limits, usage
// per key and model, the journal of resumable streams), behind one plain interface with three
// implementations: memory (a process's lifetime), SQLite (embedded, WAL mode; the default of
// `conclave serve`) and Redis (several gateways sharing state). Every call may throw store_error
// when the backing store fails; callers degrade to memory and retry (serve/tenants.h).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace conclave::store {

class store_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Per-key limits; 0 (or empty) is "no limit".
struct key_limits {
  int64_t requests_per_min = 0;
  int64_t tokens_per_min = 0;       ///< prompt + completion tokens
  int64_t concurrent = 0;           ///< requests running at once
  int64_t max_context = 0;          ///< prompt + max_tokens of one request
  std::vector<std::string> models;  ///< the models it may use; empty: all
};

/// An API key as stored: its secret only as a SHA-256 hash.
struct key_record {
  std::string id;           ///< public handle ("key-" + 16 hex digits)
  std::string name;         ///< what the admin called it
  std::string secret_hash;  ///< hex SHA-256 of the secret
  key_limits limits;
  int64_t created_ms = 0;
};

/// Usage of one key on one model, summed.
struct usage_row {
  std::string key_id, model;
  int64_t requests = 0, prompt_tokens = 0, completion_tokens = 0;
};

/// The row of (delta.key_id, delta.model) in `rows`, created when missing, with `delta`'s
/// counts added: how usage is summed everywhere.
using usage_table = std::map<std::pair<std::string, std::string>, usage_row>;
void add_usage_to(usage_table& rows, const usage_row& delta);

/// A resumable stream as the journal keeps it (serve/stream_journal.h): the request that
/// started it and the events it sent, numbered from 1.
struct journal_entry {
  std::string id;                   ///< the request's id ("chatcmpl-..." / "cmpl-...")
  std::string key_id;               ///< the API key it ran under; "" on a server without keys
  std::string route;                ///< "chat" or "completion"
  std::string body;                 ///< the request's JSON body as the client sent it
  uint64_t seed = 0;                ///< the sampling seed it ran with
  int64_t created = 0;              ///< the `created` of its chunks (Unix seconds)
  std::vector<std::string> events;  ///< events 1..N (wire payloads), in order
  bool finished = false;            ///< its last event is among them
  int64_t expires_ms = 0;           ///< Unix milliseconds after which it is gone
};

/// One stream's part of a journal write: its header (every field but `events`; the body
/// is written only when `is_new`), and its events from number `first` on (entry.events
/// holds only those).
struct journal_update {
  journal_entry entry;
  int64_t first = 1;
  bool is_new = false;
};

/// Applies one journal update to streams kept in memory, as every store applies it.
void apply_journal_update(std::map<std::string, journal_entry>& streams, const journal_update& u);

class state_store {
 public:
  virtual ~state_store() = default;
  /// "memory", "sqlite PATH" or "redis HOST:PORT".
  virtual std::string describe() const = 0;

  /// Adds or replaces the key with record.id.
  virtual void put_key(const key_record& record) = 0;
  /// False when there was no such key.
  virtual bool delete_key(const std::string& id) = 0;
  virtual std::vector<key_record> keys() = 0;

  /// Adds `rows` (deltas) to the stored sums, atomically as a whole.
  virtual void add_usage(const std::vector<usage_row>& rows) = 0;
  virtual std::vector<usage_row> usage() = 0;

  /// Writes the updates, atomically as a whole. An update whose stream is not stored (and
  /// is not new) is dropped: it expired.
  virtual void write_journal(const std::vector<journal_update>& updates) = 0;
  /// The stream `id` as stored, or nothing (never stored, or expired).
  virtual std::optional<journal_entry> journal(const std::string& id) = 0;
  /// Forgets streams whose expires_ms is before `now_ms` (Redis expires them itself).
  virtual void expire_journal(int64_t now_ms) = 0;
};

/// Opens a store from its URL: "memory", "sqlite:PATH" (created with its folder when
/// missing) or "redis://HOST[:PORT][/PREFIX]" (PREFIX namespaces the keys; default
/// "conclave"). Throws std::invalid_argument for a malformed URL, store_error when the
/// store cannot be opened (a corrupt or locked file, no Redis server).
std::unique_ptr<state_store> open_store(const std::string& url);

/// A store that opens `url` on first use and, while it cannot, throws store_error on
/// every call (trying again at most every `retry` seconds), so a server starts and serves
/// while its store is missing, locked or down. Throws std::invalid_argument at once for a
/// malformed URL.
std::unique_ptr<state_store> open_store_lazily(const std::string& url, double retry_s = 5.0);

/// A fresh in-memory store.
std::unique_ptr<state_store> memory_store();

/// A key record as one string (fields joined by \x1f, models by \x1e; the names and
/// models the admin API accepts hold no control characters), and back: decode throws
/// store_error for a malformed one.
std::string encode_key(const key_record& r);
key_record decode_key(const std::string& s);

/// Lowercase hex SHA-256 of `text`.
std::string sha256_hex(const std::string& text);

}  // namespace conclave::store
