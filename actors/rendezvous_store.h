// rendezvous_store: the key/value store the ranks of a replica meet through (Gloo's
// addresses; NCCL's unique id later). Lives in the coordinator; ranks on nodes reach it
// through the middleman. (rv_set_atom, key, bytes) stores; (rv_get_atom, key, ms) answers
// the bytes once the key is set, or an error after ms. Keys carry the replica and its
// epoch, so an old incarnation's keys never meet a new one's.
#pragma once

#include <caf/all.hpp>

#include "gpu/collectives.h"

namespace conclave::actors {

/// Holds at most `max_keys` keys: a set beyond that is dropped and logged (a bound on what
/// misbehaving ranks can make the coordinator keep).
caf::behavior rendezvous_store(caf::event_based_actor* self, size_t max_keys);

/// The communicator's view of a store actor: blocking set/get from a rank's own thread.
gpu::rendezvous rendezvous_through(caf::actor_system& sys, caf::actor store);

}  // namespace conclave::actors
