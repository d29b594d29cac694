// Walks a parsed template (ast.h) with Jinja's scoping: a for-loop iteration, a macro
// call and a `with` block get their own scope; `if` does not. Lookups fall back from
// the scopes to the render context and then to the global functions.
#include <spdlog/fmt/fmt.h>

#include <cmath>

#include "model/jinja/ast.h"
#include "model/jinja/builtins.h"
#include "model/jinja/template.h"

namespace conclave::jinja {
namespace {

constexpr int kMaxCallDepth = 100;

struct scope {
  const scope* parent = nullptr;
  std::vector<std::pair<std::string, value>> vars;

  const value* find(std::string_view name) const {
    for (const scope* s = this; s; s = s->parent) {
      for (auto it = s->vars.rbegin(); it != s->vars.rend(); ++it)
        if (it->first == name) return &it->second;
    }
    return nullptr;
  }
  void set(const std::string& name, value v) {
    for (auto& [k, old] : vars) {
      if (k == name) {
        old = std::move(v);
        return;
      }
    }
    vars.emplace_back(name, std::move(v));
  }
};

enum class flow { normal, break_, continue_ };

[[noreturn]] void fail(int line, const std::string& what) {
  throw template_error(fmt::format("line {}: {}", line, what));
}

std::string undefined_text(const value& v) {
  return v.undefined_name().empty() ? "a value is undefined"
                                    : fmt::format("'{}' is undefined", v.undefined_name());
}

// Python's sequence[start:stop:step] indices.
std::vector<std::int64_t> slice_indices(std::int64_t n, const value& start, const value& stop,
                                        const value& step, int line) {
  const std::int64_t st = step.is_undefined() || step.is_none() ? 1 : step.as_int();
  if (st == 0) fail(line, "slice step cannot be zero");
  auto clamp = [&](const value& v, std::int64_t dflt) {
    if (v.is_undefined() || v.is_none()) return dflt;
    std::int64_t i = v.as_int();
    if (i < 0) i += n;
    if (st > 0) return std::clamp<std::int64_t>(i, 0, n);
    return std::clamp<std::int64_t>(i, -1, n - 1);
  };
  const std::int64_t b = clamp(start, st > 0 ? 0 : n - 1);
  const std::int64_t e = clamp(stop, st > 0 ? n : -1);
  std::vector<std::int64_t> idx;
  for (std::int64_t i = b; st > 0 ? i < e : i > e; i += st) idx.push_back(i);
  return idx;
}

class renderer {
 public:
  explicit renderer(const value& context) : ctx_(context) {}

  std::string run(const body& b) {
    std::string out;
    out_ = &out;
    exec(b, top_);
    return out;
  }

 private:
  // ---- statements ----

  flow exec(const body& b, scope& sc) {
    for (const auto& s : b) {
      const flow f = exec(*s, sc);
      if (f != flow::normal) return f;
    }
    return flow::normal;
  }

  flow exec(const stmt& s, scope& sc) {
    switch (s.k) {
      case stmt::kind::text:
        *out_ += s.text;
        return flow::normal;
      case stmt::kind::output:
        *out_ += to_str(eval(*s.e, sc));
        return flow::normal;
      case stmt::kind::if_:
        for (const auto& [c, b] : s.branches)
          if (eval(*c, sc).truthy()) return exec(b, sc);
        return exec(s.else_body, sc);
      case stmt::kind::for_:
        return exec_for(s, sc);
      case stmt::kind::set: {
        value v = eval(*s.e, sc);
        if (!s.attr.empty()) {
          const value* ns = sc.find(s.targets[0]);
          if (!ns || ns->type() != value::kind::ns)
            fail(s.line,
                 fmt::format("cannot assign attribute on non-namespace object '{}'", s.targets[0]));
          ns->namespace_ref().set(s.attr, std::move(v));
        } else {
          assign(s.targets, std::move(v), sc, s.line);
        }
        return flow::normal;
      }
      case stmt::kind::set_block: {
        value v = apply_filters(s.filters, capture(s.main, sc), sc);
        sc.set(s.targets[0], std::move(v));
        return flow::normal;
      }
      case stmt::kind::macro:
        sc.set(s.text, make_macro(s, sc));
        return flow::normal;
      case stmt::kind::filter_block:
        *out_ += to_str(apply_filters(s.filters, capture(s.main, sc), sc));
        return flow::normal;
      case stmt::kind::with_: {
        scope inner{&sc, {}};
        for (const auto& [n, e] : s.assigns) inner.set(n, eval(*e, sc));
        return exec(s.main, inner);
      }
      case stmt::kind::break_:
        return flow::break_;
      case stmt::kind::continue_:
        return flow::continue_;
      case stmt::kind::generation:
        return exec(s.main, sc);
    }
    return flow::normal;
  }

