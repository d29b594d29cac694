// The parser for a format (see call_parser.h).
#include "model/toolcall/call_parser.h"

namespace conclave::toolcall {
namespace {

std::variant<tool_parser, hermes_parser> make(model::tool_call_format format,
                                              std::vector<tool_spec> tools, parser_options opts) {
  if (format == model::tool_call_format::hermes_json)
    return hermes_parser(std::move(tools), std::move(opts));
  return tool_parser(std::move(tools), std::move(opts));
}

}  // namespace

call_parser::call_parser(model::tool_call_format format, std::vector<tool_spec> tools,
                         parser_options opts)
    : p_(make(format, std::move(tools), std::move(opts))) {}

std::vector<event> call_parser::feed(std::string_view text) {
  return std::visit([&](auto& p) { return p.feed(text); }, p_);
}

std::vector<event> call_parser::finish() {
  return std::visit([](auto& p) { return p.finish(); }, p_);
}

bool call_parser::any_calls() const {
  return std::visit([](const auto& p) { return p.any_calls(); }, p_);
}

parse_result parse_all(model::tool_call_format format, std::string_view text,
                       std::vector<tool_spec> tools, parser_options opts) {
  call_parser parser(format, std::move(tools), std::move(opts));
  parse_result result;
  for (const event& e : parser.feed(text)) apply_event(result, e);
  for (const event& e : parser.finish()) apply_event(result, e);
  return result;
}

}  // namespace conclave::toolcall
