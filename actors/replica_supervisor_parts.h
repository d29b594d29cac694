// The replica supervisor's functions shared by its two files: replica_supervisor.cpp (the
// behavior, one-device bring-up, drain) and replica_cluster.cpp (expert-parallel bring-up).
#pragma once

#include <string>

#include "actors/replica_supervisor.h"

namespace conclave::actors {

using supervisor_ptr = caf::stateful_actor<replica_supervisor_state>*;

/// Records a failure; schedules the next bring-up, or declares the replica dead.
void on_failure(supervisor_ptr self, const std::string& why);

/// Stops the rank workers of an expert-parallel replica (remote ones through their node's
/// connection); a rank still in a collective is freed by its communicator's abort.
void stop_ranks(supervisor_ptr self);

/// An expert-parallel bring-up: lease ranks, have each node load its rank (they meet
/// through the rendezvous store), then start the engine. Answers of an older epoch are
/// dropped: a restart while loading starts over.
void bring_up_cluster(supervisor_ptr self);

/// The engine options both kinds of replica share: id, status, step timeout, hang limit.
engine_actor_options base_engine_options(const replica_supervisor_state& st);

}  // namespace conclave::actors
