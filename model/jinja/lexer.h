// Jinja's lexer with the settings Hugging Face renders chat templates with:
// trim_blocks and lstrip_blocks on, keep_trailing_newline off, `{%-`/`-%}` and `+`
// whitespace control, comments, raw blocks, and newlines normalised to "\n".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace conclave::jinja {

enum class token_type {
  text,         // template data between tags (whitespace control applied)
  var_begin,    // {{
  var_end,      // }}
  block_begin,  // {%
  block_end,    // %}
  name,
  string,  // decoded literal
  integer,
  floating,
  op,  // an operator or punctuation: + - * / // % ** ~ == != < <= > >= = . : | , ( ) [ ] { }
  eof
};

struct token {
  token_type type = token_type::eof;
  std::string text;  // name, decoded string, operator or data
  std::int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
};

/// Splits a template into tokens; throws template_error naming the line for an unclosed
/// tag, comment, string or raw block, or a character that is no token.
std::vector<token> lex(std::string_view source);

}  // namespace conclave::jinja
