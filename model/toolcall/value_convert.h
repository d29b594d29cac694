// Typing a tool parameter's text by the tool's JSON schema: "230.0" for an integer is
// 230, "True" for a boolean is true, "{'a': (1, 2)}" for an object is {"a": [1, 2]}.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string_view>

namespace conclave::toolcall {

/// Whether every value of `schema` is a string, so a value can stream before it ends.
/// True for a null schema (a parameter the tool does not declare) and for schemas with
/// no type information at all.
bool is_string_schema(const boost::json::object* schema);

/// The JSON value for a parameter's text. By `type` (a name or a list), `anyOf`/`oneOf`
/// (non-string branches first), `enum`, and nested `properties`/`items`/
/// `additionalProperties` of objects and arrays:
///  - integer: a number that is integral ("230.0" -> 230, "1e3" -> 1000, "1.5" stays text)
///  - number: integer syntax -> integer, otherwise a finite double
///  - boolean: true/false/1/0 in any case;  null: null/none in any case
///  - object/array: JSON, then Python-literal syntax (see parse_python_literal)
///  - object/array written as a quoted string ("{'a': 1}" in quotes): the inner text
///  - null/None for any type but string: null (even where the schema does not allow it)
/// Text that converts under no branch stays a string (never dropped, never an error).
boost::json::value convert_value(std::string_view text, const boost::json::object* schema);

/// A number as JSON or Python writes it ("-1", "+7", "2.5", ".5", "5.", "1e3"): integer
/// syntax as int64 (uint64 past that, double past both), the rest as a finite double;
/// nullopt for anything else (including "nan", "inf", hex).
std::optional<boost::json::value> parse_number(std::string_view text);

/// Parses a Python literal: dicts, lists, tuples and sets (as arrays), quoted strings
/// (single, double, triple; escapes), ints, floats, True/False/None (JSON's true/false/null
/// too); trailing commas allowed. nullopt when `text` is not exactly one literal.
std::optional<boost::json::value> parse_python_literal(std::string_view text);

}  // namespace conclave::toolcall
