// The `conclave` subcommands: each registers its options on the CLI11 app and runs
// when selected. Errors in user input surface as model_error / std::invalid_argument
// (exit code 2); main() prints them as one line.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace conclave::app {

/// A subcommand and its body, run after parsing when `sub` was given; returns the exit code.
struct command {
  CLI::App* sub = nullptr;
  std::function<int()> run;
};

command add_generate(CLI::App& app);
command add_gen_model(CLI::App& app);
/// `serve`: the HTTP/SSE + WebSocket server.
command add_serve(CLI::App& app);
/// `node`: a host that joins a coordinator's cluster (docs/cluster.md).
command add_node(CLI::App& app);
/// `tokenize` (text -> ids, `--decode` ids -> text).
command add_tokenize(CLI::App& app);
/// `parse-tools` (raw model output -> content + OpenAI tool calls).
command add_parse_tools(CLI::App& app);
/// `chat-template`: the prompt a model's chat template makes of a conversation.
command add_chat_template(CLI::App& app);
/// `chat`: interactive streaming chat with a running server over its WebSocket API.
command add_chat(CLI::App& app);
/// `top`: a running server's dashboard feed in the terminal.
command add_top(CLI::App& app);
/// `plan`: the per-GPU memory plan of a model, without loading it (gpu/memory_plan.h).
command add_plan(CLI::App& app);
/// `bench engine` (and later bench kinds): one command per leaf subcommand.
std::vector<command> add_bench(CLI::App& app);

/// The demo model's folder (app/demo_model.cpp): a copy of assets/demo-model and Qwen3's
/// tokenizer, made on first use; what `serve`, `node` and `bench ep` use without --model.
std::filesystem::path ensure_demo_model();

/// --log-format when given (else each command's default; `serve` then reads its config's).
extern std::optional<std::string> log_format_flag;
/// Sets the log format ("json" or "text") of every logger and of the final error line.
void use_log_format(const std::string& format);

/// Exit codes.
constexpr int exit_ok = 0;
constexpr int exit_failure = 1;
constexpr int exit_bad_input = 2;
/// `plan`: the model does not fit the GPUs given (the verdict is on stderr).
constexpr int exit_does_not_fit = 3;

}  // namespace conclave::app
