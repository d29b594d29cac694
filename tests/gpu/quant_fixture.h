// A quantized linear weight held in memory exactly as a checkpoint stores it (fp8 block
// scales or AWQ packing, model/quant.h), made from random fp32 values with the model's own
// quantizers; used by the repack test (CPU) and the CUDA quantized-kernel tests.
#pragma once

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "model/dtype.h"
#include "model/quant.h"
#include "model/safetensors.h"

namespace conclave::test {

struct quant_weight {
  std::vector<std::byte> w, s, z;
  model::tensor_view wt, st, zt;
  model::stored_weight sw;

  quant_weight(const quant_weight&) = delete;
  quant_weight& operator=(const quant_weight&) = delete;

  /// n x k random values (std `scale`, a few exact zeros and one large outlier per row);
  /// fp8 blocks [bo, bi] with scales as `scale_type` (F32 or BF16), awq groups of `group`.
  quant_weight(model::quant_method m, int64_t n, int64_t k, int64_t group, uint64_t seed,
               int64_t bo = 128, model::dtype scale_type = model::dtype::f32, float scale = 0.05f) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> f(static_cast<size_t>(n * k));
    for (auto& x : f) x = d(rng);
    for (int64_t r = 0; r < n; ++r) {
      f[static_cast<size_t>(r * k)] = 0.0f;
      f[static_cast<size_t>(r * k + (r * 7) % k)] = (r % 2 ? 8.0f : -8.0f) * scale;
    }
    sw.method = m;
    sw.out = n;
    sw.in = k;
    sw.weight = &wt;
    sw.scales = &st;
    if (m == model::quant_method::fp8) {
      const int64_t so = (n + bo - 1) / bo, si = (k + group - 1) / group;
      std::vector<float> sf(static_cast<size_t>(so * si));
      w.resize(static_cast<size_t>(n * k));
      model::quantize_fp8_block(f.data(), n, k, bo, group, reinterpret_cast<uint8_t*>(w.data()),
                                sf.data());
      set(wt, model::dtype::f8_e4m3, {n, k}, w);
      if (scale_type == model::dtype::bf16) {
        s.resize(sf.size() * 2);
        for (size_t i = 0; i < sf.size(); ++i) {
          const uint16_t b = model::f32_to_bf16(sf[i]);
          std::memcpy(s.data() + 2 * i, &b, 2);
        }
      } else {
        s.resize(sf.size() * 4);
        std::memcpy(s.data(), sf.data(), s.size());
      }
      set(st, scale_type, {so, si}, s);
      sw.block_out = bo;
      sw.block_in = group;
    } else {
      w.resize(static_cast<size_t>(k * (n / 8) * 4));
      z.resize(static_cast<size_t>((k / group) * (n / 8) * 4));
      s.resize(static_cast<size_t>((k / group) * n * 2));
      model::quantize_awq(f.data(), n, k, group, reinterpret_cast<int32_t*>(w.data()),
                          reinterpret_cast<int32_t*>(z.data()),
                          reinterpret_cast<uint16_t*>(s.data()));
      set(wt, model::dtype::i32, {k, n / 8}, w);
      set(zt, model::dtype::i32, {k / group, n / 8}, z);
      set(st, model::dtype::f16, {k / group, n}, s);
      sw.zeros = &zt;
      sw.block_out = 1;
      sw.block_in = group;
    }
  }

  /// The reference: every row dequantized exactly (model::dequantize_rows).
  std::vector<float> dequantized() const {
    std::vector<float> f(static_cast<size_t>(sw.out * sw.in));
    model::dequantize(sw, f.data());
    return f;
  }

 private:
  static void set(model::tensor_view& t, model::dtype type, std::vector<int64_t> shape,
                  const std::vector<std::byte>& bytes) {
    t.type = type;
    t.shape = std::move(shape);
    t.data = bytes.data();
    t.nbytes = bytes.size();
  }
};

}  // namespace conclave::test
