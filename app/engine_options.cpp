// Engine options on the command line.
#include "app/engine_options.h"

namespace conclave::app {

void add_engine_options(CLI::App& cmd, config::engine_config& cfg) {
  cmd.add_option("--backend", cfg.backend.kind, "compute backend: cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  cmd.add_option("--threads", cfg.backend.threads, "CPU threads (0 = all cores)")
      ->capture_default_str();
  cmd.add_option("--block-size", cfg.backend.block_size, "tokens per KV-cache block")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd.add_option_function<size_t>(
         "--kv-cache-mib",
         [&cfg](const size_t& mib) {
           cfg.backend.kv_cache_bytes = mib << 20;
           cfg.backend.kv_cache_bytes_given = true;
         },
         "KV-cache memory in MiB (default 512)")
      ->check(CLI::PositiveNumber);
  cmd.add_option_function<size_t>(
         "--kv-offload-mib",
         [&cfg](const size_t& mib) { cfg.backend.kv_offload_bytes = mib << 20; },
         "host memory in MiB for offloading preempted sequences' KV blocks instead of "
         "recomputing them (default 0: off)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option_function<size_t>(
         "--kv-host-prefix-mib",
         [&cfg](const size_t& mib) { cfg.backend.kv_host_prefix_bytes = mib << 20; },
         "host memory in MiB for the prefix cache's second tier: cached blocks evicted from "
         "the device are kept there and copied back on a hit (default 0: off)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--num-kv-blocks", cfg.backend.num_kv_blocks,
                 "KV blocks (overrides --kv-cache-mib)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--max-num-seqs", cfg.scheduler.max_num_seqs, "sequences running at once")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--max-batched-tokens", cfg.scheduler.max_num_batched_tokens,
                 "tokens per engine step")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd.add_option("--prefill-stall-pairs", cfg.scheduler.prefill_stall_pairs,
                 "in steps that also decode other streams, or while a new request waits, a "
                 "prompt chunk attends at most this many (query, key) pairs: a long prompt "
                 "slows their steps by a bounded amount and new requests start next to it (0: "
                 "chunks follow --max-batched-tokens only)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--decode-slowdown", cfg.scheduler.decode_slowdown,
                 "while prompts are read next to decoding streams, keep the decoders' mean "
                 "step at most about this multiple of their step without prompt chunks, by "
                 "running decode-only steps between chunked ones (0: off; else > 1)")
      ->check([](const std::string& v) -> std::string {
        double x = 0;
        try {
          x = std::stod(v);
        } catch (...) {
          return "--decode-slowdown takes a number";
        }
        return x == 0 || x > 1 ? "" : "--decode-slowdown must be 0 (off) or greater than 1";
      })
      ->capture_default_str();
  cmd.add_option("--max-model-len", cfg.max_model_len, "context length (0 = the model's)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--rope-inv-freq-dtype", cfg.backend.rope_inv_freq_dtype,
                 "f32, or bf16 to match HF references made after model.to(bfloat16)")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  cmd.add_option("--kv-cache-dtype", cfg.backend.kv_cache_dtype,
                 "auto (the weight dtype) or fp8 (e4m3 with a scale per token and KV head: "
                 "twice the tokens of bf16)")
      ->check(CLI::IsMember({"auto", "fp8"}))
      ->capture_default_str();
  cmd.add_option("--gpu-memory-utilization", cfg.backend.gpu_memory_utilization,
                 "cuda: share of device memory for weights + KV cache + scratch")
      ->check(CLI::Range(0.01, 1.0))
      ->capture_default_str();
  cmd.add_option("--device", cfg.backend.device, "cuda: device ordinal")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd.add_option("--weight-dtype", cfg.backend.weight_dtype,
                 "cuda: bf16, or f32 (fp32 weights, KV cache and GEMMs: the exactness mode)")
      ->check(CLI::IsMember({"bf16", "f32"}))
      ->capture_default_str();
  cmd.add_flag("--cuda-fast-paths", cfg.backend.cuda_fast_paths,
               "cuda: the fast kernels (on by default; --cuda-fast-paths=false for the first)");
  cmd.add_flag("--cuda-graphs", cfg.backend.cuda_graphs,
               "cuda: replay decode steps as CUDA graphs per batch-size bucket (on by default; "
               "implies --cuda-fast-paths; --cuda-graphs=false to run them eagerly)");
  cmd.add_flag("--sample-on-device", cfg.sample_on_device,
               "cuda: sample on the GPU, copying back tokens instead of logits (on by default; "
               "--sample-on-device=false samples every row on the host)");
  cmd.add_flag_callback(
      "--no-prefix-caching", [&cfg] { cfg.scheduler.enable_prefix_caching = false; },
      "do not share KV blocks between identical prompt prefixes");
}

void apply_given_engine_options(const CLI::App& cmd, const config::engine_config& from,
                                config::engine_config& to) {
  const auto given = [&cmd](const char* name) { return cmd.count(name) > 0; };
  if (given("--backend")) to.backend.kind = from.backend.kind;
  if (given("--threads")) to.backend.threads = from.backend.threads;
  if (given("--block-size")) to.backend.block_size = from.backend.block_size;
  if (given("--kv-cache-mib")) {
    to.backend.kv_cache_bytes = from.backend.kv_cache_bytes;
    to.backend.kv_cache_bytes_given = true;
  }
  if (given("--kv-offload-mib")) to.backend.kv_offload_bytes = from.backend.kv_offload_bytes;
  if (given("--kv-host-prefix-mib"))
    to.backend.kv_host_prefix_bytes = from.backend.kv_host_prefix_bytes;
  if (given("--gpu-memory-utilization"))
    to.backend.gpu_memory_utilization = from.backend.gpu_memory_utilization;
  if (given("--device")) to.backend.device = from.backend.device;
  if (given("--weight-dtype")) to.backend.weight_dtype = from.backend.weight_dtype;
  if (given("--cuda-fast-paths")) to.backend.cuda_fast_paths = from.backend.cuda_fast_paths;
  if (given("--cuda-graphs")) to.backend.cuda_graphs = from.backend.cuda_graphs;
  if (given("--num-kv-blocks")) to.backend.num_kv_blocks = from.backend.num_kv_blocks;
  if (given("--kv-cache-dtype")) to.backend.kv_cache_dtype = from.backend.kv_cache_dtype;
  if (given("--rope-inv-freq-dtype"))
    to.backend.rope_inv_freq_dtype = from.backend.rope_inv_freq_dtype;
  if (given("--max-num-seqs")) to.scheduler.max_num_seqs = from.scheduler.max_num_seqs;
  if (given("--max-batched-tokens"))
    to.scheduler.max_num_batched_tokens = from.scheduler.max_num_batched_tokens;
  if (given("--prefill-stall-pairs"))
    to.scheduler.prefill_stall_pairs = from.scheduler.prefill_stall_pairs;
  if (given("--decode-slowdown")) to.scheduler.decode_slowdown = from.scheduler.decode_slowdown;
  if (given("--max-model-len")) to.max_model_len = from.max_model_len;
  if (given("--no-prefix-caching")) to.scheduler.enable_prefix_caching = false;
  if (given("--sample-on-device")) to.sample_on_device = from.sample_on_device;
}

}  // namespace conclave::app
