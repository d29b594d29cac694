// Byte-level BPE. Pieces up to 128 bytes merge with a linear scan over pair ranks (fast for
// the short pieces that dominate text); longer ones use a min-heap over a linked list.
#include "model/tokenizer/bpe.h"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include <sys/mman.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace conclave::tokenizer::detail {
namespace {

constexpr uint32_t no_rank = UINT32_MAX;
constexpr size_t linear_limit = 128;
constexpr uint64_t empty_merge = ~uint64_t{0};
constexpr uint64_t rank_mask = (uint64_t{1} << 21) - 1;

inline uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(a) << 21) | static_cast<uint64_t>(b);
}
inline size_t merge_home(uint64_t key, int shift) {
  return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift);
}
inline uint64_t mix(uint64_t key) {
  key ^= key >> 31;
  key *= 0xBF58476D1CE4E5B9ull;
  return key ^ (key >> 29);
}
inline uint64_t hash_bytes(const void* p, size_t n) {
  return XXH3_64bits(p, n);
}

}  // namespace

template <class T>
T* huge_page_allocator<T>::allocate(size_t n) {
  constexpr size_t huge = size_t{2} << 20;
  const size_t bytes = n * sizeof(T);
  if (bytes < huge) return std::allocator<T>().allocate(n);
  void* p = std::aligned_alloc(huge, (bytes + huge - 1) / huge * huge);
  if (p == nullptr) throw std::bad_alloc();
  madvise(p, bytes, MADV_HUGEPAGE);  // advisory: a failure only costs speed
  return static_cast<T*>(p);
}

template <class T>
void huge_page_allocator<T>::deallocate(T* p, size_t n) {
  if (n * sizeof(T) < (size_t{2} << 20)) {
    std::allocator<T>().deallocate(p, n);
  } else {
    std::free(p);
  }
}

template struct huge_page_allocator<uint64_t>;
template struct huge_page_allocator<bpe_model::token_slot>;

void bpe_model::reserve(size_t tokens, size_t merges) {
  if (tokens * 2 > tokens_.size()) grow_tokens(tokens * 2);
  if (merges * 2 > merges_.size()) grow_merges(merges * 2);
  arena_.reserve(tokens * 8);
  merged_by_rank_.reserve(merges);
}

void bpe_model::grow_tokens(size_t min_slots) {
  auto old = std::move(tokens_);
  tokens_.assign(std::bit_ceil(std::max<size_t>(min_slots, 1024)), token_slot{0, -1, 0, 0});
  token_count_ = 0;
  for (const auto& t : old) {
    if (t.id < 0) continue;
    const std::string_view bytes(arena_.data() + t.off, t.len);
    *insert_slot(bytes, hash_bytes(bytes.data(), bytes.size())) = t;
  }
}

bpe_model::token_slot* bpe_model::insert_slot(std::string_view bytes, uint64_t hash) {
  if ((token_count_ + 1) * 2 > tokens_.size()) grow_tokens(tokens_.size() * 2);
  const size_t mask = tokens_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    token_slot& t = tokens_[i];
    if (t.id < 0) {
      ++token_count_;
      t.tag = static_cast<uint32_t>(hash >> 32);
      return &t;
    }
    if (t.tag == static_cast<uint32_t>(hash >> 32) && t.len == bytes.size() &&
        std::memcmp(arena_.data() + t.off, bytes.data(), bytes.size()) == 0) {
      return &t;
    }
  }
}

const bpe_model::token_slot* bpe_model::find_slot(std::string_view bytes, uint64_t hash) const {
  const size_t mask = tokens_.size() - 1;
  const auto tag = static_cast<uint32_t>(hash >> 32);
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const token_slot& t = tokens_[i];
    if (t.id < 0) return nullptr;
    if (t.tag == tag && t.len == bytes.size() &&
        std::memcmp(arena_.data() + t.off, bytes.data(), bytes.size()) == 0) {
      return &t;
    }
  }
}

void bpe_model::add_token(std::string_view bytes, int32_t id) {
  token_slot* t = insert_slot(bytes, hash_bytes(bytes.data(), bytes.size()));
  t->id = id;
  t->off = static_cast<uint32_t>(arena_.size());
  t->len = static_cast<uint32_t>(bytes.size());
  arena_.append(bytes);
}

int32_t bpe_model::find(std::string_view bytes) const {
  if (tokens_.empty()) return -1;
  const token_slot* t = find_slot(bytes, hash_bytes(bytes.data(), bytes.size()));
  return t == nullptr ? -1 : t->id;
}

void bpe_model::grow_merges(size_t min_slots) {
  auto old = std::move(merges_);
  const size_t cap = std::bit_ceil(std::max<size_t>(min_slots, 1024));
  merges_.assign(cap, empty_merge);
  merge_shift_ = 64 - std::countr_zero(cap);
  for (const uint64_t m : old) {
    if (m == empty_merge) continue;
    for (size_t i = merge_home(m >> 21, merge_shift_);; i = (i + 1) & (cap - 1)) {
      if (merges_[i] == empty_merge) {
        merges_[i] = m;
        break;
      }
    }
  }
}

