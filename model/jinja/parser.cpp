// Jinja's grammar (jinja2 3.1's operator precedence) over lexer.h's tokens (see ast.h).
#include <spdlog/fmt/fmt.h>

#include <set>

#include "model/jinja/ast.h"
#include "model/jinja/builtins.h"
#include "model/jinja/lexer.h"

namespace conclave::jinja {
namespace {

class parser {
 public:
  explicit parser(std::vector<token> toks) : t_(std::move(toks)) {}

  body run() {
    body b = parse_body({});
    for (const auto& [name, line] : called_names_) {
      if (!has_global(name) && !macros_.count(name))
        throw template_error(fmt::format("line {}: unknown function '{}'", line, name));
    }
    return b;
  }

 private:
  const token& cur() const { return t_[p_]; }
  const token& peek(size_t k = 1) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  [[noreturn]] void fail(const std::string& what) const {
    throw template_error(fmt::format("line {}: {}", cur().line, what));
  }
  bool is_op(std::string_view o) const { return cur().type == token_type::op && cur().text == o; }
  bool is_name(std::string_view n) const {
    return cur().type == token_type::name && cur().text == n;
  }
  bool skip_op(std::string_view o) {
    if (!is_op(o)) return false;
    ++p_;
    return true;
  }
  bool skip_name(std::string_view n) {
    if (!is_name(n)) return false;
    ++p_;
    return true;
  }
  void expect_op(std::string_view o) {
    if (!skip_op(o)) fail(fmt::format("expected '{}', got {}", o, describe(cur())));
  }
  std::string expect_name() {
    if (cur().type != token_type::name)
      fail(fmt::format("expected a name, got {}", describe(cur())));
    return t_[p_++].text;
  }
  void expect_block_end() {
    if (cur().type != token_type::block_end)
      fail(fmt::format("expected '%}}', got {}", describe(cur())));
    ++p_;
  }
  static std::string describe(const token& t) {
    switch (t.type) {
      case token_type::eof:
        return "the end of the template";
      case token_type::block_end:
        return "'%}'";
      case token_type::var_end:
        return "'}}'";
      case token_type::text:
        return "text";
      default:
        return "'" + t.text + "'";
    }
  }
  expr_ptr node(expr::kind k, int line) {
    auto e = std::make_unique<expr>();
    e->k = k;
    e->line = line;
    return e;
  }

  // ---- statements ----

  body parse_body(const std::vector<std::string_view>& ends) {
    body out;
    while (true) {
      const token& t = cur();
      if (t.type == token_type::eof) {
        if (!ends.empty())
          fail(fmt::format("missing '{{% {} %}}' before the end of the template", ends.back()));
        return out;
      }
      if (t.type == token_type::text) {
        auto s = std::make_unique<stmt>();
        s->k = stmt::kind::text;
        s->line = t.line;
        s->text = t.text;
        out.push_back(std::move(s));
        ++p_;
      } else if (t.type == token_type::var_begin) {
        auto s = std::make_unique<stmt>();
        s->k = stmt::kind::output;
        s->line = t.line;
        ++p_;
        s->e = parse_tuple(true);
        if (cur().type != token_type::var_end)
          fail(fmt::format("expected '}}}}', got {}", describe(cur())));
        ++p_;
        out.push_back(std::move(s));
      } else if (t.type == token_type::block_begin) {
        const token& name = peek();
        if (name.type != token_type::name) {
          ++p_;
          fail("expected a tag name after '{%'");
        }
        for (auto e : ends)
          if (name.text == e) return out;
        ++p_;
        out.push_back(parse_statement());
      } else {
        fail(fmt::format("unexpected {}", describe(t)));
      }
    }
  }

  // Consumes `{% name %}` (the tag that parse_body stopped at).
  void end_tag(std::string_view name) {
    ++p_;  // block_begin
    if (!skip_name(name)) fail(fmt::format("expected '{}'", name));
    expect_block_end();
  }

