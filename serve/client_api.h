// client_api: the typed boundary between net/ and serve/. net/ decodes the
// wire format into a generation_request and receives client_events through a
// client_sink; no JSON and no CAF types cross this line.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/sampling_params.h"
#include "model/chat/chat_template.h"
#include "model/chat/conversation.h"
#include "model/tool_spec.h"

namespace conclave::serve {

/// The most alternatives a request may ask per token (OpenAI's limit, the engine's too).
inline constexpr int32_t max_top_logprobs = 20;

enum class tool_choice_mode { auto_, none, required, function };

/// A request as the client asked for it, decoded from OpenAI JSON by net/.
/// How a thinking model's output is split into reasoning and answer (from the chat template;
/// set by request setup): not at all, when it starts with `<think>`, or from the start
/// (the prompt opened the block).
enum class reasoning_mode { off, detect, open };

/// What the text pipeline needs to know of the model's output format.
struct output_format {
  chat::tool_format tools = chat::tool_format::qwen3_coder_xml;
  reasoning_mode reasoning = reasoning_mode::off;
  /// `parallel_tool_calls: false`: generation ends once the first tool call is complete.
  bool one_call = false;
};

struct generation_request {
  enum class kind { chat, completion };
  kind type = kind::chat;
  std::string id;     ///< "chatcmpl-..." / "cmpl-...", chosen by net/
  std::string model;  ///< as requested (already checked against the served name)
  // chat
  std::vector<chat::message> messages;
  std::vector<model::tool_spec> tools;
  tool_choice_mode tool_choice = tool_choice_mode::auto_;
  std::string tool_choice_name;
  /// Server-side tools to enable (names registered on the server; docs/tools.md) and the
  /// tool_choice of each later round ("auto", "none", "required" or a tool name).
  std::vector<std::string> server_tools;
  std::vector<std::string> server_tool_choices;
  /// `chat_template_kwargs`: extra template variables (JSON object text, "" when absent),
  /// such as {"enable_thinking": false}.
  std::string chat_template_kwargs;
  /// `response_format`: structured outputs. json_object: any JSON object; json_schema: a
  /// value valid under `response_schema` (JSON text). Enforced by constrained decoding.
  enum class response_kind { text, json_object, json_schema };
  response_kind response_format = response_kind::text;
  std::string response_schema;
  /// `parallel_tool_calls` (default true); false allows one call per response.
  bool parallel_tool_calls = true;
  /// `add_generation_prompt` (default true): end the prompt with the assistant's turn opener.
  bool add_generation_prompt = true;
  /// Set by request setup from the chat template and the rendered prompt.
  output_format output;
  // completion: text, or token ids when prompt_ids is non-empty
  std::string prompt;
  std::vector<int32_t> prompt_ids;
  bool echo = false;
  // both
  /// Choices to generate (`n`); more than one run as one request each, sharing the
  /// prompt's prefill (serve/choice_fanout.h).
  int32_t n = 1;
  /// A context limit tighter than the model's (the API key's max_context); 0: the model's.
  int64_t max_context = 0;
  engine::sampling_params sampling;
  std::vector<std::string> stop;
};

struct usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

/// One sampled token's log-probability (`token` holds its raw bytes, which may be a
/// fragment of a UTF-8 character) and, when asked, its strongest alternatives.
struct logprob_alternative {
  std::string token;
  float logprob = 0.0f;
};
struct logprob_entry {
  std::string token;
  float logprob = 0.0f;
  std::vector<logprob_alternative> top;
};

/// One thing for the client, in order: `started` (prompt accepted, usage.prompt_tokens
/// set) or `error` first; then content / tool-call events; then `finished`.
struct client_event {
  enum class kind {
    started,
    content,
    reasoning,  ///< text: reasoning_content (a thinking model's thoughts)
    tool_call_start,
    tool_call_arguments,
    tool_call_end,
    server_tool_call,  ///< a server-side call, whole: call_id, name, text = arguments
    tool_result,       ///< its result: call_id, name, text = content, tool_outcome
    choice_end,        ///< n > 1: choice `choice` ended (finish_reason, its usage); more follow
    finished,
    error
  };
  kind type = kind::content;
  std::string text;   ///< content or argument delta; error message
  size_t index = 0;   ///< tool call index
  size_t choice = 0;  ///< the choice it belongs to (n > 1; see serve/choice_fanout.h)
  std::string call_id, name;
  std::string tool_outcome;   ///< tool_result: ok, invalid_arguments, error, failed, cancelled
  std::string finish_reason;  ///< "stop", "length", "tool_calls"
  usage tokens;
  /// Logprobs of the tokens sampled since the last event that carried some (content and
  /// finished events carry them; only when the request asked).
  std::vector<logprob_entry> logprobs;
  /// finished: seconds of the engine steps that sampled this request's tokens (a step
  /// serves the whole batch, so under load they overlap other requests' time).
  double engine_seconds = 0;
  /// finished: the replica that produced the last tokens (-1 where unknown).
  int replica = -1;
  int status = 0;  ///< error: HTTP status (400, 429, 503, 500)
  std::string error_type, error_param, error_code;

  static client_event error(int status, std::string message, std::string type,
                            std::string param = {}, std::string code = {});
};

/// Receives a request's events. Called from actor threads: implementations post the
/// event to their own I/O executor and must not block.
class client_sink {
 public:
  virtual ~client_sink() = default;
  virtual void push(client_event e) = 0;
};

/// The caller's handle on a running request.
class request_handle {
 public:
  virtual ~request_handle() = default;
  /// Stops the request (client gone or asked to cancel); no further events are sent.
  /// Its sequence leaves the engine within one step and its KV blocks are freed.
  virtual void cancel() = 0;
};

}  // namespace conclave::serve
