// Model outputs for the JSON (Qwen3 / Hermes) tool-call parser, well-formed and broken,
// with what each must parse to (tools: tests/data/tools/tools.json).
#include "tests/model/toolcall/toolcall_cases.h"

namespace conclave::test {

using toolcall::unknown_tool_policy;

// Named (not anonymous): toolcall_cases.cpp has its own paris, berlin and make_cases.
namespace hermes {

std::string call(const std::string& json) {
  return "<tool_call>\n" + json + "\n</tool_call>";
}

const std::string paris = call(R"({"name": "get_weather", "arguments": {"city": "Paris"}})");
const std::string berlin = call(R"({"name": "get_weather", "arguments": {"city": "Berlin"}})");

std::vector<tool_case> make_cases() {
  std::vector<tool_case> c;
  // ---- prose and well-formed calls ----
  c.push_back({"prose only", "Hello!\n\nHow are you?\n", "Hello!\n\nHow are you?\n", {}});
  c.push_back({"empty text", "", "", {}});
  c.push_back({"well-formed call", paris, "", {{"get_weather", R"({"city": "Paris"})"}}});
  c.push_back({"call after prose",
               "Let me check.\n\n" + paris + "\n",
               "Let me check.",
               {{"get_weather", R"({"city": "Paris"})"}}});
  c.push_back(
      {"two calls",
       paris + "\n" + berlin,
       "",
       {{"get_weather", R"({"city": "Paris"})"}, {"get_weather", R"({"city": "Berlin"})"}}});
  c.push_back(
      {"prose between and after calls",
       "A\n" + paris + "\nB\n" + berlin + "\nC",
       "A\n\nB\n\nC",
       {{"get_weather", R"({"city": "Paris"})"}, {"get_weather", R"({"city": "Berlin"})"}}});
  c.push_back(
      {"compact JSON, no newlines",
       R"(<tool_call>{"name":"get_weather","arguments":{"city":"Oslo","days":2}}</tool_call>)",
       "",
       {{"get_weather", R"({"city": "Oslo", "days": 2})"}}});
  c.push_back({"typed values",
               call(R"({"name": "set_config", "arguments": {"ratio": 0.5, "flag": true,
      "tags": ["a", "b"], "config": {"retries": 3, "servers": [{"port": 80}]}, "nothing": null}})"),
               "",
               {{"set_config", R"({"ratio": 0.5, "flag": true, "tags": ["a", "b"],
                  "config": {"retries": 3, "servers": [{"port": 80}]}, "nothing": null})"}}});
  c.push_back({"no arguments key", call(R"({"name": "list_files"})"), "", {{"list_files", "{}"}}});
  c.push_back({"empty arguments",
               call(R"({"name": "list_files", "arguments": {}})"),
               "",
               {{"list_files", "{}"}}});
  c.push_back({"null arguments",
               call(R"({"name": "list_files", "arguments": null})"),
               "",
               {{"list_files", "{}"}}});
  c.push_back({"parameters instead of arguments",
               call(R"({"name": "get_weather", "parameters": {"city": "Rome"}})"),
               "",
               {{"get_weather", R"({"city": "Rome"})"}}});
  c.push_back({"arguments before name",
               call(R"({"arguments": {"city": "Rome", "days": "4"}, "name": "get_weather"})"),
               "",
               {{"get_weather", R"({"city": "Rome", "days": 4})"}}});
  c.push_back(
      {"extra keys ignored",
       call(
           R"({"id": 7, "name": "get_weather", "type": "function", "arguments": {"city": "X"}, "z": [1]})"),
       "",
       {{"get_weather", R"({"city": "X"})"}}});
  // ---- strings ----
  c.push_back(
      {"escapes and unicode in a string value",
       call(
           R"({"name": "write_file", "arguments": {"path": "a\\b\"c\u00e9\ud83d\ude00\n", "content": "x\ty\/z"}})"),
       "",
       {{"write_file", R"({"path": "a\\b\"cé😀\n", "content": "x\ty/z"})"}}});
  c.push_back({"raw non-ASCII",
               call(R"({"name": "get_weather", "arguments": {"city": "Zürich 東京"}})"),
               "",
               {{"get_weather", R"({"city": "Zürich 東京"})"}}});
  c.push_back(
      {"markup inside a string value is text",
       call(
           R"({"name": "write_file", "arguments": {"path": "t.md", "content": "<tool_call>\n{\"name\": \"x\"}\n</tool_call> and </tool_call>"}})"),
       "",
       {{"write_file",
         R"({"path": "t.md", "content": "<tool_call>\n{\"name\": \"x\"}\n</tool_call> and </tool_call>"})"}}});
  c.push_back({"lone surrogate becomes U+FFFD",
               call(R"({"name": "get_weather", "arguments": {"city": "a\ud800b"}})"),
               "",
               {{"get_weather", R"({"city": "a\ufffdb"})"}}});
  // ---- typing by schema ----
  c.push_back(
      {"string numbers typed",
       call(
           R"({"name": "get_weather", "arguments": {"city": "P", "days": "3", "metric": "True"}})"),
       "",
       {{"get_weather", R"({"city": "P", "days": 3, "metric": true})"}}});
  c.push_back({"integral float for an integer",
               call(R"({"name": "get_weather", "arguments": {"city": "P", "days": "230.0"}})"),
               "",
               {{"get_weather", R"({"city": "P", "days": 230})"}}});
  c.push_back({"number for a string schema stays a number",
               call(R"({"name": "get_weather", "arguments": {"city": 42}})"),
               "",
               {{"get_weather", R"({"city": 42})"}}});
  c.push_back(
      {"object given as a Python dict string",
       call(
           R"({"name": "set_config", "arguments": {"config": "{'retries': 2, 'verbose': True}"}})"),
       "",
       {{"set_config", R"({"config": {"retries": 2, "verbose": true}})"}}});
  c.push_back({"null string for a nullable type",
               call(R"({"name": "set_config", "arguments": {"mode": "null", "limit": "None"}})"),
               "",
               {{"set_config", R"({"mode": null, "limit": null})"}}});
  c.push_back(
      {"undeclared parameter kept",
       call(R"({"name": "get_weather", "arguments": {"city": "P", "extra": {"a": [1, 2]}}})"),
       "",
       {{"get_weather", R"({"city": "P", "extra": {"a": [1, 2]}})"}}});
  c.push_back(
      {"duplicate key keeps the first",
       call(R"({"name": "get_weather", "arguments": {"city": "A", "city": "B", "days": 1}})"),
       "",
       {{"get_weather", R"({"city": "A", "days": 1})"}}});
  c.push_back(
      {"double-encoded arguments",
       call(R"({"name": "get_weather", "arguments": "{\"city\": \"Lima\", \"days\": \"2\"}"})"),
       "",
       {{"get_weather", R"({"city": "Lima", "days": 2})"}}});
  c.push_back({"arguments as a Python dict",
               call(R"({"name": "get_weather", "arguments": {'city': 'Lima', 'days': 2}})"),
               "",
               {{"get_weather", R"({"city": "Lima", "days": 2})"}}});
  // ---- malformed and tolerated ----
  c.push_back({"missing </tool_call> at the end",
               "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n",
               "",
               {{"get_weather", R"({"city": "Paris"})"}}});
  c.push_back(
      {"missing </tool_call> before the next call",
       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"A\"}}\n" + berlin,
       "",
       {{"get_weather", R"({"city": "A"})"}, {"get_weather", R"({"city": "Berlin"})"}}});
  c.push_back({"missing </tool_call> before prose",
               "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"A\"}}\nDone.",
               "Done.",
               {{"get_weather", R"({"city": "A"})"}}});
  c.push_back({"cut off inside a string value",
               "<tool_call>\n{\"name\": \"write_file\", \"arguments\": {\"path\": \"a.txt\", "
               "\"content\": \"hel",
               "",
               {{"write_file", R"({"path": "a.txt", "content": "hel"})"}}});
  c.push_back({"cut off inside a key",
               "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"P\", \"da",
               "",
               {{"get_weather", R"({"city": "P"})"}}});
  c.push_back({"cut off inside a typed value",
               "<tool_call>\n{\"name\": \"set_config\", \"arguments\": {\"tags\": [\"a\", \"b",
               "",
               {{"set_config", "{}"}}});
  c.push_back({"cut off before the arguments",
               "<tool_call>\n{\"name\": \"get_weather\", ",
               "",
               {{"get_weather", "{}"}}});
  c.push_back({"cut off before the name is complete",
               "Hi <tool_call>\n{\"name\": \"get_wea",
               "Hi <tool_call>\n{\"name\": \"get_wea",
               {}});
  c.push_back({"a literal <tool_call> in prose",
               "Use the <tool_call> tag to call tools.",
               "Use the <tool_call> tag to call tools.",
               {}});
  c.push_back({"literal tag then a real call",
               "The <tool_call> tag.\n" + paris,
               "The <tool_call> tag.",
               {{"get_weather", R"({"city": "Paris"})"}}});
  c.push_back({"not JSON after the tag",
               "<tool_call>\nget_weather(city='Paris')\n</tool_call>",
               "<tool_call>\nget_weather(city='Paris')\n</tool_call>",
               {}});
  c.push_back({"name not a string",
               call(R"({"name": 5, "arguments": {}})"),
               call(R"({"name": 5, "arguments": {}})"),
               {}});
  c.push_back({"object without a name",
               call(R"({"arguments": {"city": "P"}})"),
               call(R"({"arguments": {"city": "P"}})"),
               {}});
  c.push_back({"unknown tool kept as content",
               call(R"({"name": "delete_all", "arguments": {}})"),
               call(R"({"name": "delete_all", "arguments": {}})"),
               {}});
  {
    tool_case t{"unknown tool rejected",
                "ok " + call(R"({"name": "delete_all", "arguments": {}})"),
                "ok " + call(R"({"name": "delete_all", "arguments": {}})"),
                {}};
    t.policy = unknown_tool_policy::reject;
    t.rejected = {"delete_all"};
    c.push_back(t);
  }
  c.push_back({"broken arguments end the call there",
               call(R"({"name": "get_weather", "arguments": {"city": "P", "days": 1,, "x": 2}})"),
               R"(,, "x": 2}}
</tool_call>)",
               {{"get_weather", R"({"city": "P", "days": 1})"}}});
  c.push_back({"bad escape ends the call",
               call(R"({"name": "write_file", "arguments": {"path": "a\qb"}})"),
               R"(\qb"}}
</tool_call>)",
               {{"write_file", R"({"path": "a"})"}}});
  c.push_back({"text after the object before the closer",
               "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"P\"}} "
               "trailing\n</tool_call>",
               "trailing\n</tool_call>",
               {{"get_weather", R"({"city": "P"})"}}});
  c.push_back({"whitespace-only gap limit",
               "<tool_call>" + std::string(300, ' ') + paris.substr(11),
               "<tool_call>" + std::string(300, ' ') + paris.substr(11, paris.size() - 11),
               {}});
  c.push_back({"XML call text is not a JSON call",
               "<tool_call>\n<function=get_weather>\n<parameter=city>\nP\n</parameter>\n</"
               "function>\n</tool_call>",
               "<tool_call>\n<function=get_weather>\n<parameter=city>\nP\n</parameter>\n</"
               "function>\n</tool_call>",
               {}});
  c.push_back(
      {"deep nesting in a value",
       call(
           R"({"name": "set_config", "arguments": {"config": {"name": "n", "servers": [{"port": 1}, {"port": 2}]}, "point": [1, 2.5e3, -0.5]}})"),
       "",
       {{"set_config",
         R"({"config": {"name": "n", "servers": [{"port": 1}, {"port": 2}]}, "point": [1, 2500, -0.5]})"}}});
  return c;
}

}  // namespace hermes

const std::vector<tool_case>& hermes_cases() {
  static const std::vector<tool_case> cases = hermes::make_cases();
  return cases;
}

}  // namespace conclave::test
