// `conclave plan`: the memory plan of a model on N GPUs (gpu/memory_plan.h), printed
// without loading anything: from a preset or a model folder's config.json (and, when the
// folder holds weights, the dtypes they are stored in). Exit 0 when the model fits,
// exit_does_not_fit (3) with the one-line verdict on stderr when it does not.
#include <spdlog/fmt/fmt.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include "app/commands.h"
#include "gpu/memory_plan.h"
#include "model/checkpoint.h"
#include "model/gen_model.h"

namespace conclave::app {
namespace {

bool has_weights(const std::filesystem::path& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().extension() == ".safetensors") return true;
  return false;
}

}  // namespace

command add_plan(CLI::App& app) {
  struct args_t {
    std::string model_dir, preset, quant, weight_dtype = "bf16", kv_cache_dtype = "auto";
    int gpus = 1;
    int64_t max_model_len = 0;
    double gpu_memory_gib = 141.0;
    double utilization = 0.90;
    int32_t block_size = 16, num_kv_blocks = 0, max_num_seqs = 64, max_batched_tokens = 2048;
    size_t kv_cache_mib = 0;
    bool cuda_graphs = true;
  };
  auto a = std::make_shared<args_t>();
  auto* cmd = app.add_subcommand(
      "plan",
      "print the per-GPU memory plan of a model (weights by dtype, KV cache, workspaces) "
      "without loading it; exit 3 when it does not fit");
  std::vector<std::string> names;
  for (const auto& p : model::model_presets()) names.push_back(p.name);
  auto* model_opt = cmd->add_option(
      "--model", a->model_dir,
      "model folder: its config.json (and, when it holds weights, their stored dtypes)");
  auto* preset_opt = cmd->add_option(
      "--preset", a->preset, "a gen-model preset: " + fmt::format("{}", fmt::join(names, ", ")));
  model_opt->excludes(preset_opt);
  cmd->add_option("--quant", a->quant,
                  "none, fp8 or awq: how the attention, expert and MLP projections are stored "
                  "(a preset: default none; --model: a what-if overriding the checkpoint's "
                  "quantization_config)")
      ->check(CLI::IsMember({"none", "fp8", "awq"}));
  cmd->add_option("--gpus", a->gpus,
                  "GPUs of the replica (expert parallel: the routed experts divided over them)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->add_option("--max-model-len", a->max_model_len,
                  "context length one sequence must fit (0 = the model's max_position_embeddings)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--gpu-memory-gib", a->gpu_memory_gib, "memory of one GPU in GiB (H200: 141)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--gpu-memory-utilization", a->utilization,
                  "share of each GPU for weights + KV cache (the engine's default)")
      ->check(CLI::Range(0.01, 1.0))
      ->capture_default_str();
  cmd->add_option("--weight-dtype", a->weight_dtype,
                  "bf16, or f32: plain matrices and the KV cache (as the cuda backend's)")
      ->check(CLI::IsMember({"bf16", "f32"}))
      ->capture_default_str();
  cmd->add_option("--kv-cache-dtype", a->kv_cache_dtype,
                  "auto (the weight dtype) or fp8 (e4m3 with a scale per token and KV head)")
      ->check(CLI::IsMember({"auto", "fp8"}))
      ->capture_default_str();
  cmd->add_option("--block-size", a->block_size, "tokens per KV-cache block")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--num-kv-blocks", a->num_kv_blocks, "a fixed KV cache of this many blocks")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--kv-cache-mib", a->kv_cache_mib, "a fixed KV cache of this many MiB")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-num-seqs", a->max_num_seqs, "sequences running at once")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-batched-tokens", a->max_batched_tokens,
                  "tokens per engine step (sizes the step workspaces)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("--cuda-graphs", a->cuda_graphs,
                "count the decode CUDA graphs (on by default; one-GPU replicas only)");
  return {cmd, [a] {
            if (a->model_dir.empty() && a->preset.empty())
              throw std::invalid_argument("plan: give --model DIR or --preset NAME");
            gpu::plan_inputs in;
            std::shared_ptr<model::checkpoint> ckpt;
            if (!a->preset.empty()) {
              const auto& p = model::find_preset(a->preset);
              in.model = p.config;
              in.model_name = p.name;
              in.model.quant = gpu::default_quant(a->quant.empty() ? "none" : a->quant);
            } else {
              const std::filesystem::path dir(a->model_dir);
              in.model = model::load_model_config(dir);
              in.model_name = dir.filename().empty() ? dir.parent_path().filename().string()
                                                     : dir.filename().string();
              if (!a->quant.empty()) {
                in.model.quant = gpu::default_quant(a->quant);  // what-if: every projection
              } else if (has_weights(dir)) {
                ckpt = std::make_shared<model::checkpoint>(dir);  // maps and checks, reads none
                in.stored_quantized = [ckpt](std::string_view name) {
                  return ckpt->weight(name).method != model::quant_method::none;
                };
              }
            }
            if (in.model.quant.quantized() && a->weight_dtype == "f32")
              throw std::invalid_argument("plan: a quantized model runs with --weight-dtype bf16");
            in.ranks = a->gpus;
            in.device_bytes =
                static_cast<size_t>(a->gpu_memory_gib * static_cast<double>(gpu::kGiB));
            in.gpu_memory_utilization = a->utilization;
            in.weight_elem_bytes = a->weight_dtype == "f32" ? 4 : 2;
            in.kv_fp8 = a->kv_cache_dtype == "fp8";
            in.block_size = a->block_size;
            in.num_kv_blocks = a->num_kv_blocks;
            in.kv_cache_bytes = a->kv_cache_mib * gpu::kMiB;
            in.max_model_len = a->max_model_len;
            in.max_num_seqs = a->max_num_seqs;
            in.max_num_batched_tokens = a->max_batched_tokens;
            in.cuda_graphs = a->cuda_graphs;
            const gpu::memory_plan plan = gpu::plan_memory(in);
            std::fputs(plan.table().c_str(), stdout);
            std::fflush(stdout);
            if (plan.fits) return exit_ok;
            std::fprintf(stderr, "conclave: %s\n", plan.verdict().c_str());
            return exit_does_not_fit;
          }};
}

}  // namespace conclave::app
