// The replica list and its rules (see the header).
#include "serve/replica_pool.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "serve/nvml.h"

namespace conclave::serve {

std::optional<replica_pool::added> replica_pool::add(bool cuda, int base_device) {
  std::lock_guard lock(mutex_);
  if (stopped_) return std::nullopt;
  added a;
  a.id = static_cast<int>(replicas_.size());
  if (cuda) {
    std::vector<int> held;
    for (size_t i = 0; i < replicas_.size(); ++i) {
      if (replicas_[i]->state() != replica_state::drained) held.push_back(devices_[i]);
    }
    a.device = base_device;
    while (std::find(held.begin(), held.end(), a.device) != held.end()) ++a.device;
  }
  a.status = std::make_shared<replica_status>(a.id);
  replicas_.push_back(a.status);
  devices_.push_back(a.device);
  return a;
}

void replica_pool::stop() {
  std::lock_guard lock(mutex_);
  stopped_ = true;
}

bool replica_pool::stopped() const {
  std::lock_guard lock(mutex_);
  return stopped_;
}

std::vector<std::shared_ptr<replica_status>> replica_pool::list() const {
  std::lock_guard lock(mutex_);
  return replicas_;
}

std::vector<sampled_replica> replica_pool::sampled() const {
  std::lock_guard lock(mutex_);
  std::vector<sampled_replica> out;
  for (size_t i = 0; i < replicas_.size(); ++i) out.push_back({replicas_[i], devices_[i]});
  return out;
}

size_t replica_pool::size() const {
  std::lock_guard lock(mutex_);
  return replicas_.size();
}

std::vector<replica_snapshot> replica_pool::snapshots() const {
  std::vector<replica_snapshot> out;
  for (const auto& r : list()) out.push_back(r->snapshot());
  return out;
}

bool replica_pool::inject(int id, fault_kind kind) const {
  const auto replicas = list();
  if (id < 0 || static_cast<size_t>(id) >= replicas.size())
    throw std::out_of_range("no replica " + std::to_string(id));
  auto& r = *replicas[static_cast<size_t>(id)];
  if (r.state() != replica_state::up) return false;
  r.inject(kind);
  return true;
}

bool replica_pool::loaded() const {
  std::lock_guard lock(mutex_);
  return std::any_of(replicas_.begin(), replicas_.end(),
                     [](const auto& r) { return r->serving(); });
}

bool replica_pool::accepting() const {
  bool some_up_once = false;
  std::lock_guard lock(mutex_);  // (no copy: this runs for every request)
  for (const auto& r : replicas_) {
    const auto st = r->state();
    if (st == replica_state::up) return true;
    if (st == replica_state::restarting && r->restarts() > 0) some_up_once = true;
  }
  return some_up_once;
}

int64_t context_limit(int64_t configured, int64_t model_max) {
  return configured > 0 ? std::min(configured, model_max) : model_max;
}

std::shared_ptr<load_source> replica_pool::make_load_source(std::function<int64_t()> waiting,
                                                            bool nvml) const {
  return std::make_shared<busy_time_sampler>([this] { return sampled(); }, std::move(waiting),
                                             nvml ? std::make_shared<nvml_reader>() : nullptr);
}

}  // namespace conclave::serve
