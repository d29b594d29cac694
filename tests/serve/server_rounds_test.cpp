// server_rounds on its own: which calls reach the client, how a round becomes
// conversation messages, and each round's tool_choice.
#include <catch2/catch.hpp>

#include "model/chat/chat_template.h"
#include "serve/server_rounds.h"

using namespace conclave;
using namespace conclave::serve;
using kind = serve::client_event::kind;

namespace {

serve::client_event ev(kind k, size_t index = 0, std::string text = {}, std::string id = {},
                       std::string name = {}) {
  serve::client_event e;
  e.type = k;
  e.index = index;
  e.text = std::move(text);
  e.call_id = std::move(id);
  e.name = std::move(name);
  return e;
}

}  // namespace

TEST_CASE("server calls leave the OpenAI stream and come back whole, results extend the chat",
          "[tools]") {
  serve::server_rounds r({"math"}, 2, {"none"});
  auto c = ev(kind::content, 0, "Let me compute.");
  CHECK(r.route(c));
  auto start = ev(kind::tool_call_start, 0, "", "call_a", "math");
  CHECK_FALSE(r.route(start));
  auto args = ev(kind::tool_call_arguments, 0, R"({"expression": "1+1"})");
  CHECK_FALSE(r.route(args));
  auto end = ev(kind::tool_call_end, 0);
  REQUIRE(r.route(end));
  CHECK(end.type == kind::server_tool_call);
  CHECK(end.call_id == "call_a");
  CHECK(end.text == R"({"expression": "1+1"})");
  CHECK(r.run_tools());
  CHECK_FALSE(r.client_calls());
  const auto calls = r.calls();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].name == "math");
  CHECK(r.add_result({"call_a", "math", "2", toolkit::outcome::ok, 1, 0, 0.0}));

  std::vector<chat::message> msgs;
  serve::tool_choice_mode mode = serve::tool_choice_mode::function;
  std::string name = "math";
  r.next_round(msgs, mode, name);
  REQUIRE(msgs.size() == 2);
  CHECK(msgs[0].r == chat::role::assistant);
  CHECK(msgs[0].content() == "Let me compute.");
  REQUIRE(msgs[0].tool_calls.size() == 1);
  CHECK(msgs[0].tool_calls[0].arguments == R"({"expression": "1+1"})");
  CHECK(msgs[1].r == chat::role::tool);
  CHECK(msgs[1].tool_call_id == "call_a");
  CHECK(msgs[1].content() == "2");
  CHECK(mode == serve::tool_choice_mode::none);  // server_tool_choices[0]
  CHECK(r.round() == 1);
  CHECK(chat::render(msgs, {}).find("<tool_response>\n2\n</tool_response>") != std::string::npos);
}

TEST_CASE("client calls keep flowing, numbered across rounds, rounds are bounded", "[tools]") {
  serve::server_rounds r({"math"}, 1, {});
  auto s0 = ev(kind::tool_call_start, 0, "", "call_m", "math");
  CHECK_FALSE(r.route(s0));
  auto e0 = ev(kind::tool_call_end, 0);
  CHECK(r.route(e0));
  auto s1 = ev(kind::tool_call_start, 1, "", "call_w", "weather");
  REQUIRE(r.route(s1));
  CHECK(s1.index == 0);  // the client's first call
  CHECK(r.client_calls());
  CHECK_FALSE(r.run_tools());  // mixed round: the client gets its call back

  serve::server_rounds one({"math"}, 1, {});
  auto a = ev(kind::tool_call_start, 0, "", "c1", "math");
  one.route(a);
  CHECK(one.run_tools());
  std::vector<chat::message> msgs;
  serve::tool_choice_mode mode = serve::tool_choice_mode::required;
  std::string name;
  one.add_result({"c1", "math", "error: x", toolkit::outcome::error, 1, 0, 0.0});
  one.next_round(msgs, mode, name);
  CHECK(mode == serve::tool_choice_mode::auto_);  // past the list
  auto b = ev(kind::tool_call_start, 0, "", "c2", "math");
  one.route(b);
  CHECK_FALSE(one.run_tools());  // max_rounds reached
}
