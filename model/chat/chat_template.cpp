// The Qwen3-Coder chat template: validates an OpenAI-shaped conversation and renders
// the system turn, the ChatML turns, tool calls and tool results.
#include "model/chat/chat_template.h"

#include <spdlog/fmt/fmt.h>
#include <boost/json.hpp>

#include "model/chat/json_exact.h"
#include "model/chat/python_format.h"
#include "model/chat/tools_prompt.h"

namespace conclave::chat {
namespace {

std::string message_param(size_t i) {
  return fmt::format("messages[{}]", i);
}

const char* kind_name(boost::json::kind k) {
  switch (k) {
    case boost::json::kind::null:
      return "null";
    case boost::json::kind::bool_:
      return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_:
      return "a number";
    case boost::json::kind::string:
      return "a string";
    case boost::json::kind::array:
      return "an array";
    case boost::json::kind::object:
      return "an object";
  }
  return "an unknown value";
}

boost::json::object parse_arguments(const tool_call& call, size_t msg, size_t idx) {
  const std::string param =
      fmt::format("{}.tool_calls[{}].function.arguments", message_param(msg), idx);
  boost::system::error_code ec;
  boost::json::value v = parse_json_exact(call.arguments, ec);
  if (ec) {
    throw chat_error(param, fmt::format("not valid JSON ({}); expected the arguments of \"{}\" as "
                                        "a JSON object",
                                        ec.message(), call.name));
  }
  if (!v.is_object()) {
    throw chat_error(param, fmt::format("must be a JSON object, got {}", kind_name(v.kind())));
  }
  return std::move(v.get_object());
}

// Checks what the template cannot render meaningfully, before any output is built.
void validate(const std::vector<message>& messages) {
  if (messages.empty()) throw chat_error("messages", "must contain at least one message");
  bool after_tool_calls = false;  // an assistant turn with calls, then only tool results
  for (size_t i = 0; i < messages.size(); ++i) {
    const message& m = messages[i];
    if (m.content_is_null && !(m.r == role::assistant && !m.tool_calls.empty())) {
      throw chat_error(message_param(i) + ".content",
                       fmt::format("must not be null for a {} message (only an assistant message "
                                   "with tool_calls may omit its content)",
                                   role_name(m.r)));
    }
    if (m.r == role::tool && !after_tool_calls) {
      throw chat_error(message_param(i) + ".role",
                       "a tool message must follow an assistant message with tool_calls "
                       "(possibly after other tool messages)");
    }
    after_tool_calls = (m.r == role::assistant && !m.tool_calls.empty()) ||
                       (m.r == role::tool && after_tool_calls);
  }
}

void append_assistant_calls(std::string& out, const message& m, size_t msg) {
  out += "<|im_start|>assistant";
  const std::string content = m.content();
  if (const std::string_view trimmed = python_strip(content); !trimmed.empty()) {
    out += '\n';
    out += trimmed;
    out += '\n';
  }
  for (size_t j = 0; j < m.tool_calls.size(); ++j) {
    const tool_call& call = m.tool_calls[j];
    out += "\n<tool_call>\n<function=" + call.name + ">\n";
    for (const auto& kv : parse_arguments(call, msg, j)) {
      const auto& v = kv.value();
      out += "<parameter=";
      out += kv.key();
      out += ">\n";
      out += v.is_object() || v.is_array() ? to_python_json(v) : to_python_scalar(v);
      out += "\n</parameter>\n";
    }
    out += "</function>\n</tool_call>";
  }
  out += "<|im_end|>\n";
}

}  // namespace

role parse_role(std::string_view text, std::size_t message_index) {
  if (text == "system") return role::system;
  if (text == "user") return role::user;
  if (text == "assistant") return role::assistant;
  if (text == "tool") return role::tool;
  throw chat_error(
      message_param(message_index) + ".role",
      fmt::format("unknown role \"{}\" (expected system, user, assistant or tool)", text));
}

std::string_view role_name(role r) {
  switch (r) {
    case role::system:
      return "system";
    case role::user:
      return "user";
    case role::assistant:
      return "assistant";
    case role::tool:
      return "tool";
  }
  return "unknown";
}

std::string message::content() const {
  std::string out;
  for (const auto& part : content_parts) out += part;
  return out;
}

std::string render(const std::vector<message>& messages, const std::vector<model::tool_spec>& tools,
                   bool add_generation_prompt) {
  validate(messages);
  std::string out;
  size_t first = 0;
  if (messages[0].r == role::system || !tools.empty()) {
    out += "<|im_start|>system\n";
    if (messages[0].r == role::system) {
      out += messages[0].content();
      first = 1;
    } else {
      out += default_system_text;
    }
    if (!tools.empty()) detail::append_tools_block(out, tools);
    out += "<|im_end|>\n";
  }
  for (size_t i = first; i < messages.size(); ++i) {
    const message& m = messages[i];
    if (m.r == role::assistant && !m.tool_calls.empty()) {
      append_assistant_calls(out, m, i);
    } else if (m.r == role::tool) {
      // validate() guarantees a predecessor; only the first of a run opens the turn.
      if (messages[i - 1].r != role::tool) out += "<|im_start|>user\n";
      out += "<tool_response>\n" + m.content() + "\n</tool_response>\n";
      if (i + 1 == messages.size() || messages[i + 1].r != role::tool) out += "<|im_end|>\n";
    } else {
      out += "<|im_start|>";
      out += role_name(m.r);
      out += '\n' + m.content() + "<|im_end|>\n";
    }
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace conclave::chat
