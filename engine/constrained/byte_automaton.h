// Byte automata for constrained decoding: a Thompson NFA built from fragments
// (literals, byte sets, sequences, alternatives, repetition) and the DFA made from it by
// subset construction, over byte equivalence classes, with each state's distance in
// bytes to acceptance (what a token budget needs to close a structure in time).
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace conclave::engine::constrained {

using byteset = std::bitset<256>;

/// Bytes lo..hi inclusive.
byteset byte_range(unsigned lo, unsigned hi);

/// A nondeterministic automaton under construction. Fragments have one entry and one
/// exit state; every builder call makes fresh states, so a sub-grammar used twice is
/// built twice.
class nfa {
 public:
  struct frag {
    int32_t begin = 0, end = 0;
  };

  int32_t add_state();
  void add_edge(int32_t from, const byteset& on, int32_t to);
  void add_eps(int32_t from, int32_t to);

  frag empty();
  frag literal(std::string_view bytes);
  frag bytes(const byteset& on);
  frag seq(std::initializer_list<frag> parts);
  frag seq(const std::vector<frag>& parts);
  frag alt(const std::vector<frag>& options);
  frag optional(frag f);
  /// Zero or more repetitions of `f`.
  frag star(frag f);
  /// One or more `item`s with `sep` between them (each built once, looped).
  frag list(frag item, frag sep);

  struct edge {
    byteset on;
    int32_t to;
  };
  size_t size() const { return eps_.size(); }
  const std::vector<int32_t>& eps(int32_t s) const { return eps_[static_cast<size_t>(s)]; }
  const std::vector<int32_t>& edges(int32_t s) const { return edges_[static_cast<size_t>(s)]; }
  const edge& edge_at(int32_t i) const { return all_edges_[static_cast<size_t>(i)]; }
  size_t num_edges() const { return all_edges_.size(); }

 private:
  std::vector<std::vector<int32_t>> eps_;
  std::vector<std::vector<int32_t>> edges_;  ///< indices into all_edges_
  std::vector<edge> all_edges_;
};

/// A deterministic automaton over bytes. State -1 is the dead state.
class dfa {
 public:
  static constexpr int32_t dead = -1;

  /// Subset construction of `n` from `start`, accepting where `accept` is reached.
  /// Throws std::length_error past `max_states`.
  static dfa from_nfa(const nfa& n, int32_t start, int32_t accept, size_t max_states = 200000);

  int32_t start() const { return 0; }
  size_t num_states() const { return accepting_.size(); }
  int32_t step(int32_t s, uint8_t b) const {
    return next_[static_cast<size_t>(s) * num_classes_ + byte_class_[b]];
  }
  /// Walks `bytes` from `s`; dead as soon as a byte is refused.
  int32_t walk(int32_t s, std::string_view bytes) const;
  bool accepting(int32_t s) const { return accepting_[static_cast<size_t>(s)] != 0; }
  /// Fewest bytes from `s` to an accepting state.
  uint32_t distance(int32_t s) const { return dist_[static_cast<size_t>(s)]; }
  size_t num_classes() const { return num_classes_; }
  /// The bytes of a shortest way from `s` to acceptance (lowest byte at each step).
  std::string shortest_completion(int32_t s) const;

 private:
  std::array<uint16_t, 256> byte_class_{};
  size_t num_classes_ = 0;
  std::vector<int32_t> next_;
  std::vector<uint8_t> accepting_;
  std::vector<uint32_t> dist_;
};

}  // namespace conclave::engine::constrained
