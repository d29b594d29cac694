// OpenAI request/response shapes for tool calls (see openai.h).
#include "model/toolcall/openai.h"

#include <spdlog/fmt/fmt.h>
#include <boost/json.hpp>
#include <stdexcept>

#include "model/tool_spec_json.h"

namespace conclave::toolcall {

namespace json = boost::json;

std::vector<tool_spec> tools_from_openai(const json::value& tools) {
  if (!tools.is_array())
    throw std::invalid_argument("tools: expected a JSON array of tool objects");
  std::vector<tool_spec> out;
  size_t i = 0;
  for (const json::value& t : tools.get_array()) {
    const std::string where = fmt::format("tools[{}]", i++);
    if (!t.is_object()) throw std::invalid_argument(where + ": expected an object");
    const json::object& o = t.get_object();
    const json::value* type = o.if_contains("type");
    if (type == nullptr || !type->is_string() || type->get_string() != "function") {
      throw std::invalid_argument(where + ": \"type\" must be \"function\"");
    }
    const json::value* fn = o.if_contains("function");
    if (fn == nullptr || !fn->is_object()) {
      throw std::invalid_argument(where + ": \"function\" must be an object");
    }
    const json::value* name = fn->get_object().if_contains("name");
    if (name == nullptr || !name->is_string() || name->get_string().empty()) {
      throw std::invalid_argument(where + ": \"function.name\" must be a non-empty string");
    }
    tool_spec schema;
    schema.name = std::string(name->get_string());
    if (const json::value* params = fn->get_object().if_contains("parameters")) {
      if (!params->is_object()) {
        throw std::invalid_argument(where +
                                    ": \"function.parameters\" must be a JSON schema object");
      }
      model::set_parameters(schema, params->get_object());
    }
    out.push_back(std::move(schema));
  }
  return out;
}

json::object to_openai_message(const parse_result& result) {
  json::object msg;
  if (result.content.empty()) {
    msg["content"] = nullptr;
  } else {
    msg["content"] = result.content;
  }
  json::array calls;
  for (const parsed_call& c : result.calls) {
    calls.push_back(json::object{
        {"id", c.id},
        {"type", "function"},
        {"function", json::object{{"name", c.name}, {"arguments", c.arguments}}},
    });
  }
  msg["tool_calls"] = std::move(calls);
  return msg;
}

std::optional<json::object> to_openai_delta(const event& e) {
  switch (e.type) {
    case event::kind::content:
      return json::object{{"content", e.text}};
    case event::kind::tool_call_start:
      return json::object{
          {"tool_calls", json::array{json::object{
                             {"index", e.index},
                             {"id", e.id},
                             {"type", "function"},
                             {"function", json::object{{"name", e.name}, {"arguments", ""}}},
                         }}}};
    case event::kind::tool_call_arguments:
      return json::object{{"tool_calls", json::array{json::object{
                                             {"index", e.index},
                                             {"function", json::object{{"arguments", e.text}}},
                                         }}}};
    case event::kind::tool_call_end:
    case event::kind::rejected_tool:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace conclave::toolcall
