#include "gpu/cuda/projection.h"

#include "gpu/cuda/gemm.h"
#include "gpu/cuda/moe_gemv.h"

namespace conclave::gpu::cuda {

void projection::operator()(const void* x, const void* w, float* y, size_t m, size_t n,
                            size_t k) const {
  if (fast && m <= kGemvRows) {
    dense_gemv(x, w, t, m, y, n, k, s);
  } else {
    b->linear(x, w, t, y, m, n, k);
  }
}

void projection::operator()(const void* x, const qmatrix& w, float* y, size_t m, size_t n,
                            size_t k) const {
  if (!w.quantized()) return (*this)(x, w.data.get(), y, m, n, k);
  if (fast && m <= kQuantMmaRows) {
    gemv_args a = dense_gemv_args(x, t, m, y, n, k);
    set_gemv_weights(a, w);
    a.qp = qp;
    const bool mma_early = qp.mma_min > 0 && m >= qp.mma_min;
    if (m <= kGemvRows && !(mma_early && grouped_mma_chosen(a))) return grouped_gemv(a, s);
    if (grouped_mma_chosen(a)) return grouped_mma(a, s);
  }
  b->linear(x, plain_rows(w, 0, n, k, t, *dq, s), t, y, m, n, k);
}

}  // namespace conclave::gpu::cuda
