// TOML loading with typo protection: every key must be known, every value of its type.
#include "config/server_config.h"

#include <spdlog/fmt/fmt.h>

#include <toml++/toml.h>
#include <algorithm>
#include <sstream>
#include <stdexcept>

namespace conclave::config {
namespace {

class table_reader {
 public:
  table_reader(const toml::table& t, std::string section, const std::string& file)
      : t_(t), section_(std::move(section)), file_(file) {}

  bool has(std::string_view key) const { return t_.get(key) != nullptr; }

  template <class T>
  void read(std::string_view key, T& out) {
    seen_.emplace_back(key);
    const toml::node* n = t_.get(key);
    if (n == nullptr) return;
    if constexpr (std::is_same_v<T, bool>) {
      if (auto v = n->value<bool>()) return void(out = *v);
      throw error(key, *n, "true or false");
    } else if constexpr (std::is_integral_v<T>) {
      if (auto v = n->value<int64_t>(); v && *v >= 0) return void(out = static_cast<T>(*v));
      throw error(key, *n, "a non-negative integer");
    } else if constexpr (std::is_floating_point_v<T>) {
      if (auto v = n->value<double>()) return void(out = static_cast<T>(*v));
      throw error(key, *n, "a number");
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (auto v = n->value<std::string>()) return void(out = *v);
      throw error(key, *n, "a string");
    } else {
      static_assert(std::is_same_v<T, std::vector<std::string>>);
      const toml::array* arr = n->as_array();
      if (arr == nullptr) throw error(key, *n, "an array of strings");
      out.clear();
      for (const auto& e : *arr) {
        auto v = e.value<std::string>();
        if (!v) throw error(key, *n, "an array of strings");
        out.push_back(*v);
      }
    }
  }

  /// A sub-table, as JSON text.
  void read_table_as_json(std::string_view key, std::string& out) {
    seen_.emplace_back(key);
    const toml::node* n = t_.get(key);
    if (n == nullptr) return;
    const toml::table* t = n->as_table();
    if (t == nullptr) throw error(key, *n, "a table");
    std::ostringstream json;
    json << toml::json_formatter{*t};
    out = json.str();
  }

  /// Throws for keys that were never read (typos), except sub-tables named in `tables`.
  void reject_unknown(std::initializer_list<std::string_view> tables = {}) const {
    for (const auto& [k, v] : t_) {
      const std::string_view key = k.str();
      if (std::find(seen_.begin(), seen_.end(), key) != seen_.end()) continue;
      if (std::find(tables.begin(), tables.end(), key) != tables.end()) continue;
      throw std::invalid_argument(fmt::format("{}:{}: unknown key \"{}{}\"", file_,
                                              v.source().begin.line,
                                              section_.empty() ? "" : section_ + ".", key));
    }
  }

 private:
  std::invalid_argument error(std::string_view key, const toml::node& n,
                              std::string_view expected) const {
    return std::invalid_argument(fmt::format("{}:{}: \"{}.{}\" must be {}", file_,
                                             n.source().begin.line, section_, key, expected));
  }

  const toml::table& t_;
  std::string section_;
  const std::string& file_;
  std::vector<std::string> seen_;
};

const toml::table& sub_table(const toml::table& root, std::string_view name,
                             const std::string& file) {
  static const toml::table empty;
  const toml::node* n = root.get(name);
  if (n == nullptr) return empty;
  if (const toml::table* t = n->as_table()) return *t;
  throw std::invalid_argument(
      fmt::format("{}:{}: [{}] must be a table", file, n->source().begin.line, name));
}

/// Calls read(reader) for each table of the array of tables `key` in `parent` (none when
/// absent); `name` is the array's name in messages ("tools.webhooks" reads
/// "tools.webhooks[2]").
template <class F>
void each_table(const toml::table& parent, std::string_view key, const std::string& name,
                const std::string& file, F&& read) {
  const toml::node* list = parent.get(key);
  if (list == nullptr) return;
  const toml::array* arr = list->as_array();
  if (arr == nullptr)
    throw std::invalid_argument(fmt::format("{}:{}: \"{}\" must be an array of tables ([[{}]])",
                                            file, list->source().begin.line, name, name));
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::table* t = (*arr)[i].as_table();
    const std::string section = fmt::format("{}[{}]", name, i);
    if (t == nullptr)
      throw std::invalid_argument(fmt::format("{}: \"{}\" must be a table", file, section));
    table_reader reader(*t, section, file);
    read(reader);
    reader.reject_unknown();
  }
}

}  // namespace

