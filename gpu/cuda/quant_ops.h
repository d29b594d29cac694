// Quantized weights on the device (w8a16 fp8, w4a16 awq; layouts in gpu/quant_layout.h):
// dequantization to bf16 / fp32 for the cuBLAS path (prefill and large batches), and the
// quantizers that turn device-generated random weights into those layouts (the bench's
// random quantized models). The decode GEMVs reading quantized weights are in moe_gemv.h
// (gemv_args::q). Plain C++ header.
#pragma once

#include "gpu/cuda/common.h"
#include "gpu/quant_layout.h"

namespace conclave::gpu::cuda {

/// One quantized matrix [n, k] (or a stack of them, row after row) in device memory.
struct qview {
  quant_layout q;
  const void* data = nullptr;
  const void* scales = nullptr;
  const void* zeros = nullptr;  ///< awq only

  /// The view from row `row` on (rows of a stacked matrix, or an expert slot).
  qview rows_from(size_t row, size_t k) const {
    qview v = *this;
    const auto r = static_cast<int64_t>(row), kk = static_cast<int64_t>(k);
    v.data = static_cast<const char*>(data) + q.data_bytes(r, kk);
    v.scales = static_cast<const char*>(scales) + q.scale_bytes(r, kk);
    if (zeros != nullptr) v.zeros = static_cast<const char*>(zeros) + q.zero_bytes(r, kk);
    return v;
  }
};

/// dst[r, i] (of `t`, [n, k] row-major) = w[r, i] dequantized: fp8 float(q) * s, awq
/// float(q - z) * s (then rounded to `t`).
void dequantize_matrix(const qview& w, size_t n, size_t k, void* dst, elem t, stream_t s);

/// Quantizes src (fp32 [n, k] on the device) into layout `q` at `data`, `scales`, `zeros`:
/// fp8 per (row, group) s = amax / 448 (1 for an all-zero group), q = e4m3(w / s); awq per
/// (row, group) asymmetric over [min, max] (0 included), s = fp16((max - min) / 15), z =
/// clamp(rint(-min / s), 0, 15), q = clamp(rint(w / s) + z, 0, 15) (model::quantize_awq's
/// rule, per row instead of transposed).
void quantize_matrix(const float* src, size_t n, size_t k, const quant_layout& q, void* data,
                     void* scales, void* zeros, stream_t s);

}  // namespace conclave::gpu::cuda