inline uint32_t bpe_model::rank_of(int32_t a, int32_t b) const {
  const uint64_t key = pair_key(a, b);
  const size_t mask = merges_.size() - 1;
  for (size_t i = merge_home(key, merge_shift_);; i = (i + 1) & mask) {
    const uint64_t m = merges_[i];
    if ((m >> 21) == key) return static_cast<uint32_t>(m & rank_mask);
    if (m == empty_merge) return no_rank;
  }
}

// Four bits of one word, picked by the key's mixed hash; the word is picked by its top bits.
inline uint64_t bpe_model::filter_mask(uint64_t key) {
  const uint64_t h = mix(key);
  return (uint64_t{1} << (h & 63)) | (uint64_t{1} << ((h >> 6) & 63)) |
         (uint64_t{1} << ((h >> 12) & 63)) | (uint64_t{1} << ((h >> 18) & 63));
}

inline uint32_t bpe_model::cached_rank(int32_t a, int32_t b, bpe_scratch& s) const {
  const uint64_t key = pair_key(a, b);
  uint64_t& e = s.pairs[merge_home(key, 64 - bpe_scratch::pair_bits)];
  if ((e >> 21) == key) {
    const auto r = static_cast<uint32_t>(e & rank_mask);
    return r == rank_mask ? no_rank : r;
  }
  const uint64_t mask = filter_mask(key);
  const uint64_t word = filter_[mix(key) >> (64 - filter_bits)];
  const uint32_t r = (word & mask) == mask ? rank_of(a, b) : no_rank;
  e = (key << 21) | (r == no_rank ? rank_mask : r);
  return r;
}

bool bpe_model::add_merge(std::string_view a, std::string_view b, uint32_t rank) {
  const int32_t ia = find(a), ib = find(b);
  std::string joined;
  joined.reserve(a.size() + b.size());
  joined.append(a).append(b);
  const int32_t im = find(joined);
  if (ia < 0 || ib < 0 || im < 0) return false;
  if ((merge_count_ + 1) * 2 > merges_.size()) grow_merges(merges_.size() * 2);
  if (merged_by_rank_.size() <= rank) merged_by_rank_.resize(rank + 1, -1);
  merged_by_rank_[rank] = im;
  const uint64_t key = pair_key(ia, ib);
  const size_t mask = merges_.size() - 1;
  for (size_t i = merge_home(key, merge_shift_);; i = (i + 1) & mask) {
    uint64_t& m = merges_[i];
    if (m == empty_merge) ++merge_count_;
    if (m == empty_merge || (m >> 21) == key) {
      m = (key << 21) | rank;
      return true;
    }
  }
}

int bpe_model::finish(bool ignore_merges) {
  if (merges_.empty()) grow_merges(0);
  if (tokens_.empty()) grow_tokens(0);
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    byte_ids_[static_cast<size_t>(b)] = find(std::string_view(&c, 1));
    if (byte_ids_[static_cast<size_t>(b)] < 0) return b;
  }
  filter_.assign(size_t{1} << filter_bits, 0);
  for (const uint64_t m : merges_) {
    if (m == empty_merge) continue;
    const uint64_t key = m >> 21;
    filter_[mix(key) >> (64 - filter_bits)] |= filter_mask(key);
  }
  byte_pair_ranks_.resize(256 * 256);
  for (size_t a = 0; a < 256; ++a) {
    for (size_t b = 0; b < 256; ++b)
      byte_pair_ranks_[a * 256 + b] = rank_of(byte_ids_[a], byte_ids_[b]);
  }
  int32_t max_token = 0;
  for (const auto& t : tokens_) max_token = std::max(max_token, t.id);
  whole_size_ = static_cast<size_t>(max_token) + 1;
  whole_ = std::make_unique<std::atomic<uint8_t>[]>(whole_size_);
  for (size_t i = 0; i < whole_size_; ++i) {
    whole_[i].store(ignore_merges ? whole_yes : whole_unknown, std::memory_order_relaxed);
  }
  return -1;
}

