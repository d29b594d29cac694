// The Redis state store (see the header).
#include "store/redis_store.h"

#include <hiredis/hiredis.h>

#include <chrono>
#include <map>
#include <mutex>

namespace conclave::store {
namespace {

struct reply_deleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

constexpr char kSep = '\x1f';

class redis_store final : public state_store {
 public:
  redis_store(std::string host, int port, std::string prefix)
      : host_(std::move(host)), port_(port), prefix_(std::move(prefix)) {
    std::lock_guard lock(mutex_);
    try {
      connect();
      command({"PING"});  // a server that wants AUTH answers an error here
    } catch (...) {
      if (ctx_ != nullptr) redisFree(ctx_);  // (no destructor runs for a throwing constructor)
      ctx_ = nullptr;
      throw;
    }
  }
  ~redis_store() override {
    if (ctx_ != nullptr) redisFree(ctx_);
  }

  std::string describe() const override {
    return "redis " + host_ + ":" + std::to_string(port_) + "/" + prefix_;
  }

  void put_key(const key_record& r) override {
    std::lock_guard lock(mutex_);
    command({"HSET", prefix_ + ":keys", r.id, encode_key(r)});
  }
  bool delete_key(const std::string& id) override {
    std::lock_guard lock(mutex_);
    const auto r = command({"HDEL", prefix_ + ":keys", id});
    return r->type == REDIS_REPLY_INTEGER && r->integer > 0;
  }
  std::vector<key_record> keys() override {
    std::lock_guard lock(mutex_);
    const auto r = command({"HGETALL", prefix_ + ":keys"});
    std::vector<key_record> out;
    if (r->type != REDIS_REPLY_ARRAY) throw store_error(describe() + ": HGETALL: unexpected reply");
    for (size_t i = 1; i < r->elements; i += 2)
      out.push_back(decode_key(std::string(r->element[i]->str, r->element[i]->len)));
    return out;
  }
  void add_usage(const std::vector<usage_row>& rows) override {
    if (rows.empty()) return;
    std::lock_guard lock(mutex_);
    // One transaction: every increment lands, or (on an error) none does.
    std::vector<std::vector<std::string>> cmds;
    cmds.push_back({"MULTI"});
    const std::string hash = prefix_ + ":usage";
    for (const auto& u : rows) {
      const std::string field = u.key_id + kSep + u.model + kSep;
      cmds.push_back({"HINCRBY", hash, field + "requests", std::to_string(u.requests)});
      cmds.push_back({"HINCRBY", hash, field + "prompt_tokens", std::to_string(u.prompt_tokens)});
      cmds.push_back(
          {"HINCRBY", hash, field + "completion_tokens", std::to_string(u.completion_tokens)});
    }
    cmds.push_back({"EXEC"});
    pipeline(cmds);
  }
  std::vector<usage_row> usage() override {
    std::lock_guard lock(mutex_);
    const auto r = command({"HGETALL", prefix_ + ":usage"});
    if (r->type != REDIS_REPLY_ARRAY) throw store_error(describe() + ": HGETALL: unexpected reply");
    std::map<std::pair<std::string, std::string>, usage_row> rows;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
      const std::string field(r->element[i]->str, r->element[i]->len);
      const auto a = field.find(kSep), b = field.find(kSep, a + 1);
      if (a == std::string::npos || b == std::string::npos) continue;
      auto& row = rows[{field.substr(0, a), field.substr(a + 1, b - a - 1)}];
      row.key_id = field.substr(0, a);
      row.model = field.substr(a + 1, b - a - 1);
      int64_t v = 0;
      try {
        v = std::stoll(std::string(r->element[i + 1]->str, r->element[i + 1]->len));
      } catch (const std::exception&) {
        throw store_error(describe() + ": usage field " + field + " is not a number");
      }
      const std::string column = field.substr(b + 1);
      if (column == "requests") row.requests = v;
      if (column == "prompt_tokens") row.prompt_tokens = v;
      if (column == "completion_tokens") row.completion_tokens = v;
    }
    std::vector<usage_row> out;
    for (auto& [k, v] : rows) out.push_back(std::move(v));
    return out;
  }

