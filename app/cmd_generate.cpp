// `conclave generate`: run one prompt of token ids through the engine and print the
// generated ids as a JSON array (the form other checks and issues rely on).
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "app/commands.h"
#include "app/engine_options.h"
#include "engine/llm_engine.h"
#include "gpu/preflight.h"
#include "model/checkpoint.h"

namespace conclave::app {
namespace {

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    while (used < item.size() && std::isspace(static_cast<unsigned char>(item[used]))) ++used;
    if (item.empty() || used != item.size() || v < 0 || v > INT32_MAX) {
      throw std::invalid_argument(
          fmt::format("--prompt-ids: \"{}\" is not a token id (expected e.g. 1,2,3)", item));
    }
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.empty()) throw std::invalid_argument("--prompt-ids: at least one token id is required");
  return ids;
}

struct generate_args {
  std::string model_dir;
  std::string prompt_ids;
  std::string dump_logits;
  std::vector<int32_t> stop_ids;
  config::engine_config engine;
  engine::sampling_params sampling;
  uint64_t seed = 0;
};

int run_generate(generate_args& a, bool seed_given) {
  if (seed_given) a.sampling.seed = a.seed;
  a.sampling.stop_token_ids = a.stop_ids;
  std::vector<int32_t> prompt = parse_ids(a.prompt_ids);

  const model::checkpoint ckpt(a.model_dir);
  gpu::preflight(ckpt.config(), a.engine);  // a model that cannot fit is refused before loading
  engine::llm_engine eng(gpu::make_backend(ckpt, a.engine.backend), a.engine);
  std::vector<float> first_logits;
  if (!a.dump_logits.empty()) {
    eng.on_logits = [&first_logits](int64_t, std::span<const float> logits) {
      if (first_logits.empty()) first_logits.assign(logits.begin(), logits.end());
    };
  }
  const std::vector<int32_t> out = eng.generate(std::move(prompt), a.sampling);
  if (!a.dump_logits.empty()) {
    std::ofstream f(a.dump_logits, std::ios::trunc);
    f << '[';
    for (size_t i = 0; i < first_logits.size(); ++i)
      f << (i ? "," : "") << fmt::format("{:.9g}", first_logits[i]);
    f << "]\n";
    if (!f) throw std::runtime_error(fmt::format("cannot write {}", a.dump_logits));
  }
  std::printf("[%s]\n", fmt::format("{}", fmt::join(out, ",")).c_str());
  return exit_ok;
}

}  // namespace

command add_generate(CLI::App& app) {
  auto args = std::make_shared<generate_args>();
  args->sampling.temperature = 0.0f;
  auto* cmd = app.add_subcommand("generate", "generate token ids from a prompt of token ids");
  cmd->add_option("--model", args->model_dir, "Hugging Face model folder")->required();
  cmd->add_option("--prompt-ids", args->prompt_ids, "comma-separated prompt token ids, e.g. 1,2,3")
      ->required();
  cmd->add_option("--max-tokens", args->sampling.max_tokens, "tokens to generate")
      ->capture_default_str();
  cmd->add_option("--temperature", args->sampling.temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", args->sampling.top_k, "keep the k most likely tokens (0 = off)");
  cmd->add_option("--top-p", args->sampling.top_p, "nucleus sampling mass (1 = off)");
  cmd->add_option("--min-p", args->sampling.min_p, "drop tokens below min_p x the top probability");
  cmd->add_option("--repetition-penalty", args->sampling.repetition_penalty,
                  "HF repetition penalty (1 = off)");
  cmd->add_option("--presence-penalty", args->sampling.presence_penalty, "OpenAI presence penalty");
  cmd->add_option("--frequency-penalty", args->sampling.frequency_penalty,
                  "OpenAI frequency penalty");
  auto* seed = cmd->add_option("--seed", args->seed, "random seed (same seed, same tokens)");
  cmd->add_option("--stop-token-ids", args->stop_ids, "token ids that end generation")
      ->delimiter(',');
  cmd->add_flag("--ignore-eos", args->sampling.ignore_eos,
                "do not stop at the model's end-of-sequence ids");
  cmd->add_option("--dump-logits", args->dump_logits,
                  "write the last prompt position's logits as a JSON array");
  add_engine_options(*cmd, args->engine);
  return {cmd, [args, seed] { return run_generate(*args, seed->count() > 0); }};
}

}  // namespace conclave::app
