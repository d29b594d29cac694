// Vocabulary trie, per-state token masks and the token budget (see the header).
#include "engine/constrained/token_constraint.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace conclave::engine::constrained {
namespace {

constexpr float neg_inf = -std::numeric_limits<float>::infinity();

void set_bit(std::vector<uint64_t>& bits, int32_t id) {
  bits[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (static_cast<unsigned>(id) & 63);
}

}  // namespace

vocabulary::vocabulary(const std::vector<std::string>& token_bytes)
    : size_(token_bytes.size()), bytes_(token_bytes) {
  std::vector<int32_t> order;
  for (size_t i = 0; i < token_bytes.size(); ++i) {
    if (!token_bytes[i].empty()) order.push_back(static_cast<int32_t>(i));
  }
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const auto& x = token_bytes[static_cast<size_t>(a)];
    const auto& y = token_bytes[static_cast<size_t>(b)];
    return x != y ? x < y : a < b;
  });
  // Insertion in sorted order only ever extends the current path, so each node's
  // children arrive in increasing byte order.
  struct build_node {
    std::vector<std::pair<uint8_t, uint32_t>> children;
    std::vector<int32_t> tokens;
  };
  std::vector<build_node> tmp(1);
  for (int32_t id : order) {
    uint32_t cur = 0;
    for (char ch : token_bytes[static_cast<size_t>(id)]) {
      const auto b = static_cast<uint8_t>(ch);
      auto& kids = tmp[cur].children;
      if (!kids.empty() && kids.back().first == b) {
        cur = kids.back().second;
      } else {
        const auto child = static_cast<uint32_t>(tmp.size());
        kids.emplace_back(b, child);
        tmp.emplace_back();
        cur = child;
      }
    }
    tmp[cur].tokens.push_back(id);
  }
  nodes_.resize(tmp.size());
  for (size_t i = 0; i < tmp.size(); ++i) {
    node& n = nodes_[i];
    n.edge_begin = static_cast<uint32_t>(edge_byte_.size());
    for (auto [b, c] : tmp[i].children) {
      edge_byte_.push_back(b);
      edge_child_.push_back(c);
    }
    n.edge_end = static_cast<uint32_t>(edge_byte_.size());
    n.token_begin = static_cast<uint32_t>(tokens_.size());
    tokens_.insert(tokens_.end(), tmp[i].tokens.begin(), tmp[i].tokens.end());
    n.token_end = static_cast<uint32_t>(tokens_.size());
  }
}

std::string_view vocabulary::bytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= size_) return {};
  return bytes_[static_cast<size_t>(id)];
}

token_constraint::token_constraint(std::shared_ptr<const vocabulary> vocab, dfa grammar,
                                   std::vector<int32_t> end_tokens)
    : vocab_(std::move(vocab)), grammar_(std::move(grammar)), end_tokens_(std::move(end_tokens)) {
  if (end_tokens_.empty())
    throw std::invalid_argument("constrained decoding needs at least one end (EOS) token");
}

bool token_constraint::is_end_token(int32_t token) const {
  return std::find(end_tokens_.begin(), end_tokens_.end(), token) != end_tokens_.end();
}

int32_t token_constraint::advance(int32_t state, int32_t token) const {
  if (state == off) return off;
  if (is_end_token(token)) return state == finished || grammar_.accepting(state) ? finished : off;
  if (state == finished) return off;
  const std::string_view b = vocab_->bytes(token);
  if (b.empty()) return off;
  const int32_t next = grammar_.walk(state, b);
  return next == dfa::dead ? off : next;
}

const token_constraint::state_mask& token_constraint::mask_of(int32_t state) const {
  {
    std::lock_guard lock(mu_);
    if (auto it = masks_.find(state); it != masks_.end()) return *it->second;
  }
  auto m = std::make_shared<state_mask>();
  m->bits.assign((vocab_->size() + 63) / 64, 0);
  vocab_->walk(grammar_, state, [&](int32_t token, int32_t next) {
    set_bit(m->bits, token);
    m->max_next_distance = std::max(m->max_next_distance, grammar_.distance(next));
  });
  std::lock_guard lock(mu_);
  auto [it, fresh] = masks_.emplace(state, std::move(m));
  return *it->second;
}

