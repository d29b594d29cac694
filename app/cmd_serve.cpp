// `conclave serve`: the OpenAI-compatible HTTP/SSE + WebSocket server. With no
// arguments it serves the demo model (app/demo_model.cpp) on 127.0.0.1:8080.
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "actors/actor_service.h"
#include "app/commands.h"
#include "app/engine_options.h"
#include "config/server_config.h"
#include "model/model_error.h"
#include "net/cluster_door.h"
#include "net/cluster_token.h"
#include "net/http_server.h"
#include "serve/model_set.h"

namespace conclave::app {
namespace {

namespace fs = std::filesystem;

struct serve_args {
  std::string config_file;
  config::server_config cli;  // values bound to flags; applied over the file when given
  std::vector<std::string> api_keys, admin_keys;
  std::string state_store;
  bool print_config = false;
};

/// Where `conclave serve` keeps API keys and usage by default ([gateway] store):
/// $CONCLAVE_HOME/state.db, else $XDG_STATE_HOME/conclave/state.db, else
/// ~/.local/state/conclave/state.db.
std::string default_state_store() {
  if (const char* home = std::getenv("CONCLAVE_HOME"); home && *home)
    return "sqlite:" + (fs::path(home) / "state.db").string();
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg && *xdg)
    return "sqlite:" + (fs::path(xdg) / "conclave" / "state.db").string();
  if (const char* home = std::getenv("HOME"); home && *home)
    return "sqlite:" + (fs::path(home) / ".local" / "state" / "conclave" / "state.db").string();
  return "sqlite:" + (fs::temp_directory_path() / "conclave-state.db").string();
}

/// The cluster's public port ([cluster] on): the door, splicing proven nodes to the
/// registry the service published on 127.0.0.1 (the CAF gate).
struct cluster_front {
  std::unique_ptr<net::cluster_door> door;

  cluster_front(const config::cluster_config& c, std::string token, uint16_t gate_port,
                std::shared_ptr<serve::server_metrics> metrics) {
    net::cluster_door_options o;
    o.host = c.host;
    o.port = static_cast<uint16_t>(c.port);
    o.inner_port = gate_port;
    o.token = std::move(token);
    if (c.tls) o.tls = {c.certificate, c.key, c.cafile};
    o.on_refused = [metrics](const std::string& reason) { metrics->count_cluster_refusal(reason); };
    door = std::make_unique<net::cluster_door>(std::move(o));
    door->start();
    spdlog::info("cluster door on {}:{}{} ({} ranks per replica)", c.host, door->port(),
                 c.tls ? " with TLS" : "", c.ranks_per_replica);
  }
};

int run_serve(serve_args& a, CLI::App& cmd) {
  config::server_config cfg;
  if (!a.config_file.empty()) cfg = config::load_server_config(a.config_file, cfg);
  const auto given = [&cmd](const char* name) { return cmd.count(name) > 0; };
  if (given("--host")) cfg.host = a.cli.host;
  if (given("--port")) cfg.port = a.cli.port;
  if (given("--model")) cfg.model_dir = a.cli.model_dir;
  if (given("--name")) cfg.served_model_name = a.cli.served_model_name;
  if (given("--tokenizer")) cfg.tokenizer_path = a.cli.tokenizer_path;
  if (given("--chat-template")) cfg.chat_template_path = a.cli.chat_template_path;
  if (given("--api-key")) cfg.api_keys = a.api_keys;
  if (given("--admin-key")) cfg.admin_keys = a.admin_keys;
  if (given("--state-store")) cfg.gateway.store = a.state_store;
  if (cfg.gateway.store.empty()) cfg.gateway.store = default_state_store();
  if (given("--max-waiting")) cfg.max_waiting = a.cli.max_waiting;
  if (given("--drain-timeout")) cfg.drain_timeout_s = a.cli.drain_timeout_s;
  if (given("--io-threads")) cfg.io_threads = a.cli.io_threads;
  if (given("--actor-threads")) cfg.actor_threads = a.cli.actor_threads;
  if (given("--replicas")) cfg.replicas.count = a.cli.replicas.count;
  if (given("--fault-injection")) cfg.replicas.fault_injection = true;
  // Any cluster flag turns the cluster on; without one, [cluster] decides.
  if (given("--cluster-port")) cfg.cluster.port = a.cli.cluster.port;
  if (given("--cluster-token-file")) cfg.cluster.token_file = a.cli.cluster.token_file;
  if (given("--ranks-per-replica")) cfg.cluster.ranks_per_replica = a.cli.cluster.ranks_per_replica;
  if (given("--collectives")) cfg.cluster.collectives = a.cli.cluster.collectives;
  if (given("--cluster-port") || given("--cluster-token-file") || given("--ranks-per-replica"))
    cfg.cluster.enabled = true;
  apply_given_engine_options(cmd, a.cli.engine, cfg.engine);
  if (log_format_flag) cfg.observability.log_format = *log_format_flag;
  if (auto err = cfg.validate(); !err.empty()) throw std::invalid_argument(err);
  use_log_format(cfg.observability.log_format);
  if (a.print_config) {
    std::fputs(config::to_toml(cfg).c_str(), stdout);
    return exit_ok;
  }
  // Read now: a bad token file is bad input, found before the model loads.
  const std::string cluster_token =
      cfg.cluster.enabled ? net::read_cluster_token(cfg.cluster.token_file) : std::string();

  if (cfg.model_dir.empty() && cfg.models.empty()) {
    cfg.model_dir = ensure_demo_model().string();
    if (cfg.served_model_name.empty()) cfg.served_model_name = "conclave-demo";
  }
  if (cfg.models.empty()) {
    if (cfg.served_model_name.empty())
      cfg.served_model_name = fs::path(cfg.model_dir).lexically_normal().filename().string();
    if (cfg.served_model_name.empty())
      cfg.served_model_name =
          fs::path(cfg.model_dir).lexically_normal().parent_path().filename().string();
    if (cfg.tokenizer_path.empty())
      cfg.tokenizer_path = (fs::path(cfg.model_dir) / "tokenizer.json").string();
    if (!fs::exists(cfg.tokenizer_path)) {
      throw model::model_error(
          fmt::format("{}: no tokenizer (pass --tokenizer FILE)", cfg.tokenizer_path));
    }
  }

  auto metrics = std::make_shared<serve::server_metrics>();
  // Every model behind one service: [[models]] or the one [model], more loaded at run
  // time through /admin/models.
  serve::model_set service(
      cfg, metrics, [](const config::server_config& c, std::shared_ptr<serve::server_metrics> m) {
        return actors::make_actor_service(c, std::move(m));
      });
  net::http_server server(cfg, service, metrics);
  server.start();
  std::unique_ptr<cluster_front> cluster;
  if (cfg.cluster.enabled)
    cluster = std::make_unique<cluster_front>(cfg.cluster, cluster_token,
                                              service.cluster_gate_port(), metrics);
  server.handle_signals();
  for (const auto& m : service.models())
    spdlog::info("serving \"{}\" on http://{}:{} (dashboard: /dashboard)", m.name, cfg.host,
                 server.port());
  spdlog::info("/ready turns 200 once a model is loaded");
  server.wait();
  cluster.reset();     // no node joins a stopping server
  service.shutdown();  // while the server's I/O context still exists
  spdlog::info("stopped");
  return exit_ok;
}

}  // namespace

