// One node membership (see the header).
#include "actors/node_session.h"

#include <spdlog/spdlog.h>
#include <unistd.h>
#include <caf/io/all.hpp>
#include <fstream>
#include <thread>

#include "actors/cluster_host.h"
#include "actors/node_actor.h"

namespace conclave::actors {
namespace {

uint64_t memory_mib() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  while (in >> key >> kib) {
    if (key == "MemTotal:") return kib / 1024;
    in.ignore(1 << 10, '\n');
  }
  return 0;
}

}  // namespace

node_session_result run_node_session(const node_session_options& o, const std::atomic<bool>& stop) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", o.actor_threads);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  config::cluster_config cc;
  cc.node_timeout_s = o.node_timeout_s;
  cluster_host::configure(cfg, cc);
  caf::actor_system sys{cfg};
  node_session_result result;
  auto registry = sys.middleman().remote_actor("127.0.0.1", o.relay_port);
  if (!registry) {
    result.status = node_session_result::kind::unreachable;
    result.reason = sys.render(registry.error());
    return result;
  }
  node_options no;
  no.model_dir = o.model_dir;
  no.slots = o.slots;
  no.host = o.host;
  auto node = sys.spawn(node_actor, no);
  node_hello hello;
  hello.host = o.host;
  hello.pid = static_cast<int32_t>(::getpid());
  hello.version = o.version;
  hello.fingerprint = checkpoint_fingerprint(o.model_dir);
  for (const auto& s : o.slots) {
    if (s.kind == "cpu") {
      ++hello.cpu_ranks;
    } else {
      hello.gpus.push_back(s.device);
      hello.gpu_names.push_back(s.kind);
    }
  }
  hello.cores = static_cast<int32_t>(std::thread::hardware_concurrency());
  hello.memory_mib = memory_mib();
  hello.node = node;
  {
    caf::scoped_actor self{sys};
    self->monitor(*registry);
    bool answered = false;
    self->request(*registry, std::chrono::seconds(30), join_atom::value, hello)
        .receive(
            [&](node_welcome& w) {
              answered = true;
              if (!w.error.empty()) {
                result.status = node_session_result::kind::refused;
                result.reason = w.error;
                return;
              }
              result.joined = true;
              spdlog::info("cluster: joined as node {} (epoch {}) with {} rank slot(s)", w.node_id,
                           w.epoch, o.slots.size());
            },
            [&](caf::error& err) {
              answered = true;
              result.status = node_session_result::kind::lost;
              result.reason = "join: " + sys.render(err);
            });
    if (answered && result.joined) {
      // Member until the coordinator's connection goes (or we are asked to stop).
      bool down = false;
      while (!down && !stop.load()) {
        self->receive(
            [&](caf::down_msg& msg) {
              down = true;
              result.reason = "lost the coordinator: " + sys.render(msg.reason);
            },
            caf::after(std::chrono::milliseconds(200)) >> [] {});
      }
      result.status = down ? node_session_result::kind::lost : node_session_result::kind::stopped;
    }
  }
  // Ends every rank of this membership (their communicators abort): fenced.
  caf::anon_send_exit(node, caf::exit_reason::user_shutdown);
  node = nullptr;
  registry = caf::actor{};
  return result;
}

}  // namespace conclave::actors
