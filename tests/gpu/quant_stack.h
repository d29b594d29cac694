// Quantized test matrices on the device (CUDA tests): `experts` random matrices [n, k]
// quantized by the model's own quantizers, repacked to the device layout and stacked row
// after row, with their exact dequantized values as the reference.
#pragma once

#include <catch2/catch.hpp>
#include <vector>

#include "gpu/cuda/device_buffer.h"
#include "gpu/cuda/quant_ops.h"
#include "gpu/quant_repack.h"
#include "tests/gpu/quant_fixture.h"

namespace conclave::test {

/// `experts` quantized matrices [n, k], repacked and stacked row after row on the device.
struct stacked {
  gpu::quant_layout l;
  std::vector<float> ref;  // [experts * n, k], dequantized exactly
  gpu::cuda::device_buffer data, scales, zeros;

  stacked(model::quant_method m, size_t experts, int64_t n, int64_t k, int64_t group,
          uint64_t seed) {
    l = {m, group};
    std::vector<std::byte> d, s, z;
    for (size_t e = 0; e < experts; ++e) {
      const quant_weight q(m, n, k, group, seed + e, 128, model::dtype::f32);
      REQUIRE(gpu::repackable(q.sw, l));
      std::vector<std::byte> de(l.data_bytes(n, k)), se(l.scale_bytes(n, k)),
          ze(l.zero_bytes(n, k));
      gpu::repack_rows(q.sw, l, 0, n, {de.data(), se.data(), ze.data()});
      d.insert(d.end(), de.begin(), de.end());
      s.insert(s.end(), se.begin(), se.end());
      z.insert(z.end(), ze.begin(), ze.end());
      const auto f = q.dequantized();
      ref.insert(ref.end(), f.begin(), f.end());
    }
    data = gpu::cuda::device_buffer::from(d);
    scales = gpu::cuda::device_buffer::from(s);
    if (!z.empty()) zeros = gpu::cuda::device_buffer::from(z);
  }
  gpu::cuda::qview view() const { return {l, data.get(), scales.get(), zeros.get()}; }
};

}  // namespace conclave::test
