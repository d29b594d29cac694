// quant: the quantized checkpoint formats conclave loads (docs/quantization.md): what
// config.json's quantization_config says, how one linear weight is stored, and its exact
// dequantization to fp32 (the reference semantics every backend is measured against).
//
// - fp8 (Qwen's and DeepSeek's *-FP8): `X.weight` F8_E4M3 [out, in] and
//   `X.weight_scale_inv` F32/BF16 [ceil(out / bo), ceil(in / bi)], the block's multiplier:
//   w[o, i] = float(q[o, i]) * s[o / bo, i / bi].
// - awq (4 bits, GEMM packing, zero point): `X.qweight` I32 [in, out / 8], `X.qzeros` I32
//   [in / g, out / 8], `X.scales` F16 [in / g, out]; nibble j of a packed int32 holds column
//   8 c + awq_pack_order[j]: w[o, i] = (q[i, o] - z[i / g, o]) * s[i / g, o].
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace conclave::model {

struct tensor_view;

enum class quant_method : uint8_t { none, fp8, awq };

/// "none", "fp8", "awq".
std::string_view quant_method_name(quant_method m);

/// config.json's quantization_config, as far as conclave uses it.
struct quant_config {
  quant_method method = quant_method::none;
  int64_t block_out = 128;   ///< fp8: weight_block_size[0] (rows of output per scale)
  int64_t block_in = 128;    ///< fp8: weight_block_size[1] (input columns per scale)
  int64_t group_size = 128;  ///< awq: input channels per scale and zero
  int bits = 4;              ///< awq
  std::vector<std::string> modules_to_not_convert;  ///< as written (informational)

  bool quantized() const { return method != quant_method::none; }
};

/// Nibble j (bits 4j..4j+3) of an AWQ-packed int32 holds column 8 c + awq_pack_order[j].
inline constexpr std::array<int, 8> awq_pack_order = {0, 2, 4, 6, 1, 3, 5, 7};
/// Column 8 c + k of an AWQ-packed int32 is nibble awq_unpack_order[k].
inline constexpr std::array<int, 8> awq_unpack_order = {0, 4, 1, 5, 2, 6, 3, 7};

/// The 4-bit value of column `k` (0..7) of an AWQ-packed int32.
inline int awq_nibble(uint32_t packed, int k) {
  return static_cast<int>((packed >> (4 * awq_unpack_order[static_cast<size_t>(k)])) & 0xfu);
}

/// How one linear weight of logical shape [out, in] is stored in a checkpoint.
struct stored_weight {
  quant_method method = quant_method::none;
  /// none: the float weight [out, in]; fp8: the F8_E4M3 weight [out, in]; awq: qweight.
  const tensor_view* weight = nullptr;
  const tensor_view* scales = nullptr;  ///< fp8: weight_scale_inv; awq: scales
  const tensor_view* zeros = nullptr;   ///< awq: qzeros
  int64_t out = 0, in = 0;
  /// fp8: the scale block [block_out, block_in]; awq: [1, group_size]; none: [0, 0].
  int64_t block_out = 0, block_in = 0;

  /// Bytes as stored (weight, scales and zeros).
  size_t nbytes() const;
};

/// Writes rows [row_begin, row_end) of `w`, dequantized to fp32 ([rows, in] row-major),
/// at `dst`. Exact: fp8 is float(q) * float(s) and awq float(q - z) * float(s), each one
/// fp32 rounding, which is what a reference computing in fp32 gets.
void dequantize_rows(const stored_weight& w, int64_t row_begin, int64_t row_end, float* dst);

/// The whole weight as fp32 [out, in].
inline void dequantize(const stored_weight& w, float* dst) {
  dequantize_rows(w, 0, w.out, dst);
}

/// Quantizers (gen-model's random checkpoints and tests). Both take a row-major fp32
/// weight [out, in].
/// fp8: per block s = amax / 448 (1 for an all-zero block), q = fp8(w / s).
void quantize_fp8_block(const float* w, int64_t out, int64_t in, int64_t block_out,
                        int64_t block_in, uint8_t* q, float* scales);
/// awq: per group of `group` inputs of one output, asymmetric over [min, max] (0 included):
/// s = fp16((max - min) / 15), z = clamp(round(-min / s), 0, 15), q = clamp(round(w / s) + z,
/// 0, 15). Writes qweight [in, out / 8], qzeros [in / group, out / 8] (int32, AWQ packing)
/// and scales [in / group, out] as fp16 bits.
void quantize_awq(const float* w, int64_t out, int64_t in, int64_t group, int32_t* qweight,
                  int32_t* qzeros, uint16_t* scales);

}  // namespace conclave::model
