// Host-side helpers shared by the backends (gpu/host_ops.h).
#include "gpu/host_ops.h"

#include <algorithm>
#include <cmath>

#include "model/dtype.h"

namespace conclave::gpu {

std::vector<float> rope_inv_freq(size_t head_dim, double theta, bool round_to_bf16) {
  std::vector<float> inv(head_dim / 2);
  for (size_t i = 0; i < inv.size(); ++i) {
    // torch: base ** (arange(0, dim, 2).float() / dim), all in fp32, then 1 / that.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    const float p = std::pow(static_cast<float>(theta), exponent);
    inv[i] = 1.0f / p;
    if (round_to_bf16) inv[i] = model::bf16_to_f32(model::f32_to_bf16(inv[i]));
  }
  return inv;
}

namespace {

/// transformers' get_mscale.
double yarn_mscale(double scale, double mscale) {
  return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

/// transformers' find_correction_dim: the dimension whose wavelength makes
/// `rotations` turns over `context` positions.
double correction_dim(double rotations, double dim, double base, double context) {
  return (dim * std::log(context / (rotations * 2.0 * M_PI))) / (2.0 * std::log(base));
}

}  // namespace

rope_table rope_parameters(const model::model_config& c, bool round_to_bf16) {
  using kind = model::rope_scaling_config::kind;
  const auto& s = c.rope;
  const size_t dim = static_cast<size_t>(c.head_dim);
  rope_table t;
  switch (s.type) {
    case kind::none:
      t.inv_freq = rope_inv_freq(dim, c.rope_theta);
      break;
    case kind::linear:
      t.inv_freq = rope_inv_freq(dim, c.rope_theta);
      for (float& f : t.inv_freq) f /= static_cast<float>(s.factor);  // inv_freq /= factor
      break;
    case kind::yarn: {
      const double factor = s.factor;
      double af = 1.0;
      if (s.has_attention_factor) {
        af = s.attention_factor;
      } else if (s.mscale != 0 && s.mscale_all_dim != 0) {
        af = yarn_mscale(factor, s.mscale) / yarn_mscale(factor, s.mscale_all_dim);
      } else {
        af = yarn_mscale(factor, 1.0);
      }
      t.attention_scaling = static_cast<float>(af);
      const double d = static_cast<double>(dim);
      const double context = static_cast<double>(s.original_max_position_embeddings);
      double low = correction_dim(s.beta_fast, d, c.rope_theta, context);
      double high = correction_dim(s.beta_slow, d, c.rope_theta, context);
      if (s.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, d - 1);
      if (low == high) high += 0.001;  // transformers: prevent the singularity
      const float lo = static_cast<float>(low), span = static_cast<float>(high - low);
      t.inv_freq.resize(dim / 2);
      for (size_t i = 0; i < dim / 2; ++i) {
        // pos_freqs = base ** (arange(0, dim, 2) / dim), fp32.
        const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
        const float pos = std::pow(static_cast<float>(c.rope_theta), exponent);
        const float extrapolation = 1.0f / pos;
        const float interpolation = 1.0f / (static_cast<float>(factor) * pos);
        const float ramp = std::clamp((static_cast<float>(i) - lo) / span, 0.0f, 1.0f);
        const float extra_factor = 1.0f - ramp;
        // Each product and the sum rounded on its own, as torch's elementwise ops.
        const float a = interpolation * (1.0f - extra_factor);
        const float b = extrapolation * extra_factor;
        t.inv_freq[i] = a + b;
      }
      break;
    }
  }
  if (round_to_bf16)
    for (float& f : t.inv_freq) f = model::bf16_to_f32(model::f32_to_bf16(f));
  return t;
}

}  // namespace conclave::gpu
