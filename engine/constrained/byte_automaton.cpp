// NFA fragments and subset construction (see the header).
#include "engine/constrained/byte_automaton.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <map>
#include <stdexcept>

namespace conclave::engine::constrained {

byteset byte_range(unsigned lo, unsigned hi) {
  byteset b;
  for (unsigned i = lo; i <= hi && i < 256; ++i) b.set(i);
  return b;
}

int32_t nfa::add_state() {
  eps_.emplace_back();
  edges_.emplace_back();
  return static_cast<int32_t>(eps_.size() - 1);
}

void nfa::add_edge(int32_t from, const byteset& on, int32_t to) {
  all_edges_.push_back({on, to});
  edges_[static_cast<size_t>(from)].push_back(static_cast<int32_t>(all_edges_.size() - 1));
}

void nfa::add_eps(int32_t from, int32_t to) {
  eps_[static_cast<size_t>(from)].push_back(to);
}

nfa::frag nfa::empty() {
  const int32_t s = add_state();
  return {s, s};
}

nfa::frag nfa::literal(std::string_view bytes) {
  const int32_t begin = add_state();
  int32_t cur = begin;
  for (char c : bytes) {
    const int32_t nxt = add_state();
    byteset b;
    b.set(static_cast<uint8_t>(c));
    add_edge(cur, b, nxt);
    cur = nxt;
  }
  return {begin, cur};
}

nfa::frag nfa::bytes(const byteset& on) {
  const int32_t a = add_state(), b = add_state();
  add_edge(a, on, b);
  return {a, b};
}

nfa::frag nfa::seq(std::initializer_list<frag> parts) {
  return seq(std::vector<frag>(parts));
}

nfa::frag nfa::seq(const std::vector<frag>& parts) {
  if (parts.empty()) return empty();
  for (size_t i = 1; i < parts.size(); ++i) add_eps(parts[i - 1].end, parts[i].begin);
  return {parts.front().begin, parts.back().end};
}

nfa::frag nfa::list(frag item, frag sep) {
  add_eps(item.end, sep.begin);
  add_eps(sep.end, item.begin);
  return item;
}

nfa::frag nfa::alt(const std::vector<frag>& options) {
  const int32_t a = add_state(), b = add_state();
  for (const frag& f : options) {
    add_eps(a, f.begin);
    add_eps(f.end, b);
  }
  return {a, b};
}

nfa::frag nfa::optional(frag f) {
  const int32_t a = add_state(), b = add_state();
  add_eps(a, f.begin);
  add_eps(f.end, b);
  add_eps(a, b);
  return {a, b};
}

nfa::frag nfa::star(frag f) {
  const int32_t a = add_state(), b = add_state();
  add_eps(a, f.begin);
  add_eps(f.end, f.begin);
  add_eps(f.end, b);
  add_eps(a, b);
  return {a, b};
}

namespace {

/// Epsilon closures; the visited marks are reused between calls.
class closer {
 public:
  explicit closer(const nfa& n) : n_(n), mark_(n.size(), 0) {}

  std::vector<int32_t> operator()(std::vector<int32_t> set) {
    if (set.empty()) return set;
    ++gen_;
    stack_.clear();
    for (int32_t s : set) visit(s);
    set.clear();
    while (!stack_.empty()) {
      const int32_t s = stack_.back();
      stack_.pop_back();
      set.push_back(s);
      for (int32_t t : n_.eps(s)) visit(t);
    }
    std::sort(set.begin(), set.end());
    return set;
  }

