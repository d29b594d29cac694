// Opening a checkpoint folder: single file or sharded with an index, validated up front
// so that a bad file fails at load time with a clear message, never mid-generation.
#include "model/checkpoint.h"

#include <simdjson.h>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <fstream>
#include <sstream>

#include "model/model_error.h"

namespace conclave::model {
namespace {

/// shard file name -> tensor names the index assigns to it.
std::map<std::string, std::vector<std::string>> read_index(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw model_error(fmt::format("{}: cannot open", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  simdjson::dom::parser parser;
  simdjson::padded_string text(ss.str());
  simdjson::dom::object root, map;
  if (auto err = parser.parse(text).get(root); err) {
    throw model_error(
        fmt::format("{}: not a JSON object: {}", path.string(), simdjson::error_message(err)));
  }
  if (root["weight_map"].get(map)) {
    throw model_error(fmt::format("{}: missing required key \"weight_map\"", path.string()));
  }
  std::map<std::string, std::vector<std::string>> shards;
  for (auto [name, file] : map) {
    std::string_view f;
    if (file.get(f) || f.find('/') != std::string_view::npos || f.empty()) {
      throw model_error(fmt::format("{}: weight_map entry \"{}\" must name a file in the folder",
                                    path.string(), name));
    }
    shards[std::string(f)].emplace_back(name);
  }
  return shards;
}

}  // namespace

checkpoint::checkpoint(const std::filesystem::path& dir)
    : dir_(dir), config_(load_model_config(dir)) {
  const auto index_path = dir / "model.safetensors.index.json";
  const auto single_path = dir / "model.safetensors";
  if (std::filesystem::exists(index_path)) {
    for (const auto& [file, names] : read_index(index_path)) {
      const auto shard_path = dir / file;
      if (!std::filesystem::exists(shard_path)) {
        throw model_error(
            fmt::format("{}: shard {} named by the index is missing", shard_path.string(), file));
      }
      files_.push_back(std::make_unique<safetensors_file>(shard_path));
      for (const auto& name : names) {
        const tensor_view* t = files_.back()->find(name);
        if (t == nullptr) {
          throw model_error(fmt::format("{}: tensor {} is listed in the index but not in this file",
                                        shard_path.string(), name));
        }
        index_.emplace(name, t);
      }
    }
  } else if (std::filesystem::exists(single_path)) {
    files_.push_back(std::make_unique<safetensors_file>(single_path));
    for (const auto& [name, t] : files_.back()->tensors()) index_.emplace(name, &t);
  } else {
    throw model_error(
        fmt::format("{}: no model.safetensors or model.safetensors.index.json", dir.string()));
  }

  for (const auto& spec : expected_tensors(config_)) {
    auto it = index_.find(spec.name);
    if (it == index_.end()) {
      throw model_error(fmt::format("{}: missing tensor {} (shape [{}])", dir.string(), spec.name,
                                    fmt::join(spec.shape, ", ")));
    }
    const tensor_view& t = *it->second;
    if (t.shape != spec.shape) {
      throw model_error(fmt::format("{}: tensor {} has shape {}, expected [{}]", t.file->string(),
                                    spec.name, t.shape_string(), fmt::join(spec.shape, ", ")));
    }
    weight_bytes_ += t.nbytes;
  }
  spdlog::info(
      "checkpoint {}: {} ({} layers, hidden {}, {} experts), {} tensors in {} file(s), {:.1f} MiB",
      dir.string(), config_.architecture_name, config_.num_layers, config_.hidden_size,
      config_.num_experts, index_.size(), files_.size(),
      static_cast<double>(weight_bytes_) / (1 << 20));
}

const tensor_view& checkpoint::tensor(std::string_view name) const {
  auto it = index_.find(std::string(name));
  if (it == index_.end())
    throw model_error(fmt::format("{}: missing tensor {}", dir_.string(), name));
  return *it->second;
}

}  // namespace conclave::model