command add_serve(CLI::App& app) {
  auto args = std::make_shared<serve_args>();
  auto* cmd = app.add_subcommand("serve",
                                 "serve a model over OpenAI-compatible HTTP/SSE and WebSocket (no "
                                 "arguments: the demo model, trained for math tool calls and "
                                 "small Python functions, on 127.0.0.1:8080)");
  auto& c = args->cli;
  cmd->add_option("--config", args->config_file, "TOML config file (flags given here override it)");
  cmd->add_option("--model", c.model_dir, "Hugging Face model folder (default: the demo model)");
  cmd->add_option("--name", c.served_model_name,
                  "model name clients use (default: the folder's name)");
  cmd->add_option("--tokenizer", c.tokenizer_path,
                  "tokenizer.json (default: MODEL/tokenizer.json)");
  cmd->add_option("--chat-template", c.chat_template_path,
                  "Jinja chat template file (default: the model's own, else the built-in "
                  "Qwen3-Coder template)");
  cmd->add_option("--host", c.host, "listen address")->capture_default_str();
  cmd->add_option("--port", c.port, "listen port (0: any free port)")->capture_default_str();
  cmd->add_option("--api-key", args->api_keys,
                  "accepted API key (repeatable); none: no authentication");
  cmd->add_option("--state-store", args->state_store,
                  "where API keys and usage are kept: memory, sqlite:PATH or "
                  "redis://HOST[:PORT][/PREFIX] (default: sqlite:$CONCLAVE_HOME/state.db)");
  cmd->add_option("--admin-key", args->admin_keys,
                  "key for /admin/* and the dashboard's feed (repeatable); user keys are "
                  "refused there. None: the admin routes take --api-key's keys");
  cmd->add_option("--max-waiting", c.max_waiting, "requests queued before 429")
      ->capture_default_str();
  cmd->add_option("--drain-timeout", c.drain_timeout_s,
                  "seconds running requests may finish after SIGTERM")
      ->capture_default_str();
  cmd->add_option("--io-threads", c.io_threads, "HTTP I/O threads")->capture_default_str();
  cmd->add_option("--actor-threads", c.actor_threads, "actor scheduler threads")
      ->capture_default_str();
  cmd->add_option("--replicas", c.replicas.count,
                  "model replicas in this process; a failed one's requests move to another")
      ->capture_default_str();
  cmd->add_flag("--fault-injection", c.replicas.fault_injection,
                "enable POST /admin/fault (tests and drills only)");
  cmd->add_option("--cluster-port", c.cluster.port,
                  "coordinate a cluster: nodes join on this port (0: any free port; turns "
                  "[cluster] on)")
      ->capture_default_str();
  cmd->add_option("--cluster-token-file", c.cluster.token_file,
                  "the cluster's shared secret (>= 32 bytes, mode 600; turns [cluster] on)");
  cmd->add_option("--ranks-per-replica", c.cluster.ranks_per_replica,
                  "ranks one replica spans, 0: no expert parallelism (turns [cluster] on)")
      ->capture_default_str();
  cmd->add_option("--collectives", c.cluster.collectives,
                  "how a cluster replica's ranks exchange expert rows: auto, gloo (host "
                  "buffers) or nccl (device buffers, one GPU per rank)")
      ->check(CLI::IsMember({"auto", "gloo", "nccl"}))
      ->capture_default_str();
  cmd->add_flag("--print-config", args->print_config,
                "print the resulting configuration as TOML and exit");
  add_engine_options(*cmd, c.engine);
  return {cmd, [args, cmd] { return run_serve(*args, *cmd); }};
}

}  // namespace conclave::app
