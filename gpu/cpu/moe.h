// The routed-expert MLP on the CPU: tokens grouped per expert, only routed experts run.
// One rank (moe_forward) or expert-parallel over a replica's ranks (moe_forward_ep).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "gpu/cpu/cpu_weights.h"

namespace conclave::gpu {
class communicator;
struct expert_map;
struct ep_stats;
}  // namespace conclave::gpu

namespace conclave::gpu::cpu {
class thread_pool;

/// out[t] = sum over t's top-k experts e of weight(t, e) * down_e(silu(gate_e h) * up_e h).
/// h, out: [tokens, hidden].
void moe_forward(const cpu_layer& layer, const model::model_config& c, const float* h, float* out,
                 size_t tokens, thread_pool* pool = nullptr);

/// y = down_e(silu(gate_e x) * up_e x) for n rows of x ([n, hidden] -> [n, hidden]).
/// Throws std::logic_error when this rank holds no weights for expert e.
void run_expert(const cpu_layer& layer, const model::model_config& c, size_t e, const float* x,
                size_t n, float* y, thread_pool* pool);

/// The same layer with its experts spread over `comm`'s ranks as `placement` says: the
/// router runs here; each (token, expert) row goes to a rank holding the expert (all-to-all),
/// the experts run there, and the results come back (all-to-all) and are summed in
/// ascending expert id, the order of moe_forward. Every rank must call it for every MoE
/// layer, with tokens = 0 when it has none. `stats` (if given) accumulates times and bytes.
/// `routed[e]` (if given, size experts) counts the (token, expert) pairs this rank routed to each
/// expert.
void moe_forward_ep(const cpu_layer& layer, const model::model_config& c, communicator& comm,
                    const expert_map& placement, int32_t layer_index, const float* h, float* out,
                    size_t tokens, thread_pool* pool, int64_t* routed = nullptr,
                    ep_stats* stats = nullptr);

/// out = down(silu(gate h) * up h) for a dense SwiGLU layer. h, out: [tokens, hidden].
void dense_mlp_forward(const cpu_layer& layer, const model::model_config& c, const float* h,
                       float* out, size_t tokens, thread_pool* pool = nullptr);

}  // namespace conclave::gpu::cpu
