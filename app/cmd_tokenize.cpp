// PLACEHOLDER owned by the text-layer work: replaced with the real command.
#include "app/commands.h"
namespace conclave::app {
command add_tokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "(not built yet)");
  return {cmd, [] { return exit_failure; }};
}
}  // namespace conclave::app
