// load_sampler: where the autoscaler's view of the cluster's load comes from. The
// production source differences each replica's busy time (steps in flight on its
// devices) between samples, or asks NVML for a cuda replica's GPU utilisation; tests
// drive their own source.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "serve/autoscale_policy.h"
#include "serve/replica_status.h"

namespace conclave::serve {

class nvml_reader;

/// Gives the autoscaler one sample of the cluster's load per interval.
class load_source {
 public:
  virtual ~load_source() = default;
  virtual cluster_load sample() = 0;
};

/// A replica as the sampler sees it.
struct sampled_replica {
  std::shared_ptr<replica_status> status;
  int cuda_device = -1;  ///< the CUDA device it runs on; -1: not a cuda replica
};

class busy_time_sampler final : public load_source {
 public:
  /// `replicas` lists the replicas now (the service's list, copied under its lock);
  /// `waiting` counts requests without a token yet; `nvml` may be null.
  busy_time_sampler(std::function<std::vector<sampled_replica>()> replicas,
                    std::function<int64_t()> waiting, std::shared_ptr<nvml_reader> nvml);
  cluster_load sample() override { return sample_at(std::chrono::steady_clock::now()); }
  /// Utilisation over the time since the previous sample (0 for a replica on its first
  /// sample, so the first sample is a baseline).
  cluster_load sample_at(std::chrono::steady_clock::time_point now);

 private:
  std::function<std::vector<sampled_replica>()> replicas_;
  std::function<int64_t()> waiting_;
  std::shared_ptr<nvml_reader> nvml_;
  std::map<int, double> prev_busy_;  ///< per replica id
  std::optional<std::chrono::steady_clock::time_point> prev_time_;
};

}  // namespace conclave::serve