std::string server_config::validate() const {
  if (host.empty()) return "server.host must not be empty";
  if (max_body_bytes < 1024) return "server.max_body_bytes must be at least 1024";
  if (max_header_bytes < 1024) return "server.max_header_bytes must be at least 1024";
  if (max_waiting < 1) return "server.max_waiting must be at least 1";
  if (!(drain_timeout_s >= 0)) return "server.drain_timeout_s must be >= 0";
  if (io_threads < 1 || io_threads > 256) return "server.io_threads must be in [1, 256]";
  if (actor_threads < 1 || actor_threads > 256) return "server.actor_threads must be in [1, 256]";
  if (websocket.max_frame_bytes < 1024)
    return "server.websocket.max_frame_bytes must be at least 1024";
  if (websocket.max_buffered_bytes < websocket.max_frame_bytes) {
    return "server.websocket.max_buffered_bytes must be at least max_frame_bytes";
  }
  if (!(websocket.ping_interval_s > 0)) return "server.websocket.ping_interval_s must be > 0";
  for (const auto& k : api_keys) {
    if (k.size() < 8) return "server.api_keys entries must be at least 8 characters";
  }
  for (const auto& k : admin_keys) {
    if (k.size() < 8) return "server.admin_keys entries must be at least 8 characters";
    if (std::find(api_keys.begin(), api_keys.end(), k) != api_keys.end())
      return "server.admin_keys must differ from every server.api_keys entry";
  }
  if (auto e = engine.validate(); !e.empty()) return "engine: " + e;
  if (auto e = replicas.validate(); !e.empty()) return "replicas." + e;
  if (auto e = tools.validate(); !e.empty()) return "tools." + e;
  if (auto e = observability.validate(); !e.empty()) return e;
  if (auto e = gateway.validate(); !e.empty()) return "gateway." + e;
  if (auto e = autoscale.validate(); !e.empty()) return "autoscale." + e;
  if (auto e = cluster.validate(); !e.empty()) return "cluster." + e;
  if (!models.empty()) {
    if (!model_dir.empty()) return "give the model in [model] or in [[models]], not both";
    if (cluster.enabled) return "models: a cluster serves one model ([model]), not [[models]]";
    std::vector<std::string> names;
    for (size_t i = 0; i < models.size(); ++i) {
      if (auto e = models[i].validate(); !e.empty()) return fmt::format("models[{}].{}", i, e);
      names.push_back(models[i].name);
      names.insert(names.end(), models[i].aliases.begin(), models[i].aliases.end());
    }
    std::sort(names.begin(), names.end());
    if (auto d = std::adjacent_find(names.begin(), names.end()); d != names.end())
      return fmt::format("models: the name '{}' is used twice", *d);
  }
  if (autoscale.enabled &&
      (replicas.count < autoscale.min_replicas || replicas.count > autoscale.max_replicas)) {
    return fmt::format(
        "replicas.count ({}) must be within autoscale.min_replicas and max_replicas ({}..{})",
        replicas.count, autoscale.min_replicas, autoscale.max_replicas);
  }
  return {};
}

std::string gateway_config::validate() const {
  if (!store.empty() && store != "memory" && store.rfind("sqlite:", 0) != 0 &&
      store.rfind("redis://", 0) != 0)
    return "store must be memory, sqlite:PATH or redis://HOST[:PORT][/PREFIX]";
  if (store == "sqlite:") return "store: sqlite: needs a file path";
  if (!(usage_flush_s > 0 && usage_flush_s <= 3600)) return "usage_flush_s must be in (0, 3600]";
  if (!(resume_window_s >= 0 && resume_window_s <= 7 * 86400))
    return "resume_window_s must be in [0, 604800]";
  if (!(journal_flush_s > 0 && journal_flush_s <= 60)) return "journal_flush_s must be in (0, 60]";
  return {};
}

