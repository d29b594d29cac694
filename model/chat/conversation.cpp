// An OpenAI-shaped conversation: roles and the checks every template relies on.
#include "model/chat/conversation.h"

#include <spdlog/fmt/fmt.h>

namespace conclave::chat {
namespace {

std::string message_param(size_t i) {
  return fmt::format("messages[{}]", i);
}

}  // namespace

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

}  // namespace conclave::chat
