// `conclave node`: a host that lends its devices to a coordinator (docs/cluster.md §1).
// It checks its flags and the token file, proves the cluster token at the coordinator's
// door (§4; a refusal exits 2), then joins through a local relay that proves the token on
// every connection, and hosts the ranks the coordinator places on it. When the
// coordinator's connection is lost (it died, the network split, or this process was
// paused past the timeout) every rank of that membership stops and the node joins again,
// with backoff, until --rejoin-timeout. With --tls-* every connection to the door is TLS
// (the coordinator's certificate verified against the CA file); a failed TLS handshake is
// retried like an unreachable door, not taken as a refusal.
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include <csignal>
#include <cstring>
#include <fstream>

#include "actors/node_session.h"
#include "app/commands.h"
#include "gpu/devices.h"
#include "net/cluster_token.h"
#include "net/door_client.h"

namespace conclave::app {
namespace {

struct node_args {
  std::string join, token_file, model_dir;
  std::vector<int> gpus;
  int cpu_ranks = 0;
  double rejoin_timeout_s = 0;  ///< 0: retry forever
  double node_timeout_s = 5;
  net::tls_files tls;  ///< all three or none
};

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) {
  g_stop.store(true);
}

/// The command line this process was started with (/proc/self/cmdline).
std::vector<std::string> own_arguments() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) args.push_back(arg);
  return args;
}

/// A membership whose ranks would not stop: when stopping, exit; else start this node
/// afresh (a new process image has no stuck thread) with the same arguments.
void on_stuck_teardown() {
  if (g_stop.load()) {
    spdlog::error("node: a rank did not stop in time; exiting");
    std::_Exit(exit_ok);
  }
  auto args = own_arguments();
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  spdlog::error("node: a rank did not stop in time; restarting this node");
  spdlog::default_logger()->flush();
  ::execv("/proc/self/exe", argv.data());
  spdlog::error("node: cannot restart ({}); exiting", std::strerror(errno));
  std::_Exit(exit_failure);
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

struct host_port {
  std::string host;
  uint16_t port = 0;
};

/// "HOST:P" or "[V6]:P". Throws std::invalid_argument.
host_port parse_join(const std::string& s) {
  const auto bad = [&] {
    return std::invalid_argument(fmt::format("--join {}: expected HOST:PORT", s));
  };
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) throw bad();
  std::string host = s.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') throw bad();
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    throw bad();  // a bare IPv6 address needs brackets
  }
  unsigned port = 0;
  const char* first = s.data() + colon + 1;
  const char* last = s.data() + s.size();
  const auto [end, ec] = std::from_chars(first, last, port);
  if (ec != std::errc() || end != last || port == 0 || port > 65535) throw bad();
  return {host, static_cast<uint16_t>(port)};
}

