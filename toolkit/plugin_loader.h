// Loads tool plugins (toolkit/plugin.h) into a running server.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "toolkit/tool.h"

namespace conclave::toolkit {

/// The tools of the plugin at `path`, made for `config_json`. The shared object stays
/// loaded for the rest of the process (its tools' code lives in it). Throws
/// std::runtime_error naming the path: not found or not loadable, not a conclave tool
/// plugin, built for another plugin ABI, or its entry point failed or made no tools.
std::vector<std::shared_ptr<tool>> load_tool_plugin(const std::string& path,
                                                    const std::string& config_json);

}  // namespace conclave::toolkit
