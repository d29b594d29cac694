// Builders for chat-template tests and the fixed prompt pieces, typed in from
// docs/qwen3-coder-format.md (not produced by the renderer under test).
#pragma once

#include <boost/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/chat/conversation.h"
#include "model/tool_spec_json.h"

namespace conclave::chat::test {

inline message msg(role r, std::vector<std::string> parts) {
  message m;
  m.r = r;
  m.content_parts = std::move(parts);
  return m;
}
inline message sys(std::string text) {
  return msg(role::system, {std::move(text)});
}
inline message usr(std::string text) {
  return msg(role::user, {std::move(text)});
}
inline message asst(std::string text) {
  return msg(role::assistant, {std::move(text)});
}
inline message result(std::string text, std::string id = "call_1") {
  message m = msg(role::tool, {std::move(text)});
  m.tool_call_id = std::move(id);
  return m;
}
inline tool_call call(std::string name, std::string arguments, std::string id = "call_1") {
  return tool_call{std::move(id), std::move(name), std::move(arguments)};
}
/// An assistant message with tool calls; `content` nullopt is OpenAI's `content: null`.
inline message asst_calls(std::optional<std::string> content, std::vector<tool_call> calls) {
  message m;
  m.r = role::assistant;
  if (content) {
    m.content_parts = {std::move(*content)};
  } else {
    m.content_is_null = true;
  }
  m.tool_calls = std::move(calls);
  return m;
}
using model::tool_spec;
inline tool_spec make_tool(std::string name, std::optional<std::string> description,
                           const std::string& parameters_json) {
  tool_spec t{std::move(name), std::move(description)};
  model::set_parameters(t, boost::json::parse(parameters_json).as_object());
  return t;
}

// The prompt pieces, from the format doc.
inline const std::string im_start_system = "<|im_start|>system\n";
inline const std::string gen_prompt = "<|im_start|>assistant\n";
inline const std::string default_system =
    "You are Qwen, a helpful AI assistant that can interact with a computer to solve tasks.";
inline const std::string tools_head =
    "\n\n# Tools\n\nYou have access to the following functions:\n\n<tools>";
inline const std::string tools_tail =
    "\n"
    "</tools>\n"
    "\n"
    "If you choose to call a function ONLY reply in the following format with NO suffix:\n"
    "\n"
    "<tool_call>\n"
    "<function=example_function_name>\n"
    "<parameter=example_parameter_1>\n"
    "value_1\n"
    "</parameter>\n"
    "<parameter=example_parameter_2>\n"
    "This is the value for the second parameter\n"
    "that can span\n"
    "multiple lines\n"
    "</parameter>\n"
    "</function>\n"
    "</tool_call>\n"
    "\n"
    "<IMPORTANT>\n"
    "Reminder:\n"
    "- Function calls MUST follow the specified format: an inner <function=...></function> "
    "block must be nested within <tool_call></tool_call> XML tags\n"
    "- Required parameters MUST be specified\n"
    "- You may provide optional reasoning for your function call in natural language BEFORE "
    "the function call, but NOT after\n"
    "- If there is no function call available, answer the question like normal with your "
    "current knowledge and do not tell the user about function calls\n"
    "</IMPORTANT>";

/// One row of a render table.
struct render_case {
  std::string name;
  std::vector<message> messages;
  std::vector<tool_spec> tools;
  bool add_generation_prompt;
  std::string expected;
};

}  // namespace conclave::chat::test
