// Helpers of the CUDA op tests: skipping without a GPU (ctest lists the case as skipped),
// fresh random inputs, uploads in either storage type, poisoned outputs and element-wise
// comparisons.
#pragma once

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include "config/engine_config.h"
#include "gpu/cuda/device_buffer.h"
#include "tests/skip.h"

namespace conclave::test::cuda {

using gpu::cuda::device_buffer;
using gpu::cuda::elem;

/// Every CUDA test starts with this: without a visible device the case reports itself
/// skipped (tests/skip.h), never passed.
#define CONCLAVE_REQUIRE_GPU()                                                    \
  do {                                                                            \
    if (!::conclave::gpu::cuda::device_available())                               \
      CONCLAVE_SKIP("no CUDA device is visible (cudaGetDeviceCount found none)"); \
  } while (0)

/// Backend options of the model-level cases: cuda, bf16 weights, the fast paths, CUDA
/// graphs when `graphs`, 64 KV blocks.
inline config::backend_config fast_bf16_backend(bool graphs) {
  config::backend_config b;
  b.kind = "cuda";
  b.num_kv_blocks = 64;
  b.weight_dtype = "bf16";
  b.cuda_fast_paths = true;
  b.cuda_graphs = graphs;
  return b;
}

/// Sets an environment variable for the scope (kernel switches: the backend reads them when
/// built).
struct scoped_env {
  const char* name;
  scoped_env(const char* n, const char* v) : name(n) { setenv(n, v, 1); }
  ~scoped_env() { unsetenv(name); }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;
};

/// A fresh seed per run (printed on failure), or CONCLAVE_TEST_SEED's value, to replay a
/// failed run's inputs.
inline uint64_t fresh_seed() {
  if (const char* s = std::getenv("CONCLAVE_TEST_SEED"); s != nullptr && *s != '\0')
    return std::strtoull(s, nullptr, 0);
  static std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

inline std::vector<float> randn(size_t n, std::mt19937_64& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

/// The values as stored in `t` (bf16 rounds to nearest even).
inline std::vector<float> round_as(const std::vector<float>& v, elem t) {
  if (t == elem::f32) return v;
  return gpu::cuda::from_bf16(gpu::cuda::to_bf16(v));
}

inline device_buffer upload_as(const std::vector<float>& v, elem t) {
  if (t == elem::f32) return device_buffer::from(v);
  return device_buffer::from(gpu::cuda::to_bf16(v));
}

/// An output buffer of n elements of t, every byte 0xff (NaN in fp32 and bf16).
inline device_buffer poisoned(size_t n, elem t) {
  device_buffer b(n * gpu::cuda::elem_size(t));
  b.fill(0xff);
  return b;
}

inline std::vector<float> download_as(const device_buffer& b, elem t, size_t n) {
  if (t == elem::f32) return b.to_vector<float>(n);
  return gpu::cuda::from_bf16(b.to_vector<uint16_t>(n));
}

inline const char* name(elem t) {
  return t == elem::f32 ? "f32" : "bf16";
}

/// |got - want| <= abs + rel * |want| everywhere, and no element left unwritten (NaN).
inline void check_close(const std::vector<float>& got, const std::vector<float>& want, double rel,
                        double abs) {
  REQUIRE(got.size() == want.size());
  size_t bad = 0, unwritten = 0, first_bad = 0;
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i])) {
      ++unwritten;
      continue;
    }
    const double err = std::abs(static_cast<double>(got[i]) - want[i]);
    const double tol = abs + rel * std::abs(static_cast<double>(want[i]));
    if (err > tol) {
      if (bad == 0) first_bad = i;
      ++bad;
    }
    worst = std::max(worst, err / (abs + std::abs(static_cast<double>(want[i]))));
  }
  INFO("first bad element " << first_bad << " got " << (bad ? got[first_bad] : 0.0f) << " want "
                            << (bad ? want[first_bad] : 0.0f) << "; worst scaled error " << worst);
  CHECK(unwritten == 0);
  CHECK(bad == 0);
}

}  // namespace conclave::test::cuda
