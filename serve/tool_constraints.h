// Constrained tool calls for a request: with tool_choice `required` or a named function,
// the token constraint (engine/constrained/) that makes the model's output exactly such
// a call. The vocabulary trie is built once per tokenizer and compiled tool grammars are
// cached by schema, so both are shared by every request of a server.
#pragma once

#include <memory>
#include <vector>

#include "engine/constrained/token_constraint.h"
#include "model/tokenizer/tokenizer.h"
#include "serve/client_api.h"

namespace conclave::serve {

/// The constraint for `req`, or null when it needs none (not a chat, no tools,
/// tool_choice auto/none, no end tokens). `end_tokens` are the model's EOS ids. Throws
/// std::invalid_argument when the tools cannot be compiled (a schema too deep).
std::shared_ptr<const engine::constrained::token_constraint> tool_constraint_for(
    const generation_request& req, const std::shared_ptr<const tokenizer::tokenizer>& tok,
    const std::vector<int32_t>& end_tokens);

/// The structured-output constraint of `req` (response_format json_object or json_schema),
/// or null for text. Throws engine::constrained::unsupported_schema for a schema keyword
/// it cannot enforce (its path starts at `schema`).
std::shared_ptr<const engine::constrained::token_constraint> response_constraint_for(
    const generation_request& req, const std::shared_ptr<const tokenizer::tokenizer>& tok,
    const std::vector<int32_t>& end_tokens);

/// The vocabulary of `tok` as constrained decoding sees it: every token's bytes, with
/// special tokens left out (end tokens are handled apart).
std::shared_ptr<const engine::constrained::vocabulary> constraint_vocabulary(
    const std::shared_ptr<const tokenizer::tokenizer>& tok);

}  // namespace conclave::serve
