// Opening a checkpoint folder: single file or sharded with an index, validated up front
// so that a bad file fails at load time with a clear message, never mid-generation.
#include "model/checkpoint.h"

#include <set>

#include <mutex>

#include <simdjson.h>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <fstream>
#include <sstream>

#include "model/model_error.h"

namespace conclave::model {
namespace {

/// The JSON object in file `path` (parsed by `parser`, which must outlive the result);
/// model_error naming the file when it cannot be read or is not an object.
simdjson::dom::object read_json_object(const std::filesystem::path& path,
                                       simdjson::dom::parser& parser) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw model_error(fmt::format("{}: cannot open", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  simdjson::dom::object root;
  if (auto err = parser.parse(simdjson::padded_string(ss.str())).get(root); err) {
    throw model_error(
        fmt::format("{}: not a JSON object: {}", path.string(), simdjson::error_message(err)));
  }
  return root;
}

/// shard file name -> tensor names the index assigns to it.
std::map<std::string, std::vector<std::string>> read_index(const std::filesystem::path& path) {
  simdjson::dom::parser parser;
  const simdjson::dom::object root = read_json_object(path, parser);
  simdjson::dom::object map;
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
  } else if (std::filesystem::exists(dir / kRandomWeightsFile)) {
    random_ = read_random_weights(dir);
    spdlog::info(
        "checkpoint {}: {} ({} layers, hidden {}, {} experts{}), weights generated on "
        "the device (seed {}, std {})",
        dir.string(), config_.architecture_name, config_.num_layers, config_.hidden_size,
        config_.num_experts,
        config_.quant.quantized() ? fmt::format(", {}", quant_method_name(config_.quant.method))
                                  : std::string(),
        random_->seed, random_->init_std);
    return;
  } else {
    throw model_error(fmt::format("{}: no model.safetensors, model.safetensors.index.json or {}",
                                  dir.string(), kRandomWeightsFile));
  }

  size_t quantized = 0;
  for (const auto& spec : expected_tensors(config_)) {
    if (spec.linear) {
      stored_weight w = resolve_weight(spec);
      weight_bytes_ += w.nbytes();
      quantized += w.method != quant_method::none ? 1 : 0;
      weights_.emplace(spec.name, w);
      continue;
    }
    const tensor_view& t = plain_tensor(spec);
    weight_bytes_ += t.nbytes;
  }
  if (config_.quant.quantized() && quantized == 0) {
    throw model_error(fmt::format(
        "{}: config.json says quant_method \"{}\" but no linear weight is stored quantized",
        dir.string(), quant_method_name(config_.quant.method)));
  }
  // Info the first time this process opens the folder (start-up validates it, then each
  // replica and restart opens it again: the same line every time would be noise).
  static std::mutex seen_mutex;
  static std::set<std::string> seen;
  bool first = false;
  {
    std::lock_guard lock(seen_mutex);
    first = seen.insert(std::filesystem::absolute(dir).lexically_normal().string()).second;
  }
  spdlog::log(first ? spdlog::level::info : spdlog::level::debug,
              "checkpoint {}: {} ({} layers, hidden {}, {} experts{}), {} tensors in {} file(s), "
              "{:.1f} MiB",
              dir.string(), config_.architecture_name, config_.num_layers, config_.hidden_size,
              config_.num_experts,
              config_.quant.quantized()
                  ? fmt::format(", {} of {} linear weights {}", quantized, weights_.size(),
                                quant_method_name(config_.quant.method))
                  : std::string(),
              index_.size(), files_.size(), static_cast<double>(weight_bytes_) / (1 << 20));
}

const tensor_view& checkpoint::plain_tensor(const tensor_spec& spec) const {
  auto it = index_.find(spec.name);
  if (it == index_.end()) {
    throw model_error(fmt::format("{}: missing tensor {} (shape [{}])", dir_.string(), spec.name,
                                  fmt::join(spec.shape, ", ")));
  }
  const tensor_view& t = *it->second;
  if (t.shape != spec.shape) {
    throw model_error(fmt::format("{}: tensor {} has shape {}, expected [{}]", t.file->string(),
                                  spec.name, t.shape_string(), fmt::join(spec.shape, ", ")));
  }
  if (!is_float_dtype(t.type)) {
    throw model_error(fmt::format(
        "{}: tensor {} is {}, but only linear weights may be quantized (expected BF16, F16 or "
        "F32)",
        t.file->string(), spec.name, dtype_name(t.type)));
  }
  return t;
}

stored_weight checkpoint::resolve_weight(const tensor_spec& spec) const {
  const auto& q = config_.quant;
  stored_weight w;
  w.out = spec.shape[0];
  w.in = spec.shape[1];
  const std::string base =
      spec.name.substr(0, spec.name.size() - std::string_view(".weight").size());
  const auto find = [&](const std::string& name) -> const tensor_view* {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : it->second;
  };
  const auto fail = [&](const tensor_view* t, const std::string& what) {
    return model_error(fmt::format("{}: {}", t ? t->file->string() : dir_.string(), what));
  };
  const auto expect_shape = [&](const tensor_view* t, std::vector<int64_t> shape) {
    if (t->shape != shape) {
      throw fail(
          t, fmt::format("tensor {} has shape {}, expected [{}] for weight {} [{}, {}]", t->name,
                         t->shape_string(), fmt::join(shape, ", "), spec.name, w.out, w.in));
    }
  };
  const tensor_view* plain = find(spec.name);
  if (plain != nullptr && plain->type == dtype::f8_e4m3) {
    if (q.method != quant_method::fp8) {
      throw fail(plain, fmt::format("tensor {} is F8_E4M3 but config.json has no fp8 "
                                    "quantization_config",
                                    spec.name));
    }
    expect_shape(plain, spec.shape);
    const tensor_view* scale = find(base + ".weight_scale_inv");
    if (scale == nullptr) {
      throw fail(plain, fmt::format("fp8 tensor {} has no scale tensor {}.weight_scale_inv",
                                    spec.name, base));
    }
    if (!is_float_dtype(scale->type))
      throw fail(scale, fmt::format("scale tensor {} is {}, expected F32 or BF16", scale->name,
                                    dtype_name(scale->type)));
    expect_shape(scale,
                 {(w.out + q.block_out - 1) / q.block_out, (w.in + q.block_in - 1) / q.block_in});
    w.method = quant_method::fp8;
    w.weight = plain;
    w.scales = scale;
    w.block_out = q.block_out;
    w.block_in = q.block_in;
    return w;
  }
  if (plain != nullptr) {
    w.weight = &plain_tensor(spec);
    return w;
  }
  const tensor_view* qweight = find(base + ".qweight");
  if (qweight == nullptr) {
    throw model_error(fmt::format(
        "{}: missing tensor {} (shape [{}]){}", dir_.string(), spec.name,
        fmt::join(spec.shape, ", "),
        q.method == quant_method::awq ? fmt::format(" or its AWQ {}.qweight", base) : ""));
  }
  if (q.method != quant_method::awq) {
    throw fail(qweight, fmt::format("tensor {}.qweight is AWQ-packed but config.json has no awq "
                                    "quantization_config",
                                    base));
  }
  const int64_t g = q.group_size;
  if (w.out % 8 != 0 || w.in % g != 0) {
    throw fail(qweight, fmt::format("AWQ weight {} [{}, {}]: outputs must be a multiple of 8 and "
                                    "inputs of group_size {}",
                                    spec.name, w.out, w.in, g));
  }
  const tensor_view* zeros = find(base + ".qzeros");
  const tensor_view* scales = find(base + ".scales");
  if (zeros == nullptr || scales == nullptr) {
    throw fail(qweight, fmt::format("AWQ weight {} has no {}", base,
                                    zeros == nullptr ? base + ".qzeros" : base + ".scales"));
  }
  for (const tensor_view* t : {qweight, zeros}) {
    if (t->type != dtype::i32)
      throw fail(t, fmt::format("AWQ tensor {} is {}, expected I32", t->name, dtype_name(t->type)));
  }
  if (!is_float_dtype(scales->type))
    throw fail(scales, fmt::format("AWQ scales {} are {}, expected F16", scales->name,
                                   dtype_name(scales->type)));
  expect_shape(qweight, {w.in, w.out / 8});
  expect_shape(zeros, {w.in / g, w.out / 8});
  expect_shape(scales, {w.in / g, w.out});
  w.method = quant_method::awq;
  w.weight = qweight;
  w.zeros = zeros;
  w.scales = scales;
  w.block_out = 1;
  w.block_in = g;
  return w;
}

namespace {

[[noreturn]] void no_stored_weights(const std::filesystem::path& dir, std::string_view name) {
  throw model_error(fmt::format(
      "{}: the folder stores no weights ({}: they are generated on the GPU at load), so {} "
      "cannot be read; only the cuda backend can load it",
      dir.string(), kRandomWeightsFile, name));
}

}  // namespace

random_weights_spec read_random_weights(const std::filesystem::path& dir) {
  const auto path = dir / kRandomWeightsFile;
  simdjson::dom::parser parser;
  const simdjson::dom::object root = read_json_object(path, parser);
  random_weights_spec spec;
  uint64_t seed = 0;
  double init_std = 0;
  if (root["seed"].get(seed))
    throw model_error(fmt::format("{}: \"seed\" must be a non-negative integer", path.string()));
  if (root["init_std"].get(init_std) || !(init_std > 0) || init_std > 10)
    throw model_error(fmt::format("{}: \"init_std\" must be a number in (0, 10]", path.string()));
  spec.seed = seed;
  spec.init_std = static_cast<float>(init_std);
  // "dtype": what gen-model would store the plain tensors in; absent: bf16, its default.
  if (auto d = root["dtype"]; d.error() != simdjson::NO_SUCH_FIELD) {
    std::string_view name;
    std::optional<dtype> t;
    if (!d.get(name)) t = parse_dtype(name);
    if (!t || !is_float_dtype(*t))
      throw model_error(
          fmt::format("{}: \"dtype\" must be \"BF16\", \"F16\" or \"F32\"", path.string()));
    spec.stored = *t;
  }
  return spec;
}

void write_random_weights(const std::filesystem::path& dir, const random_weights_spec& spec) {
  const auto path = dir / kRandomWeightsFile;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw model_error(fmt::format("{}: cannot write", path.string()));
  out << fmt::format("{{\n  \"seed\": {},\n  \"init_std\": {},\n  \"dtype\": \"{}\"\n}}\n",
                     spec.seed, spec.init_std, dtype_name(spec.stored));
  if (!out) throw model_error(fmt::format("{}: cannot write", path.string()));
}

const stored_weight& checkpoint::weight(std::string_view name) const {
  if (random_) no_stored_weights(dir_, name);
  auto it = weights_.find(std::string(name));
  if (it == weights_.end())
    throw model_error(
        fmt::format("{}: {} is not a linear weight of this model", dir_.string(), name));
  return it->second;
}

size_t checkpoint::logical_numel(std::string_view name) const {
  auto it = weights_.find(std::string(name));
  if (it != weights_.end()) return static_cast<size_t>(it->second.out * it->second.in);
  return tensor(name).numel();
}

size_t checkpoint::stored_bytes(std::string_view name) const {
  auto it = weights_.find(std::string(name));
  if (it != weights_.end()) return it->second.nbytes();
  return tensor(name).nbytes;
}

void checkpoint::read_f32(std::string_view name, float* dst) const {
  auto it = weights_.find(std::string(name));
  if (it != weights_.end()) {
    dequantize(it->second, dst);
    return;
  }
  const tensor_view& t = tensor(name);
  convert_to_f32(t.type, t.data, t.numel(), dst);
}

const tensor_view& checkpoint::tensor(std::string_view name) const {
  if (random_) no_stored_weights(dir_, name);
  auto it = index_.find(std::string(name));
  if (it == index_.end())
    throw model_error(fmt::format("{}: missing tensor {}", dir_.string(), name));
  return *it->second;
}

}  // namespace conclave::model
