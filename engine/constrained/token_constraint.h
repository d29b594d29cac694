// Token-level constraints: a byte DFA lifted to a vocabulary. `vocabulary` holds every
// token's bytes in a byte trie; `token_constraint` walks the trie against the DFA to get
// the tokens allowed in a state (cached per state, one bit per token) and keeps the
// distances that let a token budget close the structure in time; `matcher` is one
// sequence's position in it.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/constrained/byte_automaton.h"

namespace conclave::engine::constrained {

/// The byte strings of a vocabulary as a trie. Token ids with empty bytes (gaps,
/// special tokens the caller leaves out) are never allowed by a constraint.
class vocabulary {
 public:
  /// `token_bytes[id]`: the bytes token `id` decodes to; empty to leave it out.
  explicit vocabulary(const std::vector<std::string>& token_bytes);

  size_t size() const { return size_; }
  std::string_view bytes(int32_t id) const;

  /// Calls `visit(token, state_after)` for every token whose bytes `d` accepts from `s`
  /// (possibly stopping inside the grammar, never in the dead state).
  template <typename F>
  void walk(const dfa& d, int32_t s, F&& visit) const;

 private:
  struct node {
    uint32_t edge_begin = 0, edge_end = 0;    ///< into edge_byte_/edge_child_
    uint32_t token_begin = 0, token_end = 0;  ///< into tokens_
  };
  size_t size_ = 0;
  std::vector<std::string> bytes_;
  std::vector<node> nodes_;
  std::vector<uint8_t> edge_byte_;
  std::vector<uint32_t> edge_child_;
  std::vector<int32_t> tokens_;
};

/// A compiled constraint: immutable but for its per-state mask cache (thread-safe), so
/// one instance serves every sequence of every request with the same grammar.
class token_constraint {
 public:
  /// `end_tokens` (EOS ids) are allowed exactly where the grammar accepts; after one
  /// of them only end tokens are allowed.
  token_constraint(std::shared_ptr<const vocabulary> vocab, dfa grammar,
                   std::vector<int32_t> end_tokens);

  /// Matcher state after the last end token.
  static constexpr int32_t finished = -2;
  /// Matcher state after a token the constraint did not allow: no constraint any more.
  static constexpr int32_t off = -3;

  int32_t start() const { return grammar_.start(); }
  /// The state after `token` from `state` (finished, off, or a grammar state).
  int32_t advance(int32_t state, int32_t token) const;
  bool is_end_token(int32_t token) const;

  /// Sets every disallowed entry of `logits` to -inf. `remaining` is how many tokens may
  /// still be sampled, this one included: where the budget is short, only tokens after
  /// which the grammar can still be completed (one byte per token, then an end token) are
  /// allowed, so a call is never cut off by max_tokens when the budget permits one.
  void apply(int32_t state, int64_t remaining, std::span<float> logits) const;
  /// The allowed token ids (for tests and benchmarks), same rules as apply().
  std::vector<int32_t> allowed(int32_t state, int64_t remaining) const;

  const dfa& grammar() const { return grammar_; }
  const vocabulary& vocab() const { return *vocab_; }
  /// States whose masks are cached so far.
  size_t cached_states() const;

 private:
  struct state_mask {
    std::vector<uint64_t> bits;  ///< one bit per token id
    uint32_t max_next_distance = 0;
  };
  /// The allowed tokens of a state ordered by the distance left after them, packed as
  /// distance << 32 | token (built when a short budget first needs it).
  using by_distance = std::vector<uint64_t>;
  const state_mask& mask_of(int32_t state) const;
  const by_distance& distances_of(int32_t state) const;
  std::vector<uint64_t> budget_mask(int32_t state, int64_t remaining) const;

  std::shared_ptr<const vocabulary> vocab_;
  dfa grammar_;
  std::vector<int32_t> end_tokens_;
  mutable std::mutex mu_;
  mutable std::unordered_map<int32_t, std::shared_ptr<const state_mask>> masks_;
  mutable std::unordered_map<int32_t, std::shared_ptr<const by_distance>> distances_;
};

/// One sequence's position in a constraint.
class matcher {
 public:
  explicit matcher(std::shared_ptr<const token_constraint> c)
      : c_(std::move(c)), state_(c_->start()) {}

  /// Disallowed tokens -> -inf (see token_constraint::apply).
  void apply(std::span<float> logits, int64_t remaining) const {
    if (state_ != token_constraint::off) c_->apply(state_, remaining, logits);
  }
  /// Moves past a sampled token.
  void advance(int32_t token) {
    if (state_ != token_constraint::off) state_ = c_->advance(state_, token);
  }
  int32_t state() const { return state_; }
  bool done() const { return state_ == token_constraint::finished; }
  /// Still constraining (no disallowed token was fed).
  bool active() const { return state_ != token_constraint::off; }

 private:
  std::shared_ptr<const token_constraint> c_;
  int32_t state_;
};

template <typename F>
void vocabulary::walk(const dfa& d, int32_t s, F&& visit) const {
  struct frame {
    uint32_t node;
    int32_t state;
  };
  std::vector<frame> stack{{0, s}};
  while (!stack.empty()) {
    const frame f = stack.back();
    stack.pop_back();
    const node& n = nodes_[f.node];
    for (uint32_t e = n.edge_begin; e < n.edge_end; ++e) {
      const int32_t ns = d.step(f.state, edge_byte_[e]);
      if (ns == dfa::dead) continue;
      const uint32_t child = edge_child_[e];
      const node& c = nodes_[child];
      for (uint32_t t = c.token_begin; t < c.token_end; ++t) visit(tokens_[t], ns);
      if (c.edge_begin != c.edge_end) stack.push_back({child, ns});
    }
  }
}

}  // namespace conclave::engine::constrained
