// Tool registry (see the header).
#include "toolkit/registry.h"

#include <spdlog/fmt/fmt.h>
#include <stdexcept>

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
  if (const auto* ty = d.parameters.if_contains("type");
      ty && !(ty->is_string() && ty->get_string() == "object"))
    throw std::invalid_argument(
        fmt::format("tool registry: {}: parameters must be an object schema", d.name));
  if (!tools_.emplace(d.name, std::move(t)).second)
    throw std::invalid_argument(fmt::format("tool registry: two tools named '{}'", d.name));
}

std::shared_ptr<tool> registry::find(const std::string& name) const {
  auto it = tools_.find(name);
  return it == tools_.end() ? nullptr : it->second;
}

std::vector<tool_definition> registry::definitions() const {
  std::vector<tool_definition> out;
  for (const auto& [n, t] : tools_) out.push_back(t->definition());
  return out;
}

}  // namespace conclave::toolkit
