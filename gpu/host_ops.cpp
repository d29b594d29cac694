// Host-side helpers shared by the backends (gpu/host_ops.h).
#include "gpu/host_ops.h"

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

}  // namespace conclave::gpu
