// Token permutation by expert: the tokens x k routed (token, slot) pairs grouped into one
// contiguous run of rows per expert (ascending expert id; tokens ascending within a run,
// as the CPU groups them), plus the row gather that builds the experts' GEMM input.
#pragma once

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

/// ids: [tokens, k] expert ids. Writes offsets: [experts + 1] (expert e owns permuted
/// rows [offsets[e], offsets[e+1])), row_token: [tokens * k] (the token of each permuted
/// row) and slot_row: [tokens * k] (the permuted row of pair (t, j), index t * k + j).
/// active (may be null): [experts], the experts that got rows in ascending order, then -1
/// (the grouped GEMV runs one block row per entry). experts must be at most 1024.
void moe_permute(const int32_t* ids, size_t tokens, size_t k, size_t experts, int32_t* offsets,
                 int32_t* row_token, int32_t* slot_row, int32_t* active, stream_t s);

/// router_topk (moe_router.h) then moe_permute in one launch of one block, for steps of
/// a few tokens, where the two launches' fixed costs outweigh their work: ids and weights
/// as router_topk writes them, the rest as moe_permute. experts at most
/// kRoutePermuteMaxExperts.
constexpr size_t kRoutePermuteMaxExperts = 512;
void moe_route_permute(const float* logits, size_t tokens, size_t experts, size_t k, bool normalize,
                       int32_t* ids, float* weights, int32_t* offsets, int32_t* row_token,
                       int32_t* slot_row, int32_t* active, stream_t s);

/// A one-token step's router projection (logits[e] = router[e, :] . x, summed as row_gemv
/// sums it, bit for bit) and moe_route_permute of its logits, in one launch: the last of
/// its blocks to finish routes. router: [experts, hidden] and x: [hidden], both of `t`
/// (bf16 or f32), 16-byte aligned. counter: one device word, 0 before the launch, left 0.
/// Needs router_route_one_ok.
bool router_route_one_ok(elem t, size_t experts, size_t k, size_t hidden, const void* x,
                         const void* router);
void moe_router_route_permute_one(const void* x, const void* router, elem t, size_t hidden,
                                  size_t experts, size_t k, bool normalize, float* logits,
                                  int32_t* ids, float* weights, int32_t* offsets,
                                  int32_t* row_token, int32_t* slot_row, int32_t* active,
                                  unsigned int* counter, stream_t s);

/// dst[i, :] = src[index[i], :] for i < n; src, dst: [*, dim] of `t`.
void gather_rows(const void* src, elem t, const int32_t* index, size_t n, size_t dim, void* dst,
                 stream_t s);

}  // namespace conclave::gpu::cuda
