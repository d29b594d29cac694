// The service: actor system lifecycle and request admission.
#include "actors/service.h"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include "actors/autoscaler.h"
#include "actors/live_actors.h"
#include "actors/nvml.h"
#include "actors/replica_supervisor.h"
#include "actors/request_session.h"
#include "actors/router.h"
#include "actors/tool_setup.h"
#include "model/checkpoint.h"

namespace conclave::actors {

struct inference_service::handles {
  caf::actor router;
  std::vector<caf::actor> supervisors;  ///< by replica id; guarded by replicas_mutex_
  caf::actor autoscaler;                ///< when [autoscale] is enabled
};

namespace {

class session_handle final : public request_handle {
 public:
  explicit session_handle(caf::actor session) : session_(std::move(session)) {}
  void cancel() override {
    if (!cancelled_.exchange(true)) caf::anon_send(session_, cancel_atom::value);
  }

 private:
  caf::actor session_;
  std::atomic<bool> cancelled_{false};
};

/// The autoscaler's hands: the service adds and drains replicas.
class service_pool final : public replica_pool {
 public:
  explicit service_pool(inference_service* svc) : svc_(svc) {}
  void add_replica() override { svc_->add_replica(); }
  void drain_replica(int id) override { svc_->drain_replica(id); }

 private:
  inference_service* svc_;  // outlives the actor system, and so the autoscaler
};

}  // namespace

inference_service::inference_service(const config::server_config& cfg,
                                     std::shared_ptr<server_metrics> metrics)
    : cfg_(cfg),
      metrics_(std::move(metrics)),
      counters_(std::make_shared<session_counters>()),
      sessions_(std::make_shared<live_actors>()) {
  // Validate the checkpoint now so a bad folder fails at startup with its one-line error.
  const model::checkpoint ckpt(cfg_.model_dir);
  const auto& mc = ckpt.config();
  text_ = std::make_shared<text_resources>();
  text_->tok = std::make_shared<const tokenizer::tokenizer>(
      tokenizer::tokenizer::from_file(cfg_.tokenizer_path));
  text_->eos_ids = mc.eos_token_ids;
  text_->max_model_len = cfg_.engine.max_model_len > 0
                             ? std::min(cfg_.engine.max_model_len, mc.max_position_embeddings)
                             : mc.max_position_embeddings;
  text_->failover_attempts = cfg_.replicas.failover_attempts;
  text_->failover_timeout_s = cfg_.replicas.failover_timeout_s;
  text_->tools = make_tool_runtime(cfg_.tools, metrics_);
  text_->max_tool_rounds = cfg_.tools.max_rounds;
  model_name_ = cfg_.served_model_name;
  // Never sample an id the tokenizer cannot turn into text (padded embedding rows).
  if (cfg_.engine.sampling_vocab_size == 0 &&
      text_->tok->vocab_size() < static_cast<size_t>(mc.vocab_size)) {
    cfg_.engine.sampling_vocab_size = static_cast<int64_t>(text_->tok->vocab_size());
  }

  system_cfg_ = std::make_unique<caf::actor_system_config>();
  system_cfg_->set("scheduler.max-threads", cfg_.actor_threads);
  system_cfg_->set("logger.verbosity", caf::atom("quiet"));
  system_ = std::make_unique<caf::actor_system>(*system_cfg_);
  actors_ = std::make_unique<handles>();
  // (Spawning with no arguments trips UBSan inside CAF 0.17's empty-tuple path.)
  actors_->router = system_->spawn(router_actor, std::vector<caf::actor>{});
  // The health probe (the seed guide's): a real generation every probe_interval_s.
  probe_ = text_->tok->encode("def hello():\n    return", false);
  {
    std::lock_guard lock(replicas_mutex_);
    for (int i = 0; i < cfg_.replicas.count; ++i) spawn_replica_locked();
  }
  if (cfg_.autoscale.enabled) {
    std::shared_ptr<nvml_reader> nvml;
    if (cfg_.autoscale.nvml && cfg_.engine.backend.kind == "cuda")
      nvml = std::make_shared<nvml_reader>();
    auto source = std::make_shared<busy_time_sampler>(
        [this] {
          std::lock_guard lock(replicas_mutex_);
          std::vector<sampled_replica> out;
          for (size_t i = 0; i < replicas_.size(); ++i)
            out.push_back({replicas_[i], replica_devices_[i]});
          return out;
        },
        [counters = counters_] { return counters->queued.load(); }, std::move(nvml));
    actors_->autoscaler = system_->spawn(autoscaler, cfg_.autoscale, std::move(source),
                                         std::make_shared<service_pool>(this));
  }
}

int inference_service::spawn_replica_locked() {
  const int id = static_cast<int>(replicas_.size());
  auto backend_cfg = cfg_.engine.backend;
  int device = -1;
  if (backend_cfg.kind == "cuda") {
    // One device per replica: the lowest offset from the configured device that no
    // replica holds (a drained one gave its device back; a dead one keeps it).
    std::vector<int> held;
    for (size_t i = 0; i < replicas_.size(); ++i) {
      if (replicas_[i]->state() != replica_state::drained) held.push_back(replica_devices_[i]);
    }
    device = backend_cfg.device;
    while (std::find(held.begin(), held.end(), device) != held.end()) ++device;
    backend_cfg.device = device;
  }
  backend_factory factory = [dir = cfg_.model_dir, backend_cfg]() -> std::shared_ptr<gpu::backend> {
    const model::checkpoint c(dir);
    return gpu::make_backend(c, backend_cfg);
  };
  auto status = std::make_shared<replica_status>(id);
  replicas_.push_back(status);
  replica_devices_.push_back(device);
  actors_->supervisors.push_back(
      system_->spawn<caf::detached>(replica_supervisor, std::move(factory), cfg_.engine,
                                    cfg_.replicas, metrics_, actors_->router, status, probe_));
  return id;
}

int inference_service::add_replica() {
  std::lock_guard lock(replicas_mutex_);
  if (stopping_) return -1;
  const int id = spawn_replica_locked();
  spdlog::info("replica {} added (now {})", id, replicas_.size());
  return id;
}

bool inference_service::drain_replica(int id) {
  std::lock_guard lock(replicas_mutex_);
  if (stopping_ || id < 0 || static_cast<size_t>(id) >= replicas_.size()) return false;
  caf::anon_send(actors_->supervisors[static_cast<size_t>(id)], drain_atom::value,
                 cfg_.autoscale.drain_timeout_s);
  return true;
}

std::vector<std::shared_ptr<replica_status>> inference_service::replica_list() const {
  std::lock_guard lock(replicas_mutex_);
  return replicas_;
}

bool inference_service::accepting() const {
  // Before any replica came up the model is loading (503). Afterwards a request is
  // admitted while some replica is up or restarting: it waits for one (up to
  // failover_timeout_s) instead of failing.
  bool some_up_once = false;
  std::lock_guard lock(replicas_mutex_);  // (no copy: this runs for every request)
  for (const auto& r : replicas_) {
    const auto st = r->state();
    if (st == replica_state::up) return true;
    if (st == replica_state::restarting && r->restarts() > 0) some_up_once = true;
  }
  return some_up_once;
}

bool inference_service::loaded() const {
  std::lock_guard lock(replicas_mutex_);
  for (const auto& r : replicas_) {
    if (r->serving()) return true;
  }
  return false;
}

std::vector<replica_snapshot> inference_service::cluster() const {
  std::vector<replica_snapshot> out;
  for (const auto& r : replica_list()) out.push_back(r->snapshot());
  return out;
}

bool inference_service::inject_fault(int replica, fault_kind kind) {
  if (!cfg_.replicas.fault_injection)
    throw std::logic_error("fault injection is off (replicas.fault_injection)");
  const auto replicas = replica_list();
  if (replica < 0 || static_cast<size_t>(replica) >= replicas.size())
    throw std::out_of_range("no replica " + std::to_string(replica));
  auto& r = *replicas[static_cast<size_t>(replica)];
  // A replica that is down or restarting has no engine to fault; a fault held for its
  // next life would kill it on its first step and look like a crash loop.
  if (r.state() != replica_state::up) return false;
  spdlog::warn("fault injection: replica {} gets {}", replica, to_string(kind));
  r.inject(kind);
  return true;
}

void inference_service::end_requests(const std::string& why) {
  for (const auto& s : sessions_->working()) caf::anon_send(s, end_request_atom::value, why);
}

std::optional<std::string> inference_service::kill_in(live_actors* list, const std::string& name,
                                                      const char* what) {
  if (!cfg_.replicas.fault_injection)
    throw std::logic_error("fault injection is off (replicas.fault_injection)");
  if (list == nullptr) return std::nullopt;
  uint64_t draw = 0;
  {
    std::lock_guard lock(fault_mutex_);
    draw = fault_rng_();
  }
  auto k = list->kill(name, draw);
  if (!k) return std::nullopt;
  spdlog::warn("fault injection: killed the {} {}", what, k->name);
  return k->name;
}

std::optional<std::string> inference_service::kill_session(const std::string& request_id) {
  return kill_in(sessions_.get(), request_id, "session of request");
}

std::optional<std::string> inference_service::kill_tool(const std::string& call_id) {
  return kill_in(text_->tools ? text_->tools->live.get() : nullptr, call_id,
                 "tool invocation of call");
}

inference_service::~inference_service() {
  shutdown();
}

void inference_service::shutdown() {
  if (!system_) return;
  draining_.store(true);
  text_->stopping.store(true);
  {
    // From here the autoscaler adds and drains no more, so the list is final. (No copy
    // of the handles: one alive below would keep system_.reset() waiting for ever.)
    std::lock_guard lock(replicas_mutex_);
    stopping_ = true;
  }
  if (actors_->autoscaler)
    caf::anon_send_exit(actors_->autoscaler, caf::exit_reason::user_shutdown);
  // Supervisors take their engines and workers down; sessions watching an engine end.
  for (auto& s : actors_->supervisors) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(actors_->router, caf::exit_reason::user_shutdown);
  actors_.reset();
  system_.reset();  // waits for all actors to finish
}

int64_t inference_service::max_model_len() const {
  return text_->max_model_len;
}
int64_t inference_service::active_requests() const {
  return counters_->active.load();
}
int64_t inference_service::queued_requests() const {
  return counters_->queued.load();
}

std::shared_ptr<request_handle> inference_service::submit(generation_request req,
                                                          std::shared_ptr<client_sink> sink) {
  if (draining_.load()) {
    sink->push(client_event::error(503, "the server is shutting down", "service_unavailable"));
    return nullptr;
  }
  if (!accepting()) {
    sink->push(client_event::error(503, "the model is still loading; retry shortly",
                                   "service_unavailable"));
    return nullptr;
  }
  if (counters_->queued.load() >= cfg_.max_waiting) {
    sink->push(client_event::error(429, "too many requests are waiting; retry later",
                                   "rate_limit_error", {}, "queue_full"));
    return nullptr;
  }
  std::string id = req.id;
  auto guard = std::make_shared<session_guard>(std::move(sink));
  auto session = system_->spawn(request_session, std::move(req), guard, text_, actors_->router,
                                metrics_, counters_);
  sessions_->add(session, std::move(id), nullptr, [guard] { return !guard->ended(); });
  return std::make_shared<session_handle>(std::move(session));
}

}  // namespace conclave::actors
