// gen_model: deterministic random-weight checkpoints in Hugging Face layout, for tests,
// the embedded demo and benchmarks on real shapes. Same preset + seed + dtype, same bytes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "model/dtype.h"
#include "model/model_config.h"

namespace conclave::model {

struct model_preset {
  std::string name;
  std::string description;
  model_config config;
  float init_std = 0.08f;  ///< std of matrix weights; norm weights are 1 + 0.1 * N(0, 1)
};

/// Presets: tiny, demo, qwen3-30b-a3b, qwen3-coder-480b.
const std::vector<model_preset>& model_presets();
/// The named preset; throws model_error listing the known names.
const model_preset& find_preset(std::string_view name);

struct gen_model_options {
  std::string preset = "tiny";
  uint64_t seed = 0;
  dtype type = dtype::bf16;
  std::optional<int64_t> num_layers;  ///< a slice of the real depth (real shapes on small disks)
  size_t max_shard_bytes = size_t{2} << 30;
  /// fp8 or awq: attention, expert and dense-MLP projections stored quantized
  /// (model/quant.h), the router, embeddings, norms and lm_head as `type`, as Qwen's and
  /// the community's checkpoints do. fp8 blocks are quant.block_out x quant.block_in,
  /// awq groups quant.group_size (which must divide every projection's inputs).
  quant_config quant;
  /// No weight files: config.json and random_weights.json only, the weights generated on
  /// the GPU at load (checkpoint::random_weights) with this seed and the preset's std, for
  /// shapes too large to write (the whole 480B). Device-quantized per (row, group of
  /// block_in) rather than gen-model's 128 x 128 fp8 blocks.
  bool weights_on_device = false;
};

/// Whether gen-model stores the linear weight `name` quantized (attention, experts, dense
/// MLP; not the router or lm_head).
bool quantizes_weight(std::string_view name);

/// The value of element `i` of tensor `name` for `seed` (what gen-model writes,
/// before rounding to the storage dtype). Independent of tensor order and sharding.
float random_weight(uint64_t seed, std::string_view name, size_t i, float std, bool is_norm);

/// The per-tensor key random_weight hashes `name` to (XXH64 of the name, seeded): with it a
/// device kernel generates the same values (splitmix64 + Box-Muller, as random_weight).
uint64_t random_weight_stream(uint64_t seed, std::string_view name);
/// True for tensors random_weight draws as norms (1 + 0.1 z).
bool is_random_norm_tensor(std::string_view name);

/// Writes config.json, generation_config.json, and model.safetensors (or shards plus
/// model.safetensors.index.json) into `out` (created if needed). Returns bytes written.
size_t write_random_checkpoint(const gen_model_options& opts, const std::filesystem::path& out);

}  // namespace conclave::model
