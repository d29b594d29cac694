// The tool-call parser for a model's format: XML (tool_parser) or JSON (hermes_parser),
// behind one interface for the text pipeline.
#pragma once

#include <string_view>
#include <variant>
#include <vector>

#include "model/toolcall/hermes_parser.h"
#include "model/toolcall/tool_parser.h"

namespace conclave::toolcall {

class call_parser {
 public:
  call_parser(model::tool_call_format format, std::vector<tool_spec> tools,
              parser_options opts = {});

  std::vector<event> feed(std::string_view text);
  std::vector<event> finish();
  bool any_calls() const;

 private:
  std::variant<tool_parser, hermes_parser> p_;
};

/// Parses a whole text in `format` by feeding it to a parser.
parse_result parse_all(model::tool_call_format format, std::string_view text,
                       std::vector<tool_spec> tools, parser_options opts = {});

}  // namespace conclave::toolcall
