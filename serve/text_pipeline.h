// text_pipeline: a request's generated tokens as client events, pushed to a sink. Incremental
// UTF-8-safe detokenisation, stop strings (matched across token boundaries), the streaming
// tool-call parser, the server-side tool rounds' routing, and the logprobs that ride
// on the next content event. Plain C++: the request_session actor feeds it tokens and
// sends what comes out; tests feed it directly.
#pragma once

#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/logprobs.h"
#include "engine/stop_matcher.h"
#include "model/chat/conversation.h"
#include "model/chat/reasoning_parser.h"
#include "model/tokenizer/tokenizer.h"
#include "model/toolcall/call_parser.h"
#include "serve/client_api.h"
#include "serve/server_rounds.h"

namespace conclave::serve {

class text_pipeline {
 public:
  /// `request_id` names the request in logs.
  text_pipeline(std::shared_ptr<const tokenizer::tokenizer> tok, std::string request_id);

  /// Starts a generation (the first, or a tool round's): tool calls of `tools` are parsed
  /// when `parse_tools`; `stop` are the stop strings; `rounds` (may be null, must outlive
  /// the generation) takes server-side calls out of the client's stream. `format` says how
  /// tool calls are written and whether reasoning is split off (reasoning_content); tool
  /// calls are parsed in the answer only.
  void begin(const std::vector<model::tool_spec>& tools, bool parse_tools,
             const std::vector<std::string>& stop, server_rounds* rounds,
             output_format format = {});

  /// The same for a generation of `req`: its tools (parsed when parses_tool_calls(req)),
  /// stop strings and output format.
  void begin(const generation_request& req, server_rounds* rounds);

  /// Text that was not generated but is sent as content (a completion's echo).
  void echo(const std::string& text, client_sink& out);

  /// One sampled token. `ends` is true for the token that stopped generation on its own
  /// (EOS or a stop id): it is not text. `lp` is its logprobs, when asked. Returns true
  /// when a stop string matched: the generation is over (the text after it is dropped).
  bool push(int32_t token, bool ends, const engine::token_logprobs* lp, client_sink& out);

  /// The generation ended with `reason` ("stop", "length"): flushes the detokenizer, the
  /// stop matcher and the parser. Returns the finish reason the client sees
  /// ("tool_calls" when the model called client tools).
  std::string finish(std::string reason, client_sink& out);

  /// Logprobs not yet sent with an event (they go with `finished`).
  std::vector<logprob_entry> take_logprobs() { return std::exchange(pending_logprobs_, {}); }

 private:
  void emit_text(const std::string& text, client_sink& out);
  void emit_pieces(std::vector<chat::reasoning_parser::piece> pieces, client_sink& out);
  void emit_content(const std::string& text, client_sink& out);
  void emit_parser_events(const std::vector<toolcall::event>& events, client_sink& out);

  std::shared_ptr<const tokenizer::tokenizer> tok_;
  std::string request_id_;
  std::optional<tokenizer::incremental_detokenizer> detok_;
  std::optional<engine::stop_matcher> stops_;
  std::optional<chat::reasoning_parser> reasoning_;
  std::optional<toolcall::call_parser> parser_;
  /// Draws tool-call ids when the request has a seed (else the parser's own generator).
  std::optional<std::mt19937_64> ids_rng_;
  server_rounds* rounds_ = nullptr;
  bool one_call_ = false;   // parallel_tool_calls: false
  bool call_done_ = false;  // ... and its one call is complete: the rest is dropped
  std::vector<logprob_entry> pending_logprobs_;
};

/// A token's raw bytes, or nothing for an id the tokenizer does not know (a padded
/// embedding row never sampled when sampling_vocab_size is set, but logits may rank it).
std::string token_text(const tokenizer::tokenizer& tok, int32_t id);

}  // namespace conclave::serve
