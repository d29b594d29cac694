// One node membership (see the header).
#include "actors/node_session.h"

#include <spdlog/spdlog.h>
#include <unistd.h>
#include <caf/io/all.hpp>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

#include "actors/cluster_host.h"
#include "actors/node_actor.h"
#include "gpu/devices.h"

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

/// Runs `on_stuck` unless disarmed within `limit` (the teardown watchdog).
class teardown_watch {
 public:
  teardown_watch(std::chrono::seconds limit, std::function<void()> on_stuck)
      : state_(std::make_shared<shared>()) {
    state_->on_stuck = std::move(on_stuck);
    std::thread([st = state_, limit] {
      std::unique_lock lock(st->mu);
      if (st->cv.wait_for(lock, limit, [&] { return st->done; })) return;
      lock.unlock();
      spdlog::error("cluster: stopping this membership's ranks took over {} s", limit.count());
      if (st->on_stuck) st->on_stuck();
    }).detach();
  }
  ~teardown_watch() {
    {
      std::lock_guard lock(state_->mu);
      state_->done = true;
    }
    state_->cv.notify_all();
  }
  teardown_watch(const teardown_watch&) = delete;
  teardown_watch& operator=(const teardown_watch&) = delete;

 private:
  struct shared {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::function<void()> on_stuck;
  };
  std::shared_ptr<shared> state_;
};

node_session_result run_session(const node_session_options& o, const std::atomic<bool>& stop,
                                std::chrono::seconds teardown_limit,
                                const std::function<void()>& on_stuck,
                                std::unique_ptr<teardown_watch>& watch) {
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
    watch = std::make_unique<teardown_watch>(teardown_limit, on_stuck);
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
      hello.gpu_ids.push_back(gpu::gpu_uuid(s.device));
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
              // Said now: the teardown below may be cut short by the watchdog's restart.
              spdlog::warn("cluster: {}; stopping this membership's ranks", result.reason);
            },
            caf::after(std::chrono::milliseconds(200)) >> [] {});
      }
      result.status = down ? node_session_result::kind::lost : node_session_result::kind::stopped;
    }
  }
  // Ends every rank of this membership (their communicators abort): fenced. The actor
  // system's destructor waits for them, under the watchdog.
  watch = std::make_unique<teardown_watch>(teardown_limit, on_stuck);
  caf::anon_send_exit(node, caf::exit_reason::user_shutdown);
  node = nullptr;
  registry = caf::actor{};
  return result;
}

}  // namespace

node_session_result run_node_session(const node_session_options& o, const std::atomic<bool>& stop,
                                     std::chrono::seconds teardown_limit,
                                     const std::function<void()>& on_stuck) {
  std::unique_ptr<teardown_watch> watch;  // outlives the session's actor system
  return run_session(o, stop, teardown_limit, on_stuck, watch);
}

}  // namespace conclave::actors
