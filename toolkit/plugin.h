// Tool plugins: server-side tools built apart from conclave, as shared objects that
// `conclave serve` loads at start ([[tools.plugins]] in the config; docs/tools.md). A
// plugin implements toolkit::tool (toolkit/tool.h) and exports its tools with
// CONCLAVE_TOOL_PLUGIN:
//
//   std::vector<std::shared_ptr<conclave::toolkit::tool>> make_tools(const std::string& config) {
//     return {std::make_shared<my_tool>(config)};
//   }
//   CONCLAVE_TOOL_PLUGIN(make_tools)
//
// `config` is the [[tools.plugins]] entry's `config` table as JSON text ("{}" when absent).
// Build it against the installed package (`find_package(conclave)`, target
// conclave::tool_plugin); examples/custom_tool is one. The plugin and the server must be
// built with the same compiler family and C++ library (the tools cross as C++ objects);
// the ABI number below is checked when the plugin is loaded. Header-only: a plugin calls
// nothing in conclave.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "toolkit/tool.h"

/// Bumped whenever toolkit::tool, its argument and result types, or this entry point change.
#define CONCLAVE_TOOL_PLUGIN_ABI 1

/// Exports `make_tools` (std::vector<std::shared_ptr<conclave::toolkit::tool>>(const
/// std::string& config_json)) as the plugin's entry points: its ABI number, and a function
/// that makes the tools (0) or writes the error an exception said into `error` (1).
#define CONCLAVE_TOOL_PLUGIN(make_tools)                                                          \
  extern "C" int conclave_tool_plugin_abi() {                                                     \
    return CONCLAVE_TOOL_PLUGIN_ABI;                                                              \
  }                                                                                               \
  extern "C" int conclave_tool_plugin_create(                                                     \
      const std::string* config_json, std::vector<std::shared_ptr<conclave::toolkit::tool>>* out, \
      std::string* error) {                                                                       \
    try {                                                                                         \
      *out = make_tools(*config_json);                                                            \
      return 0;                                                                                   \
    } catch (const std::exception& e) {                                                           \
      *error = e.what();                                                                          \
    } catch (...) {                                                                               \
      *error = "an unknown exception";                                                            \
    }                                                                                             \
    return 1;                                                                                     \
  }
