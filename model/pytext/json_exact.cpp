// parse_json_exact: boost::json's basic_parser with a value-building handler whose only
// change from boost's own is re-reading each double from its text with std::from_chars.
#include "model/pytext/json_exact.h"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/value_stack.hpp>
#include <charconv>
#include <string>

namespace conclave::pytext {
namespace {

namespace json = boost::json;
using boost::system::error_code;
using json::string_view;

// Mirrors boost::json::detail::handler (what boost::json::parse uses).
struct exact_handler {
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  json::value_stack st;
  std::string number;  // the text of a number split across on_number_part calls

  bool on_document_begin(error_code&) { return true; }
  bool on_document_end(error_code&) { return true; }
  bool on_object_begin(error_code&) { return true; }
  bool on_object_end(std::size_t n, error_code&) {
    st.push_object(n);
    return true;
  }
  bool on_array_begin(error_code&) { return true; }
  bool on_array_end(std::size_t n, error_code&) {
    st.push_array(n);
    return true;
  }
  bool on_key_part(string_view s, std::size_t, error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_key(string_view s, std::size_t, error_code&) {
    st.push_key(s);
    return true;
  }
  bool on_string_part(string_view s, std::size_t, error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_string(string_view s, std::size_t, error_code&) {
    st.push_string(s);
    return true;
  }
  bool on_number_part(string_view s, error_code&) {
    number.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t i, string_view, error_code&) {
    number.clear();
    st.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, string_view, error_code&) {
    number.clear();
    st.push_uint64(u);
    return true;
  }
  bool on_double(double d, string_view s, error_code&) {
    number.append(s.data(), s.size());
    double exact = 0;
    const auto res = std::from_chars(number.data(), number.data() + number.size(), exact);
    // Out of range (1e400, 1e-400): keep boost's inf or 0, which Python gives too.
    if (res.ec == std::errc{} && res.ptr == number.data() + number.size()) d = exact;
    number.clear();
    st.push_double(d);
    return true;
  }
  bool on_bool(bool b, error_code&) {
    st.push_bool(b);
    return true;
  }
  bool on_null(error_code&) {
    st.push_null();
    return true;
  }
  bool on_comment_part(string_view, error_code&) { return true; }
  bool on_comment(string_view, error_code&) { return true; }
};

}  // namespace

json::value parse_json_exact(std::string_view text, error_code& ec) {
  json::parse_options opt;
  opt.max_depth = 1000;
  json::basic_parser<exact_handler> p(opt);
  p.handler().st.reset();
  const std::size_t n = p.write_some(false, text.data(), text.size(), ec);
  if (ec) return nullptr;
  if (n < text.size()) {
    ec = json::error::extra_data;
    return nullptr;
  }
  return p.handler().st.release();
}

}  // namespace conclave::pytext
