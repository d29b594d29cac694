// `conclave bench long` (gpu/long_bench.h) on the CUDA backend. The KV cache's contents do
// not change a step's time, only its length does: the decode and busy-stream steps run at
// their contexts directly over blocks of whatever the cache holds; only the TTFT runs
// read their prompts for real, chunk after chunk.
#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <string>

#include "gpu/cuda/bench_common.h"
#include "gpu/cuda/cuda_backend.h"
#include "gpu/cuda/device_buffer.h"
#include "gpu/cuda/device_info.h"
#include "gpu/long_bench.h"

namespace conclave::gpu {
namespace {

int32_t blocks_for(int64_t tokens, int32_t bs) {
  return static_cast<int32_t>((tokens + bs - 1) / bs);
}

std::vector<int32_t> iota_table(int32_t first, int32_t n) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), first);
  return t;
}

/// Causal attention FLOPs of `rows` query rows at positions [p, p + rows) over every layer
/// (QK^T and PV, 2 FLOPs a multiply-add), within `window` when > 0.
double attention_flops(const model::model_config& c, double p, double rows) {
  const double qw = static_cast<double>(c.num_heads * c.head_dim);
  double keys = rows * p + rows * (rows + 1) / 2;  // sum of (position + 1)
  if (c.sliding_window > 0 && c.all_layers_sliding()) {
    const double w = static_cast<double>(c.sliding_window);
    keys = 0;
    for (double i = 0; i < rows; ++i) keys += std::min(p + i + 1, w);
  }
  return static_cast<double>(c.num_layers) * 4.0 * qw * keys;
}

}  // namespace