  value capture(const body& b, scope& sc) {
    std::string buf;
    std::string* saved = out_;
    out_ = &buf;
    try {
      exec(b, sc);
    } catch (...) {
      out_ = saved;
      throw;
    }
    out_ = saved;
    return value(std::move(buf));
  }

  value apply_filters(const std::vector<expr_ptr>& filters, value v, scope& sc) {
    for (const auto& f : filters) v = call_filter(*f, std::move(v), sc);
    return v;
  }

  void assign(const std::vector<std::string>& targets, value v, scope& sc, int line) {
    if (targets.size() == 1) {
      sc.set(targets[0], std::move(v));
      return;
    }
    value_list parts = iterate(v);
    if (parts.size() != targets.size())
      fail(line,
           fmt::format("cannot unpack {} values into {} names", parts.size(), targets.size()));
    for (size_t i = 0; i < targets.size(); ++i) sc.set(targets[i], std::move(parts[i]));
  }

  flow exec_for(const stmt& s, scope& sc) {
    value_list items = iterate(eval(*s.e, sc));
    if (s.cond) {
      value_list kept;
      for (auto& it : items) {
        scope probe{&sc, {}};
        assign(s.targets, it, probe, s.line);
        if (eval(*s.cond, probe).truthy()) kept.push_back(std::move(it));
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      scope inner{&sc, {}};
      exec(s.else_body, inner);
      return flow::normal;
    }
    const auto n = static_cast<std::int64_t>(items.size());
    for (std::int64_t i = 0; i < n; ++i) {
      scope iter{&sc, {}};
      assign(s.targets, items[static_cast<size_t>(i)], iter, s.line);
      std::vector<std::pair<std::string, value>> loop{{"index", value(i + 1)},
                                                      {"index0", value(i)},
                                                      {"revindex", value(n - i)},
                                                      {"revindex0", value(n - i - 1)},
                                                      {"first", value(i == 0)},
                                                      {"last", value(i == n - 1)},
                                                      {"length", value(n)},
                                                      {"depth", value(std::int64_t{1})},
                                                      {"depth0", value(std::int64_t{0})}};
      if (i > 0) loop.emplace_back("previtem", items[static_cast<size_t>(i - 1)]);
      if (i + 1 < n) loop.emplace_back("nextitem", items[static_cast<size_t>(i + 1)]);
      loop.emplace_back("cycle", value::function("cycle", [i](value_list& args, kwarg_list&) {
                          if (args.empty()) throw template_error("no items for cycling given");
                          return args[static_cast<size_t>(i) % args.size()];
                        }));
      iter.set("loop", value::dict(std::move(loop)));
      if (exec(s.main, iter) == flow::break_) break;
    }
    return flow::normal;
  }

  value make_macro(const stmt& s, const scope& defined_in) {
    const stmt* m = &s;
    const scope* parent = &defined_in;
    return value::function(s.text, [this, m, parent](value_list& args, kwarg_list& kwargs) {
      if (args.size() > m->params.size())
        fail(m->line, fmt::format("macro '{}' takes not more than {} argument(s)", m->text,
                                  m->params.size()));
      if (++depth_ > kMaxCallDepth) fail(m->line, "macro calls nested too deeply");
      scope inner{parent, {}};
      for (size_t i = 0; i < m->params.size(); ++i) {
        const auto& p = m->params[i];
        value v = value::undefined(p.name);
        if (i < args.size()) {
          v = args[i];
        } else if (p.default_value) {
          v = eval(*p.default_value, inner);
        }
        for (auto& [k, kv] : kwargs)
          if (k == p.name) v = kv;
        inner.set(p.name, std::move(v));
      }
      for (const auto& kw : kwargs) {
        bool known = false;
        for (const auto& p : m->params) known = known || p.name == kw.first;
        if (!known)
          fail(m->line,
               fmt::format("macro '{}' takes no keyword argument '{}'", m->text, kw.first));
      }
      value out = capture(m->main, inner);
      --depth_;
      return out;
    });
  }

  // ---- expressions ----

  value lookup(const std::string& name, const scope& sc) const {
    if (const value* v = sc.find(name)) return *v;
    if (ctx_.is_dict()) {
      if (const value* v = ctx_.dict_ref().find(name)) return *v;
    }
    if (has_global(name)) return global_function(name);
    return value::undefined(name);
  }

  value eval(const expr& e, scope& sc) {
    switch (e.k) {
      case expr::kind::literal:
        return e.lit;
      case expr::kind::name:
        return lookup(e.name, sc);
      case expr::kind::list:
      case expr::kind::tuple: {
        value_list items;
        for (const auto& i : e.items) items.push_back(eval(*i, sc));
        return value::list(std::move(items), e.k == expr::kind::tuple);
      }
      case expr::kind::dict: {
        std::vector<std::pair<std::string, value>> items;
        for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
          value k = eval(*e.items[i], sc);
          if (!k.is_string()) fail(e.line, "dict keys must be strings here");
          dict_data tmp{std::move(items)};
          tmp.set(k.str(), eval(*e.items[i + 1], sc));
          items = std::move(tmp.items);
        }
        return value::dict(std::move(items));
      }
      case expr::kind::attr:
        return get_attr(eval(*e.a, sc), e.name, e.line);
      case expr::kind::item:
        return get_item(eval(*e.a, sc), eval(*e.b, sc), e.line);
      case expr::kind::slice:
        return slice(e, sc);
      case expr::kind::call:
        return call(e, sc);
      case expr::kind::filter:
        return call_filter(e, eval(*e.a, sc), sc);
      case expr::kind::test: {
        value v = eval(*e.a, sc);
        value_list args;
        for (const auto& a : e.items) args.push_back(eval(*a, sc));
        try {
          return value(apply_test(e.name, v, args) != e.negated);
        } catch (const raised_error&) {
          throw;
        } catch (const template_error& err) {
          fail(e.line, err.what());
        }
      }
      case expr::kind::unary:
        return unary(e, sc);
      case expr::kind::binary:
        return binary(e.name, eval(*e.a, sc), eval(*e.b, sc), e.line);
      case expr::kind::compare: {
        value left = eval(*e.a, sc);
        for (const auto& [op, operand] : e.kwargs) {
          value right = eval(*operand, sc);
          if (!compare(op, left, right, e.line)) return value(false);
          left = std::move(right);
        }
        return value(true);
      }
      case expr::kind::logical: {
        value a = eval(*e.a, sc);
        if (e.name == "and") return a.truthy() ? eval(*e.b, sc) : a;
        return a.truthy() ? a : eval(*e.b, sc);
      }
      case expr::kind::cond:
        if (eval(*e.b, sc).truthy()) return eval(*e.a, sc);
        return e.c ? eval(*e.c, sc) : value::undefined();
    }
    return value::undefined();
  }

