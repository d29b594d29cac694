// One-row GEMVs of quantized weights (fp8 e4m3 with block scales, awq int4) on tensor
// cores: batch-1 decode's dense projections, experts' gate/up with SwiGLU, and down with
// the weighted combine (the launches gemv_decode.h makes on CUDA cores). The CUDA-core
// kernels spend about 17 instructions a weight widening fp8 to fp32 and summing it, so
// they are bound by issue, not by DRAM; here a weight is widened to f16 in about half an
// instruction (fp8: one cvt for two) or one and a half (awq: mask, or, subtract for two),
// and the products are summed by mma.sync m16n8k16 into fp32.
//
// The activation row is scaled by a power of two (its largest value near 2^15) and
// converted to f16 in shared memory, which is exact for bf16 values down to 2^-28 of that
// largest value (smaller ones round as f16 subnormals); products and sums are fp32, the
// result is scaled back. So the result is the CUDA-core kernels' up to the order of the
// fp32 sums. Plain C++ header.
#pragma once

#include "gpu/cuda/gemv_decode.h"

namespace conclave::gpu::cuda {

/// Whether the tensor-core row kernels take weights of layout q over rows of k inputs
/// with activations t: fp8 or awq, bf16 activations, k a multiple of 128 and at most
/// 16,384, the scale group a power of two and a multiple of 128.
bool quant_row_mma_ok(const quant_layout& q, elem t, size_t k);

/// row_gemv (act null) or row_gemv_swiglu (act: the SwiGLU output) of `a` on tensor cores;
/// needs row_gemv_ok(a) and quant_row_mma_ok(a.q, a.t, a.k).
void quant_row_mma(const gemv_args& a, void* act, stream_t s);

/// down_combine of `d` on tensor cores; needs down_combine_ok(d),
/// quant_row_mma_ok(d.q, d.t, d.m) and d.k * d.m * 2 bytes of activations in 48 KiB.
void quant_down_combine_mma(const down_combine_args& d, stream_t s);
bool quant_down_combine_mma_ok(const down_combine_args& d);

}  // namespace conclave::gpu::cuda
