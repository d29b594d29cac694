// Python-compatible formatting: float repr, json.dumps, str()/repr() and strip(), with
// expected values as CPython 3 prints them.
#include <catch2/catch.hpp>

#include <boost/json.hpp>
#include <limits>

#include "model/pytext/json_exact.h"
#include "model/pytext/python_format.h"

using namespace conclave::pytext;

TEST_CASE("python_float_repr prints floats like Python's repr", "[chat][python]") {
  struct row {
    double value;
    const char* expected;
  };
  const std::vector<row> rows = {
      {0.1, "0.1"},
      {1.0, "1.0"},
      {100.0, "100.0"},
      {1e16, "1e+16"},
      {1.5e-7, "1.5e-07"},
      {-0.0, "-0.0"},
      {0.0, "0.0"},
      {123456789.125, "123456789.125"},
      {1e22, "1e+22"},
      {5e-324, "5e-324"},
      {1e-323, "1e-323"},
      {0.5, "0.5"},
      {-2.5, "-2.5"},
      {123.456, "123.456"},
      {1e15, "1000000000000000.0"},
      {1234567890123456.0, "1234567890123456.0"},
      {12345678901234567.0, "1.2345678901234568e+16"},
      {1.5e16, "1.5e+16"},
      {123456789012345678.0, "1.2345678901234568e+17"},
      {9007199254740993.0, "9007199254740992.0"},
      {0.001, "0.001"},
      {0.0001, "0.0001"},
      {0.000123, "0.000123"},
      {0.00001, "1e-05"},
      {2.5e-5, "2.5e-05"},
      {-1e-7, "-1e-07"},
      {0.1 + 0.2, "0.30000000000000004"},
      {1.0 / 3.0, "0.3333333333333333"},
      {2.0 / 3.0, "0.6666666666666666"},
      {1e100, "1e+100"},
      {3.14e100, "3.14e+100"},
      {1.7976931348623157e308, "1.7976931348623157e+308"},
      {2.2250738585072014e-308, "2.2250738585072014e-308"},
      {std::numeric_limits<double>::infinity(), "inf"},
      {-std::numeric_limits<double>::infinity(), "-inf"},
      {std::numeric_limits<double>::quiet_NaN(), "nan"},
  };
  for (const auto& r : rows) {
    INFO(r.expected);
    CHECK(python_float_repr(r.value) == r.expected);
  }
}

TEST_CASE("to_python_json matches json.dumps(x, ensure_ascii=False)", "[chat][python]") {
  namespace json = boost::json;
  struct row {
    const char* input;
    const char* expected;
  };
  const std::vector<row> rows = {
      {R"({"b":1,"a":[true,false,null,1.0,-2,"x"]})",
       R"({"b": 1, "a": [true, false, null, 1.0, -2, "x"]})"},
      {R"({})", R"({})"},
      {R"([])", R"([])"},
      {R"({"a":{},"b":[[]]})", R"({"a": {}, "b": [[]]})"},
      {R"([1e-5, 1E16, 2.50, 0.1, -0.0, 1e400, -1e400])",
       R"([1e-05, 1e+16, 2.5, 0.1, -0.0, Infinity, -Infinity])"},
      {R"([18446744073709551615, -9223372036854775808, -0])",
       R"([18446744073709551615, -9223372036854775808, 0])"},
      {R"("q\"b\\s/\n\t\r\b\f\u0001\u001f\u007f")", R"("q\"b\\s/\n\t\r\b\f\u0001\u001f)"
                                                    "\x7f\""},
      {R"(["café", "€", "😀", "\u00e9"])", R"(["café", "€", "😀", "é"])"},
      {R"({"k\"ey": "v"})", R"({"k\"ey": "v"})"},
      {R"(true)", R"(true)"},
      {R"(null)", R"(null)"},
      {R"("plain")", R"("plain")"},
  };
  for (const auto& r : rows) {
    INFO(r.input);
    CHECK(to_python_json(json::parse(r.input)) == r.expected);
  }
}

