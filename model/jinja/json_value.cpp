// JSON to Jinja values (see json_value.h).
#include "model/jinja/json_value.h"

#include <boost/json.hpp>

namespace conclave::jinja {

value from_json(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      return value::none();
    case boost::json::kind::bool_:
      return value(v.get_bool());
    case boost::json::kind::int64:
      return value(v.get_int64());
    case boost::json::kind::uint64:
      if (v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
        return value(static_cast<std::int64_t>(v.get_uint64()));
      return value(static_cast<double>(v.get_uint64()));
    case boost::json::kind::double_:
      return value(v.get_double());
    case boost::json::kind::string:
      return value(std::string(v.get_string()));
    case boost::json::kind::array: {
      value_list items;
      items.reserve(v.get_array().size());
      for (const auto& x : v.get_array()) items.push_back(from_json(x));
      return value::list(std::move(items));
    }
    case boost::json::kind::object: {
      std::vector<std::pair<std::string, value>> items;
      items.reserve(v.get_object().size());
      for (const auto& kv : v.get_object())
        items.emplace_back(std::string(kv.key()), from_json(kv.value()));
      return value::dict(std::move(items));
    }
  }
  return value::none();
}

}  // namespace conclave::jinja
