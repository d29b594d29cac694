// Streaming parser for Qwen3-Coder's XML-style tool calls (`<tool_call><function=NAME>
// <parameter=ARG>VALUE</parameter></function></tool_call>`) over decoded model text.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/tool_spec.h"

namespace conclave::toolcall {

/// The callable tools: each one's name and the JSON schema of its arguments (OpenAI
/// `function.parameters`: `{"type":"object","properties":{...}}`).
using model::tool_spec;

/// What happens to `<function=NAME>` when NAME is not one of the tools.
enum class unknown_tool_policy {
  keep_as_content,  ///< the raw text stays content, silently
  reject,           ///< the raw text stays content and a `rejected_tool` event names the tool
};

struct parser_options {
  unknown_tool_policy unknown_tools = unknown_tool_policy::keep_as_content;
  /// Source of the random bits in call ids (`call_` + 24 hex); empty: a generator seeded
  /// from std::random_device. Inject one to get deterministic ids.
  std::function<uint64_t()> random;
};

/// One piece of parser output, in text order.
struct event {
  enum class kind {
    content,              ///< `text`: assistant text outside tool calls
    tool_call_start,      ///< `index`, `id`, `name`: a call begins; its arguments are still empty
    tool_call_arguments,  ///< `index`, `text`: the next piece of the call's JSON arguments
    tool_call_end,        ///< `index`: the call's arguments are complete
    rejected_tool,        ///< `name`: a call to an unknown tool, kept as content (policy reject)
  };
  kind type = kind::content;
  size_t index = 0;
  std::string id;
  std::string name;
  std::string text;
};

/// A complete call: `arguments` is the JSON object text (the concatenation of its deltas).
struct parsed_call {
  std::string id;
  std::string name;
  std::string arguments;
};

/// Everything one generation produced.
struct parse_result {
  std::string content;
  std::vector<parsed_call> calls;
  std::vector<std::string> rejected_tools;
  /// True when the response's finish_reason is `tool_calls` rather than `stop`.
  bool has_calls() const { return !calls.empty(); }
};

/// Folds one event into `result` (what a non-streaming response returns).
void apply_event(parse_result& result, const event& e);

/// The streaming state machine. Feed decoded text in chunks split anywhere (even inside a
/// tag or a UTF-8 character); the final result does not depend on the chunking. Text that
/// could still turn out to be structure is held back until it is decided (at most about
/// 1 KiB: whitespace look-ahead is bounded by 256 bytes, names by 256 bytes). Exact rules:
///
/// Calls. A call starts at `<tool_call>`, at most 256 bytes of whitespace, `<function=NAME>`,
/// or at a bare `<function=NAME>`, only when NAME is a tool and the function tag is followed
/// (after at most 256 bytes of whitespace) by a tag or the end of text. Otherwise the tag
/// text is content and scanning goes on right after it. A well-formed call of an unknown
/// tool stays content; under unknown_tool_policy::reject a `rejected_tool` event names it.
///
/// Content. Text outside calls is content byte for byte, except whitespace touching a call:
/// it is kept only where it separates two pieces of content ("A\n<call>\nB" -> "A\n\nB").
///
/// Inside a call. `<parameter=NAME>` opens a parameter (any name); `</function>` ends the
/// arguments; `</tool_call>` or a new `<tool_call>`/`<function=` ends the call; any other
/// text, a parameter given twice, more than 256 bytes of whitespace, or the end of text
/// also end it. Closers repair the open-element stack: closing an element closes what is
/// open inside it, and closers of elements that are not open are dropped.
///
/// Values. One leading and one trailing newline are not part of a value. A tag inside a
/// value ends it only where what follows makes sense as structure. Read the closers that
/// start there (`</parameter>`, `</function>`, `</tool_call>`, whitespace between, at most
/// 4), then the next item Y:
///  - no closer: Y is `<parameter=N>` with N a schema property not used in this call yet,
///    or the start of a call of a known tool (as above) that is not a literal block: a
///    call opened inside a value is text up to its `</tool_call>` when the value goes on
///    after it, and a real call (the value's closers forgotten) when the text ends there
///    or another call follows (held back until that is read);
///  - one closer: Y is the end of text, `<tool_call>` or `<function=`, or the closer is
///    `</parameter>` and Y is `<parameter=N>` with N not used yet and declared by the
///    schema (any name when the tool declares no parameters);
///  - two or more closers: anything but `<parameter=N>` with N used already.
/// Everything else is value text (so file contents may hold these tags). Values of string
/// schemas, and of parameters the schema does not declare, stream as they arrive; typed
/// values are converted by the schema (value_convert.h) and sent once complete. Arguments
/// are written as `{"a": "x", "n": 5}`; every delta is whole UTF-8 characters.
class tool_parser {
 public:
  /// Throws std::invalid_argument for an empty or duplicate tool name, or parameters that
  /// are not a JSON object. The schemas are parsed here, once for the whole generation.
  explicit tool_parser(std::vector<tool_spec> tools, parser_options opts = {});
  ~tool_parser();
  tool_parser(tool_parser&&) noexcept;
  tool_parser& operator=(tool_parser&&) noexcept;

  /// Consumes the next piece of decoded text; returns what it decided.
  std::vector<event> feed(std::string_view text);
  /// End of generation: releases held text and closes whatever is open. Call once.
  std::vector<event> finish();
  /// Whether a tool call has started so far.
  bool any_calls() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Parses a whole text by feeding it to a tool_parser (so both agree by construction).
parse_result parse_all(std::string_view text, std::vector<tool_spec> tools,
                       parser_options opts = {});

}  // namespace conclave::toolcall
