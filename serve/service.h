// service: the serving system as net/ sees it, one plain interface (no CAF, no JSON).
// net/ calls it from its I/O threads: admit and start requests, read the replicas'
// state, drain, and (when enabled) inject faults. The implementation that runs it on
// actors is actors/actor_service.h; app/ makes one and hands it to net/.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/model_spec.h"
#include "serve/client_api.h"
#include "serve/cluster_topology.h"
#include "serve/replica_status.h"

namespace conclave::serve {

/// A model a server serves, as /v1/models lists it.
struct model_status {
  std::string name;
  std::vector<std::string> aliases;
  /// "loading" (its replicas are starting), "ready", "failed" (it could not start; see
  /// `error`), or "draining" (being unloaded: it takes no new requests).
  std::string state;
  std::string error;
  int64_t max_model_len = 0;
};

/// load_model: a name or alias already taken (HTTP 409).
class model_conflict : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class service {
 public:
  virtual ~service() = default;

  /// Stops every request (running ones end with an error event) and waits for them. A
  /// server must call it while its I/O context still exists, since requests hold sinks
  /// that post into it; the destructor calls it too.
  virtual void shutdown() = 0;

  /// Some replica is up and healthy, and the service is not draining.
  bool ready() const { return loaded() && !draining(); }
  /// Some replica is up and healthy.
  virtual bool loaded() const = 0;
  /// New requests are admitted: some replica is up, or one that was up is restarting.
  virtual bool accepting() const = 0;
  virtual const std::string& model_name() const = 0;
  virtual int64_t max_model_len() const = 0;

  /// The models served (one unless this is a serve::model_set).
  virtual std::vector<model_status> models() const {
    return {{model_name(), {}, loaded() ? "ready" : "loading", {}, max_model_len()}};
  }
  /// The model a request's `model` names (its name or an alias), or nothing.
  virtual std::optional<model_status> find_model(std::string_view name) const {
    if (name != model_name()) return std::nullopt;
    return models().front();
  }
  /// POST /admin/models: starts serving another model. Returns its status ("loading").
  /// Throws std::invalid_argument (bad spec, 400), model_conflict (409), or
  /// std::logic_error when this service serves one model only.
  virtual model_status load_model(const config::model_spec&) {
    throw std::logic_error("this server cannot load models at run time");
  }
  /// DELETE /admin/models/{name}: stops routing to the model, lets its running requests
  /// finish (up to drain_timeout_s; then they end with a 503) and unloads it. Throws
  /// std::out_of_range for a name that is not served, std::logic_error as above.
  virtual model_status unload_model(const std::string&) {
    throw std::logic_error("this server cannot unload models at run time");
  }

  /// Starts a request. Events go to `sink` (first `started` or `error`). Refuses with an
  /// error event and a null handle when not ready (503), draining (503) or when
  /// max_waiting requests already wait (429).
  virtual std::shared_ptr<request_handle> submit(generation_request req,
                                                 std::shared_ptr<client_sink> sink) = 0;

  /// New requests get 503 from now on; running ones continue.
  virtual void begin_drain() = 0;
  virtual bool draining() const = 0;
  /// Requests whose sessions are alive.
  virtual int64_t active_requests() const = 0;
  /// Requests submitted that have not produced a token yet.
  virtual int64_t queued_requests() const = 0;

  /// Every replica's state, load, restarts and health history (GET /admin/cluster).
  virtual std::vector<replica_snapshot> cluster() const = 0;
  /// The replicas of every model served, by model name (the dashboard and alerts).
  virtual std::vector<std::pair<std::string, std::vector<replica_snapshot>>> replicas_by_model()
      const {
    return {{model_name(), cluster()}};
  }
  /// Nodes, rank slots and where each expert-parallel replica's ranks run; `enabled`
  /// false without [cluster].
  virtual cluster_topology topology() const { return {}; }
  /// The local port nodes' connections are spliced to once the door has checked their
  /// token (the CAF gate); 0 without [cluster].
  virtual uint16_t cluster_gate_port() const { return 0; }
  /// kill_node drill: makes node `node` exit at once; false when no such node.
  virtual bool kill_node(int32_t) { return false; }
  /// Forces an expert rebalance of replica `replica` and waits until every rank switched:
  /// the placement version then in force (unchanged when no better placement exists).
  /// Throws std::out_of_range for no such replica, std::runtime_error when it fails or the
  /// replica is not expert-parallel.
  virtual uint64_t rebalance(int) { throw std::runtime_error("this server has no cluster"); }
  virtual bool fault_injection_enabled() const = 0;
  /// Makes replica `replica`'s next step fail, hang, or crash its worker or engine;
  /// false (nothing injected) when the replica is not up. Throws std::logic_error when
  /// fault injection is off, std::out_of_range for a replica that does not exist.
  virtual bool inject_fault(int replica, fault_kind kind) = 0;

  /// Starts one more replica. Returns its id, or -1 when shutting down.
  virtual int add_replica() = 0;
  /// Drains replica `id` (no new requests; running ones finish, or move elsewhere after
  /// autoscale.drain_timeout_s), then stops it: its state ends `drained`. False for an
  /// unknown id or while shutting down.
  virtual bool drain_replica(int id) = 0;
  /// Ends every running request now with a 503 error event saying `why` (a drain that
  /// ran out of time); their sequences leave the engines.
  virtual void end_requests(const std::string& why) = 0;
  /// Kills the session of request `request_id` (a random running one when empty), as a
  /// crash would: its client gets an error event, no other request is touched. Returns
  /// the request's id, or nothing when no such session runs. Throws std::logic_error
  /// when fault injection is off.
  virtual std::optional<std::string> kill_session(const std::string& request_id) = 0;
  /// Kills the server-side tool invocation of call `call_id` (a random running one when
  /// empty); its session starts the call again. Returns the call's id, or nothing.
  virtual std::optional<std::string> kill_tool(const std::string& call_id) = 0;
};

}  // namespace conclave::serve
