// model_config: the architecture hyper-parameters of a Qwen3 / Qwen3-MoE checkpoint,
// parsed from its config.json (both key spellings HF uses), plus the tensor schema
// that follows from them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/quant.h"

namespace conclave::model {

enum class architecture : uint8_t { qwen3_moe, qwen3_dense };

/// RoPE scaling, from config.json's `rope_scaling` (next to `rope_theta`, as Qwen's model
/// cards have users add it) or transformers 5's `rope_parameters`. Computed as
/// transformers computes it (gpu/host_ops.h rope_parameters).
struct rope_scaling_config {
  enum class kind : uint8_t { none, linear, yarn };
  kind type = kind::none;
  double factor = 1.0;
  /// yarn: the context the model was trained on (default: max_position_embeddings as
  /// written).
  int64_t original_max_position_embeddings = 0;
  bool has_attention_factor = false;
  double attention_factor = 1.0;          ///< yarn, when given (else derived from factor / mscale)
  double mscale = 0, mscale_all_dim = 0;  ///< yarn (0: absent)
  double beta_fast = 32, beta_slow = 1;   ///< yarn
  bool truncate = true;                   ///< yarn: floor/ceil the correction range
  /// max_position_embeddings as config.json wrote it; model_config::max_position_embeddings
  /// is the context limit the scaling gives (linear: x factor; yarn: original x factor).
  int64_t config_max_position_embeddings = 0;
};

struct model_config {
  architecture arch = architecture::qwen3_moe;
  std::string architecture_name;  ///< as written in config.json
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;  ///< dense MLP width (0 when no layer is dense)
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t num_experts = 0;  ///< 0 for dense models
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  bool norm_topk_prob = false;
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  rope_scaling_config rope;  ///< none unless the config scales RoPE
  /// The context limit: config.json's max_position_embeddings, raised by RoPE scaling.
  int64_t max_position_embeddings = 32768;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  std::vector<int32_t> eos_token_ids;  ///< from config.json / generation_config.json
  quant_config quant;                  ///< config.json's quantization_config (none: absent)
  /// Sliding-window attention (docs/sliding_window.md), as transformers applies it: a
  /// query at position p of a windowed layer sees the keys at positions j with
  /// p - sliding_window < j <= p. 0: no window (use_sliding_window false).
  int64_t sliding_window = 0;
  /// Qwen3 dense only: layers >= max_window_layers are windowed when config.json has no
  /// layer_types (transformers' rule); kept to write the config back. Qwen3-MoE ignores it.
  int64_t max_window_layers = 0;
  /// [num_layers] when sliding_window > 0: whether layer l is windowed. Empty otherwise.
  std::vector<bool> sliding_layers;

  /// True when layer `l` has the routed-expert MLP, false for a dense SwiGLU MLP
  /// (HF: not in mlp_only_layers and (l + 1) % decoder_sparse_step == 0).
  bool is_moe_layer(int64_t l) const;
  /// True when layer `l` attends through the sliding window.
  bool is_sliding_layer(int64_t l) const;
  /// The window of layer `l` for the attention kernels: sliding_window, or 0 (full).
  int32_t layer_window(int64_t l) const;
  /// True when every layer is windowed: KV blocks wholly behind the window of every
  /// future token are then dead for the whole model.
  bool all_layers_sliding() const;
  /// Throws model_error when values are inconsistent (heads not dividing, top-k > experts...).
  void validate(const std::string& source) const;
};

/// Parses DIR/config.json (and eos ids from DIR/generation_config.json when present).
/// Throws model_error naming the file and key on any missing or invalid key, and for
/// architectures other than Qwen3MoeForCausalLM / Qwen3ForCausalLM.
model_config load_model_config(const std::filesystem::path& dir);

/// Parses config.json text; `source` names it in error messages.
model_config parse_model_config(std::string_view json, const std::string& source);

/// Writes the config.json HF transformers expects for `c` (architectures, model_type...).
std::string model_config_to_json(const model_config& c);

/// One tensor the model needs: HF name and shape. `linear` marks the projection weights
/// ([out, in]) a quantized checkpoint may store quantized (model/quant.h); the embedding,
/// norms and biases are never quantized.
struct tensor_spec {
  std::string name;
  std::vector<int64_t> shape;
  bool linear = false;
};

/// Every tensor a checkpoint of `c` must hold, in a stable order (embeddings, layers
/// in order, final norm, lm_head unless tied).
std::vector<tensor_spec> expected_tensors(const model_config& c);

}  // namespace conclave::model
