// The JSON side of tool_spec (model/tool_spec.h), for .cpp files only: headers keep
// tool_spec free of boost::json.
#pragma once

#include <boost/json/object.hpp>

#include "model/tool_spec.h"

namespace conclave::model {

/// The parameters schema parsed. Throws std::invalid_argument naming the tool when the
/// text is not a JSON object.
boost::json::object parameters_object(const tool_spec& t);

/// Stores `schema` as its canonical text (boost::json::serialize).
void set_parameters(tool_spec& t, const boost::json::object& schema);

}  // namespace conclave::model
