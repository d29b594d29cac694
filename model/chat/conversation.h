// An OpenAI-shaped conversation (messages, tool calls, tool results) and its checks; the
// templates that render it into prompt text are in prompt_template.h.
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/tool_spec.h"

namespace conclave::chat {

/// Bad conversation input. `what()` is one line starting with the offending field
/// (`messages[2].tool_calls[0].function.arguments: ...`); `param()` is that field alone,
/// for OpenAI's `error.param`.
class chat_error : public std::invalid_argument {
 public:
  chat_error(std::string param, const std::string& reason)
      : std::invalid_argument(param + ": " + reason), param_(std::move(param)) {}
  const std::string& param() const { return param_; }

 private:
  std::string param_;
};

/// Who wrote a message. OpenAI's `developer` role is not accepted here; the HTTP layer
/// may map it to `system` before calling parse_role.
enum class role { system, user, assistant, tool };

/// "system", "user", "assistant" or "tool" to the enum; anything else throws chat_error
/// with param `messages[INDEX].role`.
role parse_role(std::string_view text, std::size_t message_index);

/// The role's OpenAI name (also its ChatML name).
std::string_view role_name(role r);

/// One call an assistant made (OpenAI `tool_calls[i]`).
struct tool_call {
  std::string id;
  std::string name;
  /// `function.arguments` exactly as the client sent it: JSON text of an object.
  std::string arguments;
};

/// One conversation message. Content is a string (one part), an array of text parts
/// (concatenated without separator, as OpenAI does) or null (`content_is_null`, only
/// for an assistant message with tool calls). `reasoning_content` is an assistant's
/// earlier thinking, sent back by the client (templates that think show it).
struct message {
  role r = role::user;
  std::vector<std::string> content_parts;
  bool content_is_null = false;
  std::optional<std::string> reasoning_content;
  std::vector<tool_call> tool_calls;
  std::string tool_call_id;
  std::string name;

  /// The content parts joined ("" when null).
  std::string content() const;
};

/// Checks what no template can render meaningfully, before any output is built. Throws
/// chat_error for: no messages (param `messages`); null content except on an assistant
/// message with tool calls (`messages[i].content`); a tool message not directly after an
/// assistant message with tool calls or another such tool message (`messages[i].role`).
void validate(const std::vector<message>& messages);

}  // namespace conclave::chat
