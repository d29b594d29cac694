// Streaming parser for JSON tool calls inside `<tool_call>...</tool_call>` (Qwen3, QwQ,
// Hermes: `<tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>`).
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "model/toolcall/tool_parser.h"

namespace conclave::toolcall {

/// Same events, options, content whitespace rule and chunking guarantee as tool_parser
/// (tool_parser.h). Rules:
///
/// Calls. A call starts at `<tool_call>` followed (after at most 256 bytes of
/// whitespace) by a JSON object whose "name" is a tool. The object's members are read in
/// any order: "name", "arguments" (or "parameters"), others ignored. A `<tool_call>` not
/// followed by an object, an object that is not well-formed before the call could start,
/// or a name that is not a tool, leaves the tag as content and scanning goes on right
/// after it (the object then reads as content). A call of an unknown tool under
/// unknown_tool_policy::reject also gives a `rejected_tool` event.
///
/// Arguments. An object given after "name" streams: each member once its key is read;
/// string values (of string schemas and undeclared parameters) as they arrive, other
/// values once complete. Values are typed by the schema as the XML parser types them
/// (value_convert.h): "5" for an integer is 5, "null" for a number is null; a JSON value
/// of another type than the schema's stays as written. A member given twice keeps its
/// first value. Arguments given as a JSON string holding an object (double-encoded) or a
/// Python dict are read as that object; "arguments" before "name" wait for the name.
/// No arguments: {}. Output is `{"a": "x", "n": 5}` whatever the model's spacing.
///
/// End. After the object, at most 256 bytes of whitespace and `</tool_call>`; a missing
/// `</tool_call>` is tolerated (the call ends before a new `<tool_call>`, other text or the
/// end of text). Text that breaks the object after the call started ends the call
/// (open strings and objects closed) and is content from where it broke; so is the rest
/// of an object cut off by the end of text, whose call keeps what it had.
class hermes_parser {
 public:
  explicit hermes_parser(std::vector<tool_spec> tools, parser_options opts = {});
  ~hermes_parser();
  hermes_parser(hermes_parser&&) noexcept;
  hermes_parser& operator=(hermes_parser&&) noexcept;

  std::vector<event> feed(std::string_view text);
  std::vector<event> finish();
  bool any_calls() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace conclave::toolcall
