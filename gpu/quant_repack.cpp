#include "gpu/quant_repack.h"

#include <spdlog/fmt/fmt.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "model/dtype.h"
#include "model/safetensors.h"

namespace conclave::gpu {
namespace {

uint32_t u32_at(const model::tensor_view& t, size_t i) {
  uint32_t v;
  std::memcpy(&v, t.data + 4 * i, 4);
  return v;
}

}  // namespace

bool repackable(const model::stored_weight& w, const quant_layout& l) {
  if (w.method != l.method || l.method == model::quant_method::none) return false;
  if (l.group <= 0 || w.block_in != l.group) return false;
  if (l.method == model::quant_method::awq) return w.in % l.group == 0 && w.in % 8 == 0;
  return true;
}

void repack_rows(const model::stored_weight& w, const quant_layout& l, int64_t row_begin,
                 int64_t row_end, const quant_host_rows& out) {
  if (!repackable(w, l))
    throw std::invalid_argument(fmt::format(
        "repack_rows: a {} weight with input block {} does not fit the {} layout of group {}",
        model::quant_method_name(w.method), w.block_in, model::quant_method_name(l.method),
        l.group));
  if (row_begin < 0 || row_end > w.out || row_begin > row_end)
    throw std::out_of_range("repack_rows: rows outside the weight");
  const auto k = static_cast<size_t>(w.in);
  const auto G = static_cast<size_t>(l.groups(w.in));
  const auto rows = static_cast<size_t>(row_end - row_begin);
  auto* scales = static_cast<float*>(out.scales);
  if (l.method == model::quant_method::fp8) {
    std::memcpy(out.data, w.weight->data + static_cast<size_t>(row_begin) * k, rows * k);
    // The checkpoint's block scales ([ceil(out / bo), G], F32 or BF16) as fp32 per row.
    std::vector<float> srow(G);
    for (size_t r = 0; r < rows; ++r) {
      const auto sr = static_cast<size_t>((row_begin + static_cast<int64_t>(r)) / w.block_out);
      model::convert_to_f32(w.scales->type,
                            w.scales->data + sr * G * model::dtype_size(w.scales->type), G,
                            srow.data());
      std::memcpy(scales + r * G, srow.data(), G * sizeof(float));
    }
    return;
  }
  // awq: qweight [k, n / 8], qzeros [k / g, n / 8], scales [k / g, n] (F16 as stored).
  const auto pc = static_cast<size_t>(w.out / 8);
  const auto n = static_cast<size_t>(w.out);
  const auto g = static_cast<size_t>(l.group);
  auto* data = static_cast<uint32_t*>(out.data);
  auto* s16 = static_cast<uint16_t*>(out.scales);
  auto* zeros = static_cast<uint8_t*>(out.zeros);
  std::memset(data, 0, rows * (k / 8) * 4);
  for (size_t r = 0; r < rows; ++r) {
    const size_t o = static_cast<size_t>(row_begin) + r;
    const int col = static_cast<int>(o % 8);
    uint32_t* drow = data + r * (k / 8);
    for (size_t i = 0; i < k; ++i) {
      const auto q =
          static_cast<uint32_t>(model::awq_nibble(u32_at(*w.weight, i * pc + o / 8), col));
      drow[i / 8] |= q << (4 * (i % 8));
    }
    for (size_t grp = 0; grp < k / g; ++grp) {
      zeros[r * G + grp] =
          static_cast<uint8_t>(model::awq_nibble(u32_at(*w.zeros, grp * pc + o / 8), col));
      const size_t si = grp * n + o;
      if (w.scales->type == model::dtype::f16) {
        std::memcpy(s16 + r * G + grp, w.scales->data + 2 * si, 2);
      } else {
        float v = 0;
        model::convert_to_f32(w.scales->type,
                              w.scales->data + si * model::dtype_size(w.scales->type), 1, &v);
        s16[r * G + grp] = model::f32_to_f16(v);
      }
    }
  }
}

void dequantize_device_layout(const quant_layout& l, int64_t n, int64_t k, const void* data,
                              const void* scales, const void* zeros, float* dst) {
  const auto uk = static_cast<size_t>(k);
  const auto G = static_cast<size_t>(l.groups(k));
  const auto g = static_cast<size_t>(l.group);
  for (size_t r = 0; r < static_cast<size_t>(n); ++r) {
    float* out = dst + r * uk;
    if (l.method == model::quant_method::fp8) {
      const auto* q = static_cast<const uint8_t*>(data) + r * uk;
      const auto* s = static_cast<const float*>(scales) + r * G;
      for (size_t i = 0; i < uk; ++i) out[i] = model::fp8_e4m3_to_f32(q[i]) * s[i / g];
    } else if (l.method == model::quant_method::awq) {
      const auto* q = static_cast<const uint32_t*>(data) + r * (uk / 8);
      const auto* s = static_cast<const uint16_t*>(scales) + r * G;
      const auto* z = static_cast<const uint8_t*>(zeros) + r * G;
      for (size_t i = 0; i < uk; ++i) {
        const auto qv = static_cast<int>((q[i / 8] >> (4 * (i % 8))) & 0xfu);
        out[i] = static_cast<float>(qv - static_cast<int>(z[i / g])) * model::f16_to_f32(s[i / g]);
      }
    } else {
      throw std::invalid_argument("dequantize_device_layout: not a quantized layout");
    }
  }
}

}  // namespace conclave::gpu
