// server_config: everything `conclave serve` needs (listener, limits, model, engine),
// from embedded defaults, then a TOML file, then command-line flags.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "config/engine_config.h"
#include "config/model_spec.h"
#include "config/observability_config.h"

namespace conclave::config {

struct websocket_config {
  size_t max_frame_bytes = size_t{4} << 20;  ///< larger client frames close the connection (1009)
  size_t max_buffered_bytes = size_t{8} << 20;  ///< a reader this far behind is disconnected (1008)
  double ping_interval_s = 20.0;  ///< server pings; two missed pongs close the connection
};

/// [replicas]: how many model replicas, and how they are supervised and checked.
struct replica_config {
  int32_t count = 1;                 ///< model replicas in this process
  int32_t failover_attempts = 3;     ///< times one request moves to another replica
  double failover_timeout_s = 30.0;  ///< how long a moved request waits for a live replica
  int32_t max_restarts = 5;          ///< restarts within restart_window_s, then it is dead
  double restart_window_s = 600.0;
  double restart_backoff_s = 0.5;       ///< delay before the first restart; doubles per try
  double restart_backoff_max_s = 30.0;  ///< the longest delay between restarts
  double backoff_reset_s = 60.0;  ///< a replica up this long restarts after restart_backoff_s again
  double step_timeout_s = 120.0;  ///< watchdog: a step running longer ends the replica
  double heartbeat_interval_s = 5.0;  ///< 0 turns heartbeats off
  double probe_interval_s = 30.0;     ///< a real 10-token generation; 0 turns probes off
  double probe_timeout_s = 10.0;      ///< a slower probe counts as failed
  int32_t unhealthy_after = 3;        ///< consecutive failed checks before a restart
  bool fault_injection = false;       ///< POST /admin/fault (tests and drills only)
  double hang_s = 0.0;                ///< length of an injected hang; 0: step_timeout_s + 5

  std::string validate() const;
};

/// [autoscale]: the autoscaler adds a replica under sustained load and drains one when
/// the cluster idles (docs/serving.md, "Autoscaling").
struct autoscale_config {
  bool enabled = false;
  double interval_s = 10.0;              ///< how often load is sampled and a decision made
  int32_t sustain_intervals = 3;         ///< intervals in a row a condition must hold
  double scale_up_utilization = 0.80;    ///< mean busy fraction of the up replicas...
  int32_t scale_up_waiting = 10;         ///< ...and more requests than this waiting
  double scale_down_utilization = 0.30;  ///< below this, drain the least loaded replica
  double cooldown_s = 120.0;             ///< after a scaling step, no other for this long
  int32_t min_replicas = 1;
  int32_t max_replicas = 4;
  double drain_timeout_s = 60.0;  ///< running requests of a draining replica then move away
  bool nvml = true;               ///< cuda replicas: GPU utilisation from NVML where present

  std::string validate() const;
};

/// [[tools.webhooks]]: a server-side tool that POSTs its arguments to `url`.
struct webhook_tool_config {
  std::string name, description;
  std::string url;         ///< http://host[:port][/path]
  std::string parameters;  ///< the arguments' JSON schema, as JSON text
  double timeout_s = 10.0;
};

/// [[tools.plugins]]: a shared object with tools (toolkit/plugin.h) loaded at start.
struct plugin_tool_config {
  std::string path;
  /// The entry's `config` table as JSON text, handed to the plugin ("{}" when absent;
  /// `config_json = "..."` gives it as text).
  std::string config = "{}";
};

/// [tools]: server-side tools a request may enable (docs/tools.md).
struct tools_config {
  int32_t max_rounds = 4;       ///< tool rounds per request
  int32_t retry_base_ms = 200;  ///< backoff base: base × 2^attempt, jittered, 5 attempts
  double sandbox_wall_s = 10.0;
  int32_t sandbox_cpu_s = 5;
  int32_t sandbox_memory_mib = 512;
  std::vector<std::string> browser_allowed_hosts;  ///< empty: no `browser` tool
  std::vector<webhook_tool_config> webhooks;
  std::vector<plugin_tool_config> plugins;