std::string autoscale_config::validate() const {
  if (!(interval_s > 0)) return "interval_s must be > 0";
  if (sustain_intervals < 1) return "sustain_intervals must be >= 1";
  if (!(scale_up_utilization > 0 && scale_up_utilization <= 1))
    return "scale_up_utilization must be in (0, 1]";
  if (!(scale_down_utilization >= 0 && scale_down_utilization < scale_up_utilization))
    return "scale_down_utilization must be >= 0 and below scale_up_utilization";
  if (scale_up_waiting < 0) return "scale_up_waiting must be >= 0";
  if (!(cooldown_s >= 0)) return "cooldown_s must be >= 0";
  if (min_replicas < 1) return "min_replicas must be >= 1";
  if (max_replicas < min_replicas || max_replicas > 64)
    return "max_replicas must be in [min_replicas, 64]";
  if (!(drain_timeout_s >= 0)) return "drain_timeout_s must be >= 0";
  return {};
}

std::string cluster_config::validate() const {
  if (host.empty()) return "host must not be empty";
  if (port < 0 || port > 65535) return "port must be in [0, 65535]";
  if (enabled && token_file.empty()) return "token_file must be given when the cluster is on";
  if (ranks_per_replica < 0 || ranks_per_replica > 64)
    return "ranks_per_replica must be in [0, 64] (0: off)";
  if (min_ranks < 1) return "min_ranks must be >= 1";
  if (ranks_per_replica > 0 && min_ranks > ranks_per_replica)
    return "min_ranks must be <= ranks_per_replica";
  if (!(node_timeout_s > 0)) return "node_timeout_s must be > 0";
  if (!(collective_timeout_s > 0)) return "collective_timeout_s must be > 0";
  if (collectives != "auto" && collectives != "gloo" && collectives != "nccl")
    return "collectives must be auto, gloo or nccl, not \"" + collectives + "\"";
  if (!(rebalance_interval_s >= 0)) return "rebalance_interval_s must be >= 0 (0: never)";
  if (!(rebalance_threshold >= 1)) return "rebalance_threshold must be >= 1";
  if (redundant_experts < 0 || redundant_experts > 1024)
    return "redundant_experts must be in [0, 1024]";
  if (tls && (certificate.empty() || key.empty() || cafile.empty()))
    return "tls needs certificate, key and cafile";
  return {};
}

std::string tools_config::validate() const {
  if (max_rounds < 0 || max_rounds > 16) return "max_rounds must be in [0, 16]";
  if (retry_base_ms < 0 || retry_base_ms > 60000) return "retry_base_ms must be in [0, 60000]";
  if (!(sandbox_wall_s > 0)) return "sandbox_wall_s must be > 0";
  if (sandbox_cpu_s < 1) return "sandbox_cpu_s must be >= 1";
  if (sandbox_memory_mib < 64) return "sandbox_memory_mib must be >= 64";
  for (size_t i = 0; i < webhooks.size(); ++i) {
    const auto& w = webhooks[i];
    if (w.name.empty()) return fmt::format("webhooks[{}].name must not be empty", i);
    if (w.url.rfind("http://", 0) != 0)
      return fmt::format("webhooks[{}].url must start with http://", i);
    if (!(w.timeout_s > 0)) return fmt::format("webhooks[{}].timeout_s must be > 0", i);
  }
  for (size_t i = 0; i < plugins.size(); ++i) {
    if (plugins[i].path.empty()) return fmt::format("plugins[{}].path must not be empty", i);
  }
  return {};
}

