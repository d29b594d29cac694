// The engine actor's functions shared by its two files: engine_actor.cpp (the behavior,
// one-device steps) and engine_ranks.cpp (expert-parallel steps and placements).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "actors/cluster_messages.h"
#include "actors/engine_actor.h"
#include "serve/replica_status.h"

namespace conclave::actors {

using engine_ptr = caf::stateful_actor<engine_state>*;

/// Publishes the engine's load to the replica status and the metrics.
void publish_stats(engine_state& st);

/// Tells every session the replica failed (they fail over) and forgets them.
void fail_sessions(engine_ptr self, const std::string& why);

/// A step's forward pass came back: sample, stream the tokens, start the next step.
void finish_step(engine_ptr self, const engine::pending_step& step, const gpu::step_output& out,
                 std::chrono::steady_clock::time_point t0);

/// A step failed or outlived the watchdog: the replica ends, its requests fail over.
void fail_step(engine_ptr self, const caf::error& err);

/// Starts the next step if none is running and there is work.
void kick(engine_ptr self);

/// Switches every rank to the waiting placement between two steps, then steps on.
void apply_placement(engine_ptr self);

/// An expert-parallel step: one part per rank (idle ranks get an empty one: they join the
/// collectives), answers joined, then one end_step.
void send_to_ranks(engine_ptr self, std::shared_ptr<engine::pending_step> step,
                   std::chrono::steady_clock::time_point t0, serve::fault_kind fault);

}  // namespace conclave::actors
