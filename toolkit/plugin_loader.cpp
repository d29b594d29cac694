// Tool plugins (see the header).
#include "toolkit/plugin_loader.h"

#include <dlfcn.h>

#include <stdexcept>

#include "toolkit/plugin.h"

namespace conclave::toolkit {

std::vector<std::shared_ptr<tool>> load_tool_plugin(const std::string& path,
                                                    const std::string& config_json) {
  const auto fail = [&](const std::string& why) {
    return std::runtime_error("tool plugin " + path + ": " + why);
  };
  // RTLD_LOCAL: plugins do not see each other's symbols; never closed (tools live on).
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    throw fail(err != nullptr ? err : "cannot be loaded");
  }
  auto* abi = reinterpret_cast<int (*)()>(dlsym(handle, "conclave_tool_plugin_abi"));
  auto* create =
      reinterpret_cast<int (*)(const std::string*, std::vector<std::shared_ptr<tool>>*,
                               std::string*)>(dlsym(handle, "conclave_tool_plugin_create"));
  if (abi == nullptr || create == nullptr) {
    dlclose(handle);
    throw fail("not a conclave tool plugin (no CONCLAVE_TOOL_PLUGIN entry point)");
  }
  if (const int v = abi(); v != CONCLAVE_TOOL_PLUGIN_ABI) {
    dlclose(handle);
    throw fail("built for tool plugin ABI " + std::to_string(v) + ", this server has " +
               std::to_string(CONCLAVE_TOOL_PLUGIN_ABI) + "; rebuild it against this conclave");
  }
  std::vector<std::shared_ptr<tool>> tools;
  std::string err;
  if (create(&config_json, &tools, &err) != 0) throw fail("its entry point failed: " + err);
  if (tools.empty()) throw fail("it made no tools");
  for (const auto& t : tools) {
    if (!t) throw fail("it made a null tool");
  }
  return tools;
}

}  // namespace conclave::toolkit
