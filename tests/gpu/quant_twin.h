// Twins of a quantized checkpoint for the tests that compare a backend on quantized
// weights with the same backend on plain ones:
// - write_dequantized_twin: every tensor dequantized to fp32, no quantization_config;
// - write_bf16_exact_copy: the same quantized checkpoint with its scales rounded so that
//   every dequantized weight is exact in bf16 (fp8: power-of-two scales, 4 significant
//   bits times 2^e; awq: fp16 scales of 4 significant bits, times q - z of at most 4 bits).
//   Its dequantized twin in bf16 then holds the very weights the quantized kernels see,
//   so the two runs may differ only by the kernels' summation order.
#pragma once

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "model/dtype.h"
#include "model/model_config.h"
#include "model/safetensors.h"

namespace conclave::test {

inline void write_dequantized_twin(const model::checkpoint& src, const std::filesystem::path& out) {
  model::model_config c = src.config();
  c.quant = {};
  std::filesystem::create_directories(out);
  std::vector<model::tensor_plan> plan;
  for (const auto& spec : model::expected_tensors(c))
    plan.push_back({spec.name, model::dtype::f32, spec.shape});
  model::write_safetensors(out / "model.safetensors", plan, [&](size_t i, std::byte* dst) {
    src.read_f32(plan[i].name, reinterpret_cast<float*>(dst));
  });
  std::ofstream(out / "config.json") << model::model_config_to_json(c);
}

namespace twin_detail {

/// `v` rounded to `bits` significant bits (round half away from zero), or to the nearest
/// power of two for bits == 1.
inline float round_significant(float v, int bits) {
  if (v == 0.0f || !std::isfinite(v)) return v;
  int e = 0;
  const float m = std::frexp(v, &e);  // |m| in [0.5, 1)
  const float scale = std::ldexp(1.0f, bits);
  return std::ldexp(std::round(m * scale) / scale, e);
}

}  // namespace twin_detail

inline void write_bf16_exact_copy(const std::filesystem::path& src,
                                  const std::filesystem::path& out) {
  std::filesystem::create_directories(out);
  for (const auto& entry : std::filesystem::directory_iterator(src)) {
    const auto& p = entry.path();
    if (p.extension() != ".safetensors") {
      std::filesystem::copy_file(p, out / p.filename(),
                                 std::filesystem::copy_options::overwrite_existing);
      continue;
    }
    const model::safetensors_file f(p);
    std::vector<model::tensor_plan> plan;
    std::vector<const model::tensor_view*> views;
    for (const auto& [name, tv] : f.tensors()) {
      plan.push_back({name, tv.type, tv.shape});
      views.push_back(&tv);
    }
    model::write_safetensors(out / p.filename(), plan, [&](size_t i, std::byte* dst) {
      const model::tensor_view& tv = *views[i];
      std::memcpy(dst, tv.data, tv.nbytes);
      const bool fp8_scale = tv.name.ends_with(".weight_scale_inv");
      const bool awq_scale = tv.name.ends_with(".scales");
      if (!fp8_scale && !awq_scale) return;
      const int bits = fp8_scale ? 1 : 4;
      const size_t n = tv.numel();
      for (size_t j = 0; j < n; ++j) {
        switch (tv.type) {
          case model::dtype::f32: {
            float v;
            std::memcpy(&v, dst + 4 * j, 4);
            v = twin_detail::round_significant(v, bits);
            std::memcpy(dst + 4 * j, &v, 4);
            break;
          }
          case model::dtype::bf16:
          case model::dtype::f16: {
            uint16_t h;
            std::memcpy(&h, dst + 2 * j, 2);
            const bool bf = tv.type == model::dtype::bf16;
            const float v = twin_detail::round_significant(
                bf ? model::bf16_to_f32(h) : model::f16_to_f32(h), bits);
            h = bf ? model::f32_to_bf16(v) : model::f32_to_f16(v);
            std::memcpy(dst + 2 * j, &h, 2);
            break;
          }
          default:
            throw std::runtime_error("write_bf16_exact_copy: scale tensor " + tv.name +
                                     " is not F32, BF16 or F16");
        }
      }
    });
  }
}

}  // namespace conclave::test