std::string replica_config::validate() const {
  if (count < 1 || count > 64) return "count must be in [1, 64]";
  if (failover_attempts < 0) return "failover_attempts must be >= 0";
  if (!(failover_timeout_s >= 0)) return "failover_timeout_s must be >= 0";
  if (max_restarts < 0) return "max_restarts must be >= 0";
  if (!(restart_window_s > 0)) return "restart_window_s must be > 0";
  if (!(backoff_reset_s >= 0)) return "backoff_reset_s must be >= 0";
  if (!(restart_backoff_s >= 0)) return "restart_backoff_s must be >= 0";
  if (!(restart_backoff_max_s >= restart_backoff_s))
    return "restart_backoff_max_s must be >= restart_backoff_s";
  if (!(step_timeout_s > 0)) return "step_timeout_s must be > 0";
  if (!(heartbeat_interval_s >= 0)) return "heartbeat_interval_s must be >= 0 (0: none)";
  if (!(probe_interval_s >= 0)) return "probe_interval_s must be >= 0 (0: no probes)";
  if (!(probe_timeout_s > 0)) return "probe_timeout_s must be > 0";
  if (unhealthy_after < 1) return "unhealthy_after must be >= 1";
  if (!(hang_s >= 0)) return "hang_s must be >= 0";
  return {};
}

