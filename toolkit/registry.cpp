// Tool registry (see the header).
#include "toolkit/registry.h"

#include <spdlog/fmt/fmt.h>
#include <stdexcept>

#include "model/tool_spec_json.h"

namespace conclave::toolkit {

void registry::add(std::shared_ptr<tool> t) {
  if (!t) throw std::invalid_argument("tool registry: null tool");
  const auto& d = t->definition();
  if (d.name.empty()) throw std::invalid_argument("tool registry: a tool needs a name");
  for (char c : d.name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'))
      throw std::invalid_argument(
          fmt::format("tool registry: name '{}' may hold only letters, digits, _ and -", d.name));
  }
  const auto not_an_object_schema = [&] {
    return std::invalid_argument(
        fmt::format("tool registry: {}: parameters must be an object schema", d.name));
  };
  boost::json::object params;
  try {
    params = model::parameters_object(d);
  } catch (const std::invalid_argument&) {
    throw not_an_object_schema();
  }
  if (const auto* ty = params.if_contains("type");
      ty && !(ty->is_string() && ty->get_string() == "object"))
    throw not_an_object_schema();
  if (!tools_.emplace(d.name, std::move(t)).second)
    throw std::invalid_argument(fmt::format("tool registry: two tools named '{}'", d.name));
}

std::shared_ptr<tool> registry::find(const std::string& name) const {
  auto it = tools_.find(name);
  return it == tools_.end() ? nullptr : it->second;
}

std::vector<model::tool_spec> registry::definitions() const {
  std::vector<model::tool_spec> out;
  for (const auto& [n, t] : tools_) out.push_back(t->definition());
  return out;
}

}  // namespace conclave::toolkit
