// router: picks a replica's engine for each request. Replicas register as they come up
// and are dropped when their engine goes down. A request goes to the engine with the
// fewest outstanding tokens (its own reservations: prompt + max_tokens of the requests it
// placed there and that have not finished); among equals, the prompt's first tokens pick
// one, so requests sharing a prefix meet their prefix cache; the choices of one n > 1
// request follow the first to its engine. A failed-over request names
// the engine that failed, which is skipped while another lives.
#pragma once

#include <caf/all.hpp>
#include <cstdint>
#include <deque>
#include <span>
#include <unordered_map>
#include <vector>

#include "actors/messages.h"

namespace conclave::actors {

struct router_entry {
  caf::actor engine;
  int64_t outstanding = 0;
  bool draining = false;  ///< being scaled down: gets no new requests
};

struct router_state {
  std::vector<router_entry> engines;
  /// Where each recent prefill group (sampling_params::prefill_group: the n choices of
  /// one request) was sent; the oldest are forgotten past max_groups.
  static constexpr size_t max_groups = 4096;
  std::unordered_map<uint64_t, caf::actor_addr> groups;
  std::deque<uint64_t> group_order;
  void remember_group(uint64_t group, caf::actor_addr engine) {
    if (groups.insert_or_assign(group, std::move(engine)).second) group_order.push_back(group);
    while (group_order.size() > max_groups) {
      groups.erase(group_order.front());
      group_order.pop_front();
    }
  }
  static inline const char* name = "router";
};

/// Starts with `engines` (more register later). Handles (add_engine_atom, actor),
/// (submit_atom, engine_submit), which it delegates to an engine (the engine's
/// submit_reply goes straight to the session), and (finished_atom, actor_addr engine,
/// int64_t reservation), and (drain_atom, actor engine) -> drain_atom: from then on that
/// engine gets no new requests (its running ones finish there). With no live engine that
/// is not draining the submit fails with sec::request_receiver_down ("no live model
/// replica").
caf::behavior router_actor(caf::stateful_actor<router_state>* self,
                           std::vector<caf::actor> engines);

}  // namespace conclave::actors
