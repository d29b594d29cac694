// Shared session helpers: ids, authentication, request logs.
#include "net/server_context.h"

#include <sys/resource.h>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <random>

namespace conclave::net {

server_context::server_context(const config::server_config& c, serve::service& s,
                               std::shared_ptr<serve::server_metrics> m)
    : cfg(c),
      service(s),
      metrics(std::move(m)),
      store(store::open_store_lazily(c.gateway.store.empty() ? "memory" : c.gateway.store)),
      tenants(std::make_shared<serve::tenants>(store, c.api_keys)),
      journal(c.gateway.resume_window_s > 0
                  ? std::make_shared<serve::stream_journal>(store, c.gateway.resume_window_s)
                  : nullptr) {
  proto.served_model = s.model_name();
  proto.max_model_len = s.max_model_len();
  proto.resolve_model = [&s](std::string_view name) -> std::optional<std::string> {
    auto found = s.find_model(name);
    if (!found) return std::nullopt;
    return found->name;
  };
}

std::string server_context::new_request_id(const char* prefix) {
  const uint64_t n = next_id.fetch_add(1);
  return fmt::format("{}{:016x}{:08x}", prefix, id_salt ^ (n * 0xbf58476d1ce4e5b9ull),
                     static_cast<uint32_t>(n));
}

namespace {

/// Whether `header` is "Bearer K" for a K in `keys` (constant time in the keys' content:
/// every byte of every key is compared whatever matched).
bool bearer_matches(std::string_view header, const std::vector<std::string>& keys) {
  constexpr std::string_view bearer = "Bearer ";
  if (header.substr(0, bearer.size()) != bearer) return false;
  const std::string_view given = header.substr(bearer.size());
  bool ok = false;
  for (const auto& key : keys) {
    unsigned diff = static_cast<unsigned>(given.size() ^ key.size());
    for (size_t i = 0; i < key.size(); ++i) {
      const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
      diff |= g ^ static_cast<unsigned char>(key[i]);
    }
    ok |= diff == 0;
  }
  return ok;
}

}  // namespace

api_error server_context::refusal_error(const serve::tenant_refusal& no) {
  api_error err{no.status,
                no.message,
                no.status == 429 ? "rate_limit_error" : "permission_error",
                {},
                no.code};
  err.retry_after_s = no.retry_after_s;
  return err;
}

std::optional<store::key_record> server_context::key_of(std::string_view header) const {
  constexpr std::string_view bearer = "Bearer ";
  if (header.substr(0, bearer.size()) != bearer) return std::nullopt;
  return tenants->find(std::string(header.substr(bearer.size())));
}

bool server_context::authorized(std::string_view header) const {
  if (!tenants->auth_required() && cfg.admin_keys.empty()) return true;
  return key_of(header).has_value() || bearer_matches(header, cfg.admin_keys);
}

server_context::admin_auth server_context::authorize_admin(std::string_view header) const {
  if (bearer_matches(header, cfg.admin_keys)) return admin_auth::ok;
  const auto key = key_of(header);
  if (cfg.admin_keys.empty()) {
    if (!tenants->auth_required()) return admin_auth::ok;  // a server without keys
    // Without admin keys the config's keys administer; a managed key never does (it would
    // mint itself an unlimited key).
    if (key && key->id.rfind("config-", 0) == 0) return admin_auth::ok;
  }
  return key ? admin_auth::forbidden : admin_auth::unauthorized;
}

void server_context::log_request(const request_log& r) const {
  if (!spdlog::should_log(spdlog::level::info)) return;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  // Every field is always there (null when it does not apply), so log pipelines can rely
  // on the shape: tenant is null until requests carry one (the gateway's).
  spdlog::info(
      R"({{"event":"request","request_id":{},"route":{},"model":{},"tenant":null,"replica":{},"status":{},"error":{},"latency_ms":{:.1f},"engine_ms":{:.1f},"prompt_tokens":{},"completion_tokens":{},"tool_calls":{},"peak_rss_mb":{:.1f}}})",
      json_string(r.request_id), json_string(r.route),
      r.model.empty() ? std::string("null") : json_string(r.model),
      r.replica >= 0 ? std::to_string(r.replica) : std::string("null"), r.status,
      r.error.empty() ? std::string("null") : json_string(r.error), r.latency_ms, r.engine_ms,
      r.tokens.prompt_tokens, r.tokens.completion_tokens, r.tool_calls,
      static_cast<double>(ru.ru_maxrss) / 1024.0);
}

}  // namespace conclave::net
