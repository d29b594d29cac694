// Several models in one server (serve::model_set behind the HTTP front end): /v1/models
// lists them with their state, requests are routed by name or alias, an unknown model is
// a 404; a model loaded and another unloaded at run time while a third streams leave
// that stream token-identical to a quiet run; the unloaded one's running stream drains
// to its end and its later requests get 404.
#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <thread>

#include "actors/actor_service.h"
#include "model/gen_model.h"
#include "net/http_server.h"
#include "serve/model_set.h"
#include "tests/net/test_client.h"

using namespace conclave;
using namespace conclave::test;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

/// A server of several tiny models, each in its own folder.
class multi_server {
 public:
  explicit multi_server(const std::vector<config::model_spec>& specs) {
    config::server_config cfg;
    cfg.port = 0;
    cfg.engine.backend.kv_cache_bytes = size_t{32} << 20;
    cfg.engine.backend.threads = 1;
    cfg.replicas.probe_interval_s = 0;
    cfg.drain_timeout_s = 600;  // an unloaded model's streams finish, however slow (ASan)
    cfg.models = specs;
    metrics_ = std::make_shared<serve::server_metrics>();
    models_ = std::make_unique<serve::model_set>(
        cfg, metrics_,
        [](const config::server_config& c, std::shared_ptr<serve::server_metrics> m) {
          return actors::make_actor_service(c, std::move(m));
        });
    server_ = std::make_unique<net::http_server>(cfg, *models_, metrics_);
    server_->start();
  }
  ~multi_server() {
    server_->stop();
    models_->shutdown();
  }
  uint16_t port() const { return server_->port(); }
  serve::model_set& models() { return *models_; }

 private:
  std::shared_ptr<serve::server_metrics> metrics_;
  std::unique_ptr<serve::model_set> models_;
  std::unique_ptr<net::http_server> server_;
};

/// A random tiny Qwen3-Coder-shaped checkpoint with Qwen3's tokenizer, in dir/name.
std::string make_model(const temp_dir& dir, const std::string& name, uint64_t seed) {
  const fs::path p = dir.path() / name;
  model::gen_model_options o;
  o.preset = "tiny-qwen";
  o.seed = seed;
  model::write_random_checkpoint(o, p);
  fs::copy_file(fs::path(CONCLAVE_QWEN3_TOKENIZER_DIR) / "tokenizer.json", p / "tokenizer.json");
  return p.string();
}

config::model_spec spec(std::string name, std::string path, std::vector<std::string> aliases = {}) {
  config::model_spec s;
  s.name = std::move(name);
  s.path = std::move(path);
  s.aliases = std::move(aliases);
  return s;
}

std::string body(const std::string& model, int max_tokens, bool stream) {
  return json::serialize(json::object{
      {"model", model},
      {"messages", json::array{json::object{{"role", "user"}, {"content", "Count to ten."}}}},
      {"max_tokens", max_tokens},
      {"ignore_eos", true},
      {"temperature", 1.0},
      {"seed", 5},
      {"stream", stream}});
}

/// The streamed text and finish reason of an SSE body.
std::pair<std::string, std::string> streamed_text(const http_reply& r) {
  std::string text, finish;
  for (const auto& ev : sse_events(r.body)) {
    if (ev == "[DONE]") break;
    const json::value v = json::parse(ev);
    if (v.as_object().contains("error")) return {text, "error: " + json::serialize(v)};
    for (const auto& c : v.at("choices").as_array()) {
      const auto& d = c.at("delta").as_object();
      if (const auto* t = d.if_contains("content"); t && t->is_string()) text += t->as_string();
      if (c.at("finish_reason").is_string()) finish = c.at("finish_reason").as_string();
    }
  }
  return {text, finish};
}

json::array model_list(uint16_t port) {
  const auto r = http_client(port).call(http::verb::get, "/v1/models");
  REQUIRE(r.status == 200);
  return json::parse(r.body).at("data").as_array();
}

std::string state_of(uint16_t port, const std::string& name) {
  for (const auto& m : model_list(port))
    if (m.at("id").as_string() == name) return std::string(m.at("state").as_string());
  return "absent";
}

