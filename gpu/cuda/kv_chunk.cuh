// Loading one 16-byte chunk of a KV-cache row for the prefill attention kernels' shared
// memory tiles: from an fp8 cache, dequantized and packed as bf16 on the way.
#pragma once

#include <cstddef>

#include "gpu/cuda/kv_elem.cuh"
#include "gpu/cuda/mma.cuh"

namespace conclave::gpu::cuda::dev {

/// K and V of KV head g, columns [c, c + 8), of cache slot `slot` in an fp8 cache (rows of
/// row_bytes: width e4m3 values, then a fp32 scale per KV head; kv_elem.cuh), scaled and
/// packed as 8 bf16 each. Zeros (nothing read) when !ok.
__device__ __forceinline__ void fp8_kv_chunk(const void* kc, const void* vc, size_t slot,
                                             size_t row_bytes, size_t width, int g, int hd, int c,
                                             bool ok, uint4& kb, uint4& vb) {
  kb = make_uint4(0, 0, 0, 0);
  vb = kb;
  if (!ok) return;
  const size_t at = slot * row_bytes;
  const auto* kr = static_cast<const char*>(kc) + at;
  const auto* vr = static_cast<const char*>(vc) + at;
  float kf[8], vf[8];
  // Widened on the integer and fp32 pipes (e4m3x4_to_float), not the conversion pipe.
  const uint2 k8 = __ldg(reinterpret_cast<const uint2*>(kr + g * hd + c));
  const uint2 v8 = __ldg(reinterpret_cast<const uint2*>(vr + g * hd + c));
  e4m3x4_to_float(k8.x, kf);
  e4m3x4_to_float(k8.y, kf + 4);
  e4m3x4_to_float(v8.x, vf);
  e4m3x4_to_float(v8.y, vf + 4);
  const float ks = __ldg(reinterpret_cast<const float*>(kr + width) + g);
  const float vs = __ldg(reinterpret_cast<const float*>(vr + width) + g);
  kb = make_uint4(pack_bf16(kf[0] * ks, kf[1] * ks), pack_bf16(kf[2] * ks, kf[3] * ks),
                  pack_bf16(kf[4] * ks, kf[5] * ks), pack_bf16(kf[6] * ks, kf[7] * ks));
  vb = make_uint4(pack_bf16(vf[0] * vs, vf[1] * vs), pack_bf16(vf[2] * vs, vf[3] * vs),
                  pack_bf16(vf[4] * vs, vf[5] * vs), pack_bf16(vf[6] * vs, vf[7] * vs));
}

}  // namespace conclave::gpu::cuda::dev
