// The device benchmark (gpu/device_bench.h). Floors: a decode step must read the weights
// it touches (attention, router, the experts its tokens were routed to - counted by the
// backend - LM head) and the KV cache of every sequence, at the measured copy bandwidth;
// a prefill step must do 2 x tokens x active parameters FLOPs plus causal attention, at
// the measured cuBLAS bf16 GEMM rate. Device time comes from CUDA events.
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <cuda_profiler_api.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <random>
#include <sstream>

#include "gpu/cuda/bench_common.h"
#include "gpu/cuda/check.h"
#include "gpu/cuda/cuda_backend.h"
#include "gpu/cuda/device_buffer.h"
#include "gpu/cuda/device_info.h"
#include "gpu/cuda/gemm.h"
#include "gpu/device_bench.h"
#include "gpu/quant_layout.h"

namespace conclave::gpu {
namespace {

using cuda::device_buffer;

}  // namespace

ceilings measure_ceilings() {
  ceilings c;
  cudaEvent_t e0, e1;
  CONCLAVE_CUDA_CHECK(cudaEventCreate(&e0));
  CONCLAVE_CUDA_CHECK(cudaEventCreate(&e1));
  {
    const size_t bytes = size_t{2} << 30;
    device_buffer a(bytes), b(bytes);
    CONCLAVE_CUDA_CHECK(cudaMemset(a.get(), 1, bytes));
    for (int i = 0; i < 3; ++i)
      CONCLAVE_CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice));
    CONCLAVE_CUDA_CHECK(cudaEventRecord(e0));
    for (int i = 0; i < 10; ++i)
      CONCLAVE_CUDA_CHECK(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice));
    CONCLAVE_CUDA_CHECK(cudaEventRecord(e1));
    CONCLAVE_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    CONCLAVE_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    c.copy_tbps = 2.0 * static_cast<double>(bytes) * 10 / (ms / 1e3) / 1e12;
  }
  {
    const size_t n = 8192;
    device_buffer x(n * n * 2), w(n * n * 2), y(n * n * 2);
    CONCLAVE_CUDA_CHECK(cudaMemset(x.get(), 0x3c, x.bytes()));  // bf16 ~0.0115: no denormals
    CONCLAVE_CUDA_CHECK(cudaMemset(w.get(), 0x3c, w.bytes()));
    cuda::blas b;
    for (int i = 0; i < 3; ++i)
      b.linear_out(x.get(), w.get(), cuda::elem::bf16, y.get(), cuda::elem::bf16, n, n, n);
    CONCLAVE_CUDA_CHECK(cudaEventRecord(e0));
    for (int i = 0; i < 10; ++i)
      b.linear_out(x.get(), w.get(), cuda::elem::bf16, y.get(), cuda::elem::bf16, n, n, n);
    CONCLAVE_CUDA_CHECK(cudaEventRecord(e1));
    CONCLAVE_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    CONCLAVE_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    c.gemm_tflops = 2.0 * static_cast<double>(n * n * n) * 10 / (ms / 1e3) / 1e12;
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return c;
}

ceilings print_header_and_ceilings(std::FILE* out, const char* what) {
  std::fprintf(out, "conclave bench %s (device, random weights)\n  gpus:    %s\n", what,
               cuda::describe_devices().c_str());
  std::fflush(out);
  const ceilings ceil = measure_ceilings();
  std::fprintf(out,
               "  ceilings: device-to-device copy %.2f TB/s (bytes read + written), cuBLAS bf16 "
               "GEMM 8192^3 %.0f TFLOP/s\n",
               ceil.copy_tbps, ceil.gemm_tflops);
  std::fflush(out);
  return ceil;
}

