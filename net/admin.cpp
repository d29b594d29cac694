#include "net/admin.h"

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <stdexcept>

namespace conclave::net {
namespace json = boost::json;

namespace {

json::object topology_json(const serve::cluster_topology& t) {
  json::array nodes;
  for (const auto& n : t.nodes) {
    json::array gpus, slots;
    for (const auto& g : n.gpus) gpus.push_back(json::string(g));
    for (int32_t r : n.slot_replica) slots.push_back(r);
    nodes.push_back(json::object{{"id", n.id},
                                 {"epoch", n.epoch},
                                 {"host", n.host},
                                 {"pid", n.pid},
                                 {"version", n.version},
                                 {"cpu_ranks", n.cpu_ranks},
                                 {"gpus", std::move(gpus)},
                                 {"cores", n.cores},
                                 {"memory_mib", n.memory_mib},
                                 {"slot_replica", std::move(slots)}});
  }
  json::array replicas;
  for (const auto& r : t.replicas) {
    json::array ranks;
    for (const auto& where : r.ranks) ranks.push_back(json::string(where));
    json::array placement, load;
    for (const auto& layer : r.placement) {
      json::array experts;
      for (const auto& holders : layer) {
        json::array h;
        for (int32_t rank : holders) h.push_back(rank);
        experts.push_back(std::move(h));
      }
      placement.push_back(std::move(experts));
    }
    for (const auto& layer : r.expert_load) {
      json::array counts;
      for (uint64_t n : layer) counts.push_back(n);
      load.push_back(std::move(counts));
    }
    replicas.push_back(json::object{{"replica", r.replica},
                                    {"epoch", r.epoch},
                                    {"placement_version", r.placement_version},
                                    {"ranks", std::move(ranks)},
                                    {"imbalance", r.imbalance},
                                    {"rebalances", r.rebalances},
                                    {"placement", std::move(placement)},
                                    {"expert_load", std::move(load)}});
  }
  return json::object{{"ranks_per_replica", t.ranks_per_replica},
                      {"nodes", std::move(nodes)},
                      {"replicas", std::move(replicas)},
                      {"joins", t.joins},
                      {"losses", t.losses},
                      {"refusals", t.refusals}};
}

}  // namespace

std::string cluster_json(const std::vector<serve::replica_snapshot>& replicas,
                         const serve::cluster_topology& topology) {
  json::array out;
  for (const auto& r : replicas) {
    json::array history;
    for (const auto& h : r.history) {
      history.push_back(json::object{
          {"time_ms",
           std::chrono::duration_cast<std::chrono::milliseconds>(h.when.time_since_epoch())
               .count()},
          {"check", h.check},
          {"ok", h.ok},
          {"latency_ms", h.latency_ms},
          {"detail", h.detail}});
    }
    out.push_back(json::object{{"id", r.id},
                               {"state", serve::to_string(r.state)},
                               {"healthy", r.healthy},
                               {"restarts", r.restarts},
                               {"backend", r.backend},
                               {"kv_blocks_total", r.kv_blocks_total},
                               {"kv_blocks_free", r.kv_blocks_free},
                               {"running", r.running},
                               {"waiting", r.waiting},
                               {"busy_seconds", r.busy_seconds},
                               {"last_error", r.last_error},
                               {"health", std::move(history)}});
  }
  json::object body{{"replicas", std::move(out)}};
  if (topology.enabled) body["cluster"] = topology_json(topology);
  return json::serialize(body);
}

fault_request decode_fault_request(std::string_view body) {
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) throw std::invalid_argument("the body must be a JSON object");
  const json::object& o = v.get_object();
  fault_request f;
  const json::value* kind = o.if_contains("fault");
  if (kind == nullptr || !kind->is_string())
    throw std::invalid_argument("'fault' must be a string");
  const std::string name(kind->get_string());
  if (name == "kill_session" || name == "kill_tool") {
    f.what = name == "kill_session" ? fault_request::target::session : fault_request::target::tool;
    const char* key = name == "kill_session" ? "request" : "call";
    if (const json::value* id = o.if_contains(key)) {
      if (!id->is_string())
        throw std::invalid_argument(std::string("'") + key + "' must be a string");
      f.id = std::string(id->get_string());
    }
    return f;
  }
  if (name == "kill_node") {
    f.what = fault_request::target::node;
    const json::value* node = o.if_contains("node");
    if (node == nullptr || !node->is_int64())
      throw std::invalid_argument("'node' must be an integer (a node id from /admin/cluster)");
    f.node = static_cast<int32_t>(node->get_int64());
    return f;
  }
  try {
    f.kind = serve::parse_fault_kind(name);
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument("unknown fault \"" + name +
                                "\" (expected fail_step, hang_step, crash_worker, crash_engine, "
                                "kill_session, kill_tool or kill_node)");
  }
  const json::value* replica = o.if_contains("replica");
  if (replica == nullptr || !replica->is_int64())
    throw std::invalid_argument("'replica' must be an integer");
  f.replica = static_cast<int>(replica->get_int64());
  return f;
}

std::string killed_json(const std::string& id) {
  return json::serialize(json::object{{"status", "killed"}, {"id", id}});
}

config::model_spec decode_model_spec(std::string_view body) {
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) throw std::invalid_argument("the body must be a JSON object");
  const json::object& o = v.get_object();
  config::model_spec m;
  const auto text = [&](const char* key, std::string& out, bool required) {
    const json::value* x = o.if_contains(key);
    if (x == nullptr) {
      if (required) throw std::invalid_argument(std::string("'") + key + "' must be given");
      return;
    }
    if (!x->is_string()) throw std::invalid_argument(std::string("'") + key + "' must be a string");
    out = std::string(x->get_string());
  };
  const auto integer = [&](const char* key, auto& out) {
    const json::value* x = o.if_contains(key);
    if (x == nullptr) return;
    if (!x->is_int64())
      throw std::invalid_argument(std::string("'") + key + "' must be an integer");
    out = static_cast<std::decay_t<decltype(out)>>(x->get_int64());
  };
  for (const auto& [key, x] : o) {
    static const std::vector<std::string_view> known{"name",      "path",          "aliases",
                                                     "tokenizer", "chat_template", "replicas",
                                                     "backend",   "device",        "kv_cache_mib"};
    if (std::find(known.begin(), known.end(), std::string_view(key)) == known.end())
      throw std::invalid_argument("unknown field '" + std::string(key) + "'");
    (void)x;
  }
  text("name", m.name, true);
  text("path", m.path, true);
  text("tokenizer", m.tokenizer, false);
  text("chat_template", m.chat_template, false);
  text("backend", m.backend, false);
  integer("replicas", m.replicas);
  integer("device", m.device);
  integer("kv_cache_mib", m.kv_cache_mib);
  if (const json::value* a = o.if_contains("aliases")) {
    if (!a->is_array()) throw std::invalid_argument("'aliases' must be an array of strings");
    for (const auto& x : a->get_array()) {
      if (!x.is_string()) throw std::invalid_argument("'aliases' must be an array of strings");
      m.aliases.emplace_back(x.get_string());
    }
  }
  if (auto err = m.validate(); !err.empty()) throw std::invalid_argument(err);
  return m;
}

std::string model_status_json(const serve::model_status& m) {
  json::array aliases;
  for (const auto& a : m.aliases) aliases.emplace_back(a);
  json::object o{{"id", m.name},
                 {"aliases", std::move(aliases)},
                 {"state", m.state},
                 {"max_model_len", m.max_model_len}};
  if (!m.error.empty()) o["error"] = m.error;
  return json::serialize(o);
}

}  // namespace conclave::net
