// Tenants (serve/tenants.h): per-key limits over a sliding minute with Retry-After,
// concurrency and allowed models, usage held in memory and written in batches, and a
// store that fails: served from memory, nothing acknowledged lost.
#include <catch2/catch.hpp>

#include "serve/tenants.h"
#include "tests/fixture.h"
#include "tests/store/flaky_store.h"

using namespace conclave;
using namespace conclave::serve;
using conclave::test::temp_dir;
using std::chrono::seconds;

namespace {

using conclave::test::flaky_store;

store::key_limits limits(int64_t rpm, int64_t tpm = 0, int64_t concurrent = 0) {
  store::key_limits l;
  l.requests_per_min = rpm;
  l.tokens_per_min = tpm;
  l.concurrent = concurrent;
  return l;
}

}  // namespace

TEST_CASE("tenants: config keys and created keys authenticate, secrets are stored hashed",
          "[tenants]") {
  auto backing = std::make_unique<flaky_store>();
  auto* raw = backing.get();
  tenants t(std::move(backing), {"config-secret-1"});
  CHECK(t.auth_required());
  REQUIRE(t.find("config-secret-1"));
  CHECK(t.find("config-secret-1")->id == "config-1");
  CHECK_FALSE(t.find("nope"));
  const auto [rec, secret] = t.create_key("team a", limits(10));
  CHECK(secret.rfind("ck-", 0) == 0);
  CHECK(secret.size() == 51);
  REQUIRE(t.find(secret));
  CHECK(t.find(secret)->id == rec.id);
  // The store has the hash, never the secret.
  REQUIRE(raw->inner->keys().size() == 1);
  CHECK(raw->inner->keys()[0].secret_hash == store::sha256_hex(secret));
  CHECK(store::encode_key(raw->inner->keys()[0]).find(secret) == std::string::npos);
  CHECK(t.keys().size() == 1);  // the config's keys are not listed
  CHECK_FALSE(t.delete_key("config-1"));
  CHECK(t.delete_key(rec.id));
  CHECK_FALSE(t.find(secret));
  CHECK_THROWS_AS(t.create_key("", limits(1)), std::invalid_argument);
  CHECK_THROWS_AS(t.create_key("a\nb", limits(1)), std::invalid_argument);
  CHECK_THROWS_AS(t.create_key("x", limits(-1)), std::invalid_argument);
  // A store that cannot take a new key: the caller hears it; nothing half-made.
  raw->down = true;
  CHECK_THROWS_AS(t.create_key("team b", limits(1)), store::store_error);
  CHECK(t.keys().empty());
}

TEST_CASE("tenants: requests per minute, with Retry-After from the oldest request", "[tenants]") {
  tenants t(store::memory_store(), {});
  const auto [k, s] = t.create_key("k", limits(2));
  const auto t0 = tenants::clock_type::now();
  CHECK_FALSE(t.admit(k, "m", t0));
  t.finish(k.id, "m", 1, 1, t0);
  CHECK_FALSE(t.admit(k, "m", t0 + seconds(20)));
  t.finish(k.id, "m", 1, 1, t0 + seconds(20));
  const auto no = t.admit(k, "m", t0 + seconds(30));
  REQUIRE(no);
  CHECK(no->status == 429);
  CHECK(no->code == "rate_limit_exceeded");
  CHECK(no->retry_after_s == 30);  // the first request leaves the minute at t0 + 60 s
  CHECK_FALSE(t.admit(k, "m", t0 + seconds(61)));
}

TEST_CASE("tenants: tokens per minute, concurrency and allowed models", "[tenants]") {
  tenants t(store::memory_store(), {});
  auto l = limits(0, 100, 2);
  l.models = {"small"};
  const auto [k, s] = t.create_key("k", l);
  const auto t0 = tenants::clock_type::now();
  const auto wrong = t.admit(k, "big", t0);
  REQUIRE(wrong);
  CHECK(wrong->status == 403);
  CHECK(wrong->code == "model_not_allowed");
  CHECK_FALSE(t.admit(k, "small", t0));
  CHECK_FALSE(t.admit(k, "small", t0));
  const auto busy = t.admit(k, "small", t0);  // two running already
  REQUIRE(busy);
  CHECK(busy->status == 429);
  t.finish(k.id, "small", 30, 30, t0 + seconds(1));
  t.finish(k.id, "small", 20, 30, t0 + seconds(5));  // 110 tokens in the minute
  const auto spent = t.admit(k, "small", t0 + seconds(10));
  REQUIRE(spent);
  CHECK(spent->status == 429);
  CHECK(spent->message.find("110 tokens") != std::string::npos);
  CHECK(spent->retry_after_s == 51);  // the first 60 tokens age out at t0 + 61 s
  CHECK_FALSE(t.admit(k, "small", t0 + seconds(62)));
}

