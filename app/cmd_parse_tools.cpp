// PLACEHOLDER owned by the text-layer work: replaced with the real command.
#include "app/commands.h"
namespace conclave::app {
command add_parse_tools(CLI::App& app) {
  auto* cmd = app.add_subcommand("parse-tools", "(not built yet)");
  return {cmd, [] { return exit_failure; }};
}
}  // namespace conclave::app
