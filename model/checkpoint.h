// checkpoint: a Hugging Face model folder opened for reading. Maps every safetensors
// shard, checks that every tensor the config implies is present with the right shape
// and a loadable dtype (quantized linear weights with scales of the right shape), and
// hands out zero-copy views. A folder may instead say that its weights are generated on
// the GPU at load (random_weights.json, no weight files: `gen-model --weights-on-device`),
// for shapes too large to write to disk.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/model_config.h"
#include "model/safetensors.h"

namespace conclave::model {

/// random_weights.json: {"seed": S, "init_std": X}. The weights are gen-model's values for
/// that seed and std, made on the device by the cuda backend (only the experts a rank
/// holds), never stored.
struct random_weights_spec {
  uint64_t seed = 0;
  float init_std = 0.02f;
  /// The dtype gen-model would store the plain (unquantized) tensors in: the device rounds
  /// its values through it, so the folder runs as the written checkpoint of the same seed.
  dtype stored = dtype::bf16;
};

/// The file that marks a folder of weights generated on the device.
inline constexpr const char* kRandomWeightsFile = "random_weights.json";

class checkpoint {
 public:
  /// Opens and validates DIR. Throws model_error (one line naming the file, tensor or
  /// key) for anything missing, truncated, mis-shaped or of an unsupported dtype.
  explicit checkpoint(const std::filesystem::path& dir);

  const model_config& config() const { return config_; }
  const std::filesystem::path& dir() const { return dir_; }

  /// The named tensor; throws model_error if absent.
  const tensor_view& tensor(std::string_view name) const;
  /// How the linear weight `name` ("....q_proj.weight", as expected_tensors names it) is
  /// stored: plain or quantized (model/quant.h); throws model_error if it is not one.
  const stored_weight& weight(std::string_view name) const;
  /// Tensor `name` as fp32: a float tensor converted, a quantized linear weight
  /// dequantized ([out, in]). `dst` holds numel of the logical shape.
  void read_f32(std::string_view name, float* dst) const;
  /// Elements of the logical (dequantized) tensor `name`.
  size_t logical_numel(std::string_view name) const;
  /// Bytes `name` takes in the files (a quantized weight's scales and zeros included).
  size_t stored_bytes(std::string_view name) const;
  bool has(std::string_view name) const { return index_.count(std::string(name)) != 0; }
  /// Bytes of all tensors the model uses (0 for weights generated on the device).
  size_t weight_bytes() const { return weight_bytes_; }
  /// Set when the folder's weights are generated on the device (random_weights.json and no
  /// weight files); such a checkpoint has no tensors, and reading one throws model_error
  /// saying that only the cuda backend can load the folder.
  const std::optional<random_weights_spec>& random_weights() const { return random_; }

 private:
  const tensor_view& plain_tensor(const tensor_spec& spec) const;
  stored_weight resolve_weight(const tensor_spec& spec) const;

  std::filesystem::path dir_;
  model_config config_;
  std::vector<std::unique_ptr<safetensors_file>> files_;
  std::unordered_map<std::string, const tensor_view*> index_;
  std::unordered_map<std::string, stored_weight> weights_;  ///< every linear weight
  size_t weight_bytes_ = 0;
  std::optional<random_weights_spec> random_;
};

/// Reads DIR/random_weights.json; throws model_error (one line) when it is malformed.
random_weights_spec read_random_weights(const std::filesystem::path& dir);
/// Writes DIR/random_weights.json.
void write_random_weights(const std::filesystem::path& dir, const random_weights_spec& spec);

}  // namespace conclave::model
