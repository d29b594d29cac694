// autoscaler: every interval_s on the actor clock, samples the cluster's load, asks the
// autoscale_policy, and has the replica pool add a replica or drain one. A thin shell:
// the rule is the policy's, the replicas are the pool's.
#pragma once

#include <caf/all.hpp>
#include <memory>
#include <optional>
#include <string>

#include "actors/messages.h"
#include "config/server_config.h"
#include "serve/autoscale_policy.h"
#include "serve/load_sampler.h"
#include "serve/server_metrics.h"
#include "serve/service.h"

namespace conclave::actors {

/// What the autoscaler acts on (the service; a fake in tests). Called on the
/// autoscaler's thread.
class scaling_target {
 public:
  virtual ~scaling_target() = default;
  /// Starts one more replica.
  virtual void add_replica() = 0;
  /// Drains replica `id` and then stops it (replica_supervisor's drain_atom).
  virtual void drain_replica(int id) = 0;
  /// A decision that acts, in words (the dashboard's event list shows it).
  virtual void note(const std::string& /*decision*/) {}
};

/// The scaling_target of a running service: it adds and drains the service's replicas
/// and notes each decision in the dashboard's event list (metrics). `svc` must outlive
/// the autoscaler.
std::shared_ptr<scaling_target> service_scaling_target(
    serve::service* svc, std::shared_ptr<serve::server_metrics> metrics);

struct autoscaler_state {
  std::optional<serve::autoscale_policy> policy;
  std::shared_ptr<serve::load_source> source;
  std::shared_ptr<scaling_target> pool;
  serve::autoscale_decision last;      ///< the latest decision (for logs and tests)
  caf::actor_clock::time_point start;  ///< decisions see seconds since then
  static inline const char* name = "autoscaler";
};

/// Takes a baseline sample now, then decides every cfg.interval_s.
caf::behavior autoscaler(caf::stateful_actor<autoscaler_state>* self, config::autoscale_config cfg,
                         std::shared_ptr<serve::load_source> source,
                         std::shared_ptr<scaling_target> pool);

}  // namespace conclave::actors
