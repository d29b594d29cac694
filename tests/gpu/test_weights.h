// Weight matrices for the CUDA kernel tests in each format a kernel reads (plain fp32 /
// bf16, fp8, awq), with the values the kernel should multiply by as the reference.
#pragma once

#include <optional>
#include <random>
#include <vector>

#include "tests/gpu/cuda_test_util.h"
#include "tests/gpu/quant_stack.h"

namespace conclave::test::cuda {

/// `experts` weight matrices [n, k] in a format the row kernels read: plain `t`, or fp8 /
/// awq (bf16 activations) with the model's quantizers; `ref` holds the values the kernel
/// multiplies by (rounded to t, or dequantized exactly).
struct test_weights {
  std::vector<float> ref;
  device_buffer plain;
  std::optional<stacked> q;

  const void* data() const { return q ? q->data.get() : plain.get(); }
  template <class Args>
  void set(Args& a) const {
    a.w = data();
    if (!q) return;
    a.q = q->l;
    a.scales = q->scales.get();
    a.zeros = q->zeros.get();
  }
};

/// The formats a case runs with activations t: plain, and for bf16 fp8 and awq.
inline std::vector<model::quant_method> formats(elem t) {
  if (t != elem::bf16) return {model::quant_method::none};
  return {model::quant_method::none, model::quant_method::fp8, model::quant_method::awq};
}

/// The scale group for a quantized [n, k] the kernels take: 128, or for an awq k that 128
/// does not divide 64 or 32; 0 where the format cannot hold the shape (fp8: k % 16; awq:
/// n % 8, k % 32).
inline int64_t row_group(model::quant_method m, int n, int k) {
  if (m == model::quant_method::fp8) return k % 16 == 0 ? 128 : 0;
  if (m == model::quant_method::awq) {
    if (n % 8 != 0 || k % 32 != 0) return 0;
    return k % 128 == 0 ? 128 : k % 64 == 0 ? 64 : 32;
  }
  return 1;
}

inline test_weights make_weights(model::quant_method m, elem t, int experts, int n, int k,
                                 float scale, std::mt19937_64& rng) {
  test_weights w;
  if (m == model::quant_method::none) {
    w.ref = round_as(randn(size_t(experts) * n * k, rng, scale), t);
    w.plain = upload_as(w.ref, t);
  } else {
    w.q.emplace(m, size_t(experts), n, k, row_group(m, n, k), rng());
    w.ref = w.q->ref;
  }
  return w;
}

}  // namespace conclave::test::cuda
