// `conclave bench moe` (gpu/moe_bench.h) on the CUDA backend: a one-layer model of the
// preset's shape (the first MoE layer; attention, embeddings and LM head are built but not
// run), timed through cuda_backend_api::time_moe_layer.
#include <algorithm>
#include <stdexcept>

#include "gpu/cuda/bench_common.h"
#include "gpu/cuda/cuda_backend.h"
#include "gpu/cuda/device_info.h"
#include "gpu/moe_bench.h"

namespace conclave::gpu {

std::vector<moe_bench_row> run_moe_bench(const moe_bench_options& opts, std::FILE* out) {
  model::model_config c = opts.model;
  int64_t first_moe = -1;
  for (int64_t l = 0; l < c.num_layers && first_moe < 0; ++l)
    if (c.is_moe_layer(l)) first_moe = l;
  if (c.num_experts <= 0 || first_moe < 0)
    throw std::invalid_argument("bench moe: preset " + opts.model_name + " has no MoE layer");
  c.num_layers = first_moe + 1;  // the layers before it are built, never run
  c.validate("preset " + opts.model_name);
  if (opts.tokens.empty() || opts.iters <= 0)
    throw std::invalid_argument("bench moe: --tokens must list counts and --iters be > 0");
  for (int32_t t : opts.tokens)
    if (t <= 0) throw std::invalid_argument("bench moe: token counts must be > 0");
  if (!cuda::device_available())
    throw std::runtime_error("bench moe: no usable GPU (" + cuda::describe_devices() + ")");
  config::backend_config bo = opts.backend;
  bo.kind = "cuda";
  bo.num_kv_blocks = std::max(bo.num_kv_blocks, 8);  // no step reads the cache
  const ceilings ceil = print_header_and_ceilings(out, "moe");
  auto be = cuda::make_cuda_backend_random(c, bo, opts.seed, opts.init_std);
  const double es = bo.weight_dtype == "f32" ? 4.0 : 2.0;
  const model_sizes sz = sizes_of(c);
  const double router_bytes =
      static_cast<double>(c.num_experts) * static_cast<double>(c.hidden_size) * es;
  std::fprintf(out,
               "  layer:   %s's MoE layer (hidden %lld, %lld experts of intermediate %lld, "
               "top-%lld), %s weights, %.1f MB an expert; router projection to combine, "
               "%d runs each\n",
               opts.model_name.c_str(), static_cast<long long>(c.hidden_size),
               static_cast<long long>(c.num_experts),
               static_cast<long long>(c.moe_intermediate_size),
               static_cast<long long>(c.num_experts_per_tok), bo.weight_dtype.c_str(),
               sz.expert * es / 1e6, opts.iters);
  std::fprintf(out, "%7s %10s %8s %10s %8s %8s %6s  %s\n", "tokens", "us/layer", "experts",
               "weight MB", "TB/s", "of copy", "graph", "kernels");
  std::fflush(out);
  std::vector<moe_bench_row> rows;
  for (int32_t t : opts.tokens) {
    const cuda::moe_layer_timing m = be->time_moe_layer(static_cast<size_t>(t), opts.iters);
    moe_bench_row r;
    r.tokens = t;
    r.us = m.us;
    r.experts = m.experts_run;
    r.bytes = router_bytes + static_cast<double>(m.experts_run) * sz.expert * es;
    r.tbps = r.bytes / (m.us * 1e-6) / 1e12;
    r.of_copy = ceil.copy_tbps > 0 ? r.tbps / ceil.copy_tbps : 0;
    r.graph = m.graph;
    r.kernels = m.path;
    std::fprintf(out, "%7d %10.1f %8zu %10.1f %8.2f %7.1f%% %6s  %s\n", t, r.us, r.experts,
                 r.bytes / 1e6, r.tbps, 100 * r.of_copy, r.graph ? "yes" : "no", r.kernels.c_str());
    std::fflush(out);
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace conclave::gpu
