#include "serve/replica_status.h"

#include "serve/enum_names.h"

#include <stdexcept>

namespace conclave::serve {

const char* to_string(replica_state s) {
  static constexpr const char* names[] = {"starting", "up",       "restarting", "dead",
                                          "stopped",  "draining", "drained"};
  return enum_name(s, names);
}

fault_kind parse_fault_kind(const std::string& s) {
  for (fault_kind k : {fault_kind::fail_step, fault_kind::hang_step, fault_kind::crash_worker,
                       fault_kind::crash_engine}) {
    if (s == to_string(k)) return k;
  }
  throw std::invalid_argument("unknown fault \"" + s +
                              "\" (expected fail_step, hang_step, crash_worker or crash_engine)");
}

const char* to_string(fault_kind k) {
  static constexpr const char* names[] = {"none", "fail_step", "hang_step", "crash_worker",
                                          "crash_engine"};
  return enum_name(k, names);
}

void replica_status::set_state(replica_state st, std::string error) {
  std::lock_guard lock(mutex_);
  s_.state = st;
  if (st == replica_state::up) fault_.store(0);  // a new life starts without a held fault
  if (st != replica_state::up) s_.healthy = false;
  if (st == replica_state::up) s_.healthy = true;
  if (!error.empty()) s_.last_error = std::move(error);
}

replica_state replica_status::state() const {
  std::lock_guard lock(mutex_);
  return s_.state;
}

int replica_status::restarts() const {
  std::lock_guard lock(mutex_);
  return s_.restarts;
}

void replica_status::set_backend(std::string name, int32_t kv_blocks_total) {
  std::lock_guard lock(mutex_);
  s_.backend = std::move(name);
  s_.kv_blocks_total = kv_blocks_total;
  s_.kv_blocks_free = kv_blocks_total;
}

void replica_status::set_load(size_t running, size_t waiting, int32_t kv_free) {
  std::lock_guard lock(mutex_);
  s_.running = running;
  s_.waiting = waiting;
  s_.kv_blocks_free = kv_free;
}

void replica_status::count_restart() {
  std::lock_guard lock(mutex_);
  ++s_.restarts;
}

void replica_status::set_healthy(bool h) {
  std::lock_guard lock(mutex_);
  s_.healthy = h && s_.state == replica_state::up;
}

void replica_status::add_health(health_record r) {
  std::lock_guard lock(mutex_);
  s_.history.push_back(std::move(r));
  if (s_.history.size() > 32) s_.history.erase(s_.history.begin());
}

bool replica_status::serving() const {
  std::lock_guard lock(mutex_);
  return s_.state == replica_state::up && s_.healthy;
}

void replica_status::begin_busy(std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (busy_) return;
  busy_ = true;
  busy_since_ = now;
}

void replica_status::end_busy(std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (!busy_) return;
  busy_ = false;
  s_.busy_seconds += std::chrono::duration<double>(now - busy_since_).count();
}

double replica_status::busy_seconds_locked(std::chrono::steady_clock::time_point now) const {
  double b = s_.busy_seconds;
  if (busy_ && now > busy_since_) b += std::chrono::duration<double>(now - busy_since_).count();
  return b;
}

double replica_status::busy_seconds(std::chrono::steady_clock::time_point now) const {
  std::lock_guard lock(mutex_);
  return busy_seconds_locked(now);
}

replica_snapshot replica_status::snapshot() const {
  std::lock_guard lock(mutex_);
  replica_snapshot c = s_;
  c.id = id_;
  c.busy_seconds = busy_seconds_locked(std::chrono::steady_clock::now());
  return c;
}

}  // namespace conclave::serve
