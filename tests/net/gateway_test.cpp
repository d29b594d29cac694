// The gateway's keys on a real server (docs/gateway.md), on SQLite and on Redis: an admin
// key creates user keys, whose limits answer 429 with Retry-After; a user key is refused on
// the admin routes; usage is kept in the store and survives a restart; a store that goes
// away leaves requests served and usage held until it is back.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include "store/state_store.h"
#include "tests/net/test_client.h"
#include "tests/redis_server.h"
#include "tests/skip.h"

using namespace conclave;
using namespace conclave::test;
namespace json = boost::json;

namespace {

using header_list = std::vector<std::pair<std::string, std::string>>;
const header_list admin{{"Authorization", "Bearer admin-key-1"}};

header_list bearer(const std::string& key) {
  return {{"Authorization", "Bearer " + key}};
}

std::string small_completion(int max_tokens = 3) {
  return R"({"model":"tiny","prompt":"Hello","temperature":0,"max_tokens":)" +
         std::to_string(max_tokens) + "}";
}

std::function<void(config::server_config&)> with_store(const std::string& url) {
  return [url](config::server_config& c) {
    c.api_keys = {"config-user-key"};
    c.admin_keys = {"admin-key-1"};
    c.gateway.store = url;
    c.gateway.usage_flush_s = 0.05;
  };
}

json::object usage_of(uint16_t port) {
  http_client c(port);
  const auto r = c.call(http::verb::get, "/admin/usage", {}, admin);
  REQUIRE(r.status == 200);
  return json::parse(r.body).as_object();
}

/// The store's rows for `key_id` once they hold `requests` (written by the flusher).
json::object wait_usage(uint16_t port, const std::string& key_id, int64_t requests) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    const auto u = usage_of(port);
    for (const auto& row : u.at("usage").as_array())
      if (row.at("key_id") == key_id.c_str() && row.at("requests").to_number<int64_t>() >= requests)
        return row.as_object();
    if (std::chrono::steady_clock::now() > deadline) FAIL("no usage row for " << key_id);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

/// Every case of the suite on the store at `url`.
void gateway_suite(const std::string& url) {
  std::string secret, id;
  {
    test_server s(with_store(url));
    const uint16_t port = s.port();
    // A user key cannot manage keys; the admin key can.
    const std::string spec = R"({"name":"team a","requests_per_min":2,"models":["tiny"]})";
    CHECK(post_json(port, "/admin/keys", spec, bearer("config-user-key")).status == 403);
    CHECK(post_json(port, "/admin/keys", spec).status == 401);
    CHECK(post_json(port, "/admin/keys", R"({"name":"x","rpm":1})", admin).status == 400);
    const auto made = post_json(port, "/admin/keys", spec, admin);
    REQUIRE(made.status == 201);
    const auto k = json::parse(made.body).as_object();
    secret = std::string(k.at("key").as_string());
    id = std::string(k.at("id").as_string());
    CHECK(k.at("limits").at("requests_per_min") == 2);
    // Listed without its secret.
    http_client c(port);
    const auto list = c.call(http::verb::get, "/admin/keys", {}, admin);
    REQUIRE(list.status == 200);
    CHECK(list.body.find(id) != std::string::npos);
    CHECK(list.body.find(secret) == std::string::npos);
    CHECK(c.call(http::verb::get, "/admin/usage", {}, bearer(secret)).status == 403);

    // Two requests a minute: the third is refused with Retry-After.
    CHECK(post_json(port, "/v1/completions", small_completion(), bearer(secret)).status == 200);
    CHECK(post_json(port, "/v1/completions", small_completion(), bearer(secret)).status == 200);
    const auto limited = post_json(port, "/v1/completions", small_completion(), bearer(secret));
    CHECK(limited.status == 429);
    REQUIRE(limited.headers.count("Retry-After") == 1);
    const int retry = std::stoi(limited.headers.at("Retry-After"));
    CHECK(retry >= 1);
    CHECK(retry <= 60);
    CHECK(limited.body.find("rate_limit_exceeded") != std::string::npos);
    // The config's key has no limits; an unknown key is 401.
    CHECK(
        post_json(port, "/v1/completions", small_completion(), bearer("config-user-key")).status ==
        200);
    CHECK(post_json(port, "/v1/completions", small_completion(), bearer("ck-nope")).status == 401);

    const auto row = wait_usage(port, id, 2);
    CHECK(row.at("model") == "tiny");
    CHECK(row.at("completion_tokens").to_number<int64_t>() == 6);
    CHECK(row.at("prompt_tokens").to_number<int64_t>() > 0);
  }
  // A restart: the key still opens the door, its usage is still there.
  test_server s(with_store(url));
  const uint16_t port = s.port();
  CHECK(post_json(port, "/v1/completions", small_completion(), bearer(secret)).status == 200);
  CHECK(wait_usage(port, id, 3).at("completion_tokens").to_number<int64_t>() == 9);
  // Limits on the model and the context.
  const auto narrow = post_json(port, "/admin/keys",
                                R"({"name":"narrow","models":["other"],"max_context":8})", admin);
  REQUIRE(narrow.status == 201);
  const std::string narrow_key(json::parse(narrow.body).at("key").as_string());
  const auto refused = post_json(port, "/v1/completions", small_completion(), bearer(narrow_key));
  CHECK(refused.status == 403);
  CHECK(refused.body.find("model_not_allowed") != std::string::npos);
  const auto wide = post_json(port, "/admin/keys", R"({"name":"short","max_context":8})", admin);
  const std::string short_key(json::parse(wide.body).at("key").as_string());
  const auto too_long = post_json(port, "/v1/completions", small_completion(50), bearer(short_key));
  CHECK(too_long.status == 400);
  CHECK(too_long.body.find("This API key's maximum context length is 8 tokens") !=
        std::string::npos);
  // Deleting a key closes its door.
  http_client c(port);
  const std::string wide_id(json::parse(wide.body).at("id").as_string());
  CHECK(c.call(http::verb::delete_, "/admin/keys/" + wide_id, {}, admin).status == 200);
  CHECK(c.call(http::verb::delete_, "/admin/keys/" + wide_id, {}, admin).status == 404);
  CHECK(post_json(port, "/v1/completions", small_completion(), bearer(short_key)).status == 401);
}

}  // namespace

