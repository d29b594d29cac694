// Test plugins for toolkit::load_tool_plugin (plugin_test.cpp), one source built three
// ways: a working plugin with an `echo` tool (its config's "prefix" is prepended), one
// whose make_tools throws (PLUGIN_THROWS), and one built for another ABI (PLUGIN_ABI).
#include <boost/json.hpp>

#include "toolkit/plugin.h"

namespace {

using namespace conclave;

class echo final : public toolkit::tool {
 public:
  explicit echo(std::string prefix) : prefix_(std::move(prefix)) {
    def_.name = "echo";
    def_.parameters = R"({"type":"object","properties":{"text":{"type":"string"}}})";
  }
  const model::tool_spec& definition() const override { return def_; }
  toolkit::tool_result run(const boost::json::object& args, const toolkit::run_context&) override {
    return {toolkit::outcome::ok, prefix_ + std::string(args.at("text").as_string())};
  }

 private:
  model::tool_spec def_;
  std::string prefix_;
};

std::vector<std::shared_ptr<toolkit::tool>> make_tools(const std::string& config_json) {
#ifdef PLUGIN_THROWS
  throw std::runtime_error("no licence for " + config_json);
#endif
  const auto config = boost::json::parse(config_json).as_object();
  std::string prefix;
  if (const auto* p = config.if_contains("prefix")) prefix = std::string(p->as_string());
  return {std::make_shared<echo>(prefix)};
}

}  // namespace

#ifdef PLUGIN_ABI
#undef CONCLAVE_TOOL_PLUGIN_ABI
#define CONCLAVE_TOOL_PLUGIN_ABI PLUGIN_ABI
#endif
CONCLAVE_TOOL_PLUGIN(make_tools)
