// The service on actors: actor system lifecycle, replicas, request sessions.
#include "actors/actor_service.h"

#include <spdlog/spdlog.h>

#include <caf/all.hpp>
#include <mutex>

#include "actors/autoscaler.h"
#include "actors/cluster_host.h"
#include "actors/live_actors.h"
#include "actors/replica_supervisor.h"
#include "actors/request_session.h"
#include "actors/router.h"
#include "gpu/preflight.h"
#include "model/checkpoint.h"
#include "serve/admission.h"
#include "serve/choice_fanout.h"
#include "serve/locked_rng.h"
#include "serve/replica_pool.h"

namespace conclave::actors {
namespace {

using serve::client_event;
using serve::fault_kind;

class actor_service final : public serve::service {
 public:
  actor_service(const config::server_config& cfg, std::shared_ptr<serve::server_metrics> metrics);
  ~actor_service() override { shutdown(); }
  actor_service(const actor_service&) = delete;
  actor_service& operator=(const actor_service&) = delete;

  void shutdown() override;
  bool loaded() const override { return pool_.loaded(); }
  bool accepting() const override { return pool_.accepting(); }
  const std::string& model_name() const override { return cfg_.served_model_name; }
  int64_t max_model_len() const override { return env_->text->max_model_len; }
  std::shared_ptr<serve::request_handle> submit(serve::generation_request req,
                                                std::shared_ptr<serve::client_sink> sink) override;
  void begin_drain() override { draining_.store(true); }
  bool draining() const override { return draining_.load(); }
  int64_t active_requests() const override { return env_->counters->active.load(); }
  int64_t queued_requests() const override { return env_->counters->queued.load(); }
  std::vector<serve::replica_snapshot> cluster() const override { return pool_.snapshots(); }
  serve::cluster_topology topology() const override {
    return cluster_ ? cluster_->topology() : serve::cluster_topology{};
  }
  uint16_t cluster_gate_port() const override { return cluster_ ? cluster_->gate_port() : 0; }
  uint64_t rebalance(int replica) override {
    if (!cluster_) throw std::runtime_error("this server has no cluster");
    caf::actor sup;
    {
      std::lock_guard lock(supervisors_mutex_);
      if (replica < 0 || static_cast<size_t>(replica) >= supervisors_.size())
        throw std::out_of_range("no replica " + std::to_string(replica));
      sup = supervisors_[static_cast<size_t>(replica)];
    }
    uint64_t version = 0;
    if (auto err = cluster_->rebalance(replica, sup, version); !err.empty())
      throw std::runtime_error(err);
    return version;
  }
  bool kill_node(int32_t node) override {
    check_fault_injection();
    return cluster_ && cluster_->kill_node(node);
  }
  bool fault_injection_enabled() const override { return cfg_.replicas.fault_injection; }
  bool inject_fault(int replica, fault_kind kind) override;
  int add_replica() override;
  bool drain_replica(int id) override;
  void end_requests(const std::string& why) override;
  std::optional<std::string> kill_session(const std::string& request_id) override;
  std::optional<std::string> kill_tool(const std::string& call_id) override;

 private:
  /// kill_session / kill_tool: kills `name` (or a random working one) in `list`.
  std::optional<std::string> kill_in(live_actors& list, const std::string& name, const char* what);
  void check_fault_injection() const;
  /// A session for one request (one choice), after admission.
  std::shared_ptr<serve::request_handle> start_session(serve::generation_request req,
                                                       std::shared_ptr<serve::client_sink> sink);
  /// Adds a replica to the pool and spawns its supervisor; -1 once shutting down.
  int start_replica();

