// Byte-level BPE on raw bytes: token bytes -> id table, merge ranks keyed by the pair of
// ids, and the merge loop (HF's order: lowest rank first, leftmost on ties). Internal to
// model/tokenizer/.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace conclave::tokenizer::detail {

/// Allocator for the big lookup tables: asks for transparent huge pages, since their
/// accesses are random and would otherwise miss the TLB as well as the cache.
template <class T>
struct huge_page_allocator {
  using value_type = T;
  huge_page_allocator() = default;
  template <class U>
  huge_page_allocator(const huge_page_allocator<U>&) {}
  T* allocate(size_t n);
  void deallocate(T* p, size_t n);
  template <class U>
  bool operator==(const huge_page_allocator<U>&) const {
    return true;
  }
};

/// Per-thread buffers and a bounded cache of piece -> ids for one bpe_model.
struct bpe_scratch {
  struct cache_slot {
    uint64_t hash = 0;
    int32_t ids[6];
    uint8_t len = 0;  ///< 0: empty
    uint8_t count = 0;
    char bytes[30];
  };
  static constexpr size_t cache_slots = 1 << 14;  // 1 MiB per thread
  static constexpr size_t max_cached_len = sizeof(cache_slot::bytes);
  static constexpr size_t max_cached_ids = sizeof(cache_slot::ids) / sizeof(int32_t);

  std::vector<cache_slot> cache{cache_slots};
  /// Recently looked-up merge ranks, packed like the merge table (a miss there costs a
  /// trip to memory; the same pairs recur across pieces).
  static constexpr int pair_bits = 13;
  std::vector<uint64_t> pairs = std::vector<uint64_t>(size_t{1} << pair_bits, ~uint64_t{0});
  std::vector<int32_t> ids;
  std::vector<int32_t> prev, next;
  struct heap_entry {
    uint32_t rank;
    uint32_t pos;
    int32_t left, right;
  };
  std::vector<heap_entry> heap;
};

class bpe_model {
 public:
  /// Optional: sizes the tables for this many tokens and merges.
  void reserve(size_t tokens, size_t merges);
  /// Phase 1: every token's bytes with its id (a repeated byte string keeps the last id).
  void add_token(std::string_view bytes, int32_t id);
  /// Phase 2: merges in rank order, given as token bytes. False when `a`, `b` or a+b is
  /// not a token. A repeated pair keeps the later rank, as HF does.
  bool add_merge(std::string_view a, std::string_view b, uint32_t rank);
  /// Phase 3. Returns a byte that has no single-byte token (-1 when all 256 have one).
  /// With `ignore_merges`, a piece that is a whole token is that token (HF's flag);
  /// otherwise that shortcut is taken only for tokens the merges rebuild from their bytes,
  /// which is learnt the first time each token is met as a piece.
  int finish(bool ignore_merges);

  /// Ids and ranks must fit in 21 bits (the merge table packs both in one word).
  static constexpr uint32_t max_id = (1u << 21) - 2;
  static constexpr uint32_t max_rank = (1u << 21) - 2;

  /// Appends the ids of one pre-tokenized piece (non-empty) to `out`.
  void encode(std::string_view piece, std::vector<int32_t>& out, bpe_scratch& s) const;
  /// Id of the token with exactly these bytes, or -1.
  int32_t find(std::string_view bytes) const;

 private:
  struct token_slot {
    uint32_t tag;  ///< high bits of the hash
    int32_t id;    ///< -1: empty
    uint32_t off, len;
  };
  // Whether the piece made of a token's bytes encodes to that token alone.
  static constexpr uint8_t whole_unknown = 0, whole_yes = 1, whole_no = 2;

  const token_slot* find_slot(std::string_view bytes, uint64_t hash) const;
  token_slot* insert_slot(std::string_view bytes, uint64_t hash);
  uint32_t rank_of(int32_t a, int32_t b) const;  ///< UINT32_MAX when a, b do not merge
  uint32_t cached_rank(int32_t a, int32_t b, bpe_scratch& s) const;
  static uint64_t filter_mask(uint64_t key);
  void grow_tokens(size_t min_slots);
  void grow_merges(size_t min_slots);
  void merge(const unsigned char* p, size_t n, std::vector<int32_t>& out, bpe_scratch& s) const;
  void merge_long(const unsigned char* p, size_t n, std::vector<int32_t>& out,
                  bpe_scratch& s) const;

  std::string arena_;
  std::vector<token_slot, huge_page_allocator<token_slot>> tokens_;
  size_t token_count_ = 0;
  // Open addressing, one word per merge: (left << 42) | (right << 21) | rank; ~0 is empty.
  std::vector<uint64_t, huge_page_allocator<uint64_t>> merges_;
  size_t merge_count_ = 0;
  int merge_shift_ = 64;
  std::vector<int32_t> merged_by_rank_;
  // Blocked Bloom filter over merge keys (256 KiB, stays in L2): most pairs BPE asks
  // about do not merge, and this answers that without touching the merge table.
  static constexpr int filter_bits = 15;  ///< log2 of the number of 64-bit words
  std::vector<uint64_t> filter_;
  std::array<int32_t, 256> byte_ids_{};
  std::vector<uint32_t> byte_pair_ranks_;  ///< [first * 256 + second]: every piece starts as bytes
  // By id; relaxed atomics because encode is const and runs on many threads: racing
  // writers store the same value.
  std::unique_ptr<std::atomic<uint8_t>[]> whole_;
  size_t whole_size_ = 0;
};

}  // namespace conclave::tokenizer::detail
