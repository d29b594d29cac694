// Busy time differenced over the sampling interval; NVML where it answers.
#include "serve/load_sampler.h"

#include <algorithm>

#include "serve/nvml.h"

namespace conclave::serve {

busy_time_sampler::busy_time_sampler(std::function<std::vector<sampled_replica>()> replicas,
                                     std::function<int64_t()> waiting,
                                     std::shared_ptr<nvml_reader> nvml)
    : replicas_(std::move(replicas)), waiting_(std::move(waiting)), nvml_(std::move(nvml)) {}

cluster_load busy_time_sampler::sample_at(std::chrono::steady_clock::time_point now) {
  cluster_load out;
  out.waiting = waiting_ ? waiting_() : 0;
  const double elapsed =
      prev_time_ ? std::chrono::duration<double>(now - *prev_time_).count() : 0.0;
  for (const auto& r : replicas_()) {
    const auto snap = r.status->snapshot();
    replica_load l;
    l.id = snap.id;
    l.state = snap.state;
    l.running = snap.running;
    l.waiting = snap.waiting;
    const double busy = r.status->busy_seconds(now);
    const auto prev = prev_busy_.find(snap.id);
    if (prev != prev_busy_.end() && elapsed > 0)
      l.utilization = std::clamp((busy - prev->second) / elapsed, 0.0, 1.0);
    prev_busy_[snap.id] = busy;
    // The device's own view counts kernels of every process and every stream; busy time
    // counts a step from its send to its answer. NVML wins where it answers.
    if (r.cuda_device >= 0 && nvml_) {
      if (auto u = nvml_->utilization(r.cuda_device)) l.utilization = std::clamp(*u, 0.0, 1.0);
    }
    out.replicas.push_back(l);
  }
  prev_time_ = now;
  return out;
}

}  // namespace conclave::serve
