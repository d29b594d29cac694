// Folding parser events into a complete result, and the whole-text parse built on the
// streaming parser (so the two cannot disagree).
#include "model/toolcall/tool_parser.h"

namespace conclave::toolcall {

void apply_event(parse_result& result, const event& e) {
  switch (e.type) {
    case event::kind::content:
      result.content += e.text;
      break;
    case event::kind::tool_call_start:
      result.calls.push_back({e.id, e.name, ""});
      break;
    case event::kind::tool_call_arguments:
      if (e.index < result.calls.size()) result.calls[e.index].arguments += e.text;
      break;
    case event::kind::tool_call_end:
      break;
    case event::kind::rejected_tool:
      result.rejected_tools.push_back(e.name);
      break;
  }
}

parse_result parse_all(std::string_view text, std::vector<tool_spec> tools, parser_options opts) {
  tool_parser parser(std::move(tools), std::move(opts));
  parse_result result;
  for (const event& e : parser.feed(text)) apply_event(result, e);
  for (const event& e : parser.finish()) apply_event(result, e);
  return result;
}

}  // namespace conclave::toolcall
