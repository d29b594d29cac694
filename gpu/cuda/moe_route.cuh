// The MoE router's per-token work as a device function: moe_router.cu's kernel (one warp
// per token) and moe_permute.cu's fused route + permute (small steps) share it.
#pragma once

#include "gpu/cuda/elem_io.cuh"

namespace conclave::gpu::cuda::dev {

constexpr int kMaxRouteK = 32;  ///< picks per token: lane j keeps pick j

// (p, id) beats (q, jd): larger probability, ties to the lower id (the CPU order).
__device__ __forceinline__ bool route_beats(float p, int id, float q, int jd) {
  return p > q || (p == q && id < jd);
}

/// Token t's ids and weights from lane j's pick j (j < k): the weights normalized by their
/// sum, added in pick order as the CPU adds them.
__device__ __forceinline__ void write_picks(size_t t, int k, bool normalize, int my_id, float my_p,
                                            int32_t* ids, float* weights) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  float total = 0.0f;
  for (int j = 0; j < k; ++j) total += __shfl_sync(0xffffffffu, my_p, j);
  if (lane < k) {
    ids[t * static_cast<size_t>(k) + static_cast<size_t>(lane)] = my_id;
    weights[t * static_cast<size_t>(k) + static_cast<size_t>(lane)] =
        normalize ? my_p / total : my_p;
  }
}

/// One warp routes token t: softmax of its logits into p ([experts] of shared memory, this
/// warp's own), then k rounds of a warp argmax; a taken expert's probability is set to -1
/// (probabilities are >= 0). Lane j keeps the j-th pick; ids and weights of row t written.
/// Returns lane j's pick (j < k; what lanes >= k get is unspecified).
__device__ __forceinline__ int route_token(const float* logits, size_t t, int experts, int k,
                                           bool normalize, float* p, int32_t* ids, float* weights) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const float* x = logits + t * static_cast<size_t>(experts);
  float mx = -INFINITY;
  for (int e = lane; e < experts; e += 32) mx = fmaxf(mx, x[e]);
  mx = dev::warp_max(mx);
  float sum = 0.0f;
  for (int e = lane; e < experts; e += 32) {
    const float v = expf(x[e] - mx);
    p[e] = v;
    sum += v;
  }
  const float inv = 1.0f / dev::warp_sum(sum);
  for (int e = lane; e < experts; e += 32) p[e] *= inv;
  __syncwarp();
  int my_id = 0;
  float my_p = 0.0f;
  for (int j = 0; j < k; ++j) {
    float bp = -2.0f;
    int bid = 0x7fffffff;
    for (int e = lane; e < experts; e += 32) {
      const float v = p[e];
      if (route_beats(v, e, bp, bid)) {
        bp = v;
        bid = e;
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float op = __shfl_xor_sync(0xffffffffu, bp, o);
      const int oid = __shfl_xor_sync(0xffffffffu, bid, o);
      if (route_beats(op, oid, bp, bid)) {
        bp = op;
        bid = oid;
      }
    }
    if (lane == j) {
      my_id = bid;
      my_p = bp;
    }
    __syncwarp();
    if (lane == (bid & 31)) p[bid] = -1.0f;  // the owning lane marks it taken
    __syncwarp();
  }
  write_picks(t, k, normalize, my_id, my_p, ids, weights);
  return my_id;
}

/// route_token with the token's probabilities in registers (lane l keeps experts l, l + 32,
/// ...: experts <= 32 * PER) and each round's warp argmax as two redux instructions (the
/// largest probability, then the lowest id holding it): the same picks and weights, bit for
/// bit, for a one-token step where this warp's latency is the whole kernel. Returns lane
/// j's pick (j < k).
template <int PER>
__device__ __forceinline__ int route_token_regs(const float* logits, size_t t, int experts, int k,
                                                bool normalize, int32_t* ids, float* weights) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const float* x = logits + t * static_cast<size_t>(experts);
  float p[PER];
  float mx = -INFINITY;
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int e = lane + 32 * i;
    p[i] = e < experts ? __ldcg(x + e) : -INFINITY;  // L2: other blocks may have written x
    mx = fmaxf(mx, p[i]);
  }
  mx = dev::warp_max(mx);
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    if (lane + 32 * i < experts) {
      p[i] = expf(p[i] - mx);
      sum += p[i];
    }
  }
  const float inv = 1.0f / dev::warp_sum(sum);
  // Probabilities are >= 0; -1 marks a taken expert or none.
#pragma unroll
  for (int i = 0; i < PER; ++i) p[i] = lane + 32 * i < experts ? p[i] * inv : -1.0f;
  int my_id = 0;
  float my_p = 0.0f;
  for (int j = 0; j < k; ++j) {
    // This lane's best (ties to the lower id: the first in ascending order).
    float bp = -1.0f;
    int bid = 0x7fffffff;
#pragma unroll
    for (int i = 0; i < PER; ++i) {
      if (p[i] > bp) {
        bp = p[i];
        bid = lane + 32 * i;
      }
    }
    // A non-negative float's bits order as its value; a lane with nothing left offers 0
    // with no id, which any real expert (id < 2^31 - 1) beats.
    const unsigned key = bp >= 0.0f ? __float_as_uint(bp) : 0u;
    const unsigned best = __reduce_max_sync(0xffffffffu, key);
    const int id = static_cast<int>(
        __reduce_min_sync(0xffffffffu, key == best ? static_cast<unsigned>(bid) : 0x7fffffffu));
    if (lane == j) {
      my_id = id;
      my_p = __uint_as_float(best);
    }
#pragma unroll
    for (int i = 0; i < PER; ++i)
      if (lane + 32 * i == id) p[i] = -1.0f;
  }
  write_picks(t, k, normalize, my_id, my_p, ids, weights);
  return my_id;
}

/// moe_permute's output for one token (a batch-1 step), by one warp: lane j < k holds pick
/// j (distinct experts). Each pick gets one row, at its rank among the picks (ascending
/// expert); offsets and the active list follow from the picks in the lanes' registers.
__device__ __forceinline__ void place_one_token(int pick, int experts, int k, int32_t* offsets,
                                                int32_t* row_token, int32_t* slot_row,
                                                int32_t* active) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int e = lane < k ? pick : 0x7fffffff;
  int rank = 0;
  for (int j = 0; j < k; ++j) rank += __shfl_sync(0xffffffffu, e, j) < e ? 1 : 0;
  if (lane < k) {
    slot_row[lane] = rank;
    row_token[rank] = 0;
    if (active != nullptr) active[rank] = e;
  }
  for (int x0 = 0; x0 <= experts; x0 += 32) {
    const int x = x0 + lane;
    int below = 0;  // picks of a lower expert: offsets[x]
    for (int j = 0; j < k; ++j) below += __shfl_sync(0xffffffffu, e, j) < x ? 1 : 0;
    if (x <= experts) offsets[x] = below;
    if (active != nullptr && x >= k && x < experts) active[x] = -1;
  }
}

/// A one-token step's routing and placement by one warp (route_token_regs, then
/// place_one_token), experts <= 512.
__device__ __forceinline__ void route_one_token(const float* logits, int experts, int k,
                                                bool normalize, int32_t* ids, float* weights,
                                                int32_t* offsets, int32_t* row_token,
                                                int32_t* slot_row, int32_t* active) {
  const int pick = experts <= 128
                       ? route_token_regs<4>(logits, 0, experts, k, normalize, ids, weights)
                       : route_token_regs<16>(logits, 0, experts, k, normalize, ids, weights);
  place_one_token(pick, experts, k, offsets, row_token, slot_row, active);
}

}  // namespace conclave::gpu::cuda::dev
