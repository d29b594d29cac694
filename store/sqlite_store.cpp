// The SQLite state store (see the header).
#include "store/sqlite_store.h"

#include <sqlite3.h>

#include <filesystem>
#include <mutex>

namespace conclave::store {
namespace {

constexpr int kBusyTimeoutMs = 2000;

class statement {
 public:
  statement(sqlite3* db, const char* sql, const std::string& where) : db_(db), where_(where) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) fail("prepare");
  }
  ~statement() { sqlite3_finalize(stmt_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  statement& bind(int i, const std::string& v) {
    if (sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) !=
        SQLITE_OK)
      fail("bind");
    return *this;
  }
  statement& bind(int i, int64_t v) {
    if (sqlite3_bind_int64(stmt_, i, v) != SQLITE_OK) fail("bind");
    return *this;
  }
  /// True while a row is there.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("step");
    return false;
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p),
                                      static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }

 private:
  [[noreturn]] void fail(const char* what) const {
    throw store_error(where_ + ": " + what + ": " + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string where_;
};

class sqlite_store final : public state_store {
 public:
  explicit sqlite_store(std::string path) : path_(std::move(path)), where_("sqlite " + path_) {
    if (const auto dir = std::filesystem::path(path_).parent_path(); !dir.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
    }
    const int rc = sqlite3_open_v2(
        path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
        nullptr);
    if (rc != SQLITE_OK) {
      const std::string msg = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      db_ = nullptr;
      throw store_error(where_ + ": cannot open: " + msg);
    }
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    try {
      // A file that is not a database (or is corrupt) fails here, at the first read.
      statement wal(db_, "PRAGMA journal_mode=WAL", where_);
      if (!wal.step() || wal.text(0) != "wal")
        throw store_error(where_ + ": cannot switch to WAL mode (got " + wal.text(0) + ")");
      exec("PRAGMA synchronous=NORMAL");
      exec(
          "CREATE TABLE IF NOT EXISTS keys(id TEXT PRIMARY KEY, record TEXT NOT NULL);"
          "CREATE TABLE IF NOT EXISTS usage(key_id TEXT NOT NULL, model TEXT NOT NULL,"
          " requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL,"
          " completion_tokens INTEGER NOT NULL, PRIMARY KEY(key_id, model));"
          "CREATE TABLE IF NOT EXISTS journal(id TEXT PRIMARY KEY, key_id TEXT NOT NULL,"
          " route TEXT NOT NULL, body TEXT NOT NULL, seed INTEGER NOT NULL,"
          " created INTEGER NOT NULL, finished INTEGER NOT NULL, expires_ms INTEGER NOT NULL);"
          "CREATE TABLE IF NOT EXISTS journal_events(id TEXT NOT NULL, n INTEGER NOT NULL,"
          " event TEXT NOT NULL, PRIMARY KEY(id, n));"
          "CREATE INDEX IF NOT EXISTS journal_expiry ON journal(expires_ms)");
      statement check(db_, "PRAGMA quick_check", where_);
      if (!check.step() || check.text(0) != "ok")
        throw store_error(where_ + ": the database is corrupt (" + check.text(0) + ")");
    } catch (...) {
      sqlite3_close(db_);
      db_ = nullptr;
      throw;
    }
  }
  ~sqlite_store() override { sqlite3_close(db_); }

  std::string describe() const override { return "sqlite " + path_; }

  void put_key(const key_record& r) override {
    std::lock_guard lock(mutex_);
    statement s(db_, "INSERT OR REPLACE INTO keys(id, record) VALUES(?1, ?2)", where_);
    s.bind(1, r.id).bind(2, encode_key(r)).step();
  }
  bool delete_key(const std::string& id) override {
    std::lock_guard lock(mutex_);
    statement s(db_, "DELETE FROM keys WHERE id = ?1", where_);
    s.bind(1, id).step();
    return sqlite3_changes(db_) > 0;
  }
  std::vector<key_record> keys() override {
    std::lock_guard lock(mutex_);
    statement s(db_, "SELECT record FROM keys ORDER BY id", where_);
    std::vector<key_record> out;
    while (s.step()) out.push_back(decode_key(s.text(0)));
    return out;
  }
  void add_usage(const std::vector<usage_row>& rows) override {
    if (rows.empty()) return;
    std::lock_guard lock(mutex_);
    transaction([&] {
      statement s(db_,
                  "INSERT INTO usage(key_id, model, requests, prompt_tokens, completion_tokens)"
                  " VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(key_id, model) DO UPDATE SET"
                  " requests = requests + excluded.requests,"
                  " prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
                  " completion_tokens = completion_tokens + excluded.completion_tokens",
                  where_);
      for (const auto& r : rows) {
        s.bind(1, r.key_id).bind(2, r.model).bind(3, r.requests).bind(4, r.prompt_tokens);
        s.bind(5, r.completion_tokens).step();
        s.reset();
      }
    });
  }
  std::vector<usage_row> usage() override {
    std::lock_guard lock(mutex_);
    statement s(db_,
                "SELECT key_id, model, requests, prompt_tokens, completion_tokens FROM usage"
                " ORDER BY key_id, model",
                where_);
    std::vector<usage_row> out;
    while (s.step())
      out.push_back({s.text(0), s.text(1), s.integer(2), s.integer(3), s.integer(4)});
    return out;
  }

  void write_journal(const std::vector<journal_update>& updates) override {
    if (updates.empty()) return;
    std::lock_guard lock(mutex_);
    transaction([&] {
      statement add(db_,
                    "INSERT OR IGNORE INTO journal(id, key_id, route, body, seed, created,"
                    " finished, expires_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    where_);
      statement mark(db_, "UPDATE journal SET finished = ?2, expires_ms = ?3 WHERE id = ?1",
                     where_);
      statement event(db_,
                      "INSERT OR IGNORE INTO journal_events(id, n, event) SELECT ?1, ?2, ?3"
                      " WHERE EXISTS(SELECT 1 FROM journal WHERE id = ?1)",
                      where_);
      for (const auto& u : updates) {
        const journal_entry& e = u.entry;
        if (u.is_new) {
          add.bind(1, e.id).bind(2, e.key_id).bind(3, e.route).bind(4, e.body);
          add.bind(5, static_cast<int64_t>(e.seed)).bind(6, e.created);
          add.bind(7, int64_t{e.finished}).bind(8, e.expires_ms).step();
          add.reset();
        }
        mark.bind(1, e.id).bind(2, int64_t{e.finished}).bind(3, e.expires_ms).step();
        mark.reset();
        for (size_t i = 0; i < e.events.size(); ++i) {
          event.bind(1, e.id).bind(2, u.first + static_cast<int64_t>(i)).bind(3, e.events[i]);
          event.step();
          event.reset();
        }
      }
    });
  }
  std::optional<journal_entry> journal(const std::string& id) override {
    std::lock_guard lock(mutex_);
    statement h(db_,
                "SELECT key_id, route, body, seed, created, finished, expires_ms FROM journal"
                " WHERE id = ?1",
                where_);
    if (!h.bind(1, id).step()) return std::nullopt;
    journal_entry e;
    e.id = id;
    e.key_id = h.text(0);
    e.route = h.text(1);
    e.body = h.text(2);
    e.seed = static_cast<uint64_t>(h.integer(3));
    e.created = h.integer(4);
    e.finished = h.integer(5) != 0;
    e.expires_ms = h.integer(6);
    statement ev(db_, "SELECT n, event FROM journal_events WHERE id = ?1 ORDER BY n", where_);
    ev.bind(1, id);
    // Events from 1 without a gap (a gap cannot be written; stop at one all the same).
    while (ev.step() && ev.integer(0) == static_cast<int64_t>(e.events.size()) + 1)
      e.events.push_back(ev.text(1));
    return e;
  }
  void expire_journal(int64_t now_ms) override {
    std::lock_guard lock(mutex_);
    transaction([&] {
      statement ev(db_,
                   "DELETE FROM journal_events WHERE id IN (SELECT id FROM journal WHERE"
                   " expires_ms < ?1)",
                   where_);
      ev.bind(1, now_ms).step();
      statement h(db_, "DELETE FROM journal WHERE expires_ms < ?1", where_);
      h.bind(1, now_ms).step();
    });
  }

 private:
  /// Runs `body` inside BEGIN IMMEDIATE ... COMMIT; rolled back when it throws.
  template <class F>
  void transaction(F&& body) {
    exec("BEGIN IMMEDIATE");
    try {
      body();
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string msg = err != nullptr ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      throw store_error(where_ + ": " + msg);
    }
  }

  std::string path_, where_;
  sqlite3* db_ = nullptr;
  std::mutex mutex_;
};

}  // namespace

std::unique_ptr<state_store> open_sqlite_store(const std::string& path) {
  return std::make_unique<sqlite_store>(path);
}

}  // namespace conclave::store