  std::string validate() const;
};

/// [cluster]: this server as the coordinator of nodes on other hosts (docs/cluster.md §4,
/// §10). Off unless enabled here or by a `serve --cluster-*` / `--ranks-per-replica` flag.
struct cluster_config {
  bool enabled = false;
  std::string host = "0.0.0.0";   ///< where the door (the public cluster port) listens
  int32_t port = 7070;            ///< the door's port; 0: any free port (logged)
  std::string token_file;         ///< the shared secret: >= 32 bytes, readable by its owner only
  int32_t ranks_per_replica = 0;  ///< ranks one replica spans; 0: no expert parallelism
  int32_t min_ranks = 1;          ///< fewest ranks a replica is rebuilt with after a loss
  double node_timeout_s = 5.0;    ///< a silent node is lost after this long
  double collective_timeout_s = 10.0;  ///< a Gloo/NCCL collective longer than this fails
  std::string data_iface;              ///< network interface of rank traffic; empty: any
  /// How a replica's ranks exchange expert rows: "gloo" (host buffers over TCP: any
  /// ranks, cpu or gpu, several on one device), "nccl" (device buffers: every rank on a
  /// GPU of its own), "auto" (nccl where a replica's ranks allow it and NCCL was built,
  /// else gloo).
  std::string collectives = "auto";
  double rebalance_interval_s = 60.0;  ///< expert rebalancing period; 0: never
  double rebalance_threshold = 1.3;    ///< rebalance when max / mean rank load exceeds this
  int32_t redundant_experts = 0;       ///< extra copies of hot experts per layer
  bool tls = false;  ///< TLS on the door's port, terminated in the door and the node's relay
  std::string certificate, key, cafile;  ///< PEM files; all three required with tls

  std::string validate() const;
};

/// [gateway]: where API keys, usage and the stream journal are kept (docs/gateway.md).
struct gateway_config {
  /// "memory", "sqlite:PATH" or "redis://HOST[:PORT][/PREFIX]". Empty: `conclave serve`
  /// uses sqlite:$CONCLAVE_HOME/state.db (else $XDG_STATE_HOME/conclave/state.db, else
  /// ~/.local/state/conclave/state.db); a server embedded in another program, memory.
  std::string store;
  double usage_flush_s = 1.0;  ///< how often usage is written to the store
  /// How long a streamed request stays resumable after its last event (SSE Last-Event-ID,
  /// WebSocket "resume"); 0: streams are not journaled.
  double resume_window_s = 600;
  /// How often the journal of resumable streams is written to the store (in batches).
  double journal_flush_s = 0.25;

  std::string validate() const;
};

struct server_config {
  // [server]
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::vector<std::string> api_keys;  ///< empty: no authentication
  /// Keys for the admin routes (/admin/*, the dashboard's feed); user keys are refused
  /// there (403). Empty: the admin routes take api_keys, as the user routes do.
  std::vector<std::string> admin_keys;
  size_t max_body_bytes = size_t{4} << 20;     ///< 413 above this
  size_t max_header_bytes = size_t{16} << 10;  ///< 431 above this
  int32_t max_waiting = 4096;                  ///< requests queued before 429
  double drain_timeout_s = 30.0;               ///< SIGTERM: how long running requests may finish
  int io_threads = 1;                          ///< Beast I/O threads
  int actor_threads = 2;                       ///< CAF scheduler threads
  websocket_config websocket;
  // [model]
  std::string model_dir;          ///< empty: the embedded demo model
  std::string served_model_name;  ///< empty: the folder's name ("conclave-demo" for the demo)
  std::string tokenizer_path;     ///< empty: MODEL/tokenizer.json
  /// A Jinja chat template file; empty: the tokenizer folder's own (chat_template.jinja,
  /// then tokenizer_config.json's chat_template), else the built-in Qwen3-Coder one.
  std::string chat_template_path;
  /// [[models]]: the models of a server that serves several, each on its own replicas
  /// (the [engine], [replicas], [autoscale] and [tools] sections apply to each, with the
  /// spec's overrides). Empty: the one model of [model].
  std::vector<model_spec> models;
  // [engine]
  engine_config engine;
  // [replicas]
  replica_config replicas;
  // [autoscale]
  autoscale_config autoscale;
  // [tools]
  tools_config tools;
  // [cluster]
  cluster_config cluster;
  // [observability], [alerting], [[alerts]]
  observability_config observability;
  // [gateway]
  gateway_config gateway;

  /// Empty when valid, else one line naming the key.
  std::string validate() const;
};

/// Reads a TOML file over `base`. Throws std::invalid_argument naming the file, key and
/// line for syntax errors, unknown keys and wrong types.
server_config load_server_config(const std::filesystem::path& path, server_config base = {});

/// The TOML text of `c` (what `conclave serve --print-config` shows).
std::string to_toml(const server_config& c);

}  // namespace conclave::config
