// service: the actor system behind a server, as one plain object net/ can call from its
// I/O threads. Owns the CAF actor system, the router, one replica supervisor and the
// per-request sessions it spawns.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "actors/client_api.h"
#include "actors/replica_status.h"
#include "actors/server_metrics.h"
#include "config/server_config.h"

namespace caf {
class actor_system;
class actor_system_config;
}  // namespace caf

namespace conclave::actors {

struct text_resources;
struct session_counters;

class inference_service {
 public:
  /// Opens the checkpoint and tokenizer named by `cfg` (model_dir and tokenizer_path must
  /// be set) and starts loading the replica in the background; ready() turns true once it
  /// is loaded and warm. Throws model_error / std::invalid_argument for bad files.
  inference_service(const config::server_config& cfg, std::shared_ptr<server_metrics> metrics);
  /// Stops every actor (running requests end with an error event) and waits for them.
  ~inference_service();
  /// The same as the destructor, callable earlier: a server must shut the service down
  /// while its I/O context still exists, since sessions hold sinks that post into it.
  void shutdown();
  inference_service(const inference_service&) = delete;
  inference_service& operator=(const inference_service&) = delete;

  /// Some replica is up and healthy, and the service is not draining.
  bool ready() const { return loaded() && !draining_.load(); }
  /// Some replica is up and healthy.
  bool loaded() const;
  /// New requests are admitted: some replica is up, or one that was up is restarting.
  bool accepting() const;
  const std::string& model_name() const { return model_name_; }
  int64_t max_model_len() const;

  /// Starts a request. Events go to `sink` (first `started` or `error`). Refuses with an
  /// error event and a null handle when not ready (503), draining (503) or when
  /// max_waiting requests already wait (429).
  std::shared_ptr<request_handle> submit(generation_request req, std::shared_ptr<client_sink> sink);

  /// New requests get 503 from now on; running ones continue.
  void begin_drain() { draining_.store(true); }
  bool draining() const { return draining_.load(); }
  /// Requests whose sessions are alive.
  int64_t active_requests() const;
  /// Requests submitted that have not produced a token yet.
  int64_t queued_requests() const;

  /// Every replica's state, load, restarts and health history (GET /admin/cluster).
  std::vector<replica_snapshot> cluster() const;
  bool fault_injection_enabled() const { return cfg_.replicas.fault_injection; }
  /// Makes replica `replica`'s next step fail, hang, or crash its worker or engine;
  /// false (nothing injected) when the replica is not up. Throws std::logic_error when
  /// fault injection is off, std::out_of_range for a replica that does not exist.
  bool inject_fault(int replica, fault_kind kind);

  /// Starts one more replica (the autoscaler's scale-up; a cuda replica takes the lowest
  /// device index no replica holds). Returns its id, or -1 when shutting down.
  int add_replica();
  /// Drains replica `id` (no new requests; running ones finish, or move elsewhere after
  /// autoscale.drain_timeout_s), then stops it: its state ends `drained`. False for an
  /// unknown id or while shutting down.
  bool drain_replica(int id);
  /// Ends every running request now with a 503 error event saying `why` (a drain that
  /// ran out of time); their sequences leave the engines.
  void end_requests(const std::string& why);
  /// Kills the session of request `request_id` (a random running one when empty), as a
  /// crash would: its client gets an error event, no other request is touched. Returns
  /// the request's id, or nothing when no such session runs. Throws std::logic_error
  /// when fault injection is off.
  std::optional<std::string> kill_session(const std::string& request_id);
  /// Kills the server-side tool invocation of call `call_id` (a random running one when
  /// empty); its session starts the call again. Returns the call's id, or nothing.
  std::optional<std::string> kill_tool(const std::string& call_id);

 private:
  config::server_config cfg_;
  std::shared_ptr<server_metrics> metrics_;
  std::string model_name_;
  std::shared_ptr<text_resources> text_;
  std::shared_ptr<session_counters> counters_;
  std::shared_ptr<class live_actors> sessions_;  ///< running sessions, by request id
  std::mutex fault_mutex_;
  std::mt19937_64 fault_rng_{std::random_device{}()};
  /// Guards replicas_, replica_devices_, stopping_ and actors_->supervisors: the
  /// autoscaler adds replicas while I/O threads read the list.
  mutable std::mutex replicas_mutex_;
  std::vector<std::shared_ptr<replica_status>> replicas_;  ///< by id, never shrinks
  std::vector<int> replica_devices_;                       ///< cuda device; -1: cpu
  bool stopping_ = false;
  std::vector<int32_t> probe_;  ///< the health probe's prompt
  /// A copy of replicas_, taken under the lock.
  std::vector<std::shared_ptr<replica_status>> replica_list() const;
  /// kill_session / kill_tool: kills `name` (or a random working one) in `list` (null:
  /// nothing to kill).
  std::optional<std::string> kill_in(class live_actors* list, const std::string& name,
                                     const char* what);
  /// Spawns the supervisor of a new replica; replicas_mutex_ held.
  int spawn_replica_locked();
  std::atomic<bool> draining_{false};
  std::unique_ptr<caf::actor_system_config> system_cfg_;
  std::unique_ptr<caf::actor_system> system_;
  struct handles;
  std::unique_ptr<handles> actors_;
};

}  // namespace conclave::actors
