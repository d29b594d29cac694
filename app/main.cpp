// conclave: entry point. Sets up logging (stderr, so stdout stays machine-readable),
// dispatches to a subcommand and turns errors into one line and an exit code.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "app/commands.h"
#include "model/model_error.h"
#include "net/json_log.h"

namespace conclave::app {
std::optional<std::string> log_format_flag;
}  // namespace conclave::app

namespace {

bool json_logs = false;

/// The one line a failed command ends with: JSON when the logs are.
void report_error(const char* what) {
  const std::string msg = std::string("conclave: error: ") + what;
  if (json_logs) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    std::fprintf(stderr, "%s\n", conclave::net::json_log_line("error", msg, ns).c_str());
  } else {
    std::fprintf(stderr, "%s\n", msg.c_str());
  }
}

}  // namespace

void conclave::app::use_log_format(const std::string& format) {
  conclave::net::set_log_format(format);
  json_logs = format == "json";
}

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
  std::string log_format;
  app.add_option("--log-format", log_format,
                 "json (one object per line; the default of serve and node) or text")
      ->check(CLI::IsMember({"json", "text"}));

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
  commands.push_back(conclave::app::add_top(app));
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
  // Servers log JSON lines by default (log pipelines parse them); the other commands are
  // run by people, so text. `serve` may take the format from its config instead.
  const bool server = app.got_subcommand("serve") || app.got_subcommand("node");
  if (app.count("--log-format") > 0) conclave::app::log_format_flag = log_format;
  conclave::app::use_log_format(conclave::app::log_format_flag.value_or(server ? "json" : "text"));

  try {
    for (const auto& c : commands) {
      if (c.sub->parsed()) return c.run();
    }
    return conclave::app::exit_failure;
  } catch (const conclave::model::model_error& e) {
    report_error(e.what());
    return conclave::app::exit_bad_input;
  } catch (const std::invalid_argument& e) {
    report_error(e.what());
    return conclave::app::exit_bad_input;
  } catch (const std::exception& e) {
    report_error(e.what());
    return conclave::app::exit_failure;
  }
}