  config::server_config cfg_;
  std::shared_ptr<serve::server_metrics> metrics_;
  std::shared_ptr<session_env> env_;
  std::shared_ptr<live_actors> sessions_ = std::make_shared<live_actors>();
  serve::replica_pool pool_;
  std::vector<int32_t> probe_;  ///< the health probe's prompt
  std::atomic<bool> draining_{false};
  serve::locked_rng rng_;  ///< fault draws, prefill group ids
  std::unique_ptr<caf::actor_system_config> system_cfg_;
  std::unique_ptr<caf::actor_system> system_;
  caf::actor router_;
  caf::actor autoscaler_;
  std::unique_ptr<cluster_host> cluster_;  ///< [cluster] on
  /// Supervisors by replica id; guarded (the autoscaler adds while I/O threads drain).
  mutable std::mutex supervisors_mutex_;
  std::vector<caf::actor> supervisors_;
};

actor_service::actor_service(const config::server_config& cfg,
                             std::shared_ptr<serve::server_metrics> metrics)
    : cfg_(cfg), metrics_(std::move(metrics)) {
  // Validate the checkpoint now so a bad folder fails at startup with its one-line error.
  const model::checkpoint ckpt(cfg_.model_dir);
  const auto& mc = ckpt.config();
  // ... and a model that cannot fit this device (weights plus one max_model_len sequence)
  // is refused before anything loads. Cluster ranks check on their own nodes.
  if (!cfg_.cluster.enabled) gpu::preflight(mc, cfg_.engine);
  env_ = make_session_env(cfg_, mc, metrics_);  // the tokenizer caps the sampled vocabulary

  system_cfg_ = std::make_unique<caf::actor_system_config>();
  system_cfg_->set("scheduler.max-threads", cfg_.actor_threads);
  system_cfg_->set("logger.verbosity", caf::atom("quiet"));
  if (cfg_.cluster.enabled) cluster_host::configure(*system_cfg_, cfg_.cluster);
  system_ = std::make_unique<caf::actor_system>(*system_cfg_);
  if (cfg_.cluster.enabled) cluster_ = std::make_unique<cluster_host>(*system_, cfg_, mc);
  // (Spawning with no arguments trips UBSan inside CAF 0.17's empty-tuple path.)
  router_ = system_->spawn(router_actor, std::vector<caf::actor>{});
  // The health probe (the seed guide's): a real generation every probe_interval_s.
  probe_ = env_->text->tok->encode("def hello():\n    return", false);
  for (int i = 0; i < cfg_.replicas.count; ++i) start_replica();
  if (cfg_.autoscale.enabled) {
    auto source =
        pool_.make_load_source([counters = env_->counters] { return counters->queued.load(); },
                               cfg_.autoscale.nvml && cfg_.engine.backend.kind == "cuda");
    autoscaler_ = system_->spawn(autoscaler, cfg_.autoscale, std::move(source),
                                 service_scaling_target(this, metrics_));
  }
}

int actor_service::add_replica() {
  const int id = start_replica();
  if (id >= 0) spdlog::info("replica {} added (now {})", id, id + 1);
  return id;
}

int actor_service::start_replica() {
  std::lock_guard lock(supervisors_mutex_);  // replica ids and supervisors stay in step
  auto backend_cfg = cfg_.engine.backend;
  auto r = pool_.add(backend_cfg.kind == "cuda", backend_cfg.device);
  if (!r) return -1;
  if (r->device >= 0) backend_cfg.device = r->device;
  supervisors_.push_back(system_->spawn<caf::detached>(
      replica_supervisor, checkpoint_backend_factory(cfg_.model_dir, backend_cfg), cfg_.engine,
      cfg_.replicas, metrics_, router_, r->status, probe_,
      cluster_ ? cluster_->replica_options(r->id) : nullptr));
  return r->id;
}

bool actor_service::drain_replica(int id) {
  std::lock_guard lock(supervisors_mutex_);
  if (pool_.stopped() || id < 0 || static_cast<size_t>(id) >= supervisors_.size()) return false;
  caf::anon_send(supervisors_[static_cast<size_t>(id)], drain_atom::value,
                 cfg_.autoscale.drain_timeout_s);
  return true;
}

void actor_service::check_fault_injection() const {
  if (!cfg_.replicas.fault_injection)
    throw std::logic_error("fault injection is off (replicas.fault_injection)");
}

bool actor_service::inject_fault(int replica, fault_kind kind) {
  check_fault_injection();
  if (!pool_.inject(replica, kind)) return false;
  spdlog::warn("fault injection: replica {} gets {}", replica, to_string(kind));
  return true;
}

void actor_service::end_requests(const std::string& why) {
  for (const auto& s : sessions_->working()) caf::anon_send(s, end_request_atom::value, why);
}

std::optional<std::string> actor_service::kill_in(live_actors& list, const std::string& name,
                                                  const char* what) {
  check_fault_injection();
  auto k = list.kill(name, rng_.next());
  if (!k) return std::nullopt;
  spdlog::warn("fault injection: killed the {} {}", what, k->name);
  return k->name;
}

std::optional<std::string> actor_service::kill_session(const std::string& request_id) {
  return kill_in(*sessions_, request_id, "session of request");
}

std::optional<std::string> actor_service::kill_tool(const std::string& call_id) {
  return kill_in(*env_->tool_list, call_id, "tool invocation of call");
}

void actor_service::shutdown() {
  if (!system_) return;
  draining_.store(true);
  env_->counters->stopping.store(true);
  std::vector<caf::actor> supervisors;
  {
    // From here the autoscaler adds and drains no more, so the list is final.
    std::lock_guard lock(supervisors_mutex_);
    pool_.stop();
    supervisors = std::move(supervisors_);
  }
  if (autoscaler_) caf::anon_send_exit(autoscaler_, caf::exit_reason::user_shutdown);
  autoscaler_ = nullptr;
  // Supervisors take their engines and workers down; sessions watching an engine end.
  for (auto& s : supervisors) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(router_, caf::exit_reason::user_shutdown);
  if (cluster_) cluster_->stop();
  // (No handle may stay alive below: one would keep system_.reset() waiting for ever.)
  supervisors.clear();
  router_ = nullptr;
  system_.reset();  // waits for all actors to finish
  cluster_.reset();
}

std::shared_ptr<serve::request_handle> actor_service::submit(
    serve::generation_request req, std::shared_ptr<serve::client_sink> sink) {
  if (auto refused = serve::admission_error(draining_.load(), accepting(),
                                            env_->counters->queued.load(), cfg_.max_waiting)) {
    sink->push(std::move(*refused));
    return nullptr;
  }
  if (req.n <= 1) return start_session(std::move(req), std::move(sink));
  // n choices: a session each, one prefill group.
  return serve::start_choices(req, std::move(sink), rng_.next_nonzero(), [this](auto r, auto s) {
    return start_session(std::move(r), std::move(s));
  });
}

std::shared_ptr<serve::request_handle> actor_service::start_session(
    serve::generation_request req, std::shared_ptr<serve::client_sink> sink) {
  std::string id = req.id;
  auto guard = std::make_shared<serve::session_guard>(std::move(sink));
  auto session = system_->spawn(request_session, std::move(req), guard, env_, router_);
  sessions_->add(session, std::move(id), nullptr, [guard] { return !guard->ended(); });
  return std::make_shared<session_handle>(std::move(session));
}

}  // namespace

std::unique_ptr<serve::service> make_actor_service(const config::server_config& cfg,
                                                   std::shared_ptr<serve::server_metrics> metrics) {
  return std::make_unique<actor_service>(cfg, std::move(metrics));
}

}  // namespace conclave::actors
