// JSON text to boost::json with correctly rounded doubles, as Python's json.loads reads
// numbers (Boost 1.81's own parser can be off by an ulp for 17-digit values).
#pragma once

#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>
#include <string_view>

namespace conclave::pytext {

/// Parses one JSON document (standard JSON only, nesting up to 1000 levels like Python's
/// default recursion limit allows). Doubles are the nearest to their decimal text;
/// integers beyond int64/uint64 become doubles (Python would keep them exact). On error
/// `ec` is set and the result is null.
boost::json::value parse_json_exact(std::string_view text, boost::system::error_code& ec);

}  // namespace conclave::pytext