server_config load_server_config(const std::filesystem::path& path, server_config c) {
  const std::string file = path.string();
  toml::table root;
  try {
    root = toml::parse_file(file);
  } catch (const toml::parse_error& e) {
    throw std::invalid_argument(
        fmt::format("{}:{}: {}", file, e.source().begin.line, e.description()));
  }
  {
    table_reader top(root, "", file);
    top.reject_unknown({"server", "model", "models", "engine", "replicas", "autoscale", "tools",
                        "cluster", "observability", "alerting", "alerts", "gateway"});
  }
  const toml::table& server = sub_table(root, "server", file);
  table_reader s(server, "server", file);
  s.read("host", c.host);
  s.read("port", c.port);
  s.read("api_keys", c.api_keys);
  s.read("admin_keys", c.admin_keys);
  s.read("max_body_bytes", c.max_body_bytes);
  s.read("max_header_bytes", c.max_header_bytes);
  s.read("max_waiting", c.max_waiting);
  s.read("drain_timeout_s", c.drain_timeout_s);
  s.read("io_threads", c.io_threads);
  s.read("actor_threads", c.actor_threads);
  s.reject_unknown({"websocket"});
  table_reader ws(sub_table(server, "websocket", file), "server.websocket", file);
  ws.read("max_frame_bytes", c.websocket.max_frame_bytes);
  ws.read("max_buffered_bytes", c.websocket.max_buffered_bytes);
  ws.read("ping_interval_s", c.websocket.ping_interval_s);
  ws.reject_unknown();

  table_reader m(sub_table(root, "model", file), "model", file);
  m.read("path", c.model_dir);
  m.read("name", c.served_model_name);
  m.read("tokenizer", c.tokenizer_path);
  m.read("chat_template", c.chat_template_path);
  m.reject_unknown();

  if (root.get("models") != nullptr) c.models.clear();
  each_table(root, "models", "models", file, [&](table_reader& mr) {
    model_spec spec;
    mr.read("name", spec.name);
    mr.read("aliases", spec.aliases);
    mr.read("path", spec.path);
    mr.read("tokenizer", spec.tokenizer);
    mr.read("chat_template", spec.chat_template);
    mr.read("replicas", spec.replicas);
    mr.read("backend", spec.backend);
    if (mr.has("device")) {
      int64_t device = 0;
      mr.read("device", device);
      spec.device = static_cast<int32_t>(device);
    }
    mr.read("kv_cache_mib", spec.kv_cache_mib);
    c.models.push_back(std::move(spec));
  });

  table_reader e(sub_table(root, "engine", file), "engine", file);
  auto& b = c.engine.backend;
  size_t kv_mib = b.kv_cache_bytes >> 20;
  e.read("backend", b.kind);
  e.read("threads", b.threads);
  e.read("block_size", b.block_size);
  if (e.has("kv_cache_mib")) b.kv_cache_bytes_given = true;
  e.read("kv_cache_mib", kv_mib);
  b.kv_cache_bytes = kv_mib << 20;
  size_t offload_mib = b.kv_offload_bytes >> 20;
  e.read("kv_offload_mib", offload_mib);
  b.kv_offload_bytes = offload_mib << 20;
  size_t prefix_mib = b.kv_host_prefix_bytes >> 20;
  e.read("kv_host_prefix_mib", prefix_mib);
  b.kv_host_prefix_bytes = prefix_mib << 20;
  e.read("gpu_memory_utilization", b.gpu_memory_utilization);
  e.read("device", b.device);
  e.read("weight_dtype", b.weight_dtype);
  e.read("cuda_fast_paths", b.cuda_fast_paths);
  e.read("cuda_graphs", b.cuda_graphs);
  e.read("num_kv_blocks", b.num_kv_blocks);
  e.read("rope_inv_freq_dtype", b.rope_inv_freq_dtype);
  e.read("kv_cache_dtype", b.kv_cache_dtype);
  e.read("max_num_seqs", c.engine.scheduler.max_num_seqs);
  e.read("max_batched_tokens", c.engine.scheduler.max_num_batched_tokens);
  e.read("prefix_caching", c.engine.scheduler.enable_prefix_caching);
  e.read("prefill_stall_pairs", c.engine.scheduler.prefill_stall_pairs);
  e.read("decode_slowdown", c.engine.scheduler.decode_slowdown);
  e.read("max_model_len", c.engine.max_model_len);
  e.read("sample_on_device", c.engine.sample_on_device);
  e.reject_unknown();

  table_reader r(sub_table(root, "replicas", file), "replicas", file);
  auto& rc = c.replicas;
  r.read("count", rc.count);
  r.read("failover_attempts", rc.failover_attempts);
  r.read("failover_timeout_s", rc.failover_timeout_s);
  r.read("max_restarts", rc.max_restarts);
  r.read("restart_window_s", rc.restart_window_s);
  r.read("backoff_reset_s", rc.backoff_reset_s);
  r.read("restart_backoff_s", rc.restart_backoff_s);
  r.read("restart_backoff_max_s", rc.restart_backoff_max_s);
  r.read("step_timeout_s", rc.step_timeout_s);
  r.read("heartbeat_interval_s", rc.heartbeat_interval_s);
  r.read("probe_interval_s", rc.probe_interval_s);
  r.read("probe_timeout_s", rc.probe_timeout_s);
  r.read("unhealthy_after", rc.unhealthy_after);
  r.read("fault_injection", rc.fault_injection);
  r.read("hang_s", rc.hang_s);
  r.reject_unknown();

  table_reader a(sub_table(root, "autoscale", file), "autoscale", file);
  auto& ac = c.autoscale;
  a.read("enabled", ac.enabled);
  a.read("interval_s", ac.interval_s);
  a.read("sustain_intervals", ac.sustain_intervals);
  a.read("scale_up_utilization", ac.scale_up_utilization);
  a.read("scale_up_waiting", ac.scale_up_waiting);
  a.read("scale_down_utilization", ac.scale_down_utilization);
  a.read("cooldown_s", ac.cooldown_s);
  a.read("min_replicas", ac.min_replicas);
  a.read("max_replicas", ac.max_replicas);
  a.read("drain_timeout_s", ac.drain_timeout_s);
  a.read("nvml", ac.nvml);
  a.reject_unknown();

  table_reader gw(sub_table(root, "gateway", file), "gateway", file);
  gw.read("store", c.gateway.store);
  gw.read("usage_flush_s", c.gateway.usage_flush_s);
  gw.read("resume_window_s", c.gateway.resume_window_s);
  gw.read("journal_flush_s", c.gateway.journal_flush_s);
  gw.reject_unknown();

  auto& oc = c.observability;
  table_reader o(sub_table(root, "observability", file), "observability", file);
  o.read("sample_interval_s", oc.sample_interval_s);
  o.read("history_s", oc.history_s);
  o.read("window_s", oc.window_s);
  o.read("nvml", oc.nvml);
  o.read("log_format", oc.log_format);
  o.reject_unknown();
  table_reader al(sub_table(root, "alerting", file), "alerting", file);
  al.read("webhooks", oc.webhooks);
  al.read("webhook_timeout_s", oc.webhook_timeout_s);
  al.read("webhook_max_attempts", oc.webhook_max_attempts);
  al.read("webhook_backoff_s", oc.webhook_backoff_s);
  al.read("webhook_backoff_max_s", oc.webhook_backoff_max_s);
  al.read("default_rules", oc.default_rules);
  al.reject_unknown();
  if (root.get("alerts") != nullptr) oc.alerts.clear();
  each_table(root, "alerts", "alerts", file, [&](table_reader& ar) {
    alert_rule_config rule;
    ar.read("name", rule.name);
    ar.read("rule", rule.rule);
    ar.read("threshold", rule.threshold);
    ar.read("for_s", rule.for_s);
    ar.read("window_s", rule.window_s);
    ar.read("severity", rule.severity);
    oc.alerts.push_back(std::move(rule));
  });

  const toml::table& tools = sub_table(root, "tools", file);
  table_reader t(tools, "tools", file);
  auto& tc = c.tools;
  t.read("max_rounds", tc.max_rounds);
  t.read("retry_base_ms", tc.retry_base_ms);
  t.read("sandbox_wall_s", tc.sandbox_wall_s);
  t.read("sandbox_cpu_s", tc.sandbox_cpu_s);
  t.read("sandbox_memory_mib", tc.sandbox_memory_mib);
  t.read("browser_allowed_hosts", tc.browser_allowed_hosts);
  if (tools.get("webhooks") != nullptr) tc.webhooks.clear();
  each_table(tools, "webhooks", "tools.webhooks", file, [&](table_reader& wr) {
    webhook_tool_config hook;
    wr.read("name", hook.name);
    wr.read("description", hook.description);
    wr.read("url", hook.url);
    wr.read("parameters", hook.parameters);
    wr.read("timeout_s", hook.timeout_s);
    tc.webhooks.push_back(std::move(hook));
  });
  if (tools.get("plugins") != nullptr) tc.plugins.clear();
  each_table(tools, "plugins", "tools.plugins", file, [&](table_reader& pr) {
    plugin_tool_config p;
    pr.read("path", p.path);
    pr.read("config_json", p.config);
    pr.read_table_as_json("config", p.config);
    tc.plugins.push_back(std::move(p));
  });
  t.reject_unknown({"webhooks", "plugins"});

  table_reader cl(sub_table(root, "cluster", file), "cluster", file);
  auto& cc = c.cluster;
  cl.read("enabled", cc.enabled);
  cl.read("host", cc.host);
  cl.read("port", cc.port);
  cl.read("token_file", cc.token_file);
  cl.read("ranks_per_replica", cc.ranks_per_replica);
  cl.read("min_ranks", cc.min_ranks);
  cl.read("node_timeout_s", cc.node_timeout_s);
  cl.read("collective_timeout_s", cc.collective_timeout_s);
  cl.read("data_iface", cc.data_iface);
  cl.read("collectives", cc.collectives);
  cl.read("rebalance_interval_s", cc.rebalance_interval_s);
  cl.read("rebalance_threshold", cc.rebalance_threshold);
  cl.read("redundant_experts", cc.redundant_experts);
  cl.read("tls", cc.tls);
  cl.read("certificate", cc.certificate);
  cl.read("key", cc.key);
  cl.read("cafile", cc.cafile);
  cl.reject_unknown();

  if (auto err = c.validate(); !err.empty()) throw std::invalid_argument(file + ": " + err);
  return c;
}

