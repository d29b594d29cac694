// A custom server-side tool in C++: a typed actor that answers run_tool_atom, registered
// in a tool registry and called the way a request session calls it (schema check, one
// tool_invocation actor per call, retries). Exits 0 when both calls come back right.
#include <boost/json.hpp>
#include <caf/all.hpp>
#include <cstdio>
#include <sstream>

#include "actors/tool_invocation.h"

using namespace conclave;

// The tool: counts the words of `text`, refusing texts of more than `max_words`. (An
// actor spawned with no argument at all trips UBSan inside CAF 0.17's empty-tuple path.)
actors::tool_actor::behavior_type word_count(actors::tool_actor::pointer, size_t max_words) {
  return {[max_words](actors::run_tool_atom,
                      const std::string& args) -> caf::result<bool, std::string> {
    const auto v = boost::json::parse(args);
    std::istringstream in{std::string(v.at("text").as_string())};
    size_t n = 0;
    for (std::string w; in >> w;) ++n;
    if (n > max_words) return {false, "more than " + std::to_string(max_words) + " words"};
    return {true, std::to_string(n)};
  }};
}

int main() {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto rt = std::make_shared<serve::tool_runtime>();
  actors::register_actor_tool(*rt->tools, sys,
                              {"word_count", "Count the words of a text",
                               R"({"type":"object","required":["text"],
                                   "properties":{"text":{"type":"string"}}})"},
                              sys.spawn(word_count, size_t{10000}));

  caf::scoped_actor self{sys};
  auto call = [&](const std::string& args) {
    actors::spawn_tool_invocation(self.ptr(), rt, {"call_1", "word_count", args},
                                  std::make_shared<toolkit::cancel_flag>(), nullptr);
    std::string out;
    self->receive(
        [&](actors::tool_result_atom, const serve::tool_call_result& r) { out = r.content; });
    self->receive([](caf::down_msg&) {});
    std::printf("word_count %s -> %s\n", args.c_str(), out.c_str());
    return out;
  };
  const bool ok = call(R"({"text":"the quick brown fox"})") == "4" &&
                  call(R"({"text":7})").rfind("error: invalid arguments", 0) == 0;
  self->send_exit(self, caf::exit_reason::normal);
  return ok ? 0 : 1;
}