  value get_attr(const value& obj, const std::string& name, int line) {
    if (obj.is_undefined()) fail(line, undefined_text(obj));
    if (obj.type() == value::kind::ns) {
      if (const value* v = obj.dict_ref().find(name)) return *v;
      return value::undefined(name);
    }
    value m = bound_method(obj, name);
    if (!m.is_undefined()) return m;
    if (obj.type() == value::kind::dict) {
      if (const value* v = obj.dict_ref().find(name)) return *v;
    }
    return value::undefined(name);
  }

  value get_item(const value& obj, const value& key, int line) {
    if (obj.is_undefined()) fail(line, undefined_text(obj));
    if (obj.type() == value::kind::dict || obj.type() == value::kind::ns) {
      if (key.is_string()) {
        if (const value* v = obj.dict_ref().find(key.str())) return *v;
        return obj.type() == value::kind::dict ? bound_method(obj, key.str())
                                               : value::undefined(key.str());
      }
      return value::undefined();
    }
    if ((obj.is_list() || obj.is_string()) &&
        (key.type() == value::kind::integer || key.type() == value::kind::boolean)) {
      const std::int64_t n = length(obj);
      std::int64_t i = key.as_int();
      if (i < 0) i += n;
      if (i < 0 || i >= n) return value::undefined();
      if (obj.is_list()) return obj.list_ref().items[static_cast<size_t>(i)];
      return value(code_points(obj.str())[static_cast<size_t>(i)]);
    }
    if (key.is_string()) return get_attr(obj, key.str(), line);
    return value::undefined();
  }

