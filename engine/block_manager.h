// block_manager: pure bookkeeping of the paged KV cache (nano-vllm's BlockManager):
// which blocks are free, each block's reference count, and prefix caching by chained
// hashes of full, already-computed blocks so identical prompt prefixes share blocks.
#pragma once

#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "engine/sequence.h"

namespace conclave::engine {

class block_manager {
 public:
  block_manager(int32_t num_blocks, int32_t block_size, bool prefix_caching = true);

  int32_t block_size() const { return block_size_; }
  int32_t num_blocks() const { return static_cast<int32_t>(blocks_.size()); }
  int32_t num_free_blocks() const { return static_cast<int32_t>(free_.size()); }
  int32_t ref_count(int32_t id) const { return blocks_[static_cast<size_t>(id)].ref_count; }

  /// True when allocate(seq) would succeed (counting no prefix hits: a safe bound).
  bool can_allocate(const sequence& seq) const;
  /// Gives a sequence without blocks a table covering all its tokens, reusing cached
  /// blocks of an identical computed prefix (never the block holding its last token,
  /// which will be written). Sets seq.num_computed to the tokens found cached.
  void allocate(sequence& seq);
  /// Releases the sequence's blocks (cached content stays reusable until evicted).
  void deallocate(sequence& seq);

  /// Blocks the sequence needs beyond its table to hold all its tokens.
  int32_t blocks_missing(const sequence& seq) const;
  /// True when blocks_missing(seq) free blocks exist.
  bool can_grow(const sequence& seq) const { return blocks_missing(seq) <= num_free_blocks(); }
  /// Extends the table to cover all tokens; requires can_grow.
  void grow(sequence& seq);

  /// Records that seq's keys/values up to seq.num_computed are written: full blocks
  /// below that become prefix-cache entries.
  void mark_computed(sequence& seq);

 private:
  struct block {
    int32_t ref_count = 0;
    bool hashed = false;  ///< content computed and registered in the prefix map
    uint64_t hash = 0;
    std::vector<int32_t> tokens;
    std::list<int32_t>::iterator free_pos;
  };

  int32_t take_free_block();
  void take_specific(int32_t id);
  void unregister(int32_t id);
  uint64_t chain_hash(uint64_t prev, std::span<const int32_t> tokens) const;

  int32_t block_size_;
  bool prefix_caching_;
  std::vector<block> blocks_;
  std::list<int32_t> free_;  ///< front = evicted first
  std::unordered_map<uint64_t, int32_t> by_hash_;
};

}  // namespace conclave::engine
