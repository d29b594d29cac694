// quant_repack: a checkpoint's quantized linear weight (model/quant.h) rewritten in the
// device layout of gpu/quant_layout.h, on the host, while the CUDA loader uploads it; and
// the exact dequantization of that layout (the CPU twin of the device kernels, and what
// the repack is tested against: it must equal model::dequantize_rows). Host-only, no CUDA.
#pragma once

#include <cstddef>
#include <cstdint>

#include "gpu/quant_layout.h"
#include "model/quant.h"

namespace conclave::gpu {

/// Whether `w` can be repacked into layout `l`: same method, and the scale group of `l`
/// is the checkpoint's input block (fp8 block_in, awq group_size).
bool repackable(const model::stored_weight& w, const quant_layout& l);

/// Host buffers of rows [row_begin, row_end) of one matrix in layout `l`, `k` inputs:
/// data l.data_bytes(rows, k), scales l.scale_bytes(rows, k), zeros l.zero_bytes(rows, k).
struct quant_host_rows {
  void* data = nullptr;
  void* scales = nullptr;
  void* zeros = nullptr;  ///< awq only
};

/// Writes rows [row_begin, row_end) of `w` in layout `l` (repackable(w, l), or throws):
/// fp8 bytes copied and the block scale repeated per row as fp32; awq nibbles transposed to
/// natural order [n, k / 8], scales fp16 [n, k / g], zeros uint8 [n, k / g].
void repack_rows(const model::stored_weight& w, const quant_layout& l, int64_t row_begin,
                 int64_t row_end, const quant_host_rows& out);

/// The exact fp32 value of rows [0, n) of a matrix stored in layout `l` ([n, k] into dst):
/// fp8 float(q) * s, awq float(q - z) * s, one fp32 rounding each (= dequantize_rows).
void dequantize_device_layout(const quant_layout& l, int64_t n, int64_t k, const void* data,
                              const void* scales, const void* zeros, float* dst);

}  // namespace conclave::gpu
