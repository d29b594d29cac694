// Backend selection: make_backend / make_random_backend create the backend a
// backend_options names, and the device benchmark's answer where CUDA was not built.
// Compiled into conclave_gpu, which links every backend built (gpu/CMakeLists.txt).
#include <spdlog/fmt/fmt.h>
#include <stdexcept>

#include "gpu/backend.h"
#include "gpu/cpu/cpu_backend.h"
#include "gpu/device_bench.h"
#include "gpu/long_bench.h"
#include "gpu/moe_bench.h"
#include "gpu/preflight.h"
#include "model/checkpoint.h"
#ifdef CONCLAVE_HAVE_CUDA
#include "gpu/cuda/backend_setup.h"
#include "gpu/cuda/cuda_backend.h"
#endif

namespace conclave::gpu {

std::unique_ptr<backend> make_backend(const model::checkpoint& ckpt, const backend_options& opts) {
  return make_backend(ckpt, opts, rank_context{});
}

std::unique_ptr<backend> make_backend(const model::checkpoint& ckpt, const backend_options& opts,
                                      rank_context rank) {
  if (!rank.expert_parallel()) rank = {};  // one rank: today's path, whatever was passed
  if (opts.block_size <= 0) throw std::runtime_error("block_size must be positive");
  if (ckpt.random_weights() && opts.kind != "cuda")
    throw std::runtime_error(fmt::format(
        "{}: its weights are generated on the GPU at load ({}); only --backend cuda can run it",
        ckpt.dir().string(), model::kRandomWeightsFile));
  if (opts.kind == "cpu") return make_cpu_backend(ckpt, opts, std::move(rank));
  if (opts.kind == "cuda") {
#ifdef CONCLAVE_HAVE_CUDA
    return cuda::make_cuda_backend(ckpt, opts, std::move(rank));
#else
    throw std::runtime_error(
        "this conclave was built without the cuda backend (CONCLAVE_CUDA=OFF or no nvcc); use "
        "--backend cpu");
#endif
  }
  throw std::runtime_error(fmt::format("unknown backend \"{}\" (expected cpu or cuda)", opts.kind));
}

std::unique_ptr<backend> make_random_backend(const model::model_config& config,
                                             const backend_options& opts, uint64_t seed,
                                             float init_std, rank_context rank) {
  if (!rank.expert_parallel()) rank = {};
  if (opts.block_size <= 0) throw std::runtime_error("block_size must be positive");
  if (opts.kind != "cuda")
    throw std::runtime_error("random weights in device memory need --backend cuda");
#ifdef CONCLAVE_HAVE_CUDA
  return cuda::make_cuda_backend_random(config, opts, seed, init_std, std::move(rank));
#else
  (void)config;
  (void)seed;
  (void)init_std;
  (void)rank;
  throw std::runtime_error(
      "this conclave was built without the cuda backend (CONCLAVE_CUDA=OFF or no nvcc)");
#endif
}

void preflight(const model::model_config& c, const config::engine_config& cfg, int ranks) {
  if (cfg.backend.kind != "cuda") return;
#ifdef CONCLAVE_HAVE_CUDA
  cuda::preflight_on_device(c, cfg, ranks);
#else
  (void)c;
  (void)ranks;
#endif
}

#ifndef CONCLAVE_HAVE_CUDA
std::vector<device_bench_row> run_device_bench(const device_bench_options&, std::FILE*) {
  throw std::runtime_error(
      "the device benchmark needs the cuda backend; this conclave was built without it");
}
void run_long_bench(const long_bench_options&, std::FILE*) {
  throw std::runtime_error("bench long needs the cuda backend; this conclave was built without it");
}
std::vector<moe_bench_row> run_moe_bench(const moe_bench_options&, std::FILE*) {
  throw std::runtime_error("bench moe needs the cuda backend; this conclave was built without it");
}
#endif

}  // namespace conclave::gpu
