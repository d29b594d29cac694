// What the CUDA backend does before it owns anything: parse its weight dtype, select
// the device, and check the memory plan (gpu/memory_plan.h) against that device.
#pragma once

#include <string>

#include "gpu/backend.h"
#include "gpu/cuda/common.h"
#include "gpu/cuda/kernel_switch.h"

namespace conclave::gpu::cuda {

/// "bf16" or "f32"; std::runtime_error otherwise.
elem parse_elem(const std::string& s);

/// Makes `device` current; std::runtime_error when there is no usable GPU or no such device.
void select_device(int device);

/// The memory plan (gpu/memory_plan.h) against this device before anything loads: logged,
/// and a model that does not fit is refused in one line (model_error: exit 2). The backend
/// does not know the engine's max_model_len, so the refusal asks for one KV block; the log
/// says how many max_position_embeddings sequences the cache will hold.
void plan_before_load(const model::model_config& c, const backend_options& opts, elem t, int ranks);

/// KV blocks of rows of `kv_row` bytes the backend allocates: --num-kv-blocks, else what
/// --kv-cache-mib holds, else what the device's free memory holds beyond the share
/// gpu_memory_utilization leaves out (after the weights loaded). std::runtime_error when
/// not even one block fits.
int32_t kv_block_count(const model::model_config& c, const backend_options& opts, size_t kv_row);

/// gpu::preflight for the cuda backend (gpu/preflight.h).
void preflight_on_device(const model::model_config& c, const config::engine_config& cfg, int ranks);

}  // namespace conclave::gpu::cuda
