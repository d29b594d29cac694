// tool_spec's schema text <-> boost::json (see the header).
#include "model/tool_spec_json.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <stdexcept>

namespace conclave::model {

boost::json::object parameters_object(const tool_spec& t) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(t.parameters, ec);
  if (ec || !v.is_object())
    throw std::invalid_argument("tool '" + t.name + "': parameters are not a JSON object");
  return std::move(v.get_object());
}

void set_parameters(tool_spec& t, const boost::json::object& schema) {
  t.parameters = boost::json::serialize(schema);
}

}  // namespace conclave::model