 private:
  void visit(int32_t s) {
    if (mark_[static_cast<size_t>(s)] != gen_) {
      mark_[static_cast<size_t>(s)] = gen_;
      stack_.push_back(s);
    }
  }
  const nfa& n_;
  std::vector<uint32_t> mark_;
  uint32_t gen_ = 0;
  std::vector<int32_t> stack_;
};

}  // namespace

dfa dfa::from_nfa(const nfa& n, int32_t start, int32_t accept, size_t max_states) {
  dfa d;
  // Byte classes: bytes no edge tells apart share a class.
  std::map<std::vector<int32_t>, uint16_t> classes;
  std::vector<uint8_t> representative;
  for (unsigned b = 0; b < 256; ++b) {
    std::vector<int32_t> sig;
    for (size_t e = 0; e < n.num_edges(); ++e) {
      if (n.edge_at(static_cast<int32_t>(e)).on.test(b)) sig.push_back(static_cast<int32_t>(e));
    }
    auto [it, fresh] = classes.emplace(std::move(sig), static_cast<uint16_t>(classes.size()));
    if (fresh) representative.push_back(static_cast<uint8_t>(b));
    d.byte_class_[b] = it->second;
  }
  d.num_classes_ = classes.size();

  std::map<std::vector<int32_t>, int32_t> ids;
  std::vector<std::vector<int32_t>> sets;
  auto intern = [&](std::vector<int32_t> set) -> int32_t {
    if (set.empty()) return dead;
    auto it = ids.find(set);
    if (it != ids.end()) return it->second;
    if (sets.size() >= max_states)
      throw std::length_error("constrained decoding: the grammar's automaton is too large");
    const auto id = static_cast<int32_t>(sets.size());
    ids.emplace(set, id);
    sets.push_back(std::move(set));
    return id;
  };
  closer closure(n);
  intern(closure({start}));
  for (size_t i = 0; i < sets.size(); ++i) {
    d.accepting_.push_back(std::binary_search(sets[i].begin(), sets[i].end(), accept) ? 1 : 0);
    for (size_t c = 0; c < d.num_classes_; ++c) {
      const uint8_t b = representative[c];
      std::vector<int32_t> moved;
      for (int32_t s : sets[i]) {
        for (int32_t e : n.edges(s)) {
          const auto& ed = n.edge_at(e);
          if (ed.on.test(b)) moved.push_back(ed.to);
        }
      }
      const int32_t to = intern(closure(std::move(moved)));
      d.next_.push_back(to);
    }
  }

  // Distances to acceptance: breadth-first over reversed transitions.
  const size_t ns = sets.size(), nc = d.num_classes_;
  constexpr uint32_t inf = std::numeric_limits<uint32_t>::max();
  d.dist_.assign(ns, inf);
  std::vector<std::vector<int32_t>> rev(ns);
  for (size_t s = 0; s < ns; ++s) {
    for (size_t c = 0; c < nc; ++c) {
      const int32_t t = d.next_[s * nc + c];
      if (t != dead) rev[static_cast<size_t>(t)].push_back(static_cast<int32_t>(s));
    }
  }
  std::deque<int32_t> queue;
  for (size_t s = 0; s < ns; ++s) {
    if (d.accepting_[s]) {
      d.dist_[s] = 0;
      queue.push_back(static_cast<int32_t>(s));
    }
  }
  while (!queue.empty()) {
    const int32_t t = queue.front();
    queue.pop_front();
    for (int32_t s : rev[static_cast<size_t>(t)]) {
      if (d.dist_[static_cast<size_t>(s)] == inf) {
        d.dist_[static_cast<size_t>(s)] = d.dist_[static_cast<size_t>(t)] + 1;
        queue.push_back(s);
      }
    }
  }
  // States that cannot reach acceptance are dead ends: never enter them.
  for (int32_t& t : d.next_) {
    if (t != dead && d.dist_[static_cast<size_t>(t)] == inf) t = dead;
  }
  if (d.dist_[0] == inf) throw std::invalid_argument("constrained decoding: empty grammar");
  return d;
}

int32_t dfa::walk(int32_t s, std::string_view bytes) const {
  for (char c : bytes) {
    if (s == dead) return dead;
    s = step(s, static_cast<uint8_t>(c));
  }
  return s;
}

std::string dfa::shortest_completion(int32_t s) const {
  std::string out;
  while (s != dead && !accepting(s)) {
    const uint32_t want = distance(s) - 1;
    bool moved = false;
    for (unsigned b = 0; b < 256 && !moved; ++b) {
      const int32_t t = step(s, static_cast<uint8_t>(b));
      if (t != dead && distance(t) == want) {
        out.push_back(static_cast<char>(b));
        s = t;
        moved = true;
      }
    }
    if (!moved) break;
  }
  return out;
}

}  // namespace conclave::engine::constrained