int run_node(const node_args& a) {
  const host_port door = parse_join(a.join);
  if (!a.model_dir.empty() && !std::filesystem::is_directory(a.model_dir))
    throw std::invalid_argument(fmt::format("--model {}: not a directory", a.model_dir));
  if (a.rejoin_timeout_s < 0) throw std::invalid_argument("--rejoin-timeout must be >= 0");
  if (a.tls.enabled() && (a.tls.certificate.empty() || a.tls.key.empty() || a.tls.cafile.empty()))
    throw std::invalid_argument("TLS needs all of --tls-certificate, --tls-key and --tls-cafile");
  for (const auto& [flag, file] :
       {std::pair{"--tls-certificate", &a.tls.certificate}, std::pair{"--tls-key", &a.tls.key},
        std::pair{"--tls-cafile", &a.tls.cafile}}) {
    if (!file->empty() && !std::filesystem::is_regular_file(*file))
      throw std::invalid_argument(fmt::format("{} {}: no such file", flag, *file));
  }
  // Every GPU lent must exist, once: a rank on a missing card would fail only when a
  // replica is brought up on it, far from this command line.
  for (auto it = a.gpus.begin(); it != a.gpus.end(); ++it)
    if (std::find(a.gpus.begin(), it, *it) != it)
      throw std::invalid_argument(fmt::format("--gpus: GPU {} is listed twice", *it));
  if (!a.gpus.empty()) {
    const int visible = gpu::visible_gpus();
    for (int g : a.gpus)
      if (g >= visible)
        throw std::invalid_argument(
            fmt::format("--gpus {}: no such GPU ({} visible{})", g, visible,
                        gpu::cuda_built() ? "" : ": this conclave was built without CUDA"));
  }
  const std::string token = net::read_cluster_token(a.token_file);
  std::vector<actors::rank_slot> slots;
  for (int i = 0; i < a.cpu_ranks; ++i) slots.push_back({"cpu", -1});
  for (int g : a.gpus) slots.push_back({"cuda", g});
  if (slots.empty())
    throw std::invalid_argument("the node offers no ranks: give --cpu-ranks K and/or --gpus");
  const std::string where = fmt::format("{}:{}", door.host, door.port);
  const std::filesystem::path model_dir =
      a.model_dir.empty() ? ensure_demo_model() : std::filesystem::path(a.model_dir);

  using clock = std::chrono::steady_clock;
  auto started = clock::now();
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);

  auto delay = std::chrono::seconds(1);
  for (;;) {
    const net::prove_result r =
        net::join_door(door.host, door.port, token, std::chrono::seconds(5), a.tls);
    using kind = net::prove_result::kind;
    if (g_stop.load()) return exit_ok;
    switch (r.status) {
      case kind::ok: {
        spdlog::info("cluster: {} accepted the cluster token", where);
        net::door_relay relay(door.host, door.port, token, std::chrono::seconds(5), a.tls);
        relay.start();
        actors::node_session_options so;
        so.relay_port = relay.port();
        so.model_dir = model_dir;
        so.slots = slots;
        so.host = host_name();
        so.version = "0.1.0";
        so.node_timeout_s = a.node_timeout_s;
        const auto session =
            actors::run_node_session(so, g_stop, std::chrono::seconds(30), on_stuck_teardown);
        relay.stop();
        using sk = actors::node_session_result::kind;
        if (session.status == sk::stopped) return exit_ok;
        if (session.status == sk::refused) {
          spdlog::error("node: refused by {}: {}", where.c_str(), session.reason.c_str());
          return exit_bad_input;
        }
        if (!session.joined) spdlog::warn("cluster: {}", session.reason);  // else said already
        if (session.joined) {
          delay = std::chrono::seconds(1);  // a member until now: rejoin soon
          started = clock::now();
        }
        break;
      }
      case kind::refused:
        if (r.reason != "not ready") {
          spdlog::error("node: refused by {}: {}", where.c_str(),
                        r.reason == "bad token" ? "bad cluster token" : r.reason.c_str());
          return exit_bad_input;
        }
        break;  // the coordinator is still starting: retry
      case kind::untrusted:
        spdlog::error("node: {}: {}", where.c_str(), r.reason.c_str());
        return exit_bad_input;
      case kind::unreachable:
      case kind::error:
        break;
    }
    const double waited = std::chrono::duration<double>(clock::now() - started).count();
    if (a.rejoin_timeout_s > 0 && waited >= a.rejoin_timeout_s) {
      spdlog::error("node: cannot join {}: {} (gave up after {:.0f} s)", where.c_str(),
                    r.reason.c_str(), a.rejoin_timeout_s);
      return exit_failure;
    }
    spdlog::warn("cluster: cannot join {}: {}; retrying in {} s", where, r.reason, delay.count());
    auto sleep = std::chrono::duration<double>(delay);
    if (a.rejoin_timeout_s > 0)
      sleep = std::min(sleep, std::chrono::duration<double>(a.rejoin_timeout_s - waited));
    for (auto until = clock::now() + std::chrono::duration_cast<clock::duration>(sleep);
         clock::now() < until && !g_stop.load();)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (g_stop.load()) return exit_ok;
    delay = std::min(delay * 2, std::chrono::seconds(5));
  }
}

}  // namespace

command add_node(CLI::App& app) {
  auto args = std::make_shared<node_args>();
  auto* cmd = app.add_subcommand(
      "node",
      "join a coordinator (`conclave serve --cluster-port P`) and lend it this host's "
      "devices as ranks of expert-parallel replicas (docs/cluster.md)");
  cmd->add_option("--join", args->join, "the coordinator's cluster door, HOST:PORT")->required();
  cmd->add_option("--cluster-token-file", args->token_file,
                  "the cluster's shared secret (>= 32 bytes, mode 600)")
      ->required();
  cmd->add_option("--gpus", args->gpus, "CUDA devices to lend, e.g. 0,1 (default: none)")
      ->delimiter(',')
      ->check(CLI::Range(0, 1023));
  cmd->add_option("--cpu-ranks", args->cpu_ranks, "CPU ranks to lend")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_option("--model", args->model_dir,
                  "this host's copy of the coordinator's checkpoint folder (default: the demo "
                  "model)");
  cmd->add_option("--node-timeout", args->node_timeout_s,
                  "seconds of silence after which the coordinator counts as lost (match its "
                  "[cluster] node_timeout_s)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--rejoin-timeout", args->rejoin_timeout_s,
                  "seconds to keep retrying an unreachable coordinator, then exit 1 "
                  "(default: forever)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--tls-certificate", args->tls.certificate,
                  "PEM certificate of this node, signed by the coordinator's [cluster] cafile "
                  "(for a coordinator with [cluster] tls = true)");
  cmd->add_option("--tls-key", args->tls.key, "PEM private key of --tls-certificate (unencrypted)");
  cmd->add_option("--tls-cafile", args->tls.cafile,
                  "PEM CA the coordinator's certificate must be signed by");
  return {cmd, [args] { return run_node(*args); }};
}

}  // namespace conclave::app