TEST_CASE("tenants: usage is written in batches, survives a store outage and a restart",
          "[tenants]") {
  temp_dir dir;
  const std::string url = "sqlite:" + (dir.path() / "state.db").string();
  std::string secret, id;
  {
    tenants t(store::open_store(url), {});
    const auto [k, s] = t.create_key("k", limits(0));
    secret = s;
    id = k.id;
    CHECK_FALSE(t.admit(k, "m"));
    t.finish(k.id, "m", 10, 5);
    // Counted at once, written at the next flush.
    REQUIRE(t.usage().size() == 1);
    CHECK(t.usage()[0].completion_tokens == 5);
    CHECK(store::open_store(url)->usage().empty());
    CHECK(t.flush());
    CHECK(store::open_store(url)->usage().size() == 1);
    CHECK(t.admit(k, "m") == std::nullopt);
    t.finish(k.id, "m", 1, 1);
  }  // (no flush: the last batch of a crash is lost; a clean stop flushes)
  tenants again(store::open_store(url), {});
  const auto k = again.find(secret);
  REQUIRE(k);  // the key survived the restart
  CHECK(k->id == id);
  REQUIRE(again.usage().size() == 1);
  CHECK(again.usage()[0].requests == 1);
  CHECK(again.usage()[0].prompt_tokens == 10);

  // A store that goes away: served from memory, usage held, written once it is back.
  auto backing = std::make_unique<flaky_store>();
  auto* raw = backing.get();
  tenants t(std::move(backing), {});
  const auto [k2, s2] = t.create_key("k2", limits(0));
  raw->down = true;
  CHECK_FALSE(t.admit(k2, "m"));  // still serving
  t.finish(k2.id, "m", 3, 4);
  CHECK_FALSE(t.flush());
  CHECK(t.degraded());
  CHECK(t.describe() == "flaky (degraded: memory)");
  REQUIRE(t.usage().size() == 1);  // what the store has not got is still counted
  CHECK(t.usage()[0].completion_tokens == 4);
  raw->down = false;
  CHECK(t.flush());
  CHECK_FALSE(t.degraded());
  REQUIRE(raw->inner->usage().size() == 1);
  CHECK(raw->inner->usage()[0].prompt_tokens == 3);
  CHECK(t.usage()[0].prompt_tokens == 3);  // not counted twice
}

TEST_CASE("tenants: a store down at start loads its keys once it answers", "[tenants]") {
  auto backing = std::make_unique<flaky_store>();
  auto* raw = backing.get();
  raw->inner->put_key([] {
    store::key_record r;
    r.id = "key-old";
    r.name = "old";
    r.secret_hash = store::sha256_hex("ck-old");
    return r;
  }());
  raw->down = true;
  tenants t(std::move(backing), {});
  CHECK(t.degraded());
  CHECK_FALSE(t.find("ck-old"));
  raw->down = false;
  CHECK(t.flush());
  REQUIRE(t.find("ck-old"));
  CHECK(t.find("ck-old")->id == "key-old");
}

TEST_CASE("tenants: authentication fails closed, stays on, and follows other gateways' keys",
          "[tenants]") {
  // A store that cannot be read at start: keys cannot be checked, so they are required.
  auto down = std::make_unique<flaky_store>();
  down->down = true;
  tenants blind(std::move(down), {});
  CHECK(blind.auth_required());
  // A server with no key at all is open; once a key existed, it stays closed.
  tenants open(store::memory_store(), {});
  CHECK_FALSE(open.auth_required());
  const auto [k, s] = open.create_key("k", limits(0));
  CHECK(open.auth_required());
  CHECK(open.delete_key(k.id));
  CHECK(open.auth_required());
  // Two gateways on one store: a key made or deleted on one shows on the other within a
  // few flushes.
  temp_dir dir;
  const std::string url = "sqlite:" + (dir.path() / "state.db").string();
  tenants a(store::open_store(url), {}), b(store::open_store(url), {});
  const auto [made, secret] = a.create_key("shared", limits(0));
  for (int i = 0; i < 5; ++i) b.flush();
  REQUIRE(b.find(secret));
  CHECK(a.delete_key(made.id));
  for (int i = 0; i < 5; ++i) b.flush();
  CHECK_FALSE(b.find(secret));
}