TEST_CASE("gateway keys, limits and usage on SQLite", "[server][gateway]") {
  temp_dir dir;
  gateway_suite("sqlite:" + (dir.path() / "state.db").string());
}

TEST_CASE("gateway keys, limits and usage on Redis", "[server][gateway][redis]") {
  redis_server redis;
  if (!redis.available()) CONCLAVE_SKIP("redis-server is not installed (scripts/setup.sh)");
  gateway_suite(redis.url());
}

TEST_CASE("gateway: Redis going away mid-run leaves requests served and usage held",
          "[server][gateway][redis]") {
  redis_server redis;
  if (!redis.available()) CONCLAVE_SKIP("redis-server is not installed (scripts/setup.sh)");
  test_server s(with_store(redis.url()));
  const uint16_t port = s.port();
  const auto made = post_json(port, "/admin/keys", R"({"name":"k"})", admin);
  REQUIRE(made.status == 201);
  const std::string secret(json::parse(made.body).at("key").as_string());
  const std::string id(json::parse(made.body).at("id").as_string());
  redis.kill(false);
  CHECK(post_json(port, "/v1/completions", small_completion(), bearer(secret)).status == 200);
  CHECK(post_json(port, "/v1/completions", small_completion(), bearer(secret)).status == 200);
  // New keys cannot be promised while the store is away: 503, nothing half-made.
  CHECK(post_json(port, "/admin/keys", R"({"name":"later"})", admin).status == 503);
  // The usage is held (and shown) while the store is away.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  json::object u;
  do {
    u = usage_of(port);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (!u.at("degraded").as_bool() && std::chrono::steady_clock::now() < deadline);
  CHECK(u.at("degraded").as_bool());
  CHECK(wait_usage(port, id, 2).at("completion_tokens").to_number<int64_t>() == 6);
  // Back (empty: this redis keeps nothing on disk): the held usage is written to it.
  redis.kill(true);
  const auto back = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  bool written = false;
  while (!written && std::chrono::steady_clock::now() < back) {
    written = store::open_store(redis.url())->usage().size() == 1;
    if (!written) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(written);
  CHECK_FALSE(usage_of(port).at("degraded").as_bool());
}

TEST_CASE(
    "gateway: a corrupt SQLite file leaves the server serving from memory, with a clear "
    "error where a write is needed",
    "[server][gateway]") {
  temp_dir dir;
  const auto file = dir.path() / "state.db";
  {
    std::ofstream f(file);
    f << std::string(4096, 'x');
  }
  test_server s(with_store("sqlite:" + file.string()));
  const uint16_t port = s.port();
  CHECK(post_json(port, "/v1/completions", small_completion(), bearer("config-user-key")).status ==
        200);
  const auto u = usage_of(port);
  CHECK(u.at("degraded").as_bool());
  CHECK(u.at("store").as_string().find(file.string()) != json::string::npos);
  const auto refused = post_json(port, "/admin/keys", R"({"name":"k"})", admin);
  CHECK(refused.status == 503);
  CHECK(refused.body.find("file is not a database") != std::string::npos);
}

TEST_CASE("gateway: without admin keys the config's keys administer, a managed key never does",
          "[server][gateway][auth]") {
  test_server s([](config::server_config& c) { c.api_keys = {"config-user-key"}; });
  const uint16_t port = s.port();
  const auto made =
      post_json(port, "/admin/keys", R"({"name":"tenant"})", bearer("config-user-key"));
  REQUIRE(made.status == 201);
  const std::string managed(json::parse(made.body).at("key").as_string());
  CHECK(post_json(port, "/v1/completions", small_completion(), bearer(managed)).status == 200);
  // It may not mint itself another key, list keys or read the usage.
  CHECK(post_json(port, "/admin/keys", R"({"name":"mine"})", bearer(managed)).status == 403);
  http_client c(port);
  CHECK(c.call(http::verb::get, "/admin/usage", {}, bearer(managed)).status == 403);
  CHECK(c.call(http::verb::get, "/admin/usage", {}, bearer("config-user-key")).status == 200);
}
