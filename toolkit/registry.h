// The tools a server can run: built-ins, webhook tools from the configuration, and
// custom C++ tools registered by the embedding program. Names are unique.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "toolkit/tool.h"

namespace conclave::toolkit {

class registry {
 public:
  /// Throws std::invalid_argument for an empty or duplicate name, or a schema that is not
  /// an object schema.
  void add(std::shared_ptr<tool> t);
  /// Null when no tool has that name.
  std::shared_ptr<tool> find(const std::string& name) const;
  std::vector<model::tool_spec> definitions() const;
  size_t size() const { return tools_.size(); }

 private:
  std::map<std::string, std::shared_ptr<tool>> tools_;
};

}  // namespace conclave::toolkit