  value slice(const expr& e, scope& sc) {
    value obj = eval(*e.a, sc);
    auto part = [&](const expr_ptr& p) { return p ? eval(*p, sc) : value::none(); };
    value start = part(e.b), stop = part(e.c), step = part(e.d);
    for (const value* v : {&start, &stop, &step}) {
      if (!v->is_none() && v->type() != value::kind::integer && v->type() != value::kind::boolean)
        fail(e.line, "slice indices must be integers or None");
    }
    if (obj.is_undefined()) fail(e.line, undefined_text(obj));
    if (obj.is_list()) {
      const auto& items = obj.list_ref().items;
      value_list out;
      for (auto i :
           slice_indices(static_cast<std::int64_t>(items.size()), start, stop, step, e.line))
        out.push_back(items[static_cast<size_t>(i)]);
      return value::list(std::move(out), obj.list_ref().tuple);
    }
    if (obj.is_string()) {
      auto cps = code_points(obj.str());
      std::string out;
      for (auto i : slice_indices(static_cast<std::int64_t>(cps.size()), start, stop, step, e.line))
        out += cps[static_cast<size_t>(i)];
      return value(std::move(out));
    }
    fail(e.line, fmt::format("'{}' object is not subscriptable", obj.type_name()));
  }

  value call(const expr& e, scope& sc) {
    value callee = eval(*e.a, sc);
    if (callee.is_undefined()) {
      if (e.a->k == expr::kind::attr) {
        value obj = eval(*e.a->a, sc);
        fail(e.line, fmt::format("'{}' object has no attribute '{}'", obj.type_name(), e.a->name));
      }
      fail(e.line, undefined_text(callee));
    }
    if (callee.type() != value::kind::callable)
      fail(e.line, fmt::format("'{}' object is not callable", callee.type_name()));
    value_list args;
    kwarg_list kwargs;
    for (const auto& a : e.items) args.push_back(eval(*a, sc));
    for (const auto& [k, a] : e.kwargs) kwargs.emplace_back(k, eval(*a, sc));
    try {
      return callee.callable_ref().fn(args, kwargs);
    } catch (const raised_error&) {
      throw;
    } catch (const template_error& err) {
      if (std::string_view(err.what()).substr(0, 5) == "line ") throw;
      fail(e.line, err.what());
    }
  }

  value call_filter(const expr& f, value v, scope& sc) {
    value_list args;
    kwarg_list kwargs;
    for (const auto& a : f.items) args.push_back(eval(*a, sc));
    for (const auto& [k, a] : f.kwargs) kwargs.emplace_back(k, eval(*a, sc));
    try {
      return apply_filter(f.name, v, args, kwargs);
    } catch (const raised_error&) {
      throw;
    } catch (const template_error& err) {
      fail(f.line, fmt::format("filter '{}': {}", f.name, err.what()));
    }
  }

  value unary(const expr& e, scope& sc) {
    value v = eval(*e.a, sc);
    if (e.name == "not") return value(!v.truthy());
    if (v.is_undefined()) fail(e.line, undefined_text(v));
    if (!v.is_number())
      fail(e.line, fmt::format("bad operand type for unary {}: '{}'", e.name, v.type_name()));
    if (e.name == "+") return v.type() == value::kind::boolean ? value(v.as_int()) : v;
    if (v.type() == value::kind::floating) return value(-v.as_double());
    return value(-v.as_int());
  }

  static bool both_ints(const value& a, const value& b) {
    return a.is_number() && b.is_number() && a.type() != value::kind::floating &&
           b.type() != value::kind::floating;
  }

