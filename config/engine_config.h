// engine_config: every knob of one model replica (backend, KV cache, scheduler), with
// defaults and validation. The command line (app/engine_options.cpp) fills it in, and for
// `conclave serve` the [engine] part of a TOML file (config/server_config.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace conclave::config {

struct backend_config {
  std::string kind = "cpu";   ///< "cpu" or "cuda"
  int32_t block_size = 16;    ///< tokens per KV block
  int32_t num_kv_blocks = 0;  ///< 0: as many as kv_cache_bytes holds
  size_t kv_cache_bytes = size_t{512} << 20;
  /// Host memory for KV offload (0: off): a sequence preempted for KV blocks has its
  /// computed blocks copied here and back when it resumes, instead of being recomputed.
  /// cuda: pinned memory, copied on a side stream.
  size_t kv_offload_bytes = 0;
  /// Host memory for the prefix cache's second tier (0: off; needs prefix caching): a
  /// cached block evicted from the device is copied here first and copied back on a
  /// later prefix hit instead of recomputed. Added to the same pinned pool as
  /// kv_offload_bytes (offloaded sequences may take the tier's blocks when they need to).
  size_t kv_host_prefix_bytes = 0;
  int threads = 0;  ///< CPU threads; 0 = all cores
  /// Precision of RoPE's inverse frequencies: "f32" (what HF from_pretrained computes) or
  /// "bf16", which reproduces references made after `model.to(torch.bfloat16)`: that cast
  /// rounds HF's inv_freq buffer too (the shared tiny_moe fixture was made so).
  std::string rope_inv_freq_dtype = "f32";
  /// The KV cache's element type: "auto" (the weight dtype: bf16, or f32 in the exactness
  /// mode) or "fp8" (e4m3 with an fp32 scale per token and KV head: about half of bf16's
  /// bytes, so twice the tokens; cuda stores it so, cpu rounds its fp32 cache the same way).
  std::string kv_cache_dtype = "auto";
  /// cuda: the share of the device's memory this replica may hold (weights, KV cache,
  /// scratch); the KV cache gets what is left after the weights, unless num_kv_blocks
  /// or an explicit kv_cache_bytes (kv_cache_bytes_given) says otherwise.
  double gpu_memory_utilization = 0.90;
  bool kv_cache_bytes_given = false;  ///< set when kv_cache_bytes came from the user
  /// cuda: the most tokens one step runs, for the memory plan made before loading (its
  /// step buffers); 0: the scheduler's default max_num_batched_tokens. The engine's own
  /// preflight plans with the scheduler's real value.
  int32_t max_step_tokens = 0;
  int device = 0;  ///< cuda: device ordinal
  /// cuda: "bf16" (weights, KV cache and GEMM inputs in bf16, fp32 accumulation) or "f32"
  /// (everything fp32: the exactness mode).
  std::string weight_dtype = "bf16";
  /// cuda: the fast kernels (GQA attention split over the sequence, tensor-core prefill
  /// attention, GEMV for steps of <= 8 rows, all experts of a step of <= 128 tokens in one
  /// grouped-GEMV launch); verified by cuda_tests on an H200 (docs/cuda.md). false: the
  /// first kernels.
  bool cuda_fast_paths = true;
  /// cuda: replay decode steps (<= 128 single-token sequences) as CUDA graphs captured per
  /// batch-size bucket (1, 2, 4, ... 128; smaller batches are padded with dummy rows).
  /// Implies cuda_fast_paths (a graph step must not wait on the host).
  bool cuda_graphs = true;
};

struct scheduler_config {
  int32_t max_num_seqs = 64;              ///< sequences running at once
  int32_t max_num_batched_tokens = 2048;  ///< tokens per step (prefill chunks + decodes)
  bool enable_prefix_caching = true;
  /// In a step that also decodes other sequences, or while a waiting one could be
  /// admitted, a prompt chunk attends at most this many (query, key) pairs: a chunk of n
  /// tokens after c computed ones has n c + n (n + 1) / 2. Its attention is what a long
  /// prompt adds to the decoders' step (at 128K the chunk's keys dwarf its tokens), so
  /// this bounds their stall while the prompt is read, and the budget it leaves admits new
  /// prompts, at the price of more, shorter chunks. 0: prompts are chunked by
  /// max_num_batched_tokens only. The default, 8M pairs (6.3 TFLOP over the 30B shape's 48
  /// layers), held 8 streams next to a 96K prompt at 2.8x their quiet step where
  /// 2,048-token chunks made it 18x; the prompt took about 30 s instead of 15 (H100,
  /// 2026-12-07, docs/long-context.md).
  int64_t prefill_stall_pairs = 8'000'000;
  /// While prompts are read next to decoding streams, hold the decoders' mean step (wall
  /// time from scheduling to sampled tokens) at most about this multiple of their step without
  /// prompt chunks: after a step with a chunk, steps that only decode run until the mean is back
  /// (engine/ decode_pacer.h). A step with a chunk at a long context costs the decoders about 2x
  /// whatever its size (bytes: the chunk's KV and the experts its rows wake), so this is
  /// how their pace is bounded; the prompt's time to first token grows by the steps it
  /// waits. 0: off (a chunk in every step); else > 1.
  double decode_slowdown = 0;

  /// The tokens of a prompt's next chunk after `computed` tokens, `remaining` left to read,
  /// under prefill_stall_pairs: the most whose pairs fit, never fewer than
  /// kMinStallChunk (or `remaining`, when less). `remaining` when the bound is off.
  size_t stall_chunk(size_t computed, size_t remaining) const;
  /// The fewest tokens stall_chunk gives: the tensor-core prefill attention's smallest
  /// chunk, and progress however long the context.
  static constexpr size_t kMinStallChunk = 16;
};

struct engine_config {
  backend_config backend;
  scheduler_config scheduler;
  int64_t max_model_len = 0;  ///< 0: the model's max_position_embeddings
  /// Only ids below this are ever sampled (0: the whole vocabulary). A checkpoint's
  /// embedding table is often padded past its tokenizer (Qwen3: 151,936 rows, 151,669
  /// tokens); the server sets this to the tokenizer's size so no id without text is drawn.
  int64_t sampling_vocab_size = 0;
  /// Let a backend that can (cuda) sample on its device: penalties, temperature, top-k,
  /// top-p, min-p and the draw run there and only the token comes back, not the logits.
  /// Requests with a grammar constraint or logprobs are always sampled on the host.
  /// Either way the same seed gives the same tokens.
  bool sample_on_device = true;

  /// Empty when valid, else one line naming the field and the allowed range.
  std::string validate() const;
};

}  // namespace conclave::config
