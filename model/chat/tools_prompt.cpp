// The `# Tools` section of the Qwen3-Coder system turn: each function's name, trimmed
// description and JSON schema as XML-ish tags, then the fixed calling instructions.
#include "model/chat/tools_prompt.h"

#include <boost/json.hpp>
#include <initializer_list>
#include <string_view>

#include "model/chat/python_format.h"
#include "model/tool_spec_json.h"

namespace conclave::chat::detail {
namespace {

constexpr std::string_view tools_header =
    "\n\n# Tools\n\nYou have access to the following functions:\n\n<tools>";

// Verbatim from the format doc (the reference template's closing instructions).
constexpr std::string_view tools_footer =
    "\n</tools>\n\n"
    "If you choose to call a function ONLY reply in the following format with NO suffix:\n\n"
    "<tool_call>\n"
    "<function=example_function_name>\n"
    "<parameter=example_parameter_1>\n"
    "value_1\n"
    "</parameter>\n"
    "<parameter=example_parameter_2>\n"
    "This is the value for the second parameter\n"
    "that can span\n"
    "multiple lines\n"
    "</parameter>\n"
    "</function>\n"
    "</tool_call>\n\n"
    "<IMPORTANT>\n"
    "Reminder:\n"
    "- Function calls MUST follow the specified format: an inner <function=...></function> block "
    "must be nested within <tool_call></tool_call> XML tags\n"
    "- Required parameters MUST be specified\n"
    "- You may provide optional reasoning for your function call in natural language BEFORE "
    "the function call, but NOT after\n"
    "- If there is no function call available, answer the question like normal with your "
    "current knowledge and do not tell the user about function calls\n"
    "</IMPORTANT>";

void append_tag(std::string& out, std::string_view key, std::string_view text) {
  out += "\n<";
  out += key;
  out += '>';
  out += text;
  out += "</";
  out += key;
  out += '>';
}

// The template's render_extra_keys: every key not already shown, containers as JSON and
// scalars as Python's str().
void append_extra_keys(std::string& out, const boost::json::object& fields,
                       std::initializer_list<std::string_view> handled) {
  for (const auto& kv : fields) {
    bool skip = false;
    for (std::string_view h : handled) skip = skip || kv.key() == h;
    if (skip) continue;
    const auto& v = kv.value();
    append_tag(out, kv.key(),
               v.is_object() || v.is_array() ? to_python_json(v) : to_python_scalar(v));
  }
}

void append_property(std::string& out, std::string_view name, const boost::json::value& fields) {
  out += "\n<parameter>";
  append_tag(out, "name", name);
  // A non-object schema (`"x": true`) shows only its name, as in the reference.
  if (const auto* obj = fields.if_object()) {
    if (const auto* type = obj->if_contains("type"))
      append_tag(out, "type", to_python_scalar(*type));
    if (const auto* desc = obj->if_contains("description")) {
      const std::string text = to_python_scalar(*desc);
      append_tag(out, "description", python_strip(text));
    }
    // "name" is skipped too: the reference template lists it as handled.
    append_extra_keys(out, *obj, {"name", "type", "description"});
  }
  out += "\n</parameter>";
}

}  // namespace

void append_tools_block(std::string& out, const std::vector<model::tool_spec>& tools) {
  out += tools_header;
  for (const auto& t : tools) {
    const boost::json::object params = model::parameters_object(t);
    out += "\n<function>";
    append_tag(out, "name", t.name);
    if (t.description) append_tag(out, "description", python_strip(*t.description));
    out += "\n<parameters>";
    if (const auto* props = params.if_contains("properties"); props && props->is_object()) {
      for (const auto& kv : props->get_object()) append_property(out, kv.key(), kv.value());
    }
    append_extra_keys(out, params, {"type", "properties"});
    out += "\n</parameters>\n</function>";
  }
  out += tools_footer;
}

}  // namespace conclave::chat::detail