  value binary(const std::string& op, const value& a, const value& b, int line) {
    if (op == "~") return value(to_str(a) + to_str(b));
    if (a.is_undefined()) fail(line, undefined_text(a));
    if (b.is_undefined()) fail(line, undefined_text(b));
    auto bad = [&]() -> value {
      fail(line, fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(),
                             b.type_name()));
    };
    std::int64_t r = 0;
    if (op == "+") {
      if (both_ints(a, b)) {
        if (__builtin_add_overflow(a.as_int(), b.as_int(), &r)) fail(line, "integer overflow");
        return value(r);
      }
      if (a.is_number() && b.is_number()) return value(a.as_double() + b.as_double());
      if (a.is_string() && b.is_string()) return value(a.str() + b.str());
      if (a.is_list() && b.is_list() && a.list_ref().tuple == b.list_ref().tuple) {
        value_list items = a.list_ref().items;
        items.insert(items.end(), b.list_ref().items.begin(), b.list_ref().items.end());
        return value::list(std::move(items), a.list_ref().tuple);
      }
      return bad();
    }
    if (op == "-") {
      if (both_ints(a, b)) {
        if (__builtin_sub_overflow(a.as_int(), b.as_int(), &r)) fail(line, "integer overflow");
        return value(r);
      }
      if (a.is_number() && b.is_number()) return value(a.as_double() - b.as_double());
      return bad();
    }
    if (op == "*") {
      if (both_ints(a, b)) {
        if (__builtin_mul_overflow(a.as_int(), b.as_int(), &r)) fail(line, "integer overflow");
        return value(r);
      }
      if (a.is_number() && b.is_number()) return value(a.as_double() * b.as_double());
      const value* seq = a.is_number() ? &b : &a;
      const value* count = a.is_number() ? &a : &b;
      if (count->type() == value::kind::floating || !count->is_number()) return bad();
      const std::int64_t n = std::max<std::int64_t>(0, count->as_int());
      if (n * std::max<std::int64_t>(1, length(*seq)) > (1 << 24))
        fail(line, "repetition too large");
      if (seq->is_string()) {
        std::string out;
        for (std::int64_t i = 0; i < n; ++i) out += seq->str();
        return value(std::move(out));
      }
      if (seq->is_list()) {
        value_list out;
        for (std::int64_t i = 0; i < n; ++i)
          out.insert(out.end(), seq->list_ref().items.begin(), seq->list_ref().items.end());
        return value::list(std::move(out), seq->list_ref().tuple);
      }
      return bad();
    }
    if (!a.is_number() || !b.is_number()) return bad();
    if (op == "/") {
      if (b.as_double() == 0) fail(line, "division by zero");
      return value(a.as_double() / b.as_double());
    }
    if (op == "//" || op == "%") {
      if (both_ints(a, b)) {
        const std::int64_t x = a.as_int(), y = b.as_int();
        if (y == 0) fail(line, "integer division or modulo by zero");
        std::int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
          --q;
          m += y;
        }
        return op == "//" ? value(q) : value(m);
      }
      const double x = a.as_double(), y = b.as_double();
      if (y == 0) fail(line, "float division by zero");
      const double q = std::floor(x / y);
      return op == "//" ? value(q) : value(x - q * y);
    }
    if (op == "**") {
      if (both_ints(a, b) && b.as_int() >= 0) {
        std::int64_t acc = 1;
        for (std::int64_t i = 0; i < b.as_int(); ++i)
          if (__builtin_mul_overflow(acc, a.as_int(), &acc)) fail(line, "integer overflow");
        return value(acc);
      }
      return value(std::pow(a.as_double(), b.as_double()));
    }
    return bad();
  }

  bool compare(const std::string& op, const value& a, const value& b, int line) {
    try {
      if (op == "==") return equals(a, b);
      if (op == "!=") return !equals(a, b);
      if (op == "in") return contains(b, a);
      if (op == "not in") return !contains(b, a);
      if (a.is_undefined()) fail(line, undefined_text(a));
      if (b.is_undefined()) fail(line, undefined_text(b));
      if (op == "<") return less(a, b);
      if (op == ">") return less(b, a);
      if (op == "<=") return !less(b, a);
      return !less(a, b);  // >=
    } catch (const template_error& err) {
      if (std::string_view(err.what()).substr(0, 5) == "line ") throw;
      fail(line, err.what());
    }
  }

  const value& ctx_;
  scope top_;
  std::string* out_ = nullptr;
  int depth_ = 0;
};

}  // namespace

compiled_template::compiled_template(std::string_view source)
    : body_(std::make_shared<const body>(parse(std::string(source)))) {}

std::string compiled_template::render(const value& context) const {
  return renderer(context).run(*body_);
}

}  // namespace conclave::jinja
