// The split decode attention's slice states and their merge, shared by the GQA kernel
// (attention.cu) and the tensor-core decode kernel (decode_attention.cu).
#pragma once

#include "gpu/cuda/elem_io.cuh"

namespace conclave::gpu::cuda::dev {

// A slice's state in the workspace: hd accumulators, m, l, padded to 8 floats (16-byte
// aligned float4 rows for head_dim % 8 == 0).
__host__ __device__ constexpr size_t partial_stride(size_t hd) {
  return hd + 8;
}

// The last slice of (row, head chunk) to finish merges the n slice states of its nh
// heads: out = sum_z acc_z e^(m_z - M) / sum_z l_z e^(m_z - M), M = max_z m_z, summed in
// slice order. The states are those of the launch's row `prow` (the grid's row: a launch
// over listed rows keeps its states by list position), the output that of query row `row`. `smem`
// (the kernel's, free by now) holds the weights e^(m_z - M), [MAXG][splits], then 1 / sum per head.
// The states are read through L2 (__ldcg): other blocks wrote them.
template <class T, int MAXG>
__device__ void combine_slices(const float* partial, size_t prow, size_t row, int heads, int h0,
                               int nh, int hd, int splits, int n, float* smem, T* out) {
  const size_t rec = partial_stride(static_cast<size_t>(hd));
  float* w_s = smem;
  float* inv_s = smem + MAXG * splits;
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  for (int h = warp; h < nh; h += static_cast<int>(blockDim.x) >> 5) {
    const float* ph = partial + (prow * heads + static_cast<size_t>(h0 + h)) * splits * rec;
    // Slice `lane` (n <= 32 for most rows) in registers: one pass over the states.
    const float m0 = lane < n ? __ldcg(ph + lane * rec + hd) : -INFINITY;
    const float l0 = lane < n ? __ldcg(ph + lane * rec + hd + 1) : 0.0f;
    float mx = m0;
    for (int z = lane + 32; z < n; z += 32) mx = fmaxf(mx, __ldcg(ph + z * rec + hd));
    mx = dev::warp_max(mx);
    float l = 0.0f;
    if (lane < n) {
      const float e = m0 == -INFINITY ? 0.0f : expf(m0 - mx);
      w_s[h * splits + lane] = e;
      l = l0 * e;
    }
    for (int z = lane + 32; z < n; z += 32) {
      const float mz = __ldcg(ph + z * rec + hd);
      const float e = mz == -INFINITY ? 0.0f : expf(mz - mx);
      w_s[h * splits + z] = e;
      l += __ldcg(ph + z * rec + hd + 1) * e;
    }
    l = dev::warp_sum(l);
    if (lane == 0) inv_s[h] = 1.0f / l;
  }
  __syncthreads();
  const int cols = hd / 4;  // float4 columns of a head
  for (int i = static_cast<int>(threadIdx.x); i < nh * cols; i += blockDim.x) {
    const int h = i / cols, d = (i % cols) * 4;
    const float* ph = partial + (prow * heads + static_cast<size_t>(h0 + h)) * splits * rec + d;
    const float* w = w_s + h * splits;
    float4 a = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 8
    for (int z = 0; z < n; ++z) {
      const float4 v = __ldcg(reinterpret_cast<const float4*>(ph + z * rec));
      const float e = w[z];
      a.x = __fmaf_rn(v.x, e, a.x);
      a.y = __fmaf_rn(v.y, e, a.y);
      a.z = __fmaf_rn(v.z, e, a.z);
      a.w = __fmaf_rn(v.w, e, a.w);
    }
    const float inv = inv_s[h];
    T* o = out + (row * heads + static_cast<size_t>(h0 + h)) * hd + d;
    dev::st(o, a.x * inv);
    dev::st(o + 1, a.y * inv);
    dev::st(o + 2, a.z * inv);
    dev::st(o + 3, a.w * inv);
  }
}

// Counts this block's slice in its (row, head chunk) counter once its state is visible
// device-wide; true in every thread of the last of the n slices to arrive, which sets the
// counter back to zero for the next launch. A barrier: every thread of the block calls it.
__device__ __forceinline__ bool last_to_arrive(unsigned int* counter, int n) {
  __shared__ bool last_s;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    last_s = atomicAdd(counter, 1u) == static_cast<unsigned int>(n - 1);
    if (last_s) *counter = 0u;  // every slice has arrived: ready for the next launch
    __threadfence();
  }
  __syncthreads();
  return last_s;
}

}  // namespace conclave::gpu::cuda::dev