  // A stream is a hash (its header) and a list (its events), both expiring at expires_ms.
  void write_journal(const std::vector<journal_update>& updates) override {
    if (updates.empty()) return;
    std::lock_guard lock(mutex_);
    // What is there already: a stream that expired is not brought back by a late update,
    // and events already stored (a write whose reply was lost) are not appended twice.
    std::vector<std::vector<std::string>> probe;
    for (const auto& u : updates) {
      probe.push_back({"EXISTS", stream_key(u.entry.id)});
      probe.push_back({"LLEN", stream_key(u.entry.id) + ":events"});
    }
    const auto have = pipeline(probe);
    std::vector<std::vector<std::string>> cmds;
    cmds.push_back({"MULTI"});
    for (size_t k = 0; k < updates.size(); ++k) {
      const journal_update& u = updates[k];
      const journal_entry& e = u.entry;
      const bool exists = have[2 * k]->type == REDIS_REPLY_INTEGER && have[2 * k]->integer > 0;
      const int64_t stored =
          have[2 * k + 1]->type == REDIS_REPLY_INTEGER ? have[2 * k + 1]->integer : 0;
      if (!exists && !u.is_new) continue;
      const std::string key = stream_key(e.id), events = key + ":events";
      if (u.is_new && !exists) {
        cmds.push_back({"HSET", key, "key_id", e.key_id, "route", e.route, "body", e.body, "seed",
                        std::to_string(e.seed), "created", std::to_string(e.created)});
      }
      cmds.push_back({"HSET", key, "finished", e.finished ? "1" : "0"});
      const int64_t skip = stored - (u.first - 1);
      if (skip >= 0 && skip < static_cast<int64_t>(e.events.size())) {
        std::vector<std::string> push = {"RPUSH", events};
        push.insert(push.end(), e.events.begin() + skip, e.events.end());
        cmds.push_back(std::move(push));
      }
      cmds.push_back({"PEXPIREAT", key, std::to_string(e.expires_ms)});
      cmds.push_back({"PEXPIREAT", events, std::to_string(e.expires_ms)});
    }
    cmds.push_back({"EXEC"});
    pipeline(cmds);
  }
  std::optional<journal_entry> journal(const std::string& id) override {
    std::lock_guard lock(mutex_);
    const std::string key = stream_key(id);
    const auto r =
        pipeline({{"HGETALL", key}, {"LRANGE", key + ":events", "0", "-1"}, {"PTTL", key}});
    if (r[0]->type != REDIS_REPLY_ARRAY || r[1]->type != REDIS_REPLY_ARRAY)
      throw store_error(describe() + ": journal: unexpected reply");
    if (r[0]->elements == 0) return std::nullopt;
    journal_entry e;
    e.id = id;
    for (size_t i = 0; i + 1 < r[0]->elements; i += 2) {
      const std::string field(r[0]->element[i]->str, r[0]->element[i]->len);
      std::string value(r[0]->element[i + 1]->str, r[0]->element[i + 1]->len);
      try {
        if (field == "key_id") e.key_id = std::move(value);
        if (field == "route") e.route = std::move(value);
        if (field == "body") e.body = std::move(value);
        if (field == "seed") e.seed = std::stoull(value);
        if (field == "created") e.created = std::stoll(value);
        if (field == "finished") e.finished = value == "1";
      } catch (const std::exception&) {
        throw store_error(describe() + ": journal " + id + ": field " + field + " is not a number");
      }
    }
    for (size_t i = 0; i < r[1]->elements; ++i)
      e.events.emplace_back(r[1]->element[i]->str, r[1]->element[i]->len);
    if (r[2]->type == REDIS_REPLY_INTEGER && r[2]->integer >= 0) {  // PTTL: ms left
      e.expires_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count() +
                     r[2]->integer;
    }
    return e;
  }
  void expire_journal(int64_t) override {}  // PEXPIREAT does it

 private:
  void connect() {
    if (ctx_ != nullptr) {
      redisFree(ctx_);
      ctx_ = nullptr;
    }
    const timeval timeout{5, 0};
    ctx_ = redisConnectWithTimeout(host_.c_str(), port_, timeout);
    if (ctx_ == nullptr) throw store_error(describe() + ": cannot allocate a connection");
    if (ctx_->err != 0) {
      const std::string msg = ctx_->errstr;
      redisFree(ctx_);
      ctx_ = nullptr;
      throw store_error(describe() + ": cannot connect: " + msg);
    }
    redisSetTimeout(ctx_, timeout);
  }

  std::string stream_key(const std::string& id) const { return prefix_ + ":journal:" + id; }

  /// Sends `cmds` in one round trip and reads every reply; throws on an error reply.
  std::vector<reply_ptr> pipeline(const std::vector<std::vector<std::string>>& cmds) {
    if (ctx_ == nullptr || ctx_->err != 0) connect();  // a broken connection: reopen once
    for (const auto& c : cmds) append(c);
    // Every reply is read, also after an error, so the connection stays in step.
    std::string error;
    std::vector<reply_ptr> replies;
    for (size_t i = 0; i < cmds.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(ctx_, &raw) != REDIS_OK) fail_connection();
      reply_ptr r(static_cast<redisReply*>(raw));
      if (r->type == REDIS_REPLY_ERROR && error.empty())
        error = cmds[i][0] + ": " + std::string(r->str, r->len);
      replies.push_back(std::move(r));
    }
    if (!error.empty()) throw store_error(describe() + ": " + error);
    return replies;
  }

  reply_ptr command(const std::vector<std::string>& args) {
    if (ctx_ == nullptr || ctx_->err != 0) connect();
    append(args);
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK) fail_connection();
    reply_ptr r(static_cast<redisReply*>(raw));
    if (r->type == REDIS_REPLY_ERROR)
      throw store_error(describe() + ": " + args[0] + ": " + std::string(r->str, r->len));
    return r;
  }

  void append(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    if (redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), argv.data(), lens.data()) !=
        REDIS_OK)
      fail_connection();
  }

  [[noreturn]] void fail_connection() {
    const std::string msg = ctx_ != nullptr ? ctx_->errstr : "no connection";
    if (ctx_ != nullptr) {
      redisFree(ctx_);
      ctx_ = nullptr;  // the next call reconnects
    }
    throw store_error(describe() + ": " + msg);
  }

  std::string host_;
  int port_;
  std::string prefix_;
  redisContext* ctx_ = nullptr;
  std::mutex mutex_;
};

}  // namespace

std::unique_ptr<state_store> open_redis_store(const std::string& host, int port,
                                              const std::string& prefix) {
  return std::make_unique<redis_store>(host, port, prefix);
}

}  // namespace conclave::store
