// A checkpoint's chat template: the Jinja text that turns a conversation into prompt
// text, found as Hugging Face finds it, rendered by model/jinja/ with the variables HF's
// apply_chat_template passes, plus what the text tells about the model's output (its
// tool-call format, whether it thinks). docs/chat-templates.md.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/chat/conversation.h"
#include "model/tool_spec.h"

namespace conclave::jinja {
class compiled_template;
}

namespace conclave::chat {

/// How a model writes tool calls.
using tool_format = model::tool_call_format;

std::string_view tool_format_name(tool_format f);

class chat_template {
 public:
  /// conclave's Qwen3-Coder template (model/chat/templates/qwen3_coder.jinja).
  static const chat_template& builtin();

  /// Compiles `source`; `origin` names where it came from (for messages). Throws
  /// model::model_error naming the origin and line for a template that does not compile
  /// or uses what the engine does not support.
  static chat_template from_source(std::string source, std::string origin);

  /// The template a model folder uses, as transformers picks it: `override_file` when
  /// given, else `chat_template.jinja`, else `chat_template` in tokenizer_config.json (a
  /// string, or a list of named templates: "default", and "tool_use" when tools are
  /// given), else the built-in one. Special tokens (bos_token, eos_token, ...) come from
  /// tokenizer_config.json. Throws model::model_error for an unreadable or bad template.
  static chat_template for_model(const std::filesystem::path& model_dir,
                                 const std::optional<std::filesystem::path>& override_file = {});

  /// The prompt text. `kwargs_json` is `chat_template_kwargs` (a JSON object's text, or
  /// empty): extra template variables such as enable_thinking. Validates first (see
  /// validate()); throws chat_error for tool-call arguments that are not a JSON object or
  /// bad kwargs, and for the template's raise_exception() (param `messages`); throws
  /// std::runtime_error for any other failure of the template.
  std::string render(const std::vector<message>& messages,
                     const std::vector<model::tool_spec>& tools, bool add_generation_prompt,
                     std::string_view kwargs_json = {}) const;

  tool_format tools() const { return format_; }
  /// The template writes `<think>` blocks: the model reasons before it answers.
  bool thinks() const { return thinks_; }
  /// Where the template came from ("built-in Qwen3-Coder", a file path, ...).
  const std::string& origin() const { return origin_; }

 private:
  struct variant {
    std::string name;  // "" for a single template
    std::string source;
    std::shared_ptr<const jinja::compiled_template> compiled;
  };
  std::vector<variant> variants_;
  std::string origin_;
  tool_format format_ = tool_format::qwen3_coder_xml;
  bool thinks_ = false;
  std::vector<std::pair<std::string, std::string>> special_tokens_;
};

/// Renders with the built-in Qwen3-Coder template: what a checkpoint without a template of
/// its own gets. Throws chat_error as chat_template::render does.
std::string render(const std::vector<message>& messages, const std::vector<model::tool_spec>& tools,
                   bool add_generation_prompt = true);

}  // namespace conclave::chat