void wait_for(uint16_t port, const std::string& name, const std::string& state, double limit_s) {
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(limit_s * 1000));
  while (state_of(port, name) != state) {
    INFO("waiting for " << name << " to be " << state
                        << "; /v1/models: " << json::serialize(model_list(port)));
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

TEST_CASE("several models: listed with their state, routed by name or alias, unknown is 404",
          "[server][models]") {
  temp_dir dir;
  multi_server s({spec("alpha", make_model(dir, "a", 1), {"a", "first"}),
                  spec("beta", make_model(dir, "b", 2))});
  wait_for(s.port(), "alpha", "ready", 60);
  wait_for(s.port(), "beta", "ready", 60);
  const auto list = model_list(s.port());
  REQUIRE(list.size() == 2);
  CHECK(list[0].at("aliases").as_array().size() == 2);
  CHECK(list[0].at("max_model_len").as_int64() > 0);

  const auto by_alias = post_json(s.port(), "/v1/chat/completions", body("first", 6, false));
  REQUIRE(by_alias.status == 200);
  CHECK(json::parse(by_alias.body).at("model").as_string() == "alpha");
  const auto by_name = post_json(s.port(), "/v1/chat/completions", body("alpha", 6, false));
  CHECK(json::parse(by_name.body).at("choices") == json::parse(by_alias.body).at("choices"));
  // Different weights, different tokens for the same request.
  const auto other = post_json(s.port(), "/v1/chat/completions", body("beta", 6, false));
  REQUIRE(other.status == 200);
  CHECK(json::parse(other.body).at("choices") != json::parse(by_alias.body).at("choices"));

  const auto unknown = post_json(s.port(), "/v1/chat/completions", body("gamma", 6, false));
  CHECK(unknown.status == 404);
  CHECK(json::parse(unknown.body).at("error").at("code").as_string() == "model_not_found");

  // Bad admin input: no checkpoint, a name taken, an unknown model to unload.
  http_client c(s.port());
  CHECK(c.call(http::verb::post, "/admin/models", R"({"name": "x", "path": "/nonexistent/dir"})")
            .status == 400);
  CHECK(c.call(http::verb::post, "/admin/models", R"({"name": "x"})").status == 400);
  CHECK(c.call(http::verb::post, "/admin/models",
               json::serialize(json::object{{"name", "a"}, {"path", (dir.path() / "b").string()}}))
            .status == 409);
  CHECK(c.call(http::verb::delete_, "/admin/models/nope").status == 404);
  CHECK(model_list(s.port()).size() == 2);
}

TEST_CASE("a model loaded and another unloaded at run time while a third streams",
          "[server][models]") {
  temp_dir dir;
  const std::string gamma_path = make_model(dir, "c", 3);
  multi_server s({spec("alpha", make_model(dir, "a", 1)), spec("beta", make_model(dir, "b", 2))});
  wait_for(s.port(), "alpha", "ready", 60);
  wait_for(s.port(), "beta", "ready", 60);

  // Alpha's stream, alone first: what it must stay.
  constexpr int tokens = 1200;
  const auto quiet =
      streamed_text(post_json(s.port(), "/v1/chat/completions", body("alpha", tokens, true)));
  REQUIRE(quiet.second == "length");

  std::atomic<bool> alpha_done{false}, beta_done{false};
  http_reply alpha_reply, beta_reply;
  std::thread alpha([&] {
    alpha_reply = post_json(s.port(), "/v1/chat/completions", body("alpha", tokens, true));
    alpha_done = true;
  });
  std::thread beta([&] {
    beta_reply = post_json(s.port(), "/v1/chat/completions", body("beta", tokens, true));
    beta_done = true;
  });
  while (s.models().active_requests() < 2)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));

  // Load gamma and unload beta while both stream.
  http_client c(s.port());
  const auto load = c.call(http::verb::post, "/admin/models",
                           json::serialize(json::object{{"name", "gamma"}, {"path", gamma_path}}));
  REQUIRE(load.status == 202);
  CHECK(json::parse(load.body).at("state").as_string() == "loading");
  const auto unload = c.call(http::verb::delete_, "/admin/models/beta");
  REQUIRE(unload.status == 202);
  CHECK(json::parse(unload.body).at("state").as_string() == "draining");
  CHECK(state_of(s.port(), "beta") == "draining");
  // From now on beta takes nothing new.
  const auto late = post_json(s.port(), "/v1/chat/completions", body("beta", 4, false));
  CHECK(late.status == 404);
  wait_for(s.port(), "gamma", "ready", 60);
  const auto g = post_json(s.port(), "/v1/chat/completions", body("gamma", 4, false));
  CHECK(g.status == 200);
  const bool overlapped = !alpha_done.load();  // the ops ran while alpha streamed

  alpha.join();
  beta.join();
  CHECK(overlapped);
  // Alpha's stream is untouched; beta's drained to its end before beta went.
  const auto a = streamed_text(alpha_reply);
  CHECK(a.second == "length");
  CHECK(a.first == quiet.first);
  CHECK(streamed_text(beta_reply).second == "length");
  wait_for(s.port(), "beta", "absent", 30);
  const auto names = model_list(s.port());
  REQUIRE(names.size() == 2);
  CHECK(names[0].at("id").as_string() == "alpha");
  CHECK(names[1].at("id").as_string() == "gamma");
}
