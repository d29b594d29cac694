// JSON-schema checking of tool arguments before a tool runs: the subset tools use
// (type and type lists, properties, required, additionalProperties: false, items, enum,
// const, anyOf, oneOf, allOf, minimum/maximum, minLength/maxLength, minItems/maxItems).
// Unknown keywords are ignored, as JSON Schema says.
#pragma once

#include <boost/json/value.hpp>
#include <string>

namespace conclave::toolkit {

/// Empty when `v` satisfies `schema`; else one line naming the first failing place
/// ("days: expected integer, got string").
std::string check_schema(const boost::json::value& v, const boost::json::value& schema,
                         const std::string& path = "");

}  // namespace conclave::toolkit
