// actor_service: serve::service run on CAF actors. Owns the actor system, the router,
// one replica supervisor per replica (each with its engine, gpu_worker and health
// checker), the autoscaler and the per-request sessions it spawns. The plain rules it
// applies (admission, the replica list and device assignment, the context limit) live
// in serve/; this is the wiring.
#pragma once

#include <memory>

#include "config/server_config.h"
#include "serve/server_metrics.h"
#include "serve/service.h"

namespace conclave::actors {

/// Opens the checkpoint and tokenizer named by `cfg` (model_dir and tokenizer_path must
/// be set) and starts loading the replicas in the background; ready() turns true once
/// one is loaded and warm. Throws model_error / std::invalid_argument for bad files.
std::unique_ptr<serve::service> make_actor_service(const config::server_config& cfg,
                                                   std::shared_ptr<serve::server_metrics> metrics);

}  // namespace conclave::actors
