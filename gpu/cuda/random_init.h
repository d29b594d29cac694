// Random weights generated directly in device memory: the same counter-based values as
// model::random_weight (splitmix64 + Box-Muller keyed by model::random_weight_stream),
// so a device-generated model equals the gen-model checkpoint of the same seed.
#pragma once

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

/// The precision a generated value passes through before it is stored: the dtype gen-model
/// writes the tensor in (none: the fp32 value itself).
enum class round_through : uint8_t { none, bf16, f16 };

/// dst[i] = random_weight(seed, name, offset + i, std, is_norm) for i < n, rounded through
/// `r` (to nearest even), stored as `t`; `key` = model::random_weight_stream(seed, name).
void random_fill(void* dst, elem t, size_t n, uint64_t key, size_t offset, float std, bool is_norm,
                 stream_t s, round_through r = round_through::none);

/// dst[i] = src[i] as `t` (fp32 to fp32 or bf16, round to nearest even).
void convert_f32(const float* src, void* dst, elem t, size_t n, stream_t s);

}  // namespace conclave::gpu::cuda
