// The cluster registry actor (see the header).
#include "actors/cluster_registry.h"

#include <spdlog/spdlog.h>
#include <map>

namespace conclave::actors {
namespace {

using settle_atom = caf::atom_constant<caf::atom("settle")>;

struct node_entry {
  node_hello hello;
  uint64_t epoch = 0;
  std::vector<int32_t> slot_replica;  ///< -1: free
};

struct waiting_lease {
  int32_t replica = 0, wanted = 1, minimum = 1;
  bool settle = false;  ///< settle_after passed: `minimum` will do
  caf::response_promise promise;
};

struct registry_state {
  cluster_registry_options opts;
  std::map<int32_t, node_entry> nodes;
  std::map<caf::actor_addr, int32_t> node_of_actor;
  int32_t next_id = 1;
  uint64_t next_epoch = 1;
  uint64_t next_wait = 1;
  std::map<uint64_t, waiting_lease> waiting;  ///< in arrival order
  serve::cluster_topology counters;
};

size_t free_ranks(const registry_state& st) {
  size_t n = 0;
  for (const auto& [id, node] : st.nodes)
    for (int32_t r : node.slot_replica) n += r < 0;
  return n;
}

/// Takes `n` free slots for `replica`, spreading over nodes in id order.
std::vector<rank_lease> take(registry_state& st, int32_t replica, size_t n) {
  std::vector<rank_lease> out;
  for (auto& [id, node] : st.nodes) {
    for (size_t s = 0; s < node.slot_replica.size() && out.size() < n; ++s) {
      if (node.slot_replica[s] >= 0) continue;
      node.slot_replica[s] = replica;
      const bool gpu = static_cast<int32_t>(s) >= node.hello.cpu_ranks;
      const size_t g = gpu ? s - static_cast<size_t>(node.hello.cpu_ranks) : 0;
      const int32_t device = gpu ? node.hello.gpus[g] : -1;
      out.push_back({id, node.epoch, static_cast<int32_t>(s), node.hello.node,
                     gpu ? fmt::format("{} gpu {}", node.hello.host, device)
                         : fmt::format("{} cpu {}", node.hello.host, s),
                     node.hello.host, device,
                     gpu && g < node.hello.gpu_ids.size() ? node.hello.gpu_ids[g] : ""});
    }
  }
  return out;
}

void publish(registry_state& st) {
  if (!st.opts.board) return;
  serve::cluster_topology v = st.counters;
  v.nodes.clear();
  for (const auto& [id, node] : st.nodes) {
    serve::cluster_node_info row;
    row.id = id;
    row.epoch = node.epoch;
    row.host = node.hello.host;
    row.version = node.hello.version;
    row.pid = node.hello.pid;
    row.cpu_ranks = node.hello.cpu_ranks;
    row.cores = node.hello.cores;
    row.memory_mib = node.hello.memory_mib;
    for (size_t g = 0; g < node.hello.gpus.size(); ++g)
      row.gpus.push_back(
          fmt::format("{}: {}", node.hello.gpus[g],
                      g < node.hello.gpu_names.size() ? node.hello.gpu_names[g] : ""));
    row.slot_replica = node.slot_replica;
    v.nodes.push_back(std::move(row));
  }
  st.opts.board->set(std::move(v));
}

/// Answers waiting supervisors, oldest first, while ranks last.
void serve_waiting(registry_state& st) {
  for (auto it = st.waiting.begin(); it != st.waiting.end();) {
    auto& w = it->second;
    const size_t avail = free_ranks(st);
    const size_t n = avail >= static_cast<size_t>(w.wanted) ? static_cast<size_t>(w.wanted)
                     : (w.settle && avail >= static_cast<size_t>(w.minimum)) ? avail
                                                                             : 0;
    if (n == 0) {
      ++it;
      continue;
    }
    w.promise.deliver(take(st, w.replica, n));
    it = st.waiting.erase(it);
  }
  publish(st);
}

void release(registry_state& st, int32_t replica) {
  for (auto& [id, node] : st.nodes)
    for (auto& r : node.slot_replica)
      if (r == replica) r = -1;
}

}  // namespace

caf::behavior cluster_registry(caf::event_based_actor* self, cluster_registry_options opts) {
  auto st = std::make_shared<registry_state>();
  st->opts = std::move(opts);
  publish(*st);
  self->set_down_handler([self, st](caf::down_msg& msg) {
    auto it = st->node_of_actor.find(msg.source);
    if (it == st->node_of_actor.end()) return;
    const int32_t id = it->second;
    st->node_of_actor.erase(it);
    if (auto n = st->nodes.find(id); n != st->nodes.end()) {
      spdlog::warn("cluster: node {} ({}) lost: {}", id, n->second.hello.host,
                   self->system().render(msg.reason));
      st->nodes.erase(n);
      ++st->counters.losses;
    }
    serve_waiting(*st);
  });
  return {
      [self, st](join_atom, node_hello& hello) -> node_welcome {
        node_welcome w;
        if (!hello.node) {
          w.error = "the node sent no actor handle";
        } else if (hello.fingerprint != st->opts.fingerprint) {
          w.error =
              fmt::format("model mismatch: the node reads checkpoint {}, the coordinator serves {}",
                          hello.fingerprint, st->opts.fingerprint);
        } else if (hello.cpu_ranks + static_cast<int32_t>(hello.gpus.size()) <= 0) {
          w.error = "the node offers no ranks (--cpu-ranks or --gpus)";
        }
        if (!w.error.empty()) {
          ++st->counters.refusals;
          spdlog::warn("cluster: node {} (pid {}) refused: {}", hello.host, hello.pid, w.error);
          publish(*st);
          return w;
        }
        w.node_id = st->next_id++;
        w.epoch = st->next_epoch++;
        node_entry e;
        e.epoch = w.epoch;
        e.slot_replica.assign(static_cast<size_t>(hello.cpu_ranks) + hello.gpus.size(), -1);
        self->monitor(hello.node);
        st->node_of_actor[hello.node.address()] = w.node_id;
        spdlog::info("cluster: node {} joined: {} pid {} ({} cpu ranks, {} gpus), epoch {}",
                     w.node_id, hello.host, hello.pid, hello.cpu_ranks, hello.gpus.size(), w.epoch);
        e.hello = std::move(hello);
        st->nodes.emplace(w.node_id, std::move(e));
        ++st->counters.joins;
        serve_waiting(*st);
        return w;
      },
      [self, st](acquire_atom, int32_t replica, int32_t wanted,
                 int32_t minimum) -> caf::result<std::vector<rank_lease>> {
        release(*st, replica);  // a replica holds one lease at a time
        const uint64_t id = st->next_wait++;
        st->waiting.emplace(id, waiting_lease{replica, wanted, std::max(1, minimum), false,
                                              self->make_response_promise()});
        auto promise = st->waiting[id].promise;
        self->delayed_send(self, st->opts.settle_after, settle_atom::value, id);
        serve_waiting(*st);
        return promise;
      },
      [st](settle_atom, uint64_t id) {
        if (auto it = st->waiting.find(id); it != st->waiting.end()) {
          it->second.settle = true;
          serve_waiting(*st);
        }
      },
      [self, st](kill_node_atom, int32_t id) {
        if (auto it = st->nodes.find(id); it != st->nodes.end()) {
          spdlog::warn("cluster: killing node {} ({}) on request (kill_node drill)", id,
                       it->second.hello.host);
          self->send(it->second.hello.node, kill_node_atom::value);
        }
      },
      [st](release_atom, int32_t replica) {
        release(*st, replica);
        serve_waiting(*st);
      },
  };
}

}  // namespace conclave::actors