TEST_CASE("to_python_scalar matches Python's str() of json.loads", "[chat][python]") {
  namespace json = boost::json;
  struct row {
    const char* input;
    const char* expected;
  };
  const std::vector<row> rows = {
      {R"("text with \"quotes\"\n")", "text with \"quotes\"\n"},
      {R"("")", ""},
      {R"(true)", "True"},
      {R"(false)", "False"},
      {R"(null)", "None"},
      {R"(3)", "3"},
      {R"(-12)", "-12"},
      {R"(18446744073709551615)", "18446744073709551615"},
      {R"(2.50)", "2.5"},
      {R"(1e2)", "100.0"},
      {R"(1e-7)", "1e-07"},
      {R"(["string", "null"])", "['string', 'null']"},
      {R"({"a": [1, "it's"], "b": null, "c": true, "d": 0.5})",
       R"({'a': [1, "it's"], 'b': None, 'c': True, 'd': 0.5})"},
      {R"([])", "[]"},
      {R"({})", "{}"},
      {R"([[1.0], {"k": {}}])", "[[1.0], {'k': {}}]"},
  };
  for (const auto& r : rows) {
    INFO(r.input);
    CHECK(to_python_scalar(json::parse(r.input)) == r.expected);
  }
}

TEST_CASE("python_str_repr quotes and escapes like repr(str)", "[chat][python]") {
  struct row {
    std::string input;
    const char* expected;
  };
  const std::vector<row> rows = {
      {"abc", "'abc'"},
      {"", "''"},
      {"it's", "\"it's\""},
      {"say \"hi\"", "'say \"hi\"'"},
      {"it's \"both\"", "'it\\'s \"both\"'"},
      {"a\\b", "'a\\\\b'"},
      {"tab\tnl\ncr\r", "'tab\\tnl\\ncr\\r'"},
      {std::string("\x01\x1b\x7f", 3), "'\\x01\\x1b\\x7f'"},
      {std::string("nul\0", 4), "'nul\\x00'"},
      {"caf\u00e9 \u20ac \U0001F600", "'caf\u00e9 \u20ac \U0001F600'"},
      {"\u00a0", "'\\xa0'"},
      {"\u0085", "'\\x85'"},
      {"\u200b", "'\\u200b'"},
      {"\u2028", "'\\u2028'"},
      {"\ue000", "'\\ue000'"},
      {"\U000E0001", "'\\U000e0001'"},
      {"\u3000", "'\\u3000'"},
  };
  for (const auto& r : rows) {
    INFO(r.expected);
    CHECK(python_str_repr(r.input) == r.expected);
  }
}

TEST_CASE("python_strip removes what str.strip() removes", "[chat][python]") {
  CHECK(python_strip("  a b  ") == "a b");
  CHECK(python_strip("\t\n\v\f\r x \x1c\x1d\x1e\x1f") == "x");
  CHECK(python_strip("\u00a0\u3000x y\u2003\u0085\u2028\u2029\u202f\u205f\u1680") == "x y");
  CHECK(python_strip("\u200bx\u200b") == "\u200bx\u200b");  // zero width space is not space
  CHECK(python_strip("") == "");
  CHECK(python_strip(" \n ") == "");
  CHECK(python_strip("\u00e9 ") == "\u00e9");
  CHECK(python_strip("a\n\nb") == "a\n\nb");
}

TEST_CASE("parse_json_exact reads doubles correctly rounded", "[chat][python]") {
  // Values Boost 1.81's own parser reads one ulp off; the literals are exact.
  struct row {
    const char* text;
    double value;
  };
  const std::vector<row> rows = {
      {"4.4200258834463744e-14", 4.4200258834463744e-14},
      {"3.185672992401091e-16", 3.185672992401091e-16},
      {"1.859472908491756e-19", 1.859472908491756e-19},
      {"9.673606259347975e-11", 9.673606259347975e-11},
      {"1.3927926388013963e-143", 1.3927926388013963e-143},
      {"0.30000000000000004", 0.30000000000000004},
      {"-2.5E+3", -2500.0},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    boost::system::error_code ec;
    const auto v = parse_json_exact(r.text, ec);
    REQUIRE_FALSE(ec);
    REQUIRE(v.is_double());
    CHECK(v.get_double() == r.value);
  }
  boost::system::error_code ec;
  const auto v = parse_json_exact(R"({"b": [1, 18446744073709551615, -3, 1e400], "a": "x"})", ec);
  REQUIRE_FALSE(ec);
  CHECK(to_python_json(v) == R"({"b": [1, 18446744073709551615, -3, Infinity], "a": "x"})");
}

TEST_CASE("parse_json_exact accepts deep nesting and rejects non-JSON", "[chat][python]") {
  boost::system::error_code ec;
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  CHECK(to_python_json(parse_json_exact(deep, ec)) == deep);
  CHECK_FALSE(ec);
  for (const char* bad : {"", "{", "{\"a\": 1,}", "[1] [2]", "{'a': 1}", "nan", "01"}) {
    INFO(bad);
    boost::system::error_code e;
    CHECK(parse_json_exact(bad, e).is_null());
    CHECK(e);
  }
}