void run_long_bench(const long_bench_options& opts, std::FILE* out) {
  model::model_config c = opts.model;
  // The busy prompt counts only where streams decode next to it.
  int64_t longest = opts.streams > 0 ? opts.busy_prompt + 1 : 1;
  for (int32_t n : opts.prompt_lens) longest = std::max<int64_t>(longest, n + 1);
  for (int32_t n : opts.decode_contexts) longest = std::max<int64_t>(longest, n);
  const int64_t preset_len = c.max_position_embeddings;
  c.max_position_embeddings = std::max(c.max_position_embeddings, longest);
  c.validate("preset " + opts.model_name);
  if (!cuda::device_available())
    throw std::runtime_error("bench long: no usable GPU (" + cuda::describe_devices() + ")");
  if (opts.chunk <= 0 || opts.streams < 0 || opts.iters <= 0)
    throw std::invalid_argument("bench long: --chunk and --iters must be > 0");
  config::backend_config bo = opts.backend;
  bo.kind = "cuda";
  bo.max_step_tokens = opts.chunk + opts.streams;  // a chunk next to the streams' decodes
  const int32_t bs = bo.block_size;
  // The longest prompt or context, plus the streams' blocks next to it.
  const int32_t stream_blocks = blocks_for(opts.stream_context + 1, bs);
  const int32_t long_blocks = blocks_for(longest, bs);
  if (bo.num_kv_blocks == 0 && !bo.kv_cache_bytes_given)
    bo.num_kv_blocks = long_blocks + opts.streams * stream_blocks + 8;

  const ceilings ceil = print_header_and_ceilings(out, "long");
  auto be = cuda::make_cuda_backend_random(c, bo, opts.seed, opts.init_std);
  const kv_cache_shape kv = be->kv_shape();
  if (const int64_t need =
          static_cast<int64_t>(long_blocks) + int64_t{opts.streams} * stream_blocks;
      kv.num_blocks < need)
    throw std::invalid_argument(
        "bench long: the KV cache holds " + std::to_string(kv.num_blocks) + " blocks of " +
        std::to_string(bs) + " tokens; the longest prompt or context (" + std::to_string(longest) +
        " tokens) and " + std::to_string(opts.streams) + " streams of " +
        std::to_string(opts.stream_context) + " need " + std::to_string(need) +
        " (raise --kv-cache-mib, or leave it out to size the cache for the run)");
  std::fprintf(out,
               "  model:   %s (%lld layers, %lld query / %lld KV heads of %lld), context raised "
               "from %lld to %lld for the run; %s weights %.2f GiB; KV cache %s, %d blocks x %d "
               "(%.2f GiB, %.1f KiB per token)\n",
               opts.model_name.c_str(), static_cast<long long>(c.num_layers),
               static_cast<long long>(c.num_heads), static_cast<long long>(c.num_kv_heads),
               static_cast<long long>(c.head_dim), static_cast<long long>(preset_len),
               static_cast<long long>(c.max_position_embeddings), bo.weight_dtype.c_str(),
               static_cast<double>(be->weight_bytes()) / (1ull << 30),
               bo.kv_cache_dtype == "fp8" ? "fp8" : bo.weight_dtype.c_str(), kv.num_blocks, bs,
               static_cast<double>(kv.bytes_per_block) * kv.num_blocks / (1ull << 30),
               static_cast<double>(kv.bytes_per_block) / bs / 1024);
  std::fflush(out);
  std::mt19937_64 rng(opts.seed + 1);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(c.vocab_size - 1));
  const model_sizes sz = sizes_of(c);
  const double L = static_cast<double>(c.num_layers);
  const double k = static_cast<double>(c.num_experts_per_tok);
  // Non-attention FLOPs per token (projections, router, the routed experts, dense MLPs).
  const double token_flops =
      2.0 * (L * sz.dense_per_layer +
             (L - sz.dense_mlp_layers) *
                 (static_cast<double>(c.num_experts * c.hidden_size) + k * sz.expert) +
             sz.dense_mlp_layers * sz.dense_mlp);
  step_output so;

  // 1. Time to first token: one prompt read in chunks (fast paths, no graphs).
  be->set_fast_paths(true);
  be->set_cuda_graphs(false);
  be->set_attention_timing(true);
  std::fprintf(out,
               "\nTTFT: one prompt in chunks of %d tokens (the last chunk's logits copied back); "
               "attention = the layers' attention kernels (CUDA events)\n"
               "%8s %7s %10s %12s %13s %9s %8s\n",
               opts.chunk, "prompt", "chunks", "TTFT s", "attention s", "attn TFLOP/s", "attn MFU",
               "MFU");
  std::fflush(out);
  const std::vector<int32_t> long_table = iota_table(0, long_blocks);
  for (int32_t n : opts.prompt_lens) {
    std::vector<int32_t> prompt(static_cast<size_t>(n));
    for (auto& t : prompt) t = tok(rng);
    double ttft = 0, attn = 0, attn_flops = 0, flops = 2.0 * sz.lm_head;
    int chunks = 0;
    for (int32_t p = 0; p < n; p += opts.chunk, ++chunks) {
      const int32_t rows = std::min(opts.chunk, n - p);
      const std::span<const int32_t> t(prompt.data() + p, static_cast<size_t>(rows));
      const step_sequence s{
          t, p,
          std::span<const int32_t>(long_table).first(static_cast<size_t>(blocks_for(p + rows, bs))),
          false};
      be->forward({&s, 1}, so);
      const auto tm = be->last_timing();
      ttft += tm.total_ms / 1e3;
      attn += tm.attention_ms / 1e3;
      const double af = attention_flops(c, p, rows);
      attn_flops += af;
      flops += af + token_flops * rows;
    }
    std::fprintf(out, "%8d %7d %10.2f %12.2f %13.1f %8.1f%% %7.1f%%\n", n, chunks, ttft, attn,
                 attn_flops / attn / 1e12, 100 * attn_flops / attn / (ceil.gemm_tflops * 1e12),
                 100 * flops / ttft / (ceil.gemm_tflops * 1e12));
    std::fflush(out);
  }
  be->set_attention_timing(false);

  // 2. Decode at long contexts: one sequence, graphs, sampled on the device.
  be->set_cuda_graphs(true);
  device_sampling ds;
  ds.temperature = 0.7f;
  ds.top_p = 0.8f;
  ds.top_k = 20;
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  auto time_decode = [&](std::span<const step_sequence> seqs, std::vector<int32_t>& toks) {
    for (int i = 0; i < 3; ++i) be->forward(seqs, so);
    double ms = 0;
    for (int i = 0; i < opts.iters; ++i) {
      for (auto& t : toks) t = tok(rng);
      ds.u = u01(rng);
      be->forward(seqs, so);
      ms += be->last_timing().total_ms;
    }
    return ms / opts.iters;
  };
  std::fprintf(out, "\ndecode, batch 1 (CUDA graphs, sampled on the device)\n%9s %10s %8s\n",
               "context", "step ms", "x first");
  double first_ms = 0;
  for (int32_t ctx : opts.decode_contexts) {
    std::vector<int32_t> toks = {tok(rng)};
    const step_sequence s{
        std::span<const int32_t>(toks), ctx - 1,
        std::span<const int32_t>(long_table).first(static_cast<size_t>(blocks_for(ctx, bs))), false,
        &ds};
    const double ms = time_decode({&s, 1}, toks);
    maybe_profiled(profile_wanted("decode_ctx", ctx), [&] { be->forward({&s, 1}, so); });
    if (first_ms == 0) first_ms = ms;
    std::fprintf(out, "%9d %10.3f %8.2f\n", ctx, ms, ms / first_ms);
    std::fflush(out);
  }

  // 3. Streams decoding while a long prompt is read beside them, per chunk size.
  if (opts.streams > 0) {
    std::vector<std::vector<int32_t>> tables, toks(static_cast<size_t>(opts.streams));
    std::vector<device_sampling> specs(static_cast<size_t>(opts.streams), ds);
    std::vector<step_sequence> quiet;
    for (int32_t i = 0; i < opts.streams; ++i)
      tables.push_back(iota_table(long_blocks + i * stream_blocks, stream_blocks));
    for (int32_t i = 0; i < opts.streams; ++i) {
      toks[static_cast<size_t>(i)] = {tok(rng)};
      quiet.push_back({toks[static_cast<size_t>(i)], opts.stream_context,
                       tables[static_cast<size_t>(i)], false, &specs[static_cast<size_t>(i)]});
    }
    std::vector<int32_t> flat;
    const double quiet_ms = [&] {
      for (int i = 0; i < 3; ++i) be->forward(quiet, so);
      double ms = 0;
      for (int i = 0; i < opts.iters; ++i) {
        be->forward(quiet, so);
        ms += be->last_timing().total_ms;
      }
      return ms / opts.iters;
    }();
    std::fprintf(out,
                 "\n%d streams at context %d: quiet step %.3f ms (graphs); the same step with a "
                 "%d-token prompt's next chunk in it, at 1/4, 1/2, 3/4 and the end of the "
                 "prompt\n%7s %10s %10s %10s %10s %10s %8s\n",
                 opts.streams, opts.stream_context, quiet_ms, opts.busy_prompt, "chunk",
                 "at 1/4 ms", "at 1/2 ms", "at 3/4 ms", "at end ms", "mean ms", "x quiet");
    std::fflush(out);
    // The last busy step's parts, averaged over its repetitions: device time, attention's
    // share of it, and the wall time (host work included), ms.
    struct step_parts {
      double device = 0, attention = 0, wall = 0;
    } last_parts;
    const auto print_end_parts = [&] {
      std::fprintf(out, "%7s at the end: device %.2f ms (attention %.2f ms), wall %.2f ms\n", "",
                   last_parts.device, last_parts.attention, last_parts.wall);
    };
    // The quiet streams' step with `chunk` tokens of the long prompt after `p` in it, ms.
    const auto busy_ms = [&](int32_t p, int32_t chunk) {
      std::vector<int32_t> prompt(static_cast<size_t>(chunk));
      for (auto& t : prompt) t = tok(rng);
      std::vector<step_sequence> busy = quiet;
      busy.push_back({prompt, p,
                      std::span<const int32_t>(long_table)
                          .first(static_cast<size_t>(blocks_for(p + chunk, bs))),
                      false});
      be->forward(busy, so);  // warm-up (workspaces)
      const int reps = 3;
      last_parts = {};
      for (int i = 0; i < reps; ++i) {
        be->forward(busy, so);
        const auto& tm = be->last_timing();
        last_parts.device += tm.forward_ms / reps;
        last_parts.attention += tm.attention_ms / reps;
        last_parts.wall += tm.total_ms / reps;
      }
      // The chunk at the end of the prompt, once more for the profiler when asked.
      if (p + chunk >= opts.busy_prompt)
        maybe_profiled(profile_wanted("busy", chunk), [&] { be->forward(busy, so); });
      return last_parts.wall;
    };
    const auto end_of = [&](int q) {
      return static_cast<int32_t>(static_cast<int64_t>(opts.busy_prompt) * (q + 1) / 4);
    };
    for (int32_t chunk : opts.busy_chunks) {
      double at[4] = {0, 0, 0, 0};
      for (int q = 0; q < 4; ++q) at[q] = busy_ms(std::max(0, end_of(q) - chunk), chunk);
      const double mean = (at[0] + at[1] + at[2] + at[3]) / 4;
      std::fprintf(out, "%7d %10.2f %10.2f %10.2f %10.2f %10.2f %8.2f\n", chunk, at[0], at[1],
                   at[2], at[3], mean, mean / quiet_ms);
      print_end_parts();
      std::fflush(out);
    }
    if (opts.busy_pairs.empty()) return;
    // Chunks as the scheduler sizes them under prefill_stall_pairs, at most --chunk tokens:
    // the chunk that ends at each position (sized at that context), the chunks the whole
    // prompt takes, and the time to read it estimated as that many steps at the mean.
    std::fprintf(out,
                 "\nthe same with chunks bounded by --prefill-stall-pairs (the scheduler's sizes)\n"
                 "%14s %28s %10s %8s %8s %12s\n",
                 "pairs", "chunk at 1/4, 1/2, 3/4, end", "mean ms", "x quiet", "chunks", "~read s");
    for (int64_t pairs : opts.busy_pairs) {
      config::scheduler_config sc;
      sc.prefill_stall_pairs = pairs;
      const auto total = static_cast<size_t>(opts.busy_prompt);
      const auto budget = static_cast<size_t>(opts.chunk);  // the step's token budget
      double at[4] = {0, 0, 0, 0};
      int32_t sizes[4] = {0, 0, 0, 0};
      for (int q = 0; q < 4; ++q) {
        const auto e = static_cast<size_t>(end_of(q));
        sizes[q] = static_cast<int32_t>(std::min(budget, sc.stall_chunk(e, total)));
        at[q] = busy_ms(std::max(0, end_of(q) - sizes[q]), sizes[q]);
      }
      size_t chunks = 0;
      for (size_t at_tok = 0; at_tok < total; ++chunks)
        at_tok += std::min(budget, sc.stall_chunk(at_tok, total - at_tok));
      const double mean = (at[0] + at[1] + at[2] + at[3]) / 4;
      char sizes_s[64];
      std::snprintf(sizes_s, sizeof sizes_s, "%d, %d, %d, %d", sizes[0], sizes[1], sizes[2],
                    sizes[3]);
      std::fprintf(out, "%14lld %28s %10.2f %8.2f %8zu %12.1f\n", static_cast<long long>(pairs),
                   sizes_s, mean, mean / quiet_ms, chunks,
                   static_cast<double>(chunks) * mean / 1000);
      print_end_parts();
      std::fflush(out);
    }
  }
}

}  // namespace conclave::gpu
