// Which JSON-schema keywords constrained decoding enforces: a structured-output schema
// using any other constraint is refused (a 400 naming it), never passed silently.
#pragma once

#include <boost/json/value.hpp>
#include <stdexcept>
#include <string>

namespace conclave::engine::constrained {

/// A schema keyword the grammar cannot enforce; `path()` is where (`schema.properties.age`).
class unsupported_schema : public std::invalid_argument {
 public:
  unsupported_schema(std::string path, const std::string& why)
      : std::invalid_argument(path + ": " + why), path_(std::move(path)) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// Throws unsupported_schema for the first keyword under `schema` (named `path`) that
/// json_value_dfa cannot enforce. Enforced: type (names or lists), properties, required
/// (every declared property is written, so any `required` holds), additionalProperties
/// (nothing undeclared is written), items, enum, const, anyOf, oneOf, nesting up to 8
/// levels. Ignored as annotations: title, description, default, examples, $schema,
/// $comment, deprecated, readOnly, writeOnly, strict. Anything else (minimum, pattern,
/// format, minItems, $ref, allOf, not, ...) is refused.
void check_enforceable(const boost::json::value& schema, const std::string& path);

}  // namespace conclave::engine::constrained
