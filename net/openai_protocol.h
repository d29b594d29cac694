// openai_protocol: OpenAI's JSON wire format <-> conclave's typed requests and events.
// Decoding validates every field a client may send and names the offending one in
// `param`; encoding writes the exact chunk and response shapes OpenAI clients expect.
#pragma once

#include <boost/json/fwd.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "serve/client_api.h"
#include "serve/service.h"

namespace conclave::net {

/// An error in OpenAI's shape: {"error":{"message","type","param","code"}} with a status.
struct api_error {
  api_error() = default;
  api_error(int status_, std::string message_, std::string type_ = "invalid_request_error",
            std::string param_ = {}, std::string code_ = {})
      : status(status_),
        message(std::move(message_)),
        type(std::move(type_)),
        param(std::move(param_)),
        code(std::move(code_)) {}

  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;
  std::string code;
  int retry_after_s = 0;  ///< 429: the Retry-After header's seconds (1 when 0)
  /// The JSON body.
  std::string json() const;
};

/// A decoded generation request plus how to deliver it.
struct decoded_request {
  serve::generation_request req;
  bool stream = false;
  bool include_usage = false;
  std::optional<int32_t> max_tokens;  ///< unset: what remains of the context
};

/// What the decoders need to know about the server.
struct protocol_context {
  std::string served_model;
  int64_t max_model_len = 0;
  /// When set: the served model a request's `model` names (a name or an alias), or
  /// nothing (404); decoding sets generation_request::model to it. Unset: only
  /// `served_model` is served.
  std::function<std::optional<std::string>(std::string_view)> resolve_model;
};

/// Decodes a /v1/chat/completions body.
std::variant<decoded_request, api_error> decode_chat_request(std::string_view body,
                                                             const protocol_context& ctx);
/// The same, for a body already parsed (a WebSocket frame's "body").
std::variant<decoded_request, api_error> decode_chat_request(const boost::json::object& body,
                                                             const protocol_context& ctx);
/// Decodes a /v1/completions body.
std::variant<decoded_request, api_error> decode_completion_request(std::string_view body,
                                                                   const protocol_context& ctx);

/// The same, for a body already parsed.
std::variant<decoded_request, api_error> decode_completion_request(const boost::json::object& body,
                                                                   const protocol_context& ctx);

/// Builds response JSON for one request as its events arrive (streamed chunks, or one
/// final object for non-streamed requests).
class response_writer {
 public:
  response_writer(const decoded_request& d, std::string model, int64_t created);

  /// The SSE payloads (without "data: ") this event produces when streaming.
  std::vector<std::string> stream_event(const serve::client_event& e);
  /// Folds the event into the non-streamed response.
  void accumulate(const serve::client_event& e);
  /// The non-streamed response body (after `finished`).
  std::string final_json();
  const serve::usage& tokens() const { return usage_; }
  size_t num_tool_calls() const;
  double engine_ms() const { return engine_seconds_ * 1000.0; }
  const std::string& id() const { return id_; }

 private:
  std::string chunk(size_t choice, const std::string& delta_or_choice_body,
                    const char* finish_reason,
                    const std::vector<serve::logprob_entry>& logprobs = {});
  /// The choice's "logprobs" value for `entries`, in the chat or the completions shape
  /// (completions count text offsets on from `text_offset`).
  std::string logprobs_json(const std::vector<serve::logprob_entry>& entries, size_t& text_offset);
  boost::json::value logprobs_value(const std::vector<serve::logprob_entry>& entries,
                                    size_t& text_offset);

  bool chat_;
  bool include_usage_;
  std::string id_, model_;
  int64_t created_;
  struct call {
    std::string id, name, arguments;
  };
  /// Server-side tool calls and their results (docs/tools.md), in order.
  struct server_call {
    std::string id, name, arguments, outcome, content;
  };
  /// What one choice accumulated (n > 1: one each, by client_event::choice).
  struct choice_state {
    std::string content, reasoning, finish_reason;
    std::vector<call> calls;
    std::vector<server_call> server_calls;
    std::vector<serve::logprob_entry> logprobs;  ///< all of them, for the non-streamed body
    size_t text_offset = 0;  ///< completions: characters before the next streamed token
  };
  choice_state& state(size_t choice);
  std::vector<choice_state> choices_;
  serve::usage usage_;
  bool want_logprobs_ = false;
  bool streaming_ = false;
  double engine_seconds_ = 0;
};

/// The JSON of GET /v1/models: every model with its aliases, state and context length.
std::string models_json(const std::vector<serve::model_status>& models, int64_t created);

/// JSON string literal (quotes included) of UTF-8 text.
std::string json_string(std::string_view s);

}  // namespace conclave::net
