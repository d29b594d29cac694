// Tool plugins (toolkit/plugin_loader.h): a plugin's tools run in the process; a missing
// file, a shared object that is no plugin, another ABI and a failing entry point are
// errors naming the path.
#include <catch2/catch.hpp>

#include "toolkit/plugin_loader.h"

using namespace conclave;

namespace {

std::string load_error(const std::string& path, const std::string& config = "{}") {
  try {
    toolkit::load_tool_plugin(path, config);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(loaded)";
}

}  // namespace

TEST_CASE("tool plugins: the plugin's tools run, made for its config", "[plugin]") {
  const auto tools = toolkit::load_tool_plugin(ECHO_PLUGIN, R"({"prefix":"> "})");
  REQUIRE(tools.size() == 1);
  CHECK(tools[0]->definition().name == "echo");
  toolkit::run_context ctx;
  ctx.deadline = toolkit::clock_type::now() + std::chrono::seconds(5);
  const auto r = tools[0]->run(boost::json::object{{"text", "hi"}}, ctx);
  CHECK(r.status == toolkit::outcome::ok);
  CHECK(r.content == "> hi");
}

TEST_CASE("tool plugins: bad plugins are errors naming the path and the cause", "[plugin]") {
  auto e = load_error("/nonexistent/libnothing.so");
  CHECK(e.find("tool plugin /nonexistent/libnothing.so:") == 0);
  e = load_error(NOT_A_PLUGIN);
  CHECK(e.find("not a conclave tool plugin") != std::string::npos);
  e = load_error(OTHER_ABI_PLUGIN);
  CHECK(e.find("built for tool plugin ABI 999") != std::string::npos);
  CHECK(e.find("rebuild it") != std::string::npos);
  e = load_error(THROWING_PLUGIN, R"({"a":1})");
  CHECK(e.find("its entry point failed: no licence for {\"a\":1}") != std::string::npos);
}
