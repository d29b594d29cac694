// tool_spec: a tool as the model sees it (name, description, JSON schema of the
// arguments). One struct for all four users: the chat template renders it into the
// prompt, the tool-call parser reads calls of it, the constrained grammar compiles it and
// the toolkit runs it, so a tool passes between them without conversions.
//
// The schema is JSON text, not a parsed object, so this header (and every header that
// holds tools, such as the grammar's) stays free of boost::json: JSON is parsed in .cpp
// files through tool_spec_json.h. Each consumer parses where it already does work far
// larger than the parse: the chat template per render (next to tokenizing the prompt),
// the grammar per compile (cached by schema), the parser once in its constructor (kept
// for the whole generation), the toolkit per invocation (next to running the tool).
#pragma once

#include <optional>
#include <string>

namespace conclave::model {

/// How a model writes tool calls (its chat template teaches one).
enum class tool_call_format {
  qwen3_coder_xml,  ///< <tool_call><function=NAME><parameter=P>...</parameter></function></tool_call>
  hermes_json       ///< <tool_call>{"name": ..., "arguments": {...}}</tool_call> (Qwen3, Hermes)
};

struct tool_spec {
  std::string name;
  /// Absent and empty differ: the chat template shows an empty description, not an absent one.
  std::optional<std::string> description;
  /// The arguments' JSON schema as the text of a JSON object ("{}": none given). Written by
  /// set_parameters (boost::json::serialize) so equal schemas have equal text: the grammar
  /// cache is keyed by it.
  std::string parameters = "{}";
};

}  // namespace conclave::model
