// router: picks a replica's engine for each request. Replicas register as they come up
// and are dropped when their engine goes down; requests are spread round-robin over the
// live ones (least-outstanding-tokens placement and failover come with replicas > 1).
#pragma once

#include <caf/all.hpp>
#include <vector>

#include "actors/messages.h"

namespace conclave::actors {

using add_engine_atom = caf::atom_constant<caf::atom("addengine")>;

struct router_state {
  std::vector<caf::actor> engines;
  size_t next = 0;
  static inline const char* name = "router";
};

/// Starts with `engines` (more register later). Handles (add_engine_atom, actor) and (submit_atom,
/// engine_submit), which it delegates to an engine (the engine's submit_reply goes straight to the
/// session). With no live engine the submit fails with sec::request_receiver_down ("no live model
/// replica").
caf::behavior router_actor(caf::stateful_actor<router_state>* self,
                           std::vector<caf::actor> engines);

}  // namespace conclave::actors
