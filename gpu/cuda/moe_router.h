// MoE router: softmax over the experts' logits, top-k (ties to the lower id), optional
// renormalisation of the k weights (norm_topk_prob). One warp per token.
#pragma once

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

/// logits: [tokens, experts] fp32 -> ids: [tokens, k], weights: [tokens, k] fp32.
void router_topk(const float* logits, size_t tokens, size_t experts, size_t k, bool normalize,
                 int32_t* ids, float* weights, stream_t s);

}  // namespace conclave::gpu::cuda
