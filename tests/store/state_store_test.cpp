// The gateway's state store (store/state_store.h): the same cases on memory, SQLite and a
// real redis-server; persistence across reopening; a corrupt and a locked SQLite file, and
// Redis going away and coming back.
#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "store/state_store.h"
#include "tests/fixture.h"
#include "tests/redis_server.h"
#include "tests/skip.h"

using namespace conclave;
using namespace conclave::test;

namespace {

store::key_record key(const std::string& id, int64_t rpm = 0) {
  store::key_record r;
  r.id = id;
  r.name = "name of " + id;
  r.secret_hash = store::sha256_hex("secret " + id);
  r.limits.requests_per_min = rpm;
  r.limits.tokens_per_min = 1000;
  r.limits.models = {"a", "b/c"};
  r.created_ms = 1234;
  return r;
}

/// The cases every store passes; `reopen` gives a fresh handle on the same data (or null
/// for the memory store, which keeps nothing).
void common_cases(store::state_store& s,
                  const std::function<std::unique_ptr<store::state_store>()>& reopen) {
  CHECK(s.keys().empty());
  CHECK(s.usage().empty());
  s.put_key(key("key-1", 5));
  s.put_key(key("key-2"));
  s.put_key(key("key-1", 7));  // replaced
  auto keys = s.keys();
  REQUIRE(keys.size() == 2);
  std::sort(keys.begin(), keys.end(), [](auto& a, auto& b) { return a.id < b.id; });
  CHECK(keys[0].id == "key-1");
  CHECK(keys[0].limits.requests_per_min == 7);
  CHECK(keys[0].limits.models == std::vector<std::string>{"a", "b/c"});
  CHECK(keys[0].secret_hash == store::sha256_hex("secret key-1"));
  CHECK(keys[1].limits.models == std::vector<std::string>{"a", "b/c"});
  CHECK(s.delete_key("key-2"));
  CHECK_FALSE(s.delete_key("key-2"));
  CHECK(s.keys().size() == 1);

  s.add_usage({{"key-1", "m", 1, 10, 20}, {"key-1", "n", 2, 1, 2}});
  s.add_usage({{"key-1", "m", 3, 5, 5}});
  auto usage = s.usage();
  std::sort(usage.begin(), usage.end(), [](auto& a, auto& b) { return a.model < b.model; });
  REQUIRE(usage.size() == 2);
  CHECK(usage[0].requests == 4);
  CHECK(usage[0].prompt_tokens == 15);
  CHECK(usage[0].completion_tokens == 25);
  CHECK(usage[1].requests == 2);

  // The stream journal: a header, events in batches, a repeated batch, an expired stream.
  const int64_t far = 4'000'000'000'000;  // ms: year 2096
  CHECK_FALSE(s.journal("chatcmpl-1"));
  store::journal_update u;
  u.is_new = true;
  u.entry = {"chatcmpl-1", "key-1", "chat", R"({"messages":[]})", 0xfedcba9876543210ull, 1700000000,
             {"e1", "e2"}, false,   far};
  s.write_journal({u});
  store::journal_update more;
  more.first = 3;
  more.entry = u.entry;
  more.entry.body.clear();  // written only with the header
  more.entry.events = {"e3", "e4\n\"x\""};
  more.entry.finished = true;
  s.write_journal({more});
  more.first = 2;  // a batch written again (a lost reply): nothing twice
  more.entry.events = {"e2", "e3"};
  s.write_journal({more});
  store::journal_update late;  // a stream that is not there (expired) is not brought back
  late.entry = u.entry;
  late.entry.id = "chatcmpl-gone";
  s.write_journal({late});
  CHECK_FALSE(s.journal("chatcmpl-gone"));
  auto j = s.journal("chatcmpl-1");
  REQUIRE(j);
  CHECK(j->key_id == "key-1");
  CHECK(j->route == "chat");
  CHECK(j->body == R"({"messages":[]})");
  CHECK(j->seed == 0xfedcba9876543210ull);
  CHECK(j->created == 1700000000);
  CHECK(j->finished);
  CHECK(j->events == std::vector<std::string>{"e1", "e2", "e3", "e4\n\"x\""});
  CHECK(j->expires_ms > far - 60'000);
  s.expire_journal(1);  // nothing expired yet
  CHECK(s.journal("chatcmpl-1"));

  if (!reopen) return;
  auto again = reopen();
  CHECK(again->keys().size() == 1);
  CHECK(again->keys()[0].limits.requests_per_min == 7);
  CHECK(again->usage().size() == 2);
  auto j2 = again->journal("chatcmpl-1");
  REQUIRE(j2);
  CHECK(j2->events.size() == 4);
}

/// A stream written to expire at `expires_ms`.
void write_stream(store::state_store& s, const std::string& id, int64_t expires_ms) {
  store::journal_update u;
  u.is_new = true;
  u.entry.id = id;
  u.entry.route = "completion";
  u.entry.events = {"a"};
  u.entry.expires_ms = expires_ms;
  s.write_journal({u});
}

}  // namespace

TEST_CASE("state store: memory", "[store]") {
  auto s = store::open_store("memory");
  CHECK(s->describe() == "memory");
  common_cases(*s, nullptr);
}

TEST_CASE("state store: journaled streams expire", "[store]") {
  temp_dir dir;
  for (const std::string& url :
       {std::string("memory"), "sqlite:" + (dir.path() / "j.db").string()}) {
    auto s = store::open_store(url);
    const int64_t now = 1'800'000'000'000;
    write_stream(*s, "old", now - 1);
    write_stream(*s, "new", now + 60'000);
    s->expire_journal(now);
    CHECK_FALSE(s->journal("old"));
    REQUIRE(s->journal("new"));
    CHECK(s->journal("new")->events == std::vector<std::string>{"a"});
  }
}

TEST_CASE("state store: SQLite keeps keys and usage across reopening", "[store]") {
  temp_dir dir;
  const std::string url = "sqlite:" + (dir.path() / "sub" / "state.db").string();
  auto s = store::open_store(url);
  common_cases(*s, [&] { return store::open_store(url); });
  // Two handles on one file (two gateways on one host) see each other's writes.
  auto other = store::open_store(url);
  other->add_usage({{"key-9", "m", 1, 1, 1}});
  CHECK(s->usage().size() == 3);
}

TEST_CASE("state store: Redis, shared by two connections", "[store][redis]") {
  redis_server redis;
  if (!redis.available()) CONCLAVE_SKIP("redis-server is not installed (scripts/setup.sh)");
  auto s = store::open_store(redis.url());
  CHECK(s->describe().find("redis 127.0.0.1:") == 0);
  common_cases(*s, [&] { return store::open_store(redis.url()); });
  // Another prefix is another namespace.
  CHECK(store::open_store(redis.url("other"))->keys().empty());
  // Streams expire on their own (PEXPIREAT).
  write_stream(*s, "old", 1);
  CHECK_FALSE(s->journal("old"));
  write_stream(*s, "new", 4'000'000'000'000);
  CHECK(s->journal("new"));
}

TEST_CASE("state store: Redis going away fails calls with store_error, and coming back works",
          "[store][redis]") {
  redis_server redis;
  if (!redis.available()) CONCLAVE_SKIP("redis-server is not installed (scripts/setup.sh)");
  auto s = store::open_store(redis.url());
  s->put_key(key("key-1"));
  redis.kill(false);
  CHECK_THROWS_AS(s->put_key(key("key-2")), store::store_error);
  CHECK_THROWS_AS(s->usage(), store::store_error);
  redis.kill(true);  // back, empty (it keeps nothing on disk)
  s->put_key(key("key-3"));
  REQUIRE(s->keys().size() == 1);
  CHECK(s->keys()[0].id == "key-3");
  // No server at all: opening fails clearly, the lazy store opens later.
  redis.kill(false);
  CHECK_THROWS_AS(store::open_store(redis.url()), store::store_error);
  auto lazy = store::open_store_lazily(redis.url(), 0.0);
  CHECK_THROWS_AS(lazy->keys(), store::store_error);
  redis.kill(true);
  CHECK(lazy->keys().empty());
}

TEST_CASE("state store: a corrupt SQLite file and a locked one are clear store_errors", "[store]") {
  temp_dir dir;
  const auto bad = dir.path() / "bad.db";
  std::ofstream(bad) << std::string(8192, 'x');  // not a database
  try {
    store::open_store("sqlite:" + bad.string());
    FAIL("opened a file that is not a database");
  } catch (const store::store_error& e) {
    CHECK(std::string(e.what()).find(bad.string()) != std::string::npos);
  }
  // Locked: another connection holds an exclusive transaction; writes fail after the busy
  // timeout instead of waiting for ever.
  const auto path = dir.path() / "locked.db";
  auto s = store::open_store("sqlite:" + path.string());
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE", nullptr, nullptr,
                       nullptr) == SQLITE_OK);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(s->add_usage({{"k", "m", 1, 1, 1}}), store::store_error);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  s->add_usage({{"k", "m", 1, 1, 1}});  // and works once the lock is gone
  CHECK(s->usage().size() == 1);
  // Bad URLs are refused at once.
  CHECK_THROWS_AS(store::open_store("sqlite:"), std::invalid_argument);
  CHECK_THROWS_AS(store::open_store("postgres://x"), std::invalid_argument);
  CHECK_THROWS_AS(store::open_store_lazily("redis://h:99999"), std::invalid_argument);
}

TEST_CASE("state store: key records round-trip their encoding, malformed ones are refused",
          "[store]") {
  const auto k = key("key-1", 3);
  const auto back = store::decode_key(store::encode_key(k));
  CHECK(back.id == k.id);
  CHECK(back.name == k.name);
  CHECK(back.limits.tokens_per_min == 1000);
  CHECK(back.limits.models == k.limits.models);
  CHECK(back.created_ms == 1234);
  CHECK_THROWS_AS(store::decode_key("a\x1f"
                                    "b"),
                  store::store_error);
  CHECK(store::sha256_hex("abc") ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
