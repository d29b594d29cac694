// JSON to Jinja values and back: how request data (messages, tools, kwargs) reaches a
// chat template. Objects keep their key order, as Python's json.loads does.
#pragma once

#include <boost/json/value.hpp>

#include "model/jinja/value.h"

namespace conclave::jinja {

/// null -> none, integers -> int (beyond int64: float), numbers -> float, arrays -> list,
/// objects -> dict in their order.
value from_json(const boost::json::value& v);

}  // namespace conclave::jinja