  std::unique_ptr<stmt> parse_statement() {
    const int line = cur().line;
    const std::string tag = expect_name();
    auto s = std::make_unique<stmt>();
    s->line = line;
    if (tag == "if") {
      s->k = stmt::kind::if_;
      expr_ptr c = parse_tuple(true);
      expect_block_end();
      while (true) {
        body b = parse_body({"elif", "else", "endif"});
        s->branches.emplace_back(std::move(c), std::move(b));
        ++p_;  // block_begin
        const std::string next = expect_name();
        if (next == "elif") {
          c = parse_tuple(true);
          expect_block_end();
          continue;
        }
        if (next == "else") {
          expect_block_end();
          s->else_body = parse_body({"endif"});
          end_tag("endif");
        } else {
          expect_block_end();
        }
        break;
      }
    } else if (tag == "for") {
      s->k = stmt::kind::for_;
      s->targets = parse_targets();
      if (!skip_name("in")) fail("expected 'in' in a for loop");
      s->e = parse_tuple(false);
      if (skip_name("if")) s->cond = parse_expression(true);
      if (is_name("recursive")) fail("recursive loops are not supported");
      expect_block_end();
      ++loop_depth_;
      s->main = parse_body({"else", "endfor"});
      --loop_depth_;
      ++p_;
      if (expect_name() == "else") {
        expect_block_end();
        s->else_body = parse_body({"endfor"});
        end_tag("endfor");
      } else {
        expect_block_end();
      }
    } else if (tag == "set") {
      if (cur().type == token_type::name && peek().type == token_type::op && peek().text == ".") {
        s->targets.push_back(expect_name());
        ++p_;
        s->attr = expect_name();
      } else {
        s->targets = parse_targets();
      }
      if (skip_op("=")) {
        s->k = stmt::kind::set;
        s->e = parse_tuple(true);
        expect_block_end();
      } else {
        s->k = stmt::kind::set_block;
        if (!s->attr.empty() || s->targets.size() != 1) fail("a block set takes one name");
        while (skip_op("|")) s->filters.push_back(parse_filter(nullptr));
        expect_block_end();
        s->main = parse_body({"endset"});
        end_tag("endset");
      }
    } else if (tag == "macro") {
      s->k = stmt::kind::macro;
      s->text = expect_name();
      macros_.insert(s->text);
      expect_op("(");
      while (!skip_op(")")) {
        macro_param mp;
        mp.name = expect_name();
        if (skip_op("=")) mp.default_value = parse_expression(true);
        s->params.push_back(std::move(mp));
        if (!is_op(")")) expect_op(",");
      }
      expect_block_end();
      const int saved = loop_depth_;
      loop_depth_ = 0;
      s->main = parse_body({"endmacro"});
      loop_depth_ = saved;
      end_tag("endmacro");
    } else if (tag == "filter") {
      s->k = stmt::kind::filter_block;
      do {
        s->filters.push_back(parse_filter(nullptr));
      } while (skip_op("|"));
      expect_block_end();
      s->main = parse_body({"endfilter"});
      end_tag("endfilter");
    } else if (tag == "with") {
      s->k = stmt::kind::with_;
      while (cur().type != token_type::block_end) {
        std::string n = expect_name();
        expect_op("=");
        s->assigns.emplace_back(std::move(n), parse_expression(true));
        if (cur().type != token_type::block_end) expect_op(",");
      }
      expect_block_end();
      s->main = parse_body({"endwith"});
      end_tag("endwith");
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail(fmt::format("'{}' outside a loop", tag));
      s->k = tag == "break" ? stmt::kind::break_ : stmt::kind::continue_;
      expect_block_end();
    } else if (tag == "generation") {
      s->k = stmt::kind::generation;
      expect_block_end();
      s->main = parse_body({"endgeneration"});
      end_tag("endgeneration");
    } else {
      throw template_error(fmt::format("line {}: unsupported tag '{}'", line, tag));
    }
    return s;
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    const bool paren = skip_op("(");
    do {
      names.push_back(expect_name());
    } while (skip_op(","));
    if (paren) expect_op(")");
    return names;
  }

  // ---- expressions ----

  // An expression, or a tuple when commas follow (`a, b`).
  expr_ptr parse_tuple(bool with_cond) {
    const int line = cur().line;
    expr_ptr first = parse_expression(with_cond);
    if (!is_op(",")) return first;
    auto t = node(expr::kind::tuple, line);
    t->items.push_back(std::move(first));
    while (skip_op(",")) {
      if (cur().type == token_type::block_end || cur().type == token_type::var_end) break;
      t->items.push_back(parse_expression(with_cond));
    }
    return t;
  }

  expr_ptr parse_expression(bool with_cond) {
    if (!with_cond) return parse_or();
    expr_ptr e = parse_or();
    while (is_name("if")) {
      const int line = cur().line;
      ++p_;
      auto c = node(expr::kind::cond, line);
      c->a = std::move(e);
      c->b = parse_or();
      if (skip_name("else")) c->c = parse_expression(true);
      e = std::move(c);
    }
    return e;
  }

  expr_ptr logical(expr_ptr l, std::string op, expr_ptr r, int line) {
    auto e = node(expr::kind::logical, line);
    e->name = std::move(op);
    e->a = std::move(l);
    e->b = std::move(r);
    return e;
  }

