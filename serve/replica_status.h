// replica_status: what one model replica is doing, shared between its actors (which
// write it) and the server's admin/readiness views (which read it from I/O threads).
// Plain C++: no CAF, so net/ can include it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace conclave::serve {

/// draining: the autoscaler is removing it (no new requests, running ones finish);
/// drained: it was removed that way and its actors have stopped.
enum class replica_state { starting, up, restarting, dead, stopped, draining, drained };
const char* to_string(replica_state s);

/// Faults a drill or test can inject into a replica's next step (only when
/// fault_injection.enabled is set in the config).
enum class fault_kind : int { none = 0, fail_step, hang_step, crash_worker, crash_engine };
/// "fail_step" etc.; throws std::invalid_argument for anything else.
fault_kind parse_fault_kind(const std::string& s);
const char* to_string(fault_kind k);

/// One health observation: a probe generation, a heartbeat, or a memory reading.
struct health_record {
  std::chrono::system_clock::time_point when;
  std::string check;  ///< "probe" or "heartbeat"
  bool ok = false;
  double latency_ms = 0;
  std::string detail;  ///< why it failed; empty when ok
};

/// A copy of a replica's status at one moment.
struct replica_snapshot {
  int id = 0;
  replica_state state = replica_state::starting;
  bool healthy = false;  ///< up and its last health checks passed
  int restarts = 0;
  std::string backend;
  int32_t kv_blocks_total = 0, kv_blocks_free = 0;
  size_t running = 0, waiting = 0;
  std::string last_error;
  std::vector<health_record> history;  ///< newest last
  double busy_seconds = 0;  ///< time steps were in flight on its devices, since it was made
};

class replica_status {
 public:
  explicit replica_status(int id) : id_(id) {}
  int id() const { return id_; }

  void set_state(replica_state s, std::string error = {});
  replica_state state() const;
  int restarts() const;
  void set_backend(std::string name, int32_t kv_blocks_total);
  void set_load(size_t running, size_t waiting, int32_t kv_free);
  void count_restart();
  void set_healthy(bool h);
  void add_health(health_record r);  ///< keeps the last 32
  bool serving() const;              ///< up and healthy: may take requests

  /// Busy time: the engine calls begin_busy when a step goes to its worker and end_busy
  /// when the answer is back. busy_seconds(now) includes a step still in flight, so a
  /// sampler that differences it sees a long step while it runs.
  void begin_busy(std::chrono::steady_clock::time_point now);
  void end_busy(std::chrono::steady_clock::time_point now);
  double busy_seconds(std::chrono::steady_clock::time_point now) const;

  replica_snapshot snapshot() const;

  /// Fault injection: the replica's next step takes (and clears) it.
  void inject(fault_kind k) { fault_.store(static_cast<int>(k)); }
  fault_kind take_fault() { return static_cast<fault_kind>(fault_.exchange(0)); }

 private:
  const int id_;
  mutable std::mutex mutex_;
  replica_snapshot s_;
  std::atomic<int> fault_{0};
  /// busy_seconds(now) with mutex_ held.
  double busy_seconds_locked(std::chrono::steady_clock::time_point now) const;
  bool busy_ = false;
  std::chrono::steady_clock::time_point busy_since_;
};

}  // namespace conclave::serve