model_sizes sizes_of(const model::model_config& c) {
  model_sizes s;
  const double h = static_cast<double>(c.hidden_size);
  const double qw = static_cast<double>(c.num_heads * c.head_dim);
  const double kvw = static_cast<double>(c.num_kv_heads * c.head_dim);
  s.dense_per_layer = (qw + 2 * kvw) * h + h * qw;
  s.expert = 3.0 * h * static_cast<double>(c.moe_intermediate_size);
  s.lm_head = static_cast<double>(c.vocab_size) * h;
  s.kv_per_token = 2.0 * static_cast<double>(c.num_layers) * kvw;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    if (!c.is_moe_layer(l)) s.dense_mlp_layers += 1;
  }
  s.dense_mlp = 3.0 * h * static_cast<double>(c.intermediate_size);
  return s;
}

bool profile_wanted(const std::string& label, int32_t n) {
  const char* env = std::getenv("CONCLAVE_BENCH_PROFILE");
  if (env == nullptr) return false;
  std::stringstream ss(env);
  std::string item;
  const std::string want = label + ":" + std::to_string(n);
  while (std::getline(ss, item, ','))
    if (item == want) return true;
  return false;
}

void profile_begin() {
  CONCLAVE_CUDA_CHECK(cudaDeviceSynchronize());
  CONCLAVE_CUDA_CHECK(cudaProfilerStart());
}

void profile_end() {
  CONCLAVE_CUDA_CHECK(cudaDeviceSynchronize());
  CONCLAVE_CUDA_CHECK(cudaProfilerStop());
}

