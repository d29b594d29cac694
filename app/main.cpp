// conclave: entry point. Sets up logging (stderr, so stdout stays machine-readable),
// dispatches to a subcommand and turns errors into one line and an exit code.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <stdexcept>

#include "app/commands.h"
#include "model/model_error.h"

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("conclave");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_level(spdlog::level::warn);

  CLI::App app{"conclave: an actor-model inference server for Qwen3-MoE models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "conclave 0.1.0");
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));

  std::vector<conclave::app::command> commands;
  commands.push_back(conclave::app::add_generate(app));
  commands.push_back(conclave::app::add_serve(app));
  commands.push_back(conclave::app::add_node(app));
  commands.push_back(conclave::app::add_gen_model(app));
  commands.push_back(conclave::app::add_tokenize(app));
  commands.push_back(conclave::app::add_parse_tools(app));
  commands.push_back(conclave::app::add_chat(app));
  commands.push_back(conclave::app::add_chat_template(app));
  commands.push_back(conclave::app::add_plan(app));
  for (auto& c : conclave::app::add_bench(app)) commands.push_back(std::move(c));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "conclave: error: %s (see --help)\n", e.what());
    return conclave::app::exit_bad_input;
  }
  // The server logs its requests (and a node its joins) at info by default; other commands
  // stay quiet.
  if (app.count("--log-level") == 0 && (app.got_subcommand("serve") || app.got_subcommand("node")))
    log_level = "info";
  spdlog::set_level(spdlog::level::from_str(log_level));

  try {
    for (const auto& c : commands) {
      if (c.sub->parsed()) return c.run();
    }
    return conclave::app::exit_failure;
  } catch (const conclave::model::model_error& e) {
    std::fprintf(stderr, "conclave: error: %s\n", e.what());
    return conclave::app::exit_bad_input;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "conclave: error: %s\n", e.what());
    return conclave::app::exit_bad_input;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "conclave: error: %s\n", e.what());
    return conclave::app::exit_failure;
  }
}
