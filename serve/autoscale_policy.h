// autoscale_policy: when to add a model replica and when to drain one, as a plain class
// (no CAF). The autoscaler actor feeds it one sample of the cluster's load per interval
// and acts on its decision; tests feed it hand-made samples.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "config/server_config.h"
#include "serve/replica_status.h"

namespace conclave::serve {

/// One replica's load over the last interval.
struct replica_load {
  int id = 0;
  replica_state state = replica_state::starting;
  double utilization = 0;  ///< busy fraction of its devices over the interval, in [0, 1]
  size_t running = 0;      ///< sequences in its engine
  size_t waiting = 0;
};

/// The cluster's load over the last interval.
struct cluster_load {
  std::vector<replica_load> replicas;
  int64_t waiting = 0;  ///< requests submitted that have no token yet (the service's queue)
};

/// What to do now. `replica` is the one to drain for scale_down, else -1.
struct autoscale_decision {
  enum class action { hold, scale_up, scale_down };
  action what = action::hold;
  int replica = -1;
  std::string reason;
};

const char* to_string(autoscale_decision::action a);

/// Scale up when the serving replicas' mean utilisation is above scale_up_utilization and
/// more than scale_up_waiting requests wait; scale down (the least loaded replica) when it
/// is below scale_down_utilization. Each condition must hold for sustain_intervals samples
/// in a row; after an action nothing happens for cooldown_s, nor while a replica is still
/// starting or draining. min/max_replicas bound the replicas that are up or coming up.
/// Hysteresis: a scale-down must leave the remaining replicas below the scale-up threshold
/// (the load of n replicas spread over n - 1), so it cannot cause the next scale-up.
class autoscale_policy {
 public:
  explicit autoscale_policy(config::autoscale_config cfg) : cfg_(std::move(cfg)) {}

  /// Records `load`, observed at `now_s` (seconds on any steady clock), and decides.
  /// An action starts the cooldown and clears the streaks.
  autoscale_decision decide(const cluster_load& load, double now_s);

  const config::autoscale_config& config() const { return cfg_; }

 private:
  config::autoscale_config cfg_;
  int32_t up_streak_ = 0;    ///< samples in a row that asked for more replicas
  int32_t down_streak_ = 0;  ///< samples in a row that asked for fewer
  bool acted_ = false;
  double last_action_s_ = 0;
};

}  // namespace conclave::serve
