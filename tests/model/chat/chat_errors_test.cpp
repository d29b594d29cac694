// Input the chat template rejects: each error names its OpenAI param path.
#include <catch2/catch.hpp>

#include "model/chat/chat_template.h"
#include "model/chat/conversation.h"
#include "tests/model/chat/chat_test_util.h"

using namespace conclave::chat;
using namespace conclave::chat::test;

namespace {

// Renders and returns the chat_error, failing the test when nothing is thrown.
chat_error render_error(const std::vector<message>& messages) {
  try {
    render(messages, {make_tool("f", std::nullopt, "{}")});
  } catch (const chat_error& e) {
    return e;
  }
  FAIL("render() accepted invalid input");
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("parse_role maps the four OpenAI roles", "[chat]") {
  CHECK(parse_role("system", 0) == role::system);
  CHECK(parse_role("user", 1) == role::user);
  CHECK(parse_role("assistant", 2) == role::assistant);
  CHECK(parse_role("tool", 3) == role::tool);
  CHECK(role_name(role::system) == "system");
  CHECK(role_name(role::user) == "user");
  CHECK(role_name(role::assistant) == "assistant");
  CHECK(role_name(role::tool) == "tool");
}

TEST_CASE("parse_role rejects unknown roles with the message's param", "[chat]") {
  try {
    parse_role("foo", 3);
    FAIL("no error");
  } catch (const chat_error& e) {
    CHECK(e.param() == "messages[3].role");
    CHECK(std::string(e.what()) ==
          "messages[3].role: unknown role \"foo\" (expected system, user, assistant or tool)");
  }
  for (const char* bad : {"System", "developer", "function", ""}) {
    INFO(bad);
    CHECK_THROWS_AS(parse_role(bad, 0), chat_error);
  }
  // The HTTP layer turns std::invalid_argument into a 400.
  CHECK_THROWS_AS(parse_role("bot", 7), std::invalid_argument);
}

TEST_CASE("render rejects an empty conversation", "[chat]") {
  const auto e = render_error({});
  CHECK(e.param() == "messages");
  CHECK(std::string(e.what()) == "messages: must contain at least one message");
}

TEST_CASE("render rejects tool messages that answer no tool call", "[chat]") {
  const auto calls = asst_calls(std::nullopt, {call("f", "{}")});
  struct row {
    const char* name;
    std::vector<message> messages;
    const char* param;
  };
  const std::vector<row> rows = {
      {"first message", {result("x")}, "messages[0].role"},
      {"after a system message", {sys("s"), result("x")}, "messages[1].role"},
      {"after a user message", {usr("u"), result("x")}, "messages[1].role"},
      {"after an assistant message without calls",
       {usr("u"), asst("a"), result("x")},
       "messages[2].role"},
      {"after results and a user message",
       {usr("u"), calls, result("x"), usr("v"), result("y")},
       "messages[4].role"},
      {"after results and an assistant answer",
       {usr("u"), calls, result("x"), result("y"), asst("done"), result("z")},
       "messages[5].role"},
  };
  for (const auto& r : rows) {
    INFO(r.name);
    const auto e = render_error(r.messages);
    CHECK(e.param() == r.param);
    CHECK(std::string(e.what()) ==
          std::string(r.param) +
              ": a tool message must follow an assistant message with tool_calls (possibly "
              "after other tool messages)");
  }
}

TEST_CASE("render rejects tool-call arguments that are not a JSON object", "[chat]") {
  struct row {
    const char* arguments;
    const char* reason_start;
  };
  const std::vector<row> rows = {
      {"{\"city\": ", "not valid JSON ("},
      {"", "not valid JSON ("},
      {"{'city': 'Paris'}", "not valid JSON ("},
      {"{\"a\": 1} trailing", "not valid JSON ("},
      {"[1, 2]", "must be a JSON object, got an array"},
      {"\"Paris\"", "must be a JSON object, got a string"},
      {"42", "must be a JSON object, got a number"},
      {"null", "must be a JSON object, got null"},
      {"true", "must be a JSON object, got a boolean"},
  };
  for (const auto& r : rows) {
    INFO(r.arguments);
    // The bad call is the second call of the second assistant message (messages[3]).
    const auto e =
        render_error({usr("u"), asst_calls(std::nullopt, {call("f", "{}")}), result("x"),
                      asst_calls("Again.", {call("f", "{}"), call("get_weather", r.arguments)})});
    CHECK(e.param() == "messages[3].tool_calls[1].function.arguments");
    CHECK_THAT(std::string(e.what()),
               Catch::StartsWith(std::string("messages[3].tool_calls[1].function.arguments: ") +
                                 r.reason_start));
  }
}

TEST_CASE("render rejects null content except on assistant messages with tool calls", "[chat]") {
  auto null_of = [](role r) {
    message m;
    m.r = r;
    m.content_is_null = true;
    return m;
  };
  const auto calls = asst_calls(std::nullopt, {call("f", "{}")});
  {
    const auto e = render_error({null_of(role::system), usr("u")});
    CHECK(e.param() == "messages[0].content");
    CHECK(std::string(e.what()) ==
          "messages[0].content: must not be null for a system message (only an assistant "
          "message with tool_calls may omit its content)");
  }
  CHECK(render_error({usr("u"), null_of(role::user)}).param() == "messages[1].content");
  CHECK(render_error({usr("u"), null_of(role::assistant)}).param() == "messages[1].content");
  CHECK(render_error({usr("u"), calls, null_of(role::tool)}).param() == "messages[2].content");
}

TEST_CASE("render accepts what it should not reject", "[chat]") {
  // Tool results need not match the calls one to one, and names are free text.
  CHECK_NOTHROW(render(
      {usr("u"), asst_calls(std::nullopt, {call("f", "{}")}), result("a"), result("b")}, {}));
  CHECK_NOTHROW(render({sys("late"), usr("u"), sys("later")}, {}));
}
