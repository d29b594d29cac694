// Conversation and tools as template values (see template_context.h).
#include "model/chat/template_context.h"

#include <spdlog/fmt/fmt.h>

#include <boost/json.hpp>

#include "model/jinja/json_value.h"
#include "model/pytext/json_exact.h"

namespace conclave::chat {
namespace {

const char* kind_name(boost::json::kind k) {
  switch (k) {
    case boost::json::kind::null:
      return "null";
    case boost::json::kind::bool_:
      return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_:
      return "a number";
    case boost::json::kind::string:
      return "a string";
    case boost::json::kind::array:
      return "an array";
    case boost::json::kind::object:
      return "an object";
  }
  return "an unknown value";
}

jinja::value arguments_value(const tool_call& call, size_t msg, size_t idx) {
  const std::string param = fmt::format("messages[{}].tool_calls[{}].function.arguments", msg, idx);
  boost::system::error_code ec;
  boost::json::value v = pytext::parse_json_exact(call.arguments, ec);
  if (ec) {
    throw chat_error(param, fmt::format("not valid JSON ({}); expected the arguments of \"{}\" as "
                                        "a JSON object",
                                        ec.message(), call.name));
  }
  if (!v.is_object())
    throw chat_error(param, fmt::format("must be a JSON object, got {}", kind_name(v.kind())));
  return jinja::from_json(v);
}

}  // namespace

jinja::value messages_value(const std::vector<message>& messages) {
  jinja::value_list out;
  out.reserve(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    const message& m = messages[i];
    std::vector<std::pair<std::string, jinja::value>> d{
        {"role", jinja::value(std::string(role_name(m.r)))},
        {"content", jinja::value(m.content())}};
    if (m.reasoning_content)
      d.emplace_back("reasoning_content", jinja::value(*m.reasoning_content));
    if (!m.tool_calls.empty()) {
      jinja::value_list calls;
      for (size_t j = 0; j < m.tool_calls.size(); ++j) {
        const tool_call& c = m.tool_calls[j];
        calls.push_back(jinja::value::dict(
            {{"id", jinja::value(c.id)},
             {"type", jinja::value("function")},
             {"function", jinja::value::dict({{"name", jinja::value(c.name)},
                                              {"arguments", arguments_value(c, i, j)}})}}));
      }
      d.emplace_back("tool_calls", jinja::value::list(std::move(calls)));
    }
    if (!m.tool_call_id.empty()) d.emplace_back("tool_call_id", jinja::value(m.tool_call_id));
    if (!m.name.empty()) d.emplace_back("name", jinja::value(m.name));
    out.push_back(jinja::value::dict(std::move(d)));
  }
  return jinja::value::list(std::move(out));
}

jinja::value tools_value(const std::vector<model::tool_spec>& tools) {
  if (tools.empty()) return jinja::value::none();
  jinja::value_list out;
  for (const auto& t : tools) {
    std::vector<std::pair<std::string, jinja::value>> fn{{"name", jinja::value(t.name)}};
    if (t.description) fn.emplace_back("description", jinja::value(*t.description));
    boost::system::error_code ec;
    boost::json::value params = pytext::parse_json_exact(t.parameters, ec);
    if (ec) throw std::logic_error("tool_spec.parameters is not JSON: " + t.parameters);
    fn.emplace_back("parameters", jinja::from_json(params));
    out.push_back(jinja::value::dict(
        {{"type", jinja::value("function")}, {"function", jinja::value::dict(std::move(fn))}}));
  }
  return jinja::value::list(std::move(out));
}

}  // namespace conclave::chat
