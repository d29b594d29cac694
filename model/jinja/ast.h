// The parsed form of a Jinja template: expressions and statements. Internal to
// model/jinja/ (parser.cpp builds it, render.cpp walks it).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/jinja/value.h"

namespace conclave::jinja {

struct expr;
using expr_ptr = std::unique_ptr<expr>;

struct expr {
  enum class kind {
    literal,  // lit
    name,     // name
    list,     // items
    tuple,    // items
    dict,     // items as key, value pairs
    attr,     // a.name
    item,     // a[b]
    slice,    // a[b:c:d] (null children absent)
    call,     // a(args, kwargs)
    filter,   // a | name(args, kwargs)
    test,     // a is [not] name(args)
    unary,    // op a ("not", "-", "+")
    binary,   // a op b (arithmetic, "~")
    compare,  // a op1 b op2 c ... (kwargs: op, operand), chained as Python chains them
    logical,  // a and/or b
    cond      // a if b else c
  };
  kind k = kind::literal;
  int line = 0;
  value lit;
  std::string name;      // variable, attribute, filter or test name; operator
  bool negated = false;  // `is not`
  expr_ptr a, b, c, d;
  std::vector<expr_ptr> items;
  std::vector<std::pair<std::string, expr_ptr>> kwargs;
};

struct stmt;
using body = std::vector<std::unique_ptr<stmt>>;

struct macro_param {
  std::string name;
  expr_ptr default_value;  // null: required
};

struct stmt {
  enum class kind {
    text,          // text
    output,        // {{ e }}
    if_,           // branches (cond, body); else_body
    for_,          // targets in e [if cond]: body [else else_body]
    set,           // targets (or ns.attr: name=ns, attr) = e
    set_block,     // {% set target %}body{% endset %} (filters applied)
    macro,         // name(params): body
    filter_block,  // {% filter f %}body{% endfilter %}
    with_,         // {% with a = e, ... %}body{% endwith %}
    break_,
    continue_,
    generation  // Hugging Face's {% generation %}: renders its body
  };
  kind k = kind::text;
  int line = 0;
  std::string text;
  expr_ptr e;
  expr_ptr cond;
  std::vector<std::string> targets;
  std::string attr;  // set ns.attr
  std::vector<std::pair<expr_ptr, body>> branches;
  body main;
  body else_body;
  std::vector<macro_param> params;
  std::vector<expr_ptr> filters;  // filter-block and set-block filters (kind::filter, a null)
  std::vector<std::pair<std::string, expr_ptr>> assigns;  // with
};

/// Parses lexed tokens into statements; throws template_error (with the line) for bad
/// syntax and for what this engine does not support: an unknown tag (include, extends,
/// import, block, call, ...), filter, test or global function, or a method no built-in
/// type has.
body parse(const std::string& source);

}  // namespace conclave::jinja
