// A conversation and its tools as the Jinja values Hugging Face's apply_chat_template
// gives a template (vLLM's shape: tool-call arguments parsed into objects).
#pragma once

#include <vector>

#include "model/chat/conversation.h"
#include "model/jinja/value.h"
#include "model/tool_spec.h"

namespace conclave::chat {

/// Each message as a dict: role, content ("" when null, parts joined), then only when
/// present reasoning_content, tool_calls ([{id, type: "function", function: {name,
/// arguments}}], arguments parsed from JSON), tool_call_id and name. Throws chat_error
/// for arguments that are not a JSON object.
jinja::value messages_value(const std::vector<message>& messages);

/// Each tool as {type: "function", function: {name, description (when given),
/// parameters}}; none when there are no tools (as HF passes tools=None).
jinja::value tools_value(const std::vector<model::tool_spec>& tools);

}  // namespace conclave::chat
