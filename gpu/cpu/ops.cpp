// CPU reference ops. Accumulation is in fp32 like HF transformers' float32 path; only
// the attention scores' softmax uses the max-subtraction trick (as torch does).
#include "gpu/cpu/ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "gpu/cpu/thread_pool.h"
#include "model/dtype.h"

namespace conclave::gpu::cpu {

void rms_norm(const float* x, const float* w, float* out, size_t rows, size_t dim, float eps) {
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    float ss = 0.0f;
    for (size_t i = 0; i < dim; ++i) ss += xr[i] * xr[i];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    for (size_t i = 0; i < dim; ++i) o[i] = w[i] * (xr[i] * inv);
  }
}

void single_threaded_blas() {
  openblas_set_num_threads(1);
}

namespace {

/// Columns [j0, j1) of y = x · w^T.
void linear_slice(const float* x, const float* w, float* y, size_t m, size_t n, size_t k, size_t j0,
                  size_t j1) {
  const auto cols = static_cast<blasint>(j1 - j0);
  if (m == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, cols, static_cast<blasint>(k), 1.0f, w + j0 * k,
                static_cast<blasint>(k), x, 1, 0.0f, y + j0, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m), cols,
                static_cast<blasint>(k), 1.0f, x, static_cast<blasint>(k), w + j0 * k,
                static_cast<blasint>(k), 0.0f, y + j0, static_cast<blasint>(n));
  }
}

}  // namespace

void linear(const float* x, const float* w, const float* bias, float* y, size_t m, size_t n,
            size_t k, thread_pool* pool) {
  if (m == 0 || n == 0) return;
  // Below ~2 M multiply-adds waking the pool costs more than the split saves.
  constexpr size_t min_split_work = size_t{1} << 21;
  if (pool != nullptr && pool->size() > 1 && m * n * k >= min_split_work && n >= 64) {
    // Slices of 16 columns at least, so each call still runs a wide kernel.
    const size_t unit = 16, units = (n + unit - 1) / unit;
    pool->parallel_for(units, [&](size_t u0, size_t u1) {
      linear_slice(x, w, y, m, n, k, u0 * unit, std::min(n, u1 * unit));
    });
  } else {
    linear_slice(x, w, y, m, n, k, 0, n);
  }
  if (bias != nullptr) {
    for (size_t r = 0; r < m; ++r) {
      for (size_t j = 0; j < n; ++j) y[r * n + j] += bias[j];
    }
  }
}

void apply_rope(float* x, size_t rows, size_t row_stride, size_t heads, size_t head_dim,
                const int32_t* positions, const float* inv_freq, float scale) {
  const size_t half = head_dim / 2;
  std::vector<float> cos_v(half), sin_v(half);
  for (size_t r = 0; r < rows; ++r) {
    const float pos = static_cast<float>(positions[r]);
    for (size_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];
      cos_v[i] = static_cast<float>(std::cos(static_cast<double>(angle))) * scale;
      sin_v[i] = static_cast<float>(std::sin(static_cast<double>(angle))) * scale;
    }
    for (size_t h = 0; h < heads; ++h) {
      float* v = x + r * row_stride + h * head_dim;
      for (size_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cos_v[i] - b * sin_v[i];
        v[i + half] = b * cos_v[i] + a * sin_v[i];
      }
    }
  }
}