  expr_ptr parse_or() {
    expr_ptr e = parse_and();
    while (is_name("or")) {
      const int line = cur().line;
      ++p_;
      e = logical(std::move(e), "or", parse_and(), line);
    }
    return e;
  }

  expr_ptr parse_and() {
    expr_ptr e = parse_not();
    while (is_name("and")) {
      const int line = cur().line;
      ++p_;
      e = logical(std::move(e), "and", parse_not(), line);
    }
    return e;
  }

  expr_ptr parse_not() {
    if (is_name("not")) {
      const int line = cur().line;
      ++p_;
      auto e = node(expr::kind::unary, line);
      e->name = "not";
      e->a = parse_not();
      return e;
    }
    return parse_compare();
  }

  expr_ptr parse_compare() {
    const int line = cur().line;
    expr_ptr first = parse_math1();
    std::vector<std::pair<std::string, expr_ptr>> chain;
    while (true) {
      std::string op;
      if (cur().type == token_type::op &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == ">" ||
           cur().text == "<=" || cur().text == ">=")) {
        op = cur().text;
        ++p_;
      } else if (is_name("in")) {
        op = "in";
        ++p_;
      } else if (is_name("not") && peek().type == token_type::name && peek().text == "in") {
        op = "not in";
        p_ += 2;
      } else {
        break;
      }
      chain.emplace_back(std::move(op), parse_math1());
    }
    if (chain.empty()) return first;
    auto e = node(expr::kind::compare, line);
    e->a = std::move(first);
    e->kwargs = std::move(chain);
    return e;
  }

  expr_ptr binary(expr_ptr l, std::string op, expr_ptr r, int line) {
    auto e = node(expr::kind::binary, line);
    e->name = std::move(op);
    e->a = std::move(l);
    e->b = std::move(r);
    return e;
  }

  expr_ptr parse_math1() {
    expr_ptr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const int line = cur().line;
      std::string op = t_[p_++].text;
      e = binary(std::move(e), std::move(op), parse_concat(), line);
    }
    return e;
  }

  expr_ptr parse_concat() {
    expr_ptr e = parse_math2();
    while (is_op("~")) {
      const int line = cur().line;
      ++p_;
      e = binary(std::move(e), "~", parse_math2(), line);
    }
    return e;
  }

