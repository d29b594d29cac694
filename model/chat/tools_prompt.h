// The `# Tools` section of the Qwen3-Coder system turn (internal to conclave_chat).
#pragma once

#include <string>
#include <vector>

#include "model/chat/chat_template.h"

namespace conclave::chat::detail {

/// Appends `\n\n# Tools ... </IMPORTANT>` for `tools` (non-empty) to `out`.
void append_tools_block(std::string& out, const std::vector<model::tool_spec>& tools);

}  // namespace conclave::chat::detail