void swiglu(const float* gate_up, float* out, size_t rows, size_t m) {
  for (size_t r = 0; r < rows; ++r) {
    const float* g = gate_up + r * 2 * m;
    const float* u = g + m;
    float* o = out + r * m;
    for (size_t j = 0; j < m; ++j) o[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
  }
}

void softmax(float* x, size_t n) {
  if (n == 0) return;
  const float mx = *std::max_element(x, x + n);
  float sum = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (size_t i = 0; i < n; ++i) x[i] *= inv;
}

void router_topk(const float* logits, size_t tokens, size_t experts, size_t k, bool normalize,
                 int32_t* ids, float* weights) {
  std::vector<float> p(experts);
  std::vector<int32_t> order(experts);
  for (size_t t = 0; t < tokens; ++t) {
    std::copy(logits + t * experts, logits + (t + 1) * experts, p.begin());
    softmax(p.data(), experts);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                      [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float sum = 0.0f;
    for (size_t j = 0; j < k; ++j) sum += p[order[j]];
    for (size_t j = 0; j < k; ++j) {
      ids[t * k + j] = order[j];
      weights[t * k + j] = normalize ? p[order[j]] / sum : p[order[j]];
    }
  }
}

void kv_cache_write(const paged_kv& kv, std::span<const attention_seq> seqs, const float* k_new,
                    const float* v_new, size_t kv_row_stride) {
  const size_t width = static_cast<size_t>(kv.kv_heads) * static_cast<size_t>(kv.head_dim);
  for (const attention_seq& s : seqs) {
    for (int32_t i = 0; i < s.num_tokens; ++i) {
      const int32_t pos = s.num_cached + i;
      const size_t slot =
          static_cast<size_t>(s.block_table[static_cast<size_t>(pos / kv.block_size)]) *
              static_cast<size_t>(kv.block_size) +
          static_cast<size_t>(pos % kv.block_size);
      const size_t row = s.first_row + static_cast<size_t>(i);
      std::copy_n(k_new + row * kv_row_stride, width, kv.k + slot * width);
      std::copy_n(v_new + row * kv_row_stride, width, kv.v + slot * width);
      if (kv.fp8) {
        const auto hd = static_cast<size_t>(kv.head_dim);
        for (size_t h = 0; h < static_cast<size_t>(kv.kv_heads); ++h) {
          fp8_kv_round(kv.k + slot * width + h * hd, hd);
          fp8_kv_round(kv.v + slot * width + h * hd, hd);
        }
      }
    }
  }
}

float fp8_kv_round(float* x, size_t n) {
  float amax = 0.0f;
  for (size_t i = 0; i < n; ++i) amax = std::max(amax, std::abs(x[i]));
  const float s = amax > 0.0f ? amax / 448.0f : 1.0f;
  for (size_t i = 0; i < n; ++i)
    x[i] = model::fp8_e4m3_to_f32(model::f32_to_fp8_e4m3(x[i] / s)) * s;
  return s;
}

void paged_attention(const paged_kv& kv, std::span<const attention_seq> seqs, const float* q,
                     size_t q_row_stride, size_t heads, float* out, thread_pool* pool) {
  const size_t hd = static_cast<size_t>(kv.head_dim);
  const size_t kvh = static_cast<size_t>(kv.kv_heads);
  const size_t group = heads / kvh;
  const size_t width = kvh * hd;
  const size_t bs = static_cast<size_t>(kv.block_size);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const size_t win = kv.window > 0 ? static_cast<size_t>(kv.window) : 0;

  // Work items: (sequence, token, head), flattened so threads share long prompts evenly.
  std::vector<std::pair<size_t, size_t>> rows;  // (seq index, token index)
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (int32_t i = 0; i < seqs[s].num_tokens; ++i) rows.emplace_back(s, static_cast<size_t>(i));
  }
  auto work = [&](size_t begin, size_t end) {
    std::vector<float> scores;
    std::vector<float> acc(hd);
    for (size_t item = begin; item < end; ++item) {
      const auto [si, ti] = rows[item / heads];
      const size_t h = item % heads;
      const attention_seq& s = seqs[si];
      const size_t row = s.first_row + ti;
      const size_t ctx = static_cast<size_t>(s.num_cached) + ti + 1;
      // Keys [lo, ctx): the window holds positions p - W < j <= p, p = ctx - 1.
      const size_t lo = win > 0 && ctx > win ? ctx - win : 0;
      const float* qv = q + row * q_row_stride + h * hd;
      const size_t g = h / group;
      scores.resize(ctx - lo);
      for (size_t t = lo; t < ctx; ++t) {
        const size_t slot = static_cast<size_t>(s.block_table[t / bs]) * bs + t % bs;
        const float* kv_k = kv.k + slot * width + g * hd;
        float dot = 0.0f;
        for (size_t d = 0; d < hd; ++d) dot += qv[d] * kv_k[d];
        scores[t - lo] = dot * scale;
      }
      softmax(scores.data(), ctx - lo);
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (size_t t = lo; t < ctx; ++t) {
        const size_t slot = static_cast<size_t>(s.block_table[t / bs]) * bs + t % bs;
        const float* kv_v = kv.v + slot * width + g * hd;
        const float p = scores[t - lo];
        for (size_t d = 0; d < hd; ++d) acc[d] += p * kv_v[d];
      }
      std::copy(acc.begin(), acc.end(), out + row * heads * hd + h * hd);
    }
  };
  const size_t n = rows.size() * heads;
  if (pool != nullptr) {
    pool->parallel_for(n, work);
  } else {
    work(0, n);
  }
}

}  // namespace conclave::gpu::cpu
