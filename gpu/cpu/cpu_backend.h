// The CPU backend: fp32 arithmetic over BF16/F16/F32 checkpoints (converted on load),
// OpenBLAS for the GEMMs, a thread pool for attention, routed experts only.
#pragma once

#include <memory>

#include "gpu/backend.h"

namespace conclave::gpu {

std::unique_ptr<backend> make_cpu_backend(const model::checkpoint& ckpt,
                                          const backend_options& opts, rank_context rank = {});

}  // namespace conclave::gpu
