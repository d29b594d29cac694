// The table of model outputs the tool-call parser is checked against: each with the
// content and calls it must give (for every chunking of the text).
#pragma once

#include <string>
#include <vector>

#include "model/toolcall/tool_parser.h"

namespace conclave::test {

struct expected_call {
  std::string name;
  std::string arguments;  // JSON, compared structurally (numbers by value)
};

struct tool_case {
  std::string name;
  std::string text;
  std::string content;
  std::vector<expected_call> calls;
  toolcall::unknown_tool_policy policy = toolcall::unknown_tool_policy::keep_as_content;
  std::vector<std::string> rejected = {};
};

/// All cases of the XML (Qwen3-Coder) parser; the tools are tests/data/tools/tools.json.
const std::vector<tool_case>& tool_cases();
/// All cases of the JSON (Qwen3 / Hermes) parser, same tools.
const std::vector<tool_case>& hermes_cases();

/// A well-formed call as the model writes it: `<tool_call>\n<function=NAME>\n` + per
/// argument `<parameter=P>\nV\n</parameter>\n` + `</function>\n</tool_call>`.
std::string well_formed(const std::string& name,
                        const std::vector<std::pair<std::string, std::string>>& args);

}  // namespace conclave::test
