// render(): ChatML turns, assistant tool calls and tool results, each expected string
// written out by hand from docs/qwen3-coder-format.md.
#include <catch2/catch.hpp>

#include "model/chat/chat_template.h"
#include "model/chat/conversation.h"
#include "tests/model/chat/chat_test_util.h"

using namespace conclave::chat;
using namespace conclave::chat::test;

namespace {

std::vector<render_case> turn_cases() {
  std::vector<render_case> cases;
  cases.push_back({"system + user",
                   {sys("You are terse."), usr("Hi")},
                   {},
                   true,
                   "<|im_start|>system\nYou are terse.<|im_end|>\n"
                   "<|im_start|>user\nHi<|im_end|>\n"
                   "<|im_start|>assistant\n"});
  cases.push_back({"user only: no system turn without tools",
                   {usr("Hello")},
                   {},
                   true,
                   "<|im_start|>user\nHello<|im_end|>\n"
                   "<|im_start|>assistant\n"});
  cases.push_back({"multi-turn",
                   {sys("S"), usr("Q1"), asst("A1"), usr("Q2")},
                   {},
                   true,
                   "<|im_start|>system\nS<|im_end|>\n"
                   "<|im_start|>user\nQ1<|im_end|>\n"
                   "<|im_start|>assistant\nA1<|im_end|>\n"
                   "<|im_start|>user\nQ2<|im_end|>\n"
                   "<|im_start|>assistant\n"});
  cases.push_back({"add_generation_prompt false",
                   {usr("Q"), asst("A")},
                   {},
                   false,
                   "<|im_start|>user\nQ<|im_end|>\n"
                   "<|im_start|>assistant\nA<|im_end|>\n"});
  cases.push_back(
      {"content as text parts, joined without separator",
       {msg(role::system, {"Be ", "brief."}), msg(role::user, {"Hello, ", "wor", "ld"})},
       {},
       true,
       "<|im_start|>system\nBe brief.<|im_end|>\n"
       "<|im_start|>user\nHello, world<|im_end|>\n"
       "<|im_start|>assistant\n"});
  cases.push_back({"empty contents (an empty system message still opens the system turn)",
                   {sys(""), usr(""), msg(role::assistant, {})},
                   {},
                   false,
                   "<|im_start|>system\n<|im_end|>\n"
                   "<|im_start|>user\n<|im_end|>\n"
                   "<|im_start|>assistant\n<|im_end|>\n"});
  cases.push_back({"plain turns keep their whitespace",
                   {usr("  two\n\nlines \t"), asst("\n ok \n")},
                   {},
                   false,
                   "<|im_start|>user\n  two\n\nlines \t<|im_end|>\n"
                   "<|im_start|>assistant\n\n ok \n<|im_end|>\n"});
  cases.push_back({"a system message after the first is a system turn in place",
                   {sys("first"), usr("a"), sys("second"), usr("b")},
                   {},
                   true,
                   "<|im_start|>system\nfirst<|im_end|>\n"
                   "<|im_start|>user\na<|im_end|>\n"
                   "<|im_start|>system\nsecond<|im_end|>\n"
                   "<|im_start|>user\nb<|im_end|>\n"
                   "<|im_start|>assistant\n"});
  cases.push_back({"a system message that is not first, with no first system message",
                   {usr("a"), sys("b")},
                   {},
                   false,
                   "<|im_start|>user\na<|im_end|>\n"
                   "<|im_start|>system\nb<|im_end|>\n"});
  cases.push_back(
      {"assistant with content and a tool call",
       {usr("Weather in Paris?"),
        asst_calls("Let me check.", {call("get_weather", R"({"city": "Paris", "days": 3})")})},
       {},
       false,
       "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
       "<|im_start|>assistant\nLet me check.\n"
       "\n<tool_call>\n<function=get_weather>\n"
       "<parameter=city>\nParis\n</parameter>\n"
       "<parameter=days>\n3\n</parameter>\n"
       "</function>\n</tool_call><|im_end|>\n"});
  cases.push_back(
      {"assistant with only a tool call (content null)",
       {usr("Q"), asst_calls(std::nullopt, {call("get_time", "  {\n\"tz\" :\t\"UTC\"}  ")})},
       {},
       false,
       "<|im_start|>user\nQ<|im_end|>\n"
       "<|im_start|>assistant"
       "\n<tool_call>\n<function=get_time>\n"
       "<parameter=tz>\nUTC\n</parameter>\n"
       "</function>\n</tool_call><|im_end|>\n"});
  cases.push_back({"tool-call content is trimmed; blank content is left out",
                   {usr("Q"), asst_calls("\n  Checking.  \n", {call("a", "{}")}), result("ok"),
                    asst_calls(" \n\t ", {call("noop", "{}")})},
                   {},
                   false,
                   "<|im_start|>user\nQ<|im_end|>\n"
                   "<|im_start|>assistant\nChecking.\n"
                   "\n<tool_call>\n<function=a>\n</function>\n</tool_call><|im_end|>\n"
                   "<|im_start|>user\n<tool_response>\nok\n</tool_response>\n<|im_end|>\n"
                   "<|im_start|>assistant"
                   "\n<tool_call>\n<function=noop>\n</function>\n</tool_call><|im_end|>\n"});
  cases.push_back({"two calls, then their results in one user turn",
                   {usr("Paris or Rome?"),
                    asst_calls(std::nullopt, {call("get_weather", R"({"city":"Paris"})", "call_a"),
                                              call("get_weather", R"({"city":"Rome"})", "call_b")}),
                    result("sunny", "call_a"), result("rainy", "call_b")},
                   {},
                   true,
                   "<|im_start|>user\nParis or Rome?<|im_end|>\n"
                   "<|im_start|>assistant"
                   "\n<tool_call>\n<function=get_weather>\n"
                   "<parameter=city>\nParis\n</parameter>\n"
                   "</function>\n</tool_call>"
                   "\n<tool_call>\n<function=get_weather>\n"
                   "<parameter=city>\nRome\n</parameter>\n"
                   "</function>\n</tool_call><|im_end|>\n"
                   "<|im_start|>user\n"
                   "<tool_response>\nsunny\n</tool_response>\n"
                   "<tool_response>\nrainy\n</tool_response>\n"
                   "<|im_end|>\n"
                   "<|im_start|>assistant\n"});
  cases.push_back({"a tool result, the answer, and a follow-up",
                   {usr("Q"), asst_calls(std::nullopt, {call("f", "{}")}), result("42"),
                    asst("It is 42."), usr("Thanks")},
                   {},
                   true,
                   "<|im_start|>user\nQ<|im_end|>\n"
                   "<|im_start|>assistant\n<tool_call>\n<function=f>\n</function>\n</tool_call>"
                   "<|im_end|>\n"
                   "<|im_start|>user\n<tool_response>\n42\n</tool_response>\n<|im_end|>\n"
                   "<|im_start|>assistant\nIt is 42.<|im_end|>\n"
                   "<|im_start|>user\nThanks<|im_end|>\n"
                   "<|im_start|>assistant\n"});
  cases.push_back({"two rounds of calls and results",
                   {usr("Q"), asst_calls(std::nullopt, {call("a", "{}")}), result("r1"),
                    asst_calls("More.", {call("b", "{}")}), result("r2"), result("r3")},
                   {},
                   true,
                   "<|im_start|>user\nQ<|im_end|>\n"
                   "<|im_start|>assistant\n<tool_call>\n<function=a>\n</function>\n</tool_call>"
                   "<|im_end|>\n"
                   "<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<|im_end|>\n"
                   "<|im_start|>assistant\nMore.\n\n<tool_call>\n<function=b>\n</function>\n"
                   "</tool_call><|im_end|>\n"
                   "<|im_start|>user\n<tool_response>\nr2\n</tool_response>\n"
                   "<tool_response>\nr3\n</tool_response>\n<|im_end|>\n"
                   "<|im_start|>assistant\n"});
  cases.push_back({"tool results: parts joined, whitespace kept, empty allowed",
                   {usr("Q"), asst_calls(std::nullopt, {call("a", "{}"), call("b", "{}")}),
                    msg(role::tool, {"line 1\n", "  line 2  "}), result("")},
                   {},
                   false,
                   "<|im_start|>user\nQ<|im_end|>\n"
                   "<|im_start|>assistant\n<tool_call>\n<function=a>\n</function>\n</tool_call>"
                   "\n<tool_call>\n<function=b>\n</function>\n</tool_call><|im_end|>\n"
                   "<|im_start|>user\n<tool_response>\nline 1\n  line 2  \n</tool_response>\n"
                   "<tool_response>\n\n</tool_response>\n<|im_end|>\n"});
  cases.push_back(
      {"argument values by JSON type",
       {usr("Q"),
        asst_calls(std::nullopt,
                   {call("write",
                         R"({"path": "src/main.cpp", "content": "line1\nline2\n", "blank": "",
                             "count": -7, "ratio": 1.0, "tiny": 1e-5, "big": 1E16,
                             "exact": 10000000000000000, "flag": true, "off": false,
                             "none": null, "opts": {"z": 1, "a": [1, 2.5, "é\"q", true, null]},
                             "list": ["x", "y"], "empty_obj": {}, "empty_list": []})")})},
       {},
       false,
       "<|im_start|>user\nQ<|im_end|>\n"
       "<|im_start|>assistant\n<tool_call>\n<function=write>\n"
       "<parameter=path>\nsrc/main.cpp\n</parameter>\n"
       "<parameter=content>\nline1\nline2\n\n</parameter>\n"
       "<parameter=blank>\n\n</parameter>\n"
       "<parameter=count>\n-7\n</parameter>\n"
       "<parameter=ratio>\n1.0\n</parameter>\n"
       "<parameter=tiny>\n1e-05\n</parameter>\n"
       "<parameter=big>\n1e+16\n</parameter>\n"
       "<parameter=exact>\n10000000000000000\n</parameter>\n"
       "<parameter=flag>\nTrue\n</parameter>\n"
       "<parameter=off>\nFalse\n</parameter>\n"
       "<parameter=none>\nNone\n</parameter>\n"
       "<parameter=opts>\n{\"z\": 1, \"a\": [1, 2.5, \"é\\\"q\", true, null]}\n</parameter>\n"
       "<parameter=list>\n[\"x\", \"y\"]\n</parameter>\n"
       "<parameter=empty_obj>\n{}\n</parameter>\n"
       "<parameter=empty_list>\n[]\n</parameter>\n"
       "</function>\n</tool_call><|im_end|>\n"});
  cases.push_back({"argument doubles keep all 17 digits",
                   {usr("Q"), asst_calls(std::nullopt, {call("f", R"({"a": 0.30000000000000004,
                                                       "b": 4.4200258834463744e-14,
                                                       "c": [3.185672992401091e-16]})")})},
                   {},
                   false,
                   "<|im_start|>user\nQ<|im_end|>\n"
                   "<|im_start|>assistant\n<tool_call>\n<function=f>\n"
                   "<parameter=a>\n0.30000000000000004\n</parameter>\n"
                   "<parameter=b>\n4.4200258834463744e-14\n</parameter>\n"
                   "<parameter=c>\n[3.185672992401091e-16]\n</parameter>\n"
                   "</function>\n</tool_call><|im_end|>\n"});
  return cases;
}

}  // namespace

TEST_CASE("render: ChatML turns, tool calls and tool results", "[chat]") {
  const auto cases = turn_cases();
  REQUIRE(cases.size() >= 15);
  for (const auto& c : cases) {
    INFO(c.name);
    CHECK(render(c.messages, c.tools, c.add_generation_prompt) == c.expected);
  }
}

TEST_CASE("render: add_generation_prompt defaults to true", "[chat]") {
  CHECK(render({usr("x")}, {}) == "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
}

TEST_CASE("render: ids and names are not part of the prompt", "[chat]") {
  auto a = asst_calls(std::nullopt, {call("f", R"({"k": "v"})", "call_x")});
  auto b = asst_calls(std::nullopt, {call("f", R"({"k": "v"})", "call_y")});
  auto r1 = result("out", "call_x");
  // Assigned from std::string temporaries (a move), not literals: GCC 12 at -O3 inlines
  // the literal assignment and reports a false -Wrestrict overlap (GCC bug 105329),
  // which -Werror turns into a failed Release build.
  auto r2 = result("out", "call_y");
  r2.name = std::string("f");
  auto u2 = usr("Q");
  u2.name = std::string("alice");
  CHECK(render({usr("Q"), a, r1}, {}) == render({u2, b, r2}, {}));
}
