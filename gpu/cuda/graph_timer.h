// Mean device time of a sequence of launches on one stream, by CUDA events: replayed as a
// CUDA graph (how a decode step runs them) or launched each time (how a step that syncs
// with the host runs them). Plain C++ header.
#pragma once

#include <functional>

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

/// Runs `body` (which launches on `s`) `warmup` times, then `iters` times between two
/// events, and returns the mean microseconds per run. With `graph`, `body` is captured
/// once into a CUDA graph and the graph is replayed instead (the captured launches must
/// not synchronize with the host). Throws on a CUDA error or iters <= 0.
double mean_device_us(stream_t s, const std::function<void()>& body, int iters, bool graph,
                      int warmup = 3);

}  // namespace conclave::gpu::cuda
