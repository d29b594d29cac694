// checkpoint: a Hugging Face model folder opened for reading. Maps every safetensors
// shard, checks that every tensor the config implies is present with the right shape
// and a loadable dtype, and hands out zero-copy views.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/model_config.h"
#include "model/safetensors.h"

namespace conclave::model {

class checkpoint {
 public:
  /// Opens and validates DIR. Throws model_error (one line naming the file, tensor or
  /// key) for anything missing, truncated, mis-shaped or of an unsupported dtype.
  explicit checkpoint(const std::filesystem::path& dir);

  const model_config& config() const { return config_; }
  const std::filesystem::path& dir() const { return dir_; }

  /// The named tensor; throws model_error if absent.
  const tensor_view& tensor(std::string_view name) const;
  bool has(std::string_view name) const { return index_.count(std::string(name)) != 0; }
  /// Bytes of all tensors the model uses.
  size_t weight_bytes() const { return weight_bytes_; }

 private:
  std::filesystem::path dir_;
  model_config config_;
  std::vector<std::unique_ptr<safetensors_file>> files_;
  std::unordered_map<std::string, const tensor_view*> index_;
  size_t weight_bytes_ = 0;
};

}  // namespace conclave::model
