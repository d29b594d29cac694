// The gateway's admin JSON (see the header).
#include "net/admin_keys.h"

#include <boost/json.hpp>
#include <stdexcept>

namespace conclave::net {
namespace json = boost::json;
namespace {

json::object key_object(const store::key_record& k) {
  json::array models;
  for (const auto& m : k.limits.models) models.push_back(json::string(m));
  return {{"id", k.id},
          {"name", k.name},
          {"created_ms", k.created_ms},
          {"limits", json::object{{"requests_per_min", k.limits.requests_per_min},
                                  {"tokens_per_min", k.limits.tokens_per_min},
                                  {"concurrent", k.limits.concurrent},
                                  {"max_context", k.limits.max_context},
                                  {"models", std::move(models)}}}};
}

}  // namespace

std::pair<std::string, store::key_limits> decode_key_request(std::string_view body) {
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) throw std::invalid_argument("the body must be a JSON object");
  const json::object& o = v.get_object();
  std::string name;
  store::key_limits lim;
  for (const auto& [key, x] : o) {
    const std::string k(key);
    if (k == "name") {
      if (!x.is_string()) throw std::invalid_argument("'name' must be a string");
      name = std::string(x.get_string());
    } else if (k == "requests_per_min" || k == "tokens_per_min" || k == "concurrent" ||
               k == "max_context") {
      if (!x.is_int64() || x.get_int64() < 0)
        throw std::invalid_argument("'" + k + "' must be a non-negative integer (0: no limit)");
      const int64_t n = x.get_int64();
      if (k == "requests_per_min") lim.requests_per_min = n;
      if (k == "tokens_per_min") lim.tokens_per_min = n;
      if (k == "concurrent") lim.concurrent = n;
      if (k == "max_context") lim.max_context = n;
    } else if (k == "models") {
      if (!x.is_array()) throw std::invalid_argument("'models' must be an array of model names");
      for (const auto& m : x.get_array()) {
        if (!m.is_string()) throw std::invalid_argument("'models' must be an array of model names");
        lim.models.emplace_back(m.get_string());
      }
    } else {
      throw std::invalid_argument("unknown field '" + k + "'");
    }
  }
  if (name.empty()) throw std::invalid_argument("'name' must be given");
  return {name, lim};
}

std::string key_json(const store::key_record& k, const std::string& secret) {
  json::object o = key_object(k);
  if (!secret.empty()) o["key"] = secret;
  return json::serialize(o);
}

std::string keys_json(const std::vector<store::key_record>& keys) {
  json::array a;
  for (const auto& k : keys) a.push_back(key_object(k));
  return json::serialize(json::object{{"keys", std::move(a)}});
}

std::string usage_json(const std::vector<store::usage_row>& rows, const std::string& store,
                       bool degraded) {
  json::array a;
  for (const auto& r : rows)
    a.push_back(json::object{{"key_id", r.key_id},
                             {"model", r.model},
                             {"requests", r.requests},
                             {"prompt_tokens", r.prompt_tokens},
                             {"completion_tokens", r.completion_tokens}});
  return json::serialize(
      json::object{{"store", store}, {"degraded", degraded}, {"usage", std::move(a)}});
}

}  // namespace conclave::net
