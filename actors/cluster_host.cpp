// The coordinator's cluster wiring (see the header).
#include "actors/cluster_host.h"

#include <spdlog/spdlog.h>
#include <caf/io/all.hpp>
#include <stdexcept>

#include "actors/node_actor.h"
#include "actors/rendezvous_store.h"

namespace conclave::actors {

void cluster_host::configure(caf::actor_system_config& cfg, const config::cluster_config& c) {
  cfg.load<caf::io::middleman>();
  add_cluster_types(cfg);
  // Loss detection within node_timeout_s: heartbeats every fifth of it, and a peer
  // silent for the rest is closed (its proxies die: down_msg everywhere).
  const auto interval = std::chrono::duration_cast<caf::timespan>(
      std::chrono::duration<double>(c.node_timeout_s / 5.0));
  const auto timeout =
      std::chrono::duration_cast<caf::timespan>(std::chrono::duration<double>(c.node_timeout_s)) -
      interval;
  cfg.set("middleman.heartbeat-interval", interval);
  cfg.set("middleman.connection-timeout", timeout);
}

cluster_host::cluster_host(caf::actor_system& sys, const config::server_config& cfg,
                           const model::model_config& model)
    : sys_(sys), cfg_(cfg), model_(model) {
  // (An argument: spawning with none trips UBSan in CAF 0.17's empty-tuple path.)
  store_ = sys_.spawn(rendezvous_store, size_t{1} << 16);
  cluster_registry_options o;
  o.fingerprint = checkpoint_fingerprint(cfg_.model_dir);
  o.settle_after = std::chrono::milliseconds(
      static_cast<int64_t>(std::max(2.0, 2 * cfg_.cluster.node_timeout_s) * 1000));
  o.board = board_;
  registry_ = sys_.spawn(cluster_registry, o);
  auto port = sys_.middleman().publish(registry_, 0, "127.0.0.1");
  if (!port)
    throw std::runtime_error("cluster: cannot publish the registry: " + sys_.render(port.error()));
  gate_port_ = *port;
  spdlog::info("cluster: registry on 127.0.0.1:{} behind the door; checkpoint {}", gate_port_,
               o.fingerprint);
}

cluster_host::~cluster_host() {
  stop();
}

void cluster_host::stop() {
  if (registry_) {
    caf::anon_send_exit(registry_, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store_, caf::exit_reason::user_shutdown);
  }
  registry_ = nullptr;
  store_ = nullptr;
  std::lock_guard lock(mu_);
  for (auto& [id, o] : replicas_) {
    o->registry = nullptr;
    o->store = nullptr;
  }
}

std::shared_ptr<cluster_replica_options> cluster_host::replica_options(int id) {
  if (cfg_.cluster.ranks_per_replica <= 0) return nullptr;
  auto o = std::make_shared<cluster_replica_options>();
  o->registry = registry_;
  o->store = store_;
  o->ranks = cfg_.cluster.ranks_per_replica;
  o->min_ranks = cfg_.cluster.min_ranks;
  o->collective_timeout_s = cfg_.cluster.collective_timeout_s;
  o->data_iface = cfg_.cluster.data_iface;
  o->model = model_;
  o->backend = cfg_.engine.backend;
  o->settings = cfg_.cluster;
  std::lock_guard lock(mu_);
  replicas_.emplace_back(id, o);
  return o;
}

serve::cluster_topology cluster_host::topology() const {
  serve::cluster_topology t = board_->get();
  t.enabled = true;
  t.ranks_per_replica = cfg_.cluster.ranks_per_replica;
  std::lock_guard lock(mu_);
  for (const auto& [id, o] : replicas_) {
    std::lock_guard view_lock(*o->view_mutex);
    serve::cluster_replica_info r;
    r.replica = id;
    r.epoch = o->view->epoch;
    r.placement_version = o->view->placement_version;
    r.ranks = o->view->ranks;
    {
      std::lock_guard experts_lock(o->experts->mu);
      const auto& v = o->experts->view;
      r.placement = v.placement.holders;
      r.placement_version = v.placement.version;
      r.expert_load = v.load;
      r.imbalance = v.imbalance;
      r.rebalances = v.rebalances;
    }
    t.replicas.push_back(std::move(r));
  }
  return t;
}

std::string cluster_host::rebalance(int replica, caf::actor supervisor, uint64_t& version) {
  caf::scoped_actor self{sys_};
  std::string error;
  self->request(supervisor, std::chrono::seconds(120), rebalance_atom::value)
      .receive([&](uint64_t v) { version = v; },
               [&](caf::error& err) { error = sys_.render(err); });
  if (!error.empty()) spdlog::warn("cluster: rebalance of replica {} failed: {}", replica, error);
  return error;
}

bool cluster_host::kill_node(int32_t node) {
  const auto t = board_->get();
  for (const auto& n : t.nodes) {
    if (n.id != node) continue;
    caf::anon_send(registry_, kill_node_atom::value, node);
    return true;
  }
  return false;
}

}  // namespace conclave::actors
