// A server's models behind one service (see the header).
#include "serve/model_set.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

namespace conclave::serve {
namespace fs = std::filesystem;

model_set::model_set(config::server_config base, std::shared_ptr<server_metrics> metrics,
                     factory make)
    : base_(std::move(base)), metrics_(std::move(metrics)), make_(std::move(make)) {
  std::vector<config::model_spec> specs = base_.models;
  if (specs.empty()) {
    config::model_spec one;
    one.name = base_.served_model_name;
    one.path = base_.model_dir;
    one.tokenizer = base_.tokenizer_path;
    one.chat_template = base_.chat_template_path;
    specs.push_back(std::move(one));
  }
  primary_name_ = specs.front().name;
  std::vector<config::server_config> configs;
  for (const auto& spec : specs) configs.push_back(config_for(spec));
  {
    std::unique_lock lock(mutex_);
    for (size_t i = 0; i < specs.size(); ++i) {
      check_names(specs[i]);
      start(specs[i], configs[i], specs.size() > 1 ? metrics_->scoped(specs[i].name) : metrics_);
    }
    // A model that cannot start is an error at start-up.
    changed_.wait(lock, [&] {
      return std::none_of(entries_.begin(), entries_.end(),
                          [](const entry& e) { return e.st == state::starting; });
    });
  }
  for (const auto& e : models()) {
    if (e.state == "failed") {
      shutdown();
      throw std::invalid_argument(fmt::format("model '{}': {}", e.name, e.error));
    }
  }
}

void model_set::start(const config::model_spec& spec, config::server_config cfg,
                      std::shared_ptr<server_metrics> metrics) {
  auto k = std::make_shared<keeper>();
  entry e;
  e.spec = spec;
  e.keep = k;
  entries_.push_back(std::move(e));
  keepers_.push_back(k);
  k->thread = std::thread([this, spec, cfg = std::move(cfg), metrics = std::move(metrics), k] {
    keep(spec, cfg, metrics, k);
  });
}

void model_set::keep(config::model_spec spec, config::server_config cfg,
                     std::shared_ptr<server_metrics> metrics, std::shared_ptr<keeper> k) {
  std::shared_ptr<service> svc;
  std::string error;
  try {
    svc = make_(cfg, std::move(metrics));
  } catch (const std::exception& ex) {
    error = ex.what();
  }
  {
    std::lock_guard lock(mutex_);
    for (auto& e : entries_) {
      if (e.keep != k) continue;
      if (svc) {
        e.svc = svc;
        e.max_model_len = svc->max_model_len();
        if (e.st == state::starting) e.st = state::serving;
      } else {
        e.st = state::failed;
        e.error = error;
        spdlog::error("models: '{}' could not start: {}", spec.name, error);
      }
    }
  }
  changed_.notify_all();
  if (!svc) return;
  bool drain = false;
  {
    std::unique_lock lock(k->mutex);
    k->cv.wait(lock, [&] { return k->release; });
    drain = k->drain;
  }
  if (drain) {
    // Unloaded: no new requests reach it; the running ones may finish.
    svc->begin_drain();
    const auto deadline =
        std::chrono::steady_clock::now() +
        std::chrono::milliseconds(static_cast<int64_t>(base_.drain_timeout_s * 1e3));
    while (svc->active_requests() > 0 && !stopping_.load() &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (svc->active_requests() > 0) svc->end_requests("the model was unloaded");
  }
  svc->shutdown();  // on the thread that made it
  if (drain) {
    metrics_->forget_scope(spec.name);
    {
      std::lock_guard lock(mutex_);
      std::erase_if(entries_, [&](const entry& e) { return e.keep == k; });
    }
    changed_.notify_all();
    spdlog::info("models: '{}' unloaded", spec.name);
  }
}

void model_set::release(keeper& k, bool drain) {
  {
    std::lock_guard lock(k.mutex);
    if (k.release) return;
    k.release = true;
    k.drain = drain;
  }
  k.cv.notify_all();
}

model_set::~model_set() {
  shutdown();
}

config::server_config model_set::config_for(const config::model_spec& spec) const {
  config::server_config cfg = config::model_config(base_, spec);
  if (cfg.tokenizer_path.empty())
    cfg.tokenizer_path = (fs::path(spec.path) / "tokenizer.json").string();
  if (auto err = cfg.validate(); !err.empty()) throw std::invalid_argument(err);
  if (!fs::is_directory(spec.path))
    throw std::invalid_argument(fmt::format("path {}: not a directory", spec.path));
  if (!fs::exists(fs::path(spec.path) / "config.json"))
    throw std::invalid_argument(
        fmt::format("path {}: no config.json (not a checkpoint)", spec.path));
  if (!fs::exists(cfg.tokenizer_path))
    throw std::invalid_argument(fmt::format("tokenizer {}: no such file", cfg.tokenizer_path));
  if (!cfg.chat_template_path.empty() && !fs::exists(cfg.chat_template_path))
    throw std::invalid_argument(
        fmt::format("chat_template {}: no such file", cfg.chat_template_path));
  return cfg;
}

void model_set::check_names(const config::model_spec& spec) const {
  std::vector<std::string> names{spec.name};
  names.insert(names.end(), spec.aliases.begin(), spec.aliases.end());
  // Every entry counts, draining ones too: a name is free once its model is gone.
  for (const auto& n : names) {
    for (const auto& e : entries_) {
      if (e.spec.name == n ||
          std::find(e.spec.aliases.begin(), e.spec.aliases.end(), n) != e.spec.aliases.end())
        throw model_conflict(fmt::format("the model name '{}' is already in use", n));
    }
  }
}

const model_set::entry* model_set::lookup(std::string_view name) const {
  for (const auto& e : entries_) {
    if (e.st == state::unloading) continue;
    if (e.spec.name == name ||
        std::find(e.spec.aliases.begin(), e.spec.aliases.end(), name) != e.spec.aliases.end())
      return &e;
  }
  return nullptr;
}

model_status model_set::status_of(const entry& e) const {
  model_status s;
  s.name = e.spec.name;
  s.aliases = e.spec.aliases;
  s.max_model_len = e.max_model_len;
  s.error = e.error;
  switch (e.st) {
    case state::starting:
      s.state = "loading";
      break;
    case state::serving:
      s.state = e.svc->loaded() ? "ready" : "loading";
      break;
    case state::failed:
      s.state = "failed";
      break;
    case state::unloading:
      s.state = "draining";
      break;
  }
  return s;
}

std::vector<model_status> model_set::models() const {
  std::lock_guard lock(mutex_);
  std::vector<model_status> out;
  for (const auto& e : entries_) out.push_back(status_of(e));
  return out;
}

std::optional<model_status> model_set::find_model(std::string_view name) const {
  std::lock_guard lock(mutex_);
  const entry* e = lookup(name);
  if (e == nullptr) return std::nullopt;
  return status_of(*e);
}

std::shared_ptr<service> model_set::primary() const {
  std::lock_guard lock(mutex_);
  for (const auto& e : entries_)
    if (e.st == state::serving) return e.svc;
  return nullptr;
}

std::vector<std::shared_ptr<service>> model_set::all() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<service>> out;
  for (const auto& e : entries_)
    if (e.svc) out.push_back(e.svc);
  return out;
}

model_status model_set::load_model(const config::model_spec& spec) {
  if (stopping_.load() || draining_.load()) throw std::logic_error("the server is shutting down");
  if (auto err = spec.validate(); !err.empty()) throw std::invalid_argument(err);
  config::server_config cfg = config_for(spec);
  std::lock_guard lock(mutex_);
  check_names(spec);
  spdlog::info("models: loading '{}' from {}", spec.name, spec.path);
  // Built on its keeper thread: the tokenizer and the template are not read here.
  start(spec, std::move(cfg), metrics_->scoped(spec.name));
  return status_of(entries_.back());
}

model_status model_set::unload_model(const std::string& name) {
  std::shared_ptr<keeper> k;
  model_status status;
  {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(entries_.begin(), entries_.end(), [&](const entry& e) {
      return e.spec.name == name && e.st != state::unloading;
    });
    if (it == entries_.end()) throw std::out_of_range(fmt::format("no model named '{}'", name));
    if (it->st == state::starting)
      throw model_conflict(
          fmt::format("the model '{}' is still starting; unload it once it is loaded", name));
    k = it->keep;
    if (it->st == state::failed) {
      entries_.erase(it);  // nothing runs: gone at once
      status.name = name;
      status.state = "unloaded";
      return status;
    }
    it->st = state::unloading;  // from now on requests naming it get 404
    status = status_of(*it);
  }
  spdlog::info("models: unloading '{}'", name);
  release(*k, true);
  return status;
}

void model_set::shutdown() {
  if (stopping_.exchange(true)) return;
  std::vector<std::shared_ptr<keeper>> keepers;
  {
    std::lock_guard lock(mutex_);
    keepers = keepers_;
  }
  for (auto& k : keepers) release(*k, false);
  for (auto& k : keepers)
    if (k->thread.joinable()) k->thread.join();
}

bool model_set::loaded() const {
  for (const auto& s : all())
    if (s->loaded()) return true;
  return false;
}

bool model_set::accepting() const {
  for (const auto& s : all())
    if (s->accepting()) return true;
  return false;
}

const std::string& model_set::model_name() const {
  return primary_name_;
}

int64_t model_set::max_model_len() const {
  auto p = primary();
  return p ? p->max_model_len() : 0;
}

std::shared_ptr<request_handle> model_set::submit(generation_request req,
                                                  std::shared_ptr<client_sink> sink) {
  std::shared_ptr<service> svc;
  std::string refusal;
  {
    std::lock_guard lock(mutex_);
    const entry* e = lookup(req.model);
    if (e == nullptr) {
      refusal = fmt::format("The model '{}' does not exist", req.model);
    } else if (e->st != state::serving) {
      sink->push(client_event::error(
          503,
          e->st == state::failed
              ? fmt::format("the model '{}' failed to load: {}", e->spec.name, e->error)
              : fmt::format("the model '{}' is loading", e->spec.name),
          "service_unavailable"));
      return nullptr;
    } else {
      svc = e->svc;
    }
  }
  if (!svc) {
    sink->push(
        client_event::error(404, refusal, "invalid_request_error", "model", "model_not_found"));
    return nullptr;
  }
  return svc->submit(std::move(req), std::move(sink));
}

void model_set::begin_drain() {
  draining_.store(true);
  for (auto& s : all()) s->begin_drain();
}

int64_t model_set::active_requests() const {
  int64_t n = 0;
  for (const auto& s : all()) n += s->active_requests();
  return n;
}

int64_t model_set::queued_requests() const {
  int64_t n = 0;
  for (const auto& s : all()) n += s->queued_requests();
  return n;
}

void model_set::end_requests(const std::string& why) {
  for (auto& s : all()) s->end_requests(why);
}

std::vector<replica_snapshot> model_set::cluster() const {
  auto p = primary();
  return p ? p->cluster() : std::vector<replica_snapshot>{};
}

std::vector<std::pair<std::string, std::vector<replica_snapshot>>> model_set::replicas_by_model()
    const {
  std::vector<std::pair<std::string, std::shared_ptr<service>>> serving;
  {
    std::lock_guard lock(mutex_);
    for (const auto& e : entries_)
      if (e.svc) serving.emplace_back(e.spec.name, e.svc);
  }
  std::vector<std::pair<std::string, std::vector<replica_snapshot>>> out;
  for (const auto& [name, svc] : serving) out.emplace_back(name, svc->cluster());
  return out;
}

cluster_topology model_set::topology() const {
  auto p = primary();
  return p ? p->topology() : cluster_topology{};
}

uint16_t model_set::cluster_gate_port() const {
  auto p = primary();
  return p ? p->cluster_gate_port() : 0;
}

bool model_set::kill_node(int32_t node) {
  auto p = primary();
  return p && p->kill_node(node);
}

uint64_t model_set::rebalance(int replica) {
  auto p = primary();
  if (!p) throw std::runtime_error("no model is loaded");
  return p->rebalance(replica);
}

bool model_set::fault_injection_enabled() const {
  return base_.replicas.fault_injection;
}

bool model_set::inject_fault(int replica, fault_kind kind) {
  auto p = primary();
  if (!p) throw std::out_of_range("no model is loaded");
  return p->inject_fault(replica, kind);
}

int model_set::add_replica() {
  auto p = primary();
  return p ? p->add_replica() : -1;
}

bool model_set::drain_replica(int id) {
  auto p = primary();
  return p && p->drain_replica(id);
}

std::optional<std::string> model_set::kill_session(const std::string& request_id) {
  if (!fault_injection_enabled()) throw std::logic_error("fault injection is off");
  for (auto& s : all())
    if (auto id = s->kill_session(request_id)) return id;
  return std::nullopt;
}

std::optional<std::string> model_set::kill_tool(const std::string& call_id) {
  if (!fault_injection_enabled()) throw std::logic_error("fault injection is off");
  for (auto& s : all())
    if (auto id = s->kill_tool(call_id)) return id;
  return std::nullopt;
}

}  // namespace conclave::serve