size_t token_constraint::cached_states() const {
  std::lock_guard lock(mu_);
  return masks_.size();
}

const token_constraint::by_distance& token_constraint::distances_of(int32_t state) const {
  {
    std::lock_guard lock(mu_);
    if (auto it = distances_.find(state); it != distances_.end()) return *it->second;
  }
  auto d = std::make_shared<by_distance>();
  vocab_->walk(grammar_, state, [&](int32_t token, int32_t next) {
    d->push_back(uint64_t{grammar_.distance(next)} << 32 | static_cast<uint32_t>(token));
  });
  std::sort(d->begin(), d->end());
  std::lock_guard lock(mu_);
  auto [it, fresh] = distances_.emplace(state, std::move(d));
  return *it->second;
}

std::vector<uint64_t> token_constraint::budget_mask(int32_t state, int64_t remaining) const {
  // After this token, `remaining - 1` tokens are left: the next state's distance in bytes
  // (one byte token each) plus one end token must fit.
  std::vector<uint64_t> bits((vocab_->size() + 63) / 64, 0);
  const by_distance& d = distances_of(state);
  if (d.empty()) return bits;
  const int64_t room = remaining - 2;
  // Nothing fits: the shortest way on is the best there is (the end token, where the
  // grammar accepts).
  const auto best = static_cast<int64_t>(d.front() >> 32);
  const int64_t limit = grammar_.accepting(state) ? room : std::max<int64_t>(room, best);
  for (uint64_t e : d) {
    if (static_cast<int64_t>(e >> 32) > limit) break;
    set_bit(bits, static_cast<int32_t>(e & 0xffffffffu));
  }
  return bits;
}

void token_constraint::apply(int32_t state, int64_t remaining, std::span<float> logits) const {
  const size_t n = logits.size();
  auto apply_bits = [&](const std::vector<uint64_t>& bits) {
    for (size_t w = 0; w < bits.size(); ++w) {
      uint64_t keep = bits[w];
      const size_t base = w * 64;
      if (base >= n) break;
      if (keep == ~uint64_t{0}) continue;
      const size_t top = std::min<size_t>(64, n - base);
      if (keep == 0) {
        std::fill_n(logits.begin() + static_cast<std::ptrdiff_t>(base), top, neg_inf);
        continue;
      }
      for (size_t i = 0; i < top; ++i) {
        if (!((keep >> i) & 1)) logits[base + i] = neg_inf;
      }
    }
    for (size_t i = bits.size() * 64; i < n; ++i) logits[i] = neg_inf;
  };
  // End tokens are not in the trie: keep their logits aside, mask, put them back if allowed.
  std::vector<std::pair<int32_t, float>> ends;
  const bool end_ok = state == finished || (state >= 0 && grammar_.accepting(state));
  for (int32_t t : end_tokens_) {
    if (t >= 0 && static_cast<size_t>(t) < n) ends.emplace_back(t, logits[static_cast<size_t>(t)]);
  }
  if (state == finished) {
    std::fill(logits.begin(), logits.end(), neg_inf);
  } else {
    const state_mask& m = mask_of(state);
    const bool budget_ok = remaining - 2 >= static_cast<int64_t>(m.max_next_distance);
    if (budget_ok || (end_ok && remaining <= 1)) {
      apply_bits(m.bits);
    } else {
      apply_bits(budget_mask(state, remaining));
    }
    // With no budget left at all, only the end is allowed where the grammar accepts.
    if (end_ok && remaining <= 1) std::fill(logits.begin(), logits.end(), neg_inf);
  }
  for (auto [t, v] : ends) logits[static_cast<size_t>(t)] = end_ok ? v : neg_inf;
}

std::vector<int32_t> token_constraint::allowed(int32_t state, int64_t remaining) const {
  std::vector<float> row(vocab_->size(), 0.0f);
  for (int32_t t : end_tokens_) {
    if (t >= 0 && static_cast<size_t>(t) >= row.size()) row.resize(static_cast<size_t>(t) + 1);
  }
  apply(state, remaining, row);
  std::vector<int32_t> out;
  for (size_t i = 0; i < row.size(); ++i) {
    if (row[i] == 0.0f) out.push_back(static_cast<int32_t>(i));
  }
  return out;
}

}  // namespace conclave::engine::constrained
