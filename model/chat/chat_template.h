// The Qwen3-Coder chat template: an OpenAI-shaped conversation plus tool definitions
// rendered into the prompt text the model was trained on (docs: qwen3-coder-format.md).
#pragma once

#include <cstddef>
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
/// for an assistant message with tool calls). `tool_call_id` and `name` are accepted
/// but not rendered: the template does not show them.
struct message {
  role r = role::user;
  std::vector<std::string> content_parts;
  bool content_is_null = false;
  std::vector<tool_call> tool_calls;
  std::string tool_call_id;
  std::string name;

  /// The content parts joined ("" when null).
  std::string content() const;
};

/// The default system text the template uses when tools are given and the first message
/// is not a system message.
inline constexpr std::string_view default_system_text =
    "You are Qwen, a helpful AI assistant that can interact with a computer to solve tasks.";

/// Renders the conversation as Qwen3-Coder prompt text; `tools` are the functions the model
/// may call (OpenAI `tools[i].function`).
///
/// - A first `system` message becomes the system turn; with tools the tool block is
///   appended to it (or to default_system_text when there is no system message). With no
///   system message and no tools there is no system turn (plain ChatML). A later system
///   message is rendered where it stands as `<|im_start|>system\n...<|im_end|>\n`, as the
///   reference template does.
/// - Tool-call arguments are parsed and rendered per key: objects and arrays as
///   to_python_json, strings raw, other scalars as Python prints them (`True`, `False`,
///   `None`, `5`, `1.0`), which is what the reference template (Jinja `| string` on the
///   json.loads result) shows the model.
/// - Consecutive tool messages share one user turn of `<tool_response>` blocks.
/// - `add_generation_prompt` appends `<|im_start|>assistant\n`.
///
/// Throws chat_error for: no messages (param `messages`); null content except on an
/// assistant message with tool calls (`messages[i].content`); a tool message not directly
/// after an assistant message with tool calls or another such tool message
/// (`messages[i].role`); arguments that are not JSON or not a JSON object
/// (`messages[i].tool_calls[j].function.arguments`).
std::string render(const std::vector<message>& messages, const std::vector<model::tool_spec>& tools,
                   bool add_generation_prompt = true);

}  // namespace conclave::chat
