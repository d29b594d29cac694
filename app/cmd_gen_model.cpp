// `conclave gen-model`: write a deterministic random-weight checkpoint in HF layout.
#include <spdlog/fmt/fmt.h>
#include <cstdio>

#include "app/commands.h"
#include "model/gen_model.h"
#include "model/model_error.h"

namespace conclave::app {

command add_gen_model(CLI::App& app) {
  struct args_t {
    model::gen_model_options opts;
    std::string out, dtype = "bf16", quant = "none";
    int64_t awq_group = 128, fp8_block = 128;
    int64_t layers = 0;
    double shard_mib = 2048;
  };
  auto args = std::make_shared<args_t>();
  auto* cmd =
      app.add_subcommand("gen-model", "write a random-weight checkpoint (HF layout) from a preset");
  std::vector<std::string> names;
  for (const auto& p : model::model_presets()) names.push_back(p.name);
  cmd->add_option("--preset", args->opts.preset,
                  "preset: " + fmt::format("{}", fmt::join(names, ", ")))
      ->required();
  cmd->add_option("--out", args->out, "output folder")->required();
  cmd->add_option("--seed", args->opts.seed, "random seed")->capture_default_str();
  cmd->add_option("--dtype", args->dtype, "storage dtype: bf16, f16 or f32")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}))
      ->capture_default_str();
  cmd->add_option("--quant", args->quant,
                  "store the attention, expert and MLP projections quantized: none, fp8 (e4m3 "
                  "with block scales, as Qwen's -FP8 checkpoints) or awq (4-bit GEMM packing)")
      ->check(CLI::IsMember({"none", "fp8", "awq"}))
      ->capture_default_str();
  cmd->add_option("--fp8-block", args->fp8_block, "fp8: the scale block's side")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--awq-group", args->awq_group,
                  "awq: input channels per scale and zero (must divide every projection's inputs)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--layers", args->layers,
                  "keep only the first N layers (real shapes on a small disk)");
  cmd->add_flag("--weights-on-device", args->opts.weights_on_device,
                "write no weights: config.json and random_weights.json only; the cuda backend "
                "generates the weights on the GPU at load (each rank only its experts), for "
                "shapes too large to write (the whole qwen3-coder-480b)");
  cmd->add_option("--shard-mib", args->shard_mib, "largest shard in MiB (fractions allowed)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  return {cmd, [args] {
            auto& o = args->opts;
            o.type = args->dtype == "f32"   ? model::dtype::f32
                     : args->dtype == "f16" ? model::dtype::f16
                                            : model::dtype::bf16;
            if (args->layers > 0) o.num_layers = args->layers;
            o.quant.method = args->quant == "fp8"   ? model::quant_method::fp8
                             : args->quant == "awq" ? model::quant_method::awq
                                                    : model::quant_method::none;
            o.quant.block_out = o.quant.block_in = args->fp8_block;
            o.quant.group_size = args->awq_group;
            o.max_shard_bytes = static_cast<size_t>(args->shard_mib * (1 << 20));
            const size_t bytes = model::write_random_checkpoint(o, args->out);
            if (o.weights_on_device) {
              std::fprintf(stderr,
                           "wrote %s: preset %s%s%s, seed %llu; weights generated on the GPU at "
                           "load (--backend cuda)\n",
                           args->out.c_str(), o.preset.c_str(), o.quant.quantized() ? ", " : "",
                           o.quant.quantized() ? args->quant.c_str() : "",
                           static_cast<unsigned long long>(o.seed));
              return exit_ok;
            }
            std::fprintf(stderr, "wrote %s: preset %s%s%s, seed %llu, %.1f MiB of weights\n",
                         args->out.c_str(), o.preset.c_str(), o.quant.quantized() ? ", " : "",
                         o.quant.quantized() ? args->quant.c_str() : "",
                         static_cast<unsigned long long>(o.seed),
                         static_cast<double>(bytes) / (1 << 20));
            return exit_ok;
          }};
}

}  // namespace conclave::app
