// Dequantization and quantization of fp8 block-scaled and AWQ int4 weights.
#include "model/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "model/dtype.h"
#include "model/safetensors.h"

namespace conclave::model {
namespace {

/// Element `i` of a float tensor (any of the float dtypes), as fp32.
float float_at(const tensor_view& t, size_t i) {
  float v = 0;
  convert_to_f32(t.type, t.data + i * dtype_size(t.type), 1, &v);
  return v;
}

uint32_t u32_at(const tensor_view& t, size_t i) {
  uint32_t v;
  std::memcpy(&v, t.data + 4 * i, 4);
  return v;
}

}  // namespace

std::string_view quant_method_name(quant_method m) {
  switch (m) {
    case quant_method::none:
      return "none";
    case quant_method::fp8:
      return "fp8";
    case quant_method::awq:
      return "awq";
  }
  return "?";
}

size_t stored_weight::nbytes() const {
  size_t n = weight ? weight->nbytes : 0;
  if (scales) n += scales->nbytes;
  if (zeros) n += zeros->nbytes;
  return n;
}

void dequantize_rows(const stored_weight& w, int64_t row_begin, int64_t row_end, float* dst) {
  if (row_begin < 0 || row_end > w.out || row_begin > row_end)
    throw std::out_of_range("dequantize_rows: rows outside the weight");
  const auto in = static_cast<size_t>(w.in);
  switch (w.method) {
    case quant_method::none:
      convert_to_f32(
          w.weight->type,
          w.weight->data + static_cast<size_t>(row_begin) * in * dtype_size(w.weight->type),
          static_cast<size_t>(row_end - row_begin) * in, dst);
      return;
    case quant_method::fp8: {
      const auto scale_cols = static_cast<size_t>((w.in + w.block_in - 1) / w.block_in);
      const auto* q = reinterpret_cast<const uint8_t*>(w.weight->data);
      std::vector<float> row_scales(scale_cols);
      for (int64_t o = row_begin; o < row_end; ++o) {
        const size_t sr = static_cast<size_t>(o / w.block_out);
        for (size_t c = 0; c < scale_cols; ++c)
          row_scales[c] = float_at(*w.scales, sr * scale_cols + c);
        float* out = dst + static_cast<size_t>(o - row_begin) * in;
        const uint8_t* row = q + static_cast<size_t>(o) * in;
        for (size_t i = 0; i < in; ++i)
          out[i] = fp8_e4m3_to_f32(row[i]) * row_scales[i / static_cast<size_t>(w.block_in)];
      }
      return;
    }
    case quant_method::awq: {
      const auto packed_cols = static_cast<size_t>(w.out / 8);
      const auto g = static_cast<size_t>(w.block_in);
      const auto out_n = static_cast<size_t>(w.out);
      for (int64_t o = row_begin; o < row_end; ++o) {
        const auto uo = static_cast<size_t>(o);
        const size_t pc = uo / 8;
        const int k = static_cast<int>(uo % 8);
        float* out = dst + (uo - static_cast<size_t>(row_begin)) * in;
        for (size_t grp = 0; grp < in / g; ++grp) {
          const int z = awq_nibble(u32_at(*w.zeros, grp * packed_cols + pc), k);
          const float s = float_at(*w.scales, grp * out_n + uo);
          for (size_t i = grp * g; i < (grp + 1) * g; ++i) {
            const int qv = awq_nibble(u32_at(*w.weight, i * packed_cols + pc), k);
            out[i] = static_cast<float>(qv - z) * s;
          }
        }
      }
      return;
    }
  }
}

void quantize_fp8_block(const float* w, int64_t out, int64_t in, int64_t block_out,
                        int64_t block_in, uint8_t* q, float* scales) {
  const int64_t so = (out + block_out - 1) / block_out;
  const int64_t si = (in + block_in - 1) / block_in;
  for (int64_t bo = 0; bo < so; ++bo) {
    for (int64_t bi = 0; bi < si; ++bi) {
      const int64_t o1 = std::min(out, (bo + 1) * block_out),
                    i1 = std::min(in, (bi + 1) * block_in);
      float amax = 0;
      for (int64_t o = bo * block_out; o < o1; ++o)
        for (int64_t i = bi * block_in; i < i1; ++i)
          amax = std::max(amax, std::fabs(w[o * in + i]));
      const float s = amax > 0 ? amax / 448.0f : 1.0f;
      scales[bo * si + bi] = s;
      for (int64_t o = bo * block_out; o < o1; ++o)
        for (int64_t i = bi * block_in; i < i1; ++i)
          q[o * in + i] = f32_to_fp8_e4m3(w[o * in + i] / s);
    }
  }
}

void quantize_awq(const float* w, int64_t out, int64_t in, int64_t group, int32_t* qweight,
                  int32_t* qzeros, uint16_t* scales) {
  const int64_t pc = out / 8;
  std::fill(qweight, qweight + in * pc, 0);
  std::fill(qzeros, qzeros + (in / group) * pc, 0);
  const auto put = [](int32_t* word, int64_t col, int v) {
    const int nib = awq_unpack_order[static_cast<size_t>(col % 8)];
    *word = static_cast<int32_t>(static_cast<uint32_t>(*word) |
                                 (static_cast<uint32_t>(v) << (4 * nib)));
  };
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t grp = 0; grp < in / group; ++grp) {
      float lo = 0, hi = 0;
      for (int64_t i = grp * group; i < (grp + 1) * group; ++i) {
        lo = std::min(lo, w[o * in + i]);
        hi = std::max(hi, w[o * in + i]);
      }
      float s = f16_to_f32(f32_to_f16((hi - lo) / 15.0f));
      if (!(s > 0)) s = 1.0f;  // an all-zero group (or a scale that underflows fp16)
      const uint16_t s16 = f32_to_f16(s);
      scales[grp * out + o] = s16;
      const int z = static_cast<int>(std::clamp(std::nearbyint(-lo / s), 0.0f, 15.0f));
      put(&qzeros[grp * pc + o / 8], o, z);
      for (int64_t i = grp * group; i < (grp + 1) * group; ++i) {
        const int qv =
            static_cast<int>(std::clamp(std::nearbyint(w[o * in + i] / s) + z, 0.0f, 15.0f));
        put(&qweight[i * pc + o / 8], o, qv);
      }
    }
  }
}

}  // namespace conclave::model
