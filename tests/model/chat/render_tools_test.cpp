// render(): the system turn's `# Tools` block (names, trimmed descriptions, schemas as
// tags), each expected string written out by hand from docs/qwen3-coder-format.md.
#include <catch2/catch.hpp>

#include "model/chat/chat_template.h"
#include "model/chat/conversation.h"
#include "tests/model/chat/chat_test_util.h"

using namespace conclave::chat;
using namespace conclave::chat::test;

namespace {

tool_spec weather_tool() {
  return make_tool("get_weather", "Get the current weather for a city.",
                   R"({"type": "object",
                       "properties": {
                         "city": {"type": "string", "description": "City name"},
                         "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                       "required": ["city"]})");
}

const std::string weather_block =
    "\n<function>\n<name>get_weather</name>"
    "\n<description>Get the current weather for a city.</description>"
    "\n<parameters>"
    "\n<parameter>\n<name>city</name>\n<type>string</type>\n<description>City name</description>"
    "\n</parameter>"
    "\n<parameter>\n<name>unit</name>\n<type>string</type>"
    "\n<enum>[\"celsius\", \"fahrenheit\"]</enum>"
    "\n</parameter>"
    "\n<required>[\"city\"]</required>"
    "\n</parameters>\n</function>";

tool_spec edit_tool() {
  return make_tool("edit", "Edit a file.", R"json({
    "type": "object",
    "properties": {
      "path": {"type": "string", "description": "File path", "minLength": 1},
      "edits": {"type": "array", "description": "Edits to apply",
                "items": {"type": "object",
                          "properties": {"old": {"type": "string"}, "new": {"type": "string"}},
                          "required": ["old", "new"]},
                "minItems": 1},
      "mode": {"type": "string", "enum": ["replace", "append"], "default": "replace"},
      "dry_run": {"type": "boolean", "default": false},
      "limit": {"type": "integer", "minimum": 0, "maximum": 100, "default": 10},
      "temperature": {"type": "number", "minimum": 0.0, "maximum": 2, "default": 0.5,
                      "multipleOf": 1e-05},
      "note": {"type": ["string", "null"], "default": null},
      "value": {"anyOf": [{"type": "string"}, {"type": "integer"}], "description": "Either"},
      "options": {"type": "object", "properties": {"x": {"type": "integer"}},
                  "additionalProperties": true}
    },
    "required": ["path", "edits"],
    "additionalProperties": false,
    "$defs": {"Edit": {"type": "object"}}
  })json");
}

const std::string edit_block =
    "\n<function>\n<name>edit</name>\n<description>Edit a file.</description>\n<parameters>"
    "\n<parameter>\n<name>path</name>\n<type>string</type>\n<description>File path</description>"
    "\n<minLength>1</minLength>\n</parameter>"
    "\n<parameter>\n<name>edits</name>\n<type>array</type>"
    "\n<description>Edits to apply</description>"
    "\n<items>{\"type\": \"object\", \"properties\": {\"old\": {\"type\": \"string\"}, "
    "\"new\": {\"type\": \"string\"}}, \"required\": [\"old\", \"new\"]}</items>"
    "\n<minItems>1</minItems>\n</parameter>"
    "\n<parameter>\n<name>mode</name>\n<type>string</type>"
    "\n<enum>[\"replace\", \"append\"]</enum>\n<default>replace</default>\n</parameter>"
    "\n<parameter>\n<name>dry_run</name>\n<type>boolean</type>\n<default>False</default>"
    "\n</parameter>"
    "\n<parameter>\n<name>limit</name>\n<type>integer</type>\n<minimum>0</minimum>"
    "\n<maximum>100</maximum>\n<default>10</default>\n</parameter>"
    "\n<parameter>\n<name>temperature</name>\n<type>number</type>\n<minimum>0.0</minimum>"
    "\n<maximum>2</maximum>\n<default>0.5</default>\n<multipleOf>1e-05</multipleOf>"
    "\n</parameter>"
    "\n<parameter>\n<name>note</name>\n<type>['string', 'null']</type>\n<default>None</default>"
    "\n</parameter>"
    "\n<parameter>\n<name>value</name>\n<description>Either</description>"
    "\n<anyOf>[{\"type\": \"string\"}, {\"type\": \"integer\"}]</anyOf>\n</parameter>"
    "\n<parameter>\n<name>options</name>\n<type>object</type>"
    "\n<properties>{\"x\": {\"type\": \"integer\"}}</properties>"
    "\n<additionalProperties>True</additionalProperties>\n</parameter>"
    "\n<required>[\"path\", \"edits\"]</required>"
    "\n<additionalProperties>False</additionalProperties>"
    "\n<$defs>{\"Edit\": {\"type\": \"object\"}}</$defs>"
    "\n</parameters>\n</function>";

std::vector<render_case> tool_cases() {
  std::vector<render_case> cases;
  cases.push_back({"tools without a system message use the default system text",
                   {usr("Weather in Paris?")},
                   {weather_tool()},
                   true,
                   "<|im_start|>system\n" + default_system + tools_head + weather_block +
                       tools_tail + "<|im_end|>\n" +
                       "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
                       "<|im_start|>assistant\n"});
  cases.push_back({"tools are appended to the first system message",
                   {sys("You are a coding agent."), usr("hi")},
                   {weather_tool()},
                   false,
                   "<|im_start|>system\nYou are a coding agent." + tools_head + weather_block +
                       tools_tail + "<|im_end|>\n" + "<|im_start|>user\nhi<|im_end|>\n"});
  cases.push_back(
      {"several tools in order; no description; empty parameters",
       {usr("hi")},
       {make_tool("ping", std::nullopt, "{}"),
        make_tool("now", "", R"({"type": "object", "properties": {}})"), weather_tool()},
       true,
       "<|im_start|>system\n" + default_system + tools_head +
           "\n<function>\n<name>ping</name>\n<parameters>\n</parameters>\n</function>"
           "\n<function>\n<name>now</name>\n<description></description>"
           "\n<parameters>\n</parameters>\n</function>" +
           weather_block + tools_tail + "<|im_end|>\n" +
           "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"});
  cases.push_back(
      {"descriptions are trimmed (Unicode whitespace too); type and description come first",
       {usr("ls")},
       {make_tool(
           "ls", "  \n List files in a directory.\n\n  Hidden files included.\t\n",
           "{\"type\": \"object\", \"properties\": {"
           "\"dir\": {\"description\": \"   Directory path.  \", \"type\": \"string\"},"
           "\"label\": {\"type\": \"string\", \"description\": \"\u3000R\u00e9sum\u00e9\u00a0\"}"
           "}}")},
       false,
       "<|im_start|>system\n" + default_system + tools_head +
           "\n<function>\n<name>ls</name>"
           "\n<description>List files in a directory.\n\n  Hidden files included.</description>"
           "\n<parameters>"
           "\n<parameter>\n<name>dir</name>\n<type>string</type>"
           "\n<description>Directory path.</description>\n</parameter>"
           "\n<parameter>\n<name>label</name>\n<type>string</type>"
           "\n<description>R\u00e9sum\u00e9</description>\n</parameter>"
           "\n</parameters>\n</function>" +
           tools_tail + "<|im_end|>\n" + "<|im_start|>user\nls<|im_end|>\n"});
  cases.push_back({"nested object/array/enum/required schemas and extra keys",
                   {sys("S"), usr("go")},
                   {edit_tool()},
                   true,
                   "<|im_start|>system\nS" + tools_head + edit_block + tools_tail +
                       "<|im_end|>\n<|im_start|>user\ngo<|im_end|>\n<|im_start|>assistant\n"});
  cases.push_back(
      {"schema strings: scalars raw, containers as escaped JSON; odd properties",
       {usr("q")},
       {make_tool("grep", "Search.", R"json({
          "type": "object",
          "properties": {
            "pattern": {"type": "string", "pattern": "^[a-z]+\\d*$",
                        "default": "say \"hi\"\nbye",
                        "examples": ["tab\there", "back\\slash", "café ☕"]},
            "anything": true,
            "titled": {"type": "string", "name": "ignored", "title": "Title"}
          },
          "strict": true
        })json")},
       false,
       "<|im_start|>system\n" + default_system + tools_head +
           "\n<function>\n<name>grep</name>\n<description>Search.</description>\n<parameters>"
           "\n<parameter>\n<name>pattern</name>\n<type>string</type>"
           "\n<pattern>^[a-z]+\\d*$</pattern>"
           "\n<default>say \"hi\"\nbye</default>"
           "\n<examples>[\"tab\\there\", \"back\\\\slash\", \"café ☕\"]</examples>"
           "\n</parameter>"
           "\n<parameter>\n<name>anything</name>\n</parameter>"
           "\n<parameter>\n<name>titled</name>\n<type>string</type>\n<title>Title</title>"
           "\n</parameter>"
           "\n<strict>True</strict>"
           "\n</parameters>\n</function>" +
           tools_tail + "<|im_end|>\n" + "<|im_start|>user\nq<|im_end|>\n"});
  cases.push_back({"a full agent exchange with tools",
                   {sys("Agent."), usr("Weather in Paris?"),
                    asst_calls("Checking.", {call("get_weather", R"({"city": "Paris"})")}),
                    result("{\"temp\": 21}"), asst("21 degrees.")},
                   {weather_tool()},
                   true,
                   "<|im_start|>system\nAgent." + tools_head + weather_block + tools_tail +
                       "<|im_end|>\n" +
                       "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
                       "<|im_start|>assistant\nChecking.\n"
                       "\n<tool_call>\n<function=get_weather>\n"
                       "<parameter=city>\nParis\n</parameter>\n"
                       "</function>\n</tool_call><|im_end|>\n"
                       "<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response>\n"
                       "<|im_end|>\n"
                       "<|im_start|>assistant\n21 degrees.<|im_end|>\n"
                       "<|im_start|>assistant\n"});
  return cases;
}

}  // namespace

TEST_CASE("render: the tools block in the system turn", "[chat]") {
  const auto cases = tool_cases();
  REQUIRE(cases.size() >= 7);
  for (const auto& c : cases) {
    INFO(c.name);
    CHECK(render(c.messages, c.tools, c.add_generation_prompt) == c.expected);
  }
}

TEST_CASE("render: the tools block is the doc's text around the functions", "[chat]") {
  // Spot checks of the fixed text, independent of the table's constants.
  const std::string out = render({usr("x")}, {make_tool("f", std::nullopt, "{}")}, false);
  CHECK(
      out.starts_with("<|im_start|>system\nYou are Qwen, a helpful AI assistant that can "
                      "interact with a computer to solve tasks.\n\n# Tools\n\n"));
  CHECK(out.find("\n</tools>\n\nIf you choose to call a function ONLY reply") != std::string::npos);
  CHECK(out.ends_with("calls\n</IMPORTANT><|im_end|>\n<|im_start|>user\nx<|im_end|>\n"));
}
