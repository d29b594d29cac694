// OpenAI shapes for the tool-call parser: reading a request's `tools` array and writing
// an assistant message or a streaming delta from parser output.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <vector>

#include "model/toolcall/tool_parser.h"

namespace conclave::toolcall {

/// Reads an OpenAI `tools` array: `[{"type":"function","function":{"name","description",
/// "parameters"}}]` (`parameters` may be absent; `description` is not read: the parser has
/// no use for it). Throws std::invalid_argument, one line naming the entry at fault.
std::vector<tool_spec> tools_from_openai(const boost::json::value& tools);

/// The assistant message fields of a complete result:
/// `{"content": TEXT or null when empty, "tool_calls": [{"id","type":"function",
/// "function":{"name","arguments"}}]}`.
boost::json::object to_openai_message(const parse_result& result);

/// The streaming `delta` for one event: `{"content": TEXT}`, a call's first delta
/// `{"tool_calls":[{"index","id","type":"function","function":{"name","arguments":""}}]}`
/// or an arguments delta `{"tool_calls":[{"index","function":{"arguments"}}]}`; nullopt
/// for events with no delta (tool_call_end, rejected_tool).
std::optional<boost::json::object> to_openai_delta(const event& e);

}  // namespace conclave::toolcall