  expr_ptr parse_math2() {
    expr_ptr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const int line = cur().line;
      std::string op = t_[p_++].text;
      e = binary(std::move(e), std::move(op), parse_pow(), line);
    }
    return e;
  }

  expr_ptr parse_pow() {
    expr_ptr e = parse_unary(true);
    while (is_op("**")) {
      const int line = cur().line;
      ++p_;
      e = binary(std::move(e), "**", parse_unary(true), line);
    }
    return e;
  }

  expr_ptr parse_unary(bool with_filter) {
    const int line = cur().line;
    expr_ptr e;
    if (is_op("-") || is_op("+")) {
      e = node(expr::kind::unary, line);
      e->name = t_[p_++].text;
      e->a = parse_unary(false);
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  expr_ptr parse_primary() {
    const token& t = cur();
    const int line = t.line;
    if (t.type == token_type::name) {
      ++p_;
      auto e = node(expr::kind::literal, line);
      if (t.text == "true" || t.text == "True") {
        e->lit = value(true);
      } else if (t.text == "false" || t.text == "False") {
        e->lit = value(false);
      } else if (t.text == "none" || t.text == "None") {
        e->lit = value::none();
      } else {
        e->k = expr::kind::name;
        e->name = t.text;
      }
      return e;
    }
    if (t.type == token_type::string) {
      std::string s;
      while (cur().type == token_type::string) s += t_[p_++].text;
      auto e = node(expr::kind::literal, line);
      e->lit = value(std::move(s));
      return e;
    }
    if (t.type == token_type::integer || t.type == token_type::floating) {
      ++p_;
      auto e = node(expr::kind::literal, line);
      e->lit = t.type == token_type::integer ? value(t.int_value) : value(t.float_value);
      return e;
    }
    if (skip_op("(")) {
      if (skip_op(")")) return node(expr::kind::tuple, line);
      expr_ptr first = parse_expression(true);
      if (skip_op(")")) return first;
      auto tup = node(expr::kind::tuple, line);
      tup->items.push_back(std::move(first));
      while (skip_op(",")) {
        if (is_op(")")) break;
        tup->items.push_back(parse_expression(true));
      }
      expect_op(")");
      return tup;
    }
    if (skip_op("[")) {
      auto l = node(expr::kind::list, line);
      while (!skip_op("]")) {
        l->items.push_back(parse_expression(true));
        if (!is_op("]")) expect_op(",");
      }
      return l;
    }
    if (skip_op("{")) {
      auto d = node(expr::kind::dict, line);
      while (!skip_op("}")) {
        d->items.push_back(parse_expression(true));
        expect_op(":");
        d->items.push_back(parse_expression(true));
        if (!is_op("}")) expect_op(",");
      }
      return d;
    }
    fail(fmt::format("unexpected {}", describe(t)));
  }

  expr_ptr parse_postfix(expr_ptr e) {
    while (true) {
      const int line = cur().line;
      if (skip_op(".")) {
        if (cur().type == token_type::integer) {
          auto i = node(expr::kind::item, line);
          i->a = std::move(e);
          i->b = node(expr::kind::literal, line);
          i->b->lit = value(t_[p_++].int_value);
          e = std::move(i);
          continue;
        }
        auto a = node(expr::kind::attr, line);
        a->a = std::move(e);
        a->name = expect_name();
        e = std::move(a);
      } else if (skip_op("[")) {
        e = parse_subscript(std::move(e), line);
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  expr_ptr parse_subscript(expr_ptr target, int line) {
    expr_ptr parts[3];
    int n = 0;
    bool is_slice = false;
    while (true) {
      if (!is_op(":") && !is_op("]")) parts[n] = parse_expression(true);
      if (skip_op(":")) {
        is_slice = true;
        if (++n > 2) fail("a slice takes at most three parts");
        continue;
      }
      expect_op("]");
      break;
    }
    if (!is_slice) {
      if (!parts[0]) fail("empty subscript");
      auto i = node(expr::kind::item, line);
      i->a = std::move(target);
      i->b = std::move(parts[0]);
      return i;
    }
    auto s = node(expr::kind::slice, line);
    s->a = std::move(target);
    s->b = std::move(parts[0]);
    s->c = std::move(parts[1]);
    s->d = std::move(parts[2]);
    return s;
  }

  void parse_args(expr& call) {
    expect_op("(");
    while (!skip_op(")")) {
      if (is_op("*") || is_op("**")) fail("*args and **kwargs are not supported");
      if (cur().type == token_type::name && peek().type == token_type::op && peek().text == "=") {
        std::string k = expect_name();
        ++p_;
        call.kwargs.emplace_back(std::move(k), parse_expression(true));
      } else {
        if (!call.kwargs.empty()) fail("a positional argument after a keyword argument");
        call.items.push_back(parse_expression(true));
      }
      if (!is_op(")")) expect_op(",");
    }
  }

  expr_ptr parse_call(expr_ptr callee) {
    auto c = node(expr::kind::call, cur().line);
    if (callee->k == expr::kind::name) {
      called_names_.emplace_back(callee->name, callee->line);
    } else if (callee->k == expr::kind::attr && !has_method(callee->name)) {
      fail(fmt::format("unsupported method '{}'", callee->name));
    }
    c->a = std::move(callee);
    parse_args(*c);
    return c;
  }

  // `| name(args)`; `target` null for a filter block's filters.
  expr_ptr parse_filter(expr_ptr target) {
    const int line = cur().line;
    auto f = node(expr::kind::filter, line);
    f->name = expect_name();
    if (!has_filter(f->name))
      throw template_error(fmt::format("line {}: unknown filter '{}'", line, f->name));
    f->a = std::move(target);
    if (is_op("(")) parse_args(*f);
    return f;
  }

  expr_ptr parse_filter_expr(expr_ptr e) {
    while (true) {
      if (skip_op("|")) {
        e = parse_filter(std::move(e));
      } else if (is_name("is")) {
        const int line = cur().line;
        ++p_;
        auto t = node(expr::kind::test, line);
        t->negated = skip_name("not");
        t->name = expect_name();
        if (!has_test(t->name))
          throw template_error(fmt::format("line {}: unknown test '{}'", line, t->name));
        t->a = std::move(e);
        if (is_op("(")) {
          parse_args(*t);
        } else if ((cur().type == token_type::name && cur().text != "else" && cur().text != "or" &&
                    cur().text != "and") ||
                   cur().type == token_type::string || cur().type == token_type::integer ||
                   cur().type == token_type::floating || is_op("[") || is_op("{")) {
          t->items.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  std::vector<token> t_;
  size_t p_ = 0;
  int loop_depth_ = 0;
  std::set<std::string> macros_;
  std::vector<std::pair<std::string, int>> called_names_;
};

}  // namespace

body parse(const std::string& source) {
  return parser(lex(source)).run();
}

}  // namespace conclave::jinja
