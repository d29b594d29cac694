// request_setup: a request turned into what its generations need, before anything runs.
// Enables the request's server-side tools, renders and tokenizes its prompt, fills in
// max_tokens, checks the context length and compiles the tool-call constraint; the next
// tool round's prompt is built the same way. Every refusal is a client error event.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "model/chat/chat_template.h"
#include "model/model_config.h"
#include "model/tokenizer/tokenizer.h"
#include "serve/client_api.h"
#include "serve/server_rounds.h"
#include "serve/tool_runtime.h"

namespace conclave::serve {

/// What every request of a served model shares: its tokenizer and limits.
struct model_text {
  std::shared_ptr<const tokenizer::tokenizer> tok;
  /// The model's chat template; null: the built-in Qwen3-Coder one.
  std::shared_ptr<const chat::chat_template> tmpl;
  int64_t max_model_len = 0;
  std::vector<int32_t> eos_ids;
};

/// The server-side tools a request may enable, and how many rounds it may run.
struct server_tools {
  std::shared_ptr<const tool_runtime> runtime;  ///< null: none on this server
  int32_t max_rounds = 4;
};

/// The first generation of a request, ready to submit.
struct prepared_request {
  std::vector<int32_t> prompt;
  std::optional<server_rounds> rounds;  ///< when the request enabled server-side tools
};

/// The chat template of the tokenizer at `tokenizer_path` (its folder, as transformers
/// looks), or the file `override_path` when not empty. Throws model::model_error.
std::shared_ptr<const chat::chat_template> load_chat_template(const std::string& tokenizer_path,
                                                              const std::string& override_path);

/// The text side of a served model: the tokenizer at `tokenizer_path`, its chat template
/// (or the file `chat_template_path`), the context limit (`max_model_len`, 0: the model's
/// own, and never past it) and the model's end-of-sequence ids. Throws model::model_error
/// for a bad file.
std::shared_ptr<const model_text> load_model_text(const std::string& tokenizer_path,
                                                  const std::string& chat_template_path,
                                                  int64_t max_model_len,
                                                  const model::model_config& mc);

/// True when a generation of `req` parses tool calls out of the model's text.
bool parses_tool_calls(const generation_request& req);

/// Prepares `req` (its tools, max_tokens and constraint are filled in place) or returns
/// the error event that refuses it (400).
std::optional<client_event> prepare_request(generation_request& req, const model_text& text,
                                            const server_tools& tools, prepared_request& out);

/// After a tool round (rounds.next_round() already extended req.messages): the next
/// prompt in `prompt`, and the round's constraint set in req. Returns an error event; or
/// nothing with `prompt` empty when the conversation no longer fits the context (the
/// request then finishes with "length").
std::optional<client_event> prepare_next_round(generation_request& req, const model_text& text,
                                               std::vector<int32_t>& prompt);

/// How often one tool call is started again after its invocation died.
inline constexpr int max_tool_restarts = 2;

/// Tool invocations that died before their result came: each call is started again up
/// to max_tool_restarts times, then the model gets an error result for it.
class tool_restarts {
 public:
  /// Forgets the counts (a new round).
  void clear() { counts_.clear(); }
  /// The invocation of `call` (of request `request_id`) went down (`why`): nothing when it
  /// is to be started again (the restart is counted and logged), else the error result
  /// the model gets.
  std::optional<tool_call_result> on_down(const tool_call_request& call, const std::string& why,
                                          const std::string& request_id = {});
  int restarts(const std::string& call_id) const;

 private:
  std::map<std::string, int> counts_;
};

}  // namespace conclave::serve
