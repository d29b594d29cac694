// replica_pool: the replicas of a served model as the service sees them: their status
// objects, the device each holds, and the rules over them (is any up, may requests be
// admitted, which device a new cuda replica takes). Thread-safe: the autoscaler adds
// replicas while I/O threads read the list. Plain C++; the actors that run a replica
// write its replica_status.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "serve/load_sampler.h"
#include "serve/replica_status.h"

namespace conclave::serve {

class replica_pool {
 public:
  /// A replica being added: its id, its status, and its CUDA device (-1: not cuda).
  struct added {
    int id = 0;
    std::shared_ptr<replica_status> status;
    int device = -1;
  };

  /// Adds a replica. For `cuda`, it takes the lowest device from `base_device` up that no
  /// replica holds (a drained one gave its device back; a dead one keeps it). Nothing
  /// once stop() was called.
  std::optional<added> add(bool cuda, int base_device);
  /// From now on add() adds nothing; the list is final.
  void stop();
  bool stopped() const;

  /// Every replica, by id (the list never shrinks).
  std::vector<std::shared_ptr<replica_status>> list() const;
  /// The replicas with their devices, as the load sampler reads them.
  std::vector<sampled_replica> sampled() const;
  /// The autoscaler's source of this pool's load: its replicas' busy time (and their GPUs'
  /// NVML utilisation when `nvml`) and the `waiting` requests. The pool must outlive it.
  std::shared_ptr<load_source> make_load_source(std::function<int64_t()> waiting, bool nvml) const;
  size_t size() const;

  /// Every replica's snapshot, by id (GET /admin/cluster).
  std::vector<replica_snapshot> snapshots() const;
  /// Makes replica `id`'s next step take fault `kind`; false (nothing injected) when it
  /// is not up: a fault held for its next life would kill it on its first step and look
  /// like a crash loop. Throws std::out_of_range for a replica that does not exist.
  bool inject(int id, fault_kind kind) const;

  /// Some replica is up and healthy.
  bool loaded() const;
  /// New requests are admitted: some replica is up, or one that was up is restarting
  /// (requests wait for it, up to the failover timeout, instead of failing). Before any
  /// replica came up the model is loading.
  bool accepting() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<replica_status>> replicas_;
  std::vector<int> devices_;
  bool stopped_ = false;
};

/// The context limit of a served model: the configured max_model_len when set (never
/// above the model's own), else the model's.
int64_t context_limit(int64_t configured, int64_t model_max);

}  // namespace conclave::serve
