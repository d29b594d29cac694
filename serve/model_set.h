// model_set: a server's models, one service each (its own replicas, backend and engine
// settings), behind the one serve::service net/ talks to. Requests are routed by their
// `model` (a name or an alias); an unknown one is an OpenAI 404 (model_not_found).
// Models are started from [[models]] (or the one [model]) at start-up, and loaded and
// unloaded at run time (POST / DELETE /admin/models) on a thread of their own, so that no I/O
// thread waits and the other models' streams go on untouched. An unloaded model stops
// taking requests at once (404 from then on); its running requests finish, up to the
// server's drain_timeout_s, before its replicas stop. Operator routes that concern one
// model's replicas (/admin/cluster, faults, autoscaling) act on the first model loaded.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "config/server_config.h"
#include "serve/server_metrics.h"
#include "serve/service.h"

namespace conclave::serve {

class model_set final : public service {
 public:
  /// Makes one model's service (actors::make_actor_service in the server).
  using factory = std::function<std::unique_ptr<service>(const config::server_config&,
                                                         std::shared_ptr<server_metrics>)>;
  /// Starts `base`'s models: each of base.models, or the one model of [model]
  /// (base.served_model_name must be set then). Throws std::invalid_argument for a model
  /// that cannot start (no checkpoint folder, no tokenizer).
  model_set(config::server_config base, std::shared_ptr<server_metrics> metrics, factory make);
  ~model_set() override;
  model_set(const model_set&) = delete;
  model_set& operator=(const model_set&) = delete;

  void shutdown() override;
  bool loaded() const override;
  bool accepting() const override;
  const std::string& model_name() const override;
  int64_t max_model_len() const override;
  std::vector<model_status> models() const override;
  std::optional<model_status> find_model(std::string_view name) const override;
  model_status load_model(const config::model_spec& spec) override;
  model_status unload_model(const std::string& name) override;

  std::shared_ptr<request_handle> submit(generation_request req,
                                         std::shared_ptr<client_sink> sink) override;
  void begin_drain() override;
  bool draining() const override { return draining_.load(); }
  int64_t active_requests() const override;
  int64_t queued_requests() const override;
  void end_requests(const std::string& why) override;

  // The first model's replicas.
  std::vector<replica_snapshot> cluster() const override;
  std::vector<std::pair<std::string, std::vector<replica_snapshot>>> replicas_by_model()
      const override;
  cluster_topology topology() const override;
  uint16_t cluster_gate_port() const override;
  bool kill_node(int32_t node) override;
  uint64_t rebalance(int replica) override;
  bool fault_injection_enabled() const override;
  bool inject_fault(int replica, fault_kind kind) override;
  int add_replica() override;
  bool drain_replica(int id) override;
  // Any model's sessions and tools.
  std::optional<std::string> kill_session(const std::string& request_id) override;
  std::optional<std::string> kill_tool(const std::string& call_id) override;

 private:
  enum class state { starting, serving, failed, unloading };
  /// The thread a model's service lives on: it builds the service, waits until the model
  /// is unloaded or the set shut down, and shuts the service down (a CAF 0.17 actor
  /// system must be destroyed on the thread that made it, or its destructor waits for
  /// ever).
  struct keeper {
    std::mutex mutex;
    std::condition_variable cv;
    bool release = false;
    bool drain = false;  ///< unloading: let running requests finish first
    std::thread thread;
  };
  struct entry {
    config::model_spec spec;
    int64_t max_model_len = 0;
    std::shared_ptr<service> svc;  ///< null while starting or after failing
    state st = state::starting;
    std::string error;
    std::shared_ptr<keeper> keep;
  };
  /// The config `spec` runs with; throws std::invalid_argument naming what is wrong.
  config::server_config config_for(const config::model_spec& spec) const;
  /// Throws model_conflict when a name of `spec` is taken (mutex_ held).
  void check_names(const config::model_spec& spec) const;
  model_status status_of(const entry& e) const;
  /// The entry serving `name` (a name or alias), or null (mutex_ held).
  const entry* lookup(std::string_view name) const;
  /// The first serving model's service, or null.
  std::shared_ptr<service> primary() const;
  std::vector<std::shared_ptr<service>> all() const;
  /// Adds `spec`'s entry (starting) and its keeper thread (mutex_ held).
  void start(const config::model_spec& spec, config::server_config cfg,
             std::shared_ptr<server_metrics> metrics);
  /// The keeper thread's body.
  void keep(config::model_spec spec, config::server_config cfg,
            std::shared_ptr<server_metrics> metrics, std::shared_ptr<keeper> k);
  static void release(keeper& k, bool drain);

  config::server_config base_;
  std::shared_ptr<server_metrics> metrics_;
  factory make_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<entry> entries_;
  std::vector<std::shared_ptr<keeper>> keepers_;  ///< every one started, joined at shutdown
  std::atomic<bool> draining_{false}, stopping_{false};
  std::string primary_name_;  ///< model_name() when nothing is served
};

}  // namespace conclave::serve