std::vector<device_bench_row> run_device_bench(const device_bench_options& opts, std::FILE* out) {
  const auto& c = opts.model;
  c.validate("preset " + opts.model_name);
  if (!cuda::device_available())
    throw std::runtime_error("bench engine --random-weights: no usable GPU (" +
                             cuda::describe_devices() + ")");
  config::backend_config bo = opts.backend;
  bo.kind = "cuda";
  const int32_t bs = bo.block_size;
  const int32_t max_batch =
      *std::max_element(opts.decode_batches.begin(), opts.decode_batches.end());
  const int32_t max_prefill =
      opts.prefill_lens.empty()
          ? 0
          : *std::max_element(opts.prefill_lens.begin(), opts.prefill_lens.end());
  const int32_t decode_blocks = (opts.decode_context + bs - 1) / bs;
  const int32_t prefill_blocks = (max_prefill + bs - 1) / bs;
  if (bo.num_kv_blocks == 0 && !bo.kv_cache_bytes_given)
    bo.num_kv_blocks = std::max(max_batch * decode_blocks, prefill_blocks) + 8;

  const ceilings ceil = print_header_and_ceilings(out, "engine");

  auto be = cuda::make_cuda_backend_random(c, bo, opts.seed, opts.init_std);
  const double es = bo.weight_dtype == "f32" ? 4.0 : 2.0;
  // Device bytes per projection weight (attention, experts, dense MLP): es, or with the
  // projections quantized (bf16 only) the layout's data plus its per-(row, group) scales
  // and zeros (gpu/quant_layout.h); the router, embeddings and LM head stay es.
  const quant_layout ql = bo.weight_dtype == "f32" ? quant_layout{} : device_quant_layout(c.quant);
  const double wq = ql.method == model::quant_method::none
                        ? es
                        : static_cast<double>(ql.bytes(1, 1 << 20)) / static_cast<double>(1 << 20);
  const std::string format =
      ql.method == model::quant_method::none
          ? bo.weight_dtype
          : fmt::format("{} (w{}a16, group {}, {:.3f} bytes/weight)",
                        model::quant_method_name(ql.method),
                        ql.method == model::quant_method::fp8 ? 8 : 4, ql.group, wq);
  const model_sizes sz = sizes_of(c);
  const double L = static_cast<double>(c.num_layers);
  const double moe_layers = L - sz.dense_mlp_layers;
  std::fprintf(out,
               "  model:   %s (%lld layers, hidden %lld, %lld experts, top-%lld), %s weights "
               "%.2f GiB on the device, KV cache %d blocks x %d\n",
               opts.model_name.c_str(), static_cast<long long>(c.num_layers),
               static_cast<long long>(c.hidden_size), static_cast<long long>(c.num_experts),
               static_cast<long long>(c.num_experts_per_tok), format.c_str(),
               static_cast<double>(be->weight_bytes()) / (1ull << 30), be->kv_shape().num_blocks,
               bs);
  std::fprintf(out,
               "  MBU = (weights the step touches, quantized projections at their stored bytes, "
               "+ KV read) / copy bandwidth / device time; "
               "MFU = FLOPs / GEMM peak / device time; decode+f: --cuda-fast-paths, decode+g: "
               "the same in CUDA graphs; decode steps sample on the device (T 0.7, top-p 0.8, "
               "top-k 20): sample ms is that and the copy back, after device ms\n");
  std::fprintf(out, "%-8s %6s %7s %10s %10s %12s %10s %8s %8s %9s\n", "step", "batch", "tokens",
               "step ms", "device ms", "tokens/s", "floor ms", "MBU", "MFU", "sample ms");
  std::fflush(out);

  std::mt19937_64 rng(opts.seed + 1);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(c.vocab_size - 1));
  std::vector<device_bench_row> rows;
  step_output so;

  // Decode modes: 0 the first kernels, 1 the fast paths, 2 the fast paths in CUDA graphs
  // (1 and 2 only when asked for).
  const bool fast = bo.cuda_fast_paths || bo.cuda_graphs, graphs = bo.cuda_graphs;
  static const char* const kLabels[] = {"decode", "decode+f", "decode+g"};
  for (int mode = 0; mode < 3; ++mode) {
    if ((mode == 1 && !fast) || (mode == 2 && !graphs)) continue;
    for (int32_t batch : opts.decode_batches) try {
        be->set_fast_paths(mode >= 1);
        be->set_cuda_graphs(mode == 2);
        const char* label = kLabels[mode];
        std::vector<std::vector<int32_t>> tables(static_cast<size_t>(batch)),
            toks(static_cast<size_t>(batch));
        std::vector<step_sequence> seqs;
        // Every sequence samples on the device with Qwen3-Coder's recommended settings
        // (temperature 0.7, top-p 0.8, top-k 20), as a server step does.
        std::vector<device_sampling> specs(static_cast<size_t>(batch));
        std::uniform_real_distribution<double> u01(0.0, 1.0);
        for (int32_t i = 0; i < batch; ++i) {
          auto& t = tables[static_cast<size_t>(i)];
          t.resize(static_cast<size_t>(decode_blocks));
          std::iota(t.begin(), t.end(), i * decode_blocks);
          toks[static_cast<size_t>(i)] = {tok(rng)};
          auto& d = specs[static_cast<size_t>(i)];
          d.temperature = 0.7f;
          d.top_p = 0.8f;
          d.top_k = 20;
          d.u = u01(rng);
          seqs.push_back({toks[static_cast<size_t>(i)], opts.decode_context - 1, t, false, &d});
        }
        for (int i = 0; i < 3; ++i) be->forward(seqs, so);
        double step = 0, dev = 0, experts = 0, sample = 0;
        for (int i = 0; i < opts.iters; ++i) {
          for (auto& t : toks) t[0] = tok(rng);
          for (auto& d : specs) d.u = u01(rng);
          be->forward(seqs, so);
          const auto tm = be->last_timing();
          step += tm.total_ms;
          dev += tm.forward_ms;
          sample += tm.sample_ms;
          experts += static_cast<double>(tm.experts_run);
        }
        step /= opts.iters;
        dev /= opts.iters;
        sample /= opts.iters;
        experts /= opts.iters;
        // One more step, outside the timing, under the profiler when asked for.
        if (profile_wanted(label, batch)) maybe_profiled(true, [&] { be->forward(seqs, so); });
        // Quantized projections count their quantized bytes (data, scales, zeros).
        const double bytes =
            wq * (L * sz.dense_per_layer + sz.dense_mlp_layers * sz.dense_mlp +
                  experts * sz.expert) +
            es * (moe_layers * static_cast<double>(c.num_experts) *
                      static_cast<double>(c.hidden_size) +
                  sz.lm_head) +
            es * sz.kv_per_token * static_cast<double>(batch) * opts.decode_context;
        device_bench_row r{"decode",
                           batch,
                           batch,
                           step,
                           dev,
                           1e3 * batch / step,
                           1e3 * bytes / (ceil.copy_tbps * 1e12),
                           0};
        r.utilization = r.floor_ms / dev;
        if (mode == 2 && !be->last_step_was_graph()) label = "decode+f*";  // no graph: > 64
        std::fprintf(out, "%-8s %6d %7d %10.3f %10.3f %12.1f %10.3f %7.1f%% %8s %9.3f\n", label,
                     batch, batch, step, dev, r.tokens_per_s, r.floor_ms, 100 * r.utilization, "-",
                     sample);
        std::fflush(out);
        rows.push_back(r);
      } catch (const std::exception& e) {
        std::fprintf(out, "%-8s %6d failed: %s\n", kLabels[mode], batch, e.what());
        std::fflush(out);
      }
  }
  // Prefill with the fast paths when asked for (the tiled attention), never in graphs.
  be->set_fast_paths(fast);
  be->set_cuda_graphs(false);

  for (int32_t len : opts.prefill_lens) try {
      std::vector<int32_t> t(static_cast<size_t>((len + bs - 1) / bs));
      std::iota(t.begin(), t.end(), 0);
      std::vector<int32_t> prompt(static_cast<size_t>(len));
      for (auto& x : prompt) x = tok(rng);
      step_sequence s{prompt, 0, t, false};
      const int reps = len >= 16384 ? 1 : 3;
      // Warm-up (grows the workspace); the longest prompts run once, cold: the workspace
      // allocation is small next to their attention time.
      if (len < 16384) be->forward({&s, 1}, so);
      double step = 0, dev = 0, experts = 0;
      for (int i = 0; i < reps; ++i) {
        be->forward({&s, 1}, so);
        const auto tm = be->last_timing();
        step += tm.total_ms;
        dev += tm.forward_ms;
        experts += static_cast<double>(tm.experts_run);
      }
      step /= reps;
      dev /= reps;
      if (profile_wanted("prefill", len)) maybe_profiled(true, [&] { be->forward({&s, 1}, so); });
      const double n = static_cast<double>(len);
      const double k = static_cast<double>(c.num_experts_per_tok);
      const double flops =
          2.0 * n *
              (L * sz.dense_per_layer +
               moe_layers * (static_cast<double>(c.num_experts * c.hidden_size) + k * sz.expert) +
               sz.dense_mlp_layers * sz.dense_mlp) +
          2.0 * sz.lm_head +
          L * 4.0 * static_cast<double>(c.num_heads * c.head_dim) * n * (n + 1) / 2;
      device_bench_row r{
          "prefill", 1, len, step, dev, 1e3 * n / step, 1e3 * flops / (ceil.gemm_tflops * 1e12), 0};
      r.utilization = r.floor_ms / dev;
      std::fprintf(out, "%-8s %6d %7d %10.3f %10.3f %12.1f %10.3f %8s %7.1f%%\n", "prefill", 1, len,
                   step, dev, r.tokens_per_s, r.floor_ms, "-", 100 * r.utilization);
      std::fflush(out);
      rows.push_back(r);
    } catch (const std::exception& e) {
      // A prompt whose step buffers do not fit (32K on an 80 GB card) fails alone.
      std::fprintf(out, "%-8s %6d %7d failed: %s\n", "prefill", 1, len, e.what());
      std::fflush(out);
    }
  return rows;
}

}  // namespace conclave::gpu
