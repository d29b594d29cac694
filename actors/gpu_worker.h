// gpu_worker: owns a replica's backend (a device, or the CPU) and runs one forward pass
// per message. Spawned detached: it blocks in the backend while the engine keeps taking
// submits and cancels. Injected faults (drills) fail, hang or crash it.
#pragma once

#include <caf/all.hpp>
#include <memory>

#include "actors/messages.h"

namespace conclave::actors {

/// The worker: runs forward passes on a backend it owns.
gpu_worker_actor::behavior_type gpu_worker(gpu_worker_actor::pointer self,
                                           std::shared_ptr<gpu::backend> backend);

}  // namespace conclave::actors