void bpe_model::encode(std::string_view piece, std::vector<int32_t>& out, bpe_scratch& s) const {
  const auto* p = reinterpret_cast<const unsigned char*>(piece.data());
  const size_t n = piece.size();
  if (n == 1) {
    out.push_back(byte_ids_[p[0]]);
    return;
  }
  const uint64_t hash = hash_bytes(p, n);
  bpe_scratch::cache_slot* slot = nullptr;
  if (n <= bpe_scratch::max_cached_len) {
    slot = &s.cache[hash & (bpe_scratch::cache_slots - 1)];
    if (slot->len == n && slot->hash == hash && std::memcmp(slot->bytes, p, n) == 0) {
      // At most six ids: a plain loop beats vector::insert's memmove call.
      for (uint8_t i = 0; i < slot->count; ++i) out.push_back(slot->ids[i]);
      return;
    }
  }
  const size_t start = out.size();
  const token_slot* t = find_slot(piece, hash);
  const uint8_t whole =
      t == nullptr ? whole_no : whole_[static_cast<size_t>(t->id)].load(std::memory_order_relaxed);
  if (whole == whole_yes) {
    out.push_back(t->id);
  } else {
    merge(p, n, out, s);
    if (whole == whole_unknown) {
      const bool yes = out.size() == start + 1 && out[start] == t->id;
      whole_[static_cast<size_t>(t->id)].store(yes ? whole_yes : whole_no,
                                               std::memory_order_relaxed);
    }
  }
  const size_t count = out.size() - start;
  if (slot != nullptr && count <= bpe_scratch::max_cached_ids) {
    slot->hash = hash;
    slot->len = static_cast<uint8_t>(n);
    slot->count = static_cast<uint8_t>(count);
    std::memcpy(slot->bytes, p, n);
    for (size_t i = 0; i < count; ++i) slot->ids[i] = out[start + i];
  }
}

void bpe_model::merge(const unsigned char* p, size_t n, std::vector<int32_t>& out,
                      bpe_scratch& s) const {
  auto& ids = s.ids;
  ids.resize(n);
  for (size_t i = 0; i < n; ++i) ids[i] = byte_ids_[p[i]];
  if (n > linear_limit) {
    merge_long(p, n, out, s);
    return;
  }
  // ranks[i] is the rank of the pair (ids[i], ids[i + 1]).
  uint32_t ranks[linear_limit];
  for (size_t i = 0; i + 1 < n; ++i) ranks[i] = byte_pair_ranks_[p[i] * 256u + p[i + 1]];
  size_t count = n;
  while (count > 1) {
    uint32_t best = no_rank;
    size_t at = 0;
    for (size_t i = 0; i + 1 < count; ++i) {
      if (ranks[i] < best) {
        best = ranks[i];
        at = i;
      }
    }
    if (best == no_rank) break;
    ids[at] = merged_by_rank_[best];
    // Drop ids[at + 1] and ranks[at], then rescore the pairs on both sides of `at`.
    for (size_t i = at + 1; i + 1 < count; ++i) ids[i] = ids[i + 1];
    for (size_t i = at; i + 2 < count; ++i) ranks[i] = ranks[i + 1];
    --count;
    if (at > 0) ranks[at - 1] = cached_rank(ids[at - 1], ids[at], s);
    if (at + 1 < count) ranks[at] = cached_rank(ids[at], ids[at + 1], s);
  }
  out.insert(out.end(), ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(count));
}

void bpe_model::merge_long(const unsigned char* p, size_t n, std::vector<int32_t>& out,
                           bpe_scratch& s) const {
  auto& ids = s.ids;
  auto& prev = s.prev;
  auto& next = s.next;
  auto& heap = s.heap;
  prev.resize(n);
  next.resize(n);
  heap.clear();
  const auto later = [](const bpe_scratch::heap_entry& a, const bpe_scratch::heap_entry& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  const auto push_rank = [&](int32_t i, int32_t j, uint32_t rank) {
    if (rank == no_rank) return;
    const int32_t left = ids[static_cast<size_t>(i)], right = ids[static_cast<size_t>(j)];
    heap.push_back({rank, static_cast<uint32_t>(i), left, right});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  const auto push = [&](int32_t i, int32_t j) {
    push_rank(i, j, cached_rank(ids[static_cast<size_t>(i)], ids[static_cast<size_t>(j)], s));
  };
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  for (size_t i = 0; i + 1 < n; ++i) {
    push_rank(static_cast<int32_t>(i), static_cast<int32_t>(i + 1),
              byte_pair_ranks_[p[i] * 256u + p[i + 1]]);
  }
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const auto e = heap.back();
    heap.pop_back();
    // Stale entries: a side was merged away or grew since the entry was pushed.
    if (ids[e.pos] != e.left) continue;
    const int32_t nx = next[e.pos];
    if (nx < 0 || ids[static_cast<size_t>(nx)] != e.right) continue;
    ids[e.pos] = merged_by_rank_[e.rank];
    ids[static_cast<size_t>(nx)] = -1;
    const int32_t after = next[static_cast<size_t>(nx)];
    next[e.pos] = after;
    if (after >= 0) prev[static_cast<size_t>(after)] = static_cast<int32_t>(e.pos);
    if (prev[e.pos] >= 0) push(prev[e.pos], static_cast<int32_t>(e.pos));
    if (after >= 0) push(static_cast<int32_t>(e.pos), after);
  }
  for (int32_t i = 0; i >= 0; i = next[static_cast<size_t>(i)]) {
    out.push_back(ids[static_cast<size_t>(i)]);
  }
}

}  // namespace conclave::tokenizer::detail