std::string to_toml(const server_config& c) {
  toml::array keys, admin_keys;
  for (const auto& k : c.api_keys) keys.push_back(k);
  for (const auto& k : c.admin_keys) admin_keys.push_back(k);
  toml::table ws{{"max_frame_bytes", static_cast<int64_t>(c.websocket.max_frame_bytes)},
                 {"max_buffered_bytes", static_cast<int64_t>(c.websocket.max_buffered_bytes)},
                 {"ping_interval_s", c.websocket.ping_interval_s}};
  toml::table server{{"host", c.host},
                     {"port", static_cast<int64_t>(c.port)},
                     {"api_keys", keys},
                     {"admin_keys", admin_keys},
                     {"max_body_bytes", static_cast<int64_t>(c.max_body_bytes)},
                     {"max_header_bytes", static_cast<int64_t>(c.max_header_bytes)},
                     {"max_waiting", c.max_waiting},
                     {"drain_timeout_s", c.drain_timeout_s},
                     {"io_threads", c.io_threads},
                     {"actor_threads", c.actor_threads},
                     {"websocket", ws}};
  toml::table model{{"path", c.model_dir},
                    {"name", c.served_model_name},
                    {"tokenizer", c.tokenizer_path},
                    {"chat_template", c.chat_template_path}};
  const auto& b = c.engine.backend;
  toml::table engine{{"backend", b.kind},
                     {"threads", b.threads},
                     {"block_size", b.block_size},
                     {"kv_cache_mib", static_cast<int64_t>(b.kv_cache_bytes >> 20)},
                     {"kv_offload_mib", static_cast<int64_t>(b.kv_offload_bytes >> 20)},
                     {"kv_host_prefix_mib", static_cast<int64_t>(b.kv_host_prefix_bytes >> 20)},
                     {"num_kv_blocks", b.num_kv_blocks},
                     {"rope_inv_freq_dtype", b.rope_inv_freq_dtype},
                     {"kv_cache_dtype", b.kv_cache_dtype},
                     {"gpu_memory_utilization", b.gpu_memory_utilization},
                     {"device", b.device},
                     {"weight_dtype", b.weight_dtype},
                     {"cuda_fast_paths", b.cuda_fast_paths},
                     {"cuda_graphs", b.cuda_graphs},
                     {"max_num_seqs", c.engine.scheduler.max_num_seqs},
                     {"max_batched_tokens", c.engine.scheduler.max_num_batched_tokens},
                     {"prefix_caching", c.engine.scheduler.enable_prefix_caching},
                     {"prefill_stall_pairs", c.engine.scheduler.prefill_stall_pairs},
                     {"decode_slowdown", c.engine.scheduler.decode_slowdown},
                     {"max_model_len", c.engine.max_model_len},
                     {"sample_on_device", c.engine.sample_on_device}};
  const auto& rc = c.replicas;
  toml::table replicas{{"count", rc.count},
                       {"failover_attempts", rc.failover_attempts},
                       {"failover_timeout_s", rc.failover_timeout_s},
                       {"max_restarts", rc.max_restarts},
                       {"restart_window_s", rc.restart_window_s},
                       {"backoff_reset_s", rc.backoff_reset_s},
                       {"restart_backoff_s", rc.restart_backoff_s},
                       {"restart_backoff_max_s", rc.restart_backoff_max_s},
                       {"step_timeout_s", rc.step_timeout_s},
                       {"heartbeat_interval_s", rc.heartbeat_interval_s},
                       {"probe_interval_s", rc.probe_interval_s},
                       {"probe_timeout_s", rc.probe_timeout_s},
                       {"unhealthy_after", rc.unhealthy_after},
                       {"fault_injection", rc.fault_injection},
                       {"hang_s", rc.hang_s}};
  const auto& ac = c.autoscale;
  toml::table autoscale{{"enabled", ac.enabled},
                        {"interval_s", ac.interval_s},
                        {"sustain_intervals", ac.sustain_intervals},
                        {"scale_up_utilization", ac.scale_up_utilization},
                        {"scale_up_waiting", ac.scale_up_waiting},
                        {"scale_down_utilization", ac.scale_down_utilization},
                        {"cooldown_s", ac.cooldown_s},
                        {"min_replicas", ac.min_replicas},
                        {"max_replicas", ac.max_replicas},
                        {"drain_timeout_s", ac.drain_timeout_s},
                        {"nvml", ac.nvml}};
  const auto& tc = c.tools;
  toml::array hosts, hooks, plugins;
  for (const auto& h : tc.browser_allowed_hosts) hosts.push_back(h);
  for (const auto& p : tc.plugins)
    plugins.push_back(toml::table{{"path", p.path}, {"config_json", p.config}});
  for (const auto& w : tc.webhooks) {
    hooks.push_back(toml::table{{"name", w.name},
                                {"description", w.description},
                                {"url", w.url},
                                {"parameters", w.parameters},
                                {"timeout_s", w.timeout_s}});
  }
  toml::table tools{{"max_rounds", tc.max_rounds},
                    {"retry_base_ms", tc.retry_base_ms},
                    {"sandbox_wall_s", tc.sandbox_wall_s},
                    {"sandbox_cpu_s", tc.sandbox_cpu_s},
                    {"sandbox_memory_mib", tc.sandbox_memory_mib},
                    {"browser_allowed_hosts", hosts},
                    {"webhooks", hooks},
                    {"plugins", plugins}};
  const auto& cc = c.cluster;
  toml::table cluster{{"enabled", cc.enabled},
                      {"host", cc.host},
                      {"port", cc.port},
                      {"token_file", cc.token_file},
                      {"ranks_per_replica", cc.ranks_per_replica},
                      {"min_ranks", cc.min_ranks},
                      {"node_timeout_s", cc.node_timeout_s},
                      {"collective_timeout_s", cc.collective_timeout_s},
                      {"data_iface", cc.data_iface},
                      {"collectives", cc.collectives},
                      {"rebalance_interval_s", cc.rebalance_interval_s},
                      {"rebalance_threshold", cc.rebalance_threshold},
                      {"redundant_experts", cc.redundant_experts},
                      {"tls", cc.tls},
                      {"certificate", cc.certificate},
                      {"key", cc.key},
                      {"cafile", cc.cafile}};
  const auto& oc = c.observability;
  toml::table observability{{"sample_interval_s", oc.sample_interval_s},
                            {"history_s", oc.history_s},
                            {"window_s", oc.window_s},
                            {"nvml", oc.nvml},
                            {"log_format", oc.log_format}};
  toml::array webhooks;
  for (const auto& w : oc.webhooks) webhooks.push_back(w);
  toml::table alerting{{"webhooks", webhooks},
                       {"webhook_timeout_s", oc.webhook_timeout_s},
                       {"webhook_max_attempts", oc.webhook_max_attempts},
                       {"webhook_backoff_s", oc.webhook_backoff_s},
                       {"webhook_backoff_max_s", oc.webhook_backoff_max_s},
                       {"default_rules", oc.default_rules}};
  toml::table root{{"server", server},
                   {"model", model},
                   {"engine", engine},
                   {"replicas", replicas},
                   {"autoscale", autoscale},
                   {"tools", tools},
                   {"cluster", cluster},
                   {"observability", observability},
                   {"alerting", alerting},
                   {"gateway", toml::table{{"store", c.gateway.store},
                                           {"usage_flush_s", c.gateway.usage_flush_s},
                                           {"resume_window_s", c.gateway.resume_window_s},
                                           {"journal_flush_s", c.gateway.journal_flush_s}}}};
  if (!oc.alerts.empty()) {
    toml::array alerts;
    for (const auto& a : oc.alerts)
      alerts.push_back(toml::table{{"name", a.name},
                                   {"rule", a.rule},
                                   {"threshold", a.threshold},
                                   {"for_s", a.for_s},
                                   {"window_s", a.window_s},
                                   {"severity", a.severity}});
    root.insert("alerts", std::move(alerts));
  }
  if (!c.models.empty()) {
    toml::array models;
    for (const auto& m : c.models) {
      toml::array aliases;
      for (const auto& a : m.aliases) aliases.push_back(a);
      toml::table t{{"name", m.name},
                    {"aliases", aliases},
                    {"path", m.path},
                    {"tokenizer", m.tokenizer},
                    {"chat_template", m.chat_template},
                    {"replicas", m.replicas},
                    {"backend", m.backend},
                    {"kv_cache_mib", m.kv_cache_mib}};
      if (m.device >= 0) t.insert("device", m.device);
      models.push_back(std::move(t));
    }
    root.insert("models", std::move(models));
  }
  std::ostringstream ss;
  ss << root << '\n';
  return ss.str();
}

}  // namespace conclave::config
