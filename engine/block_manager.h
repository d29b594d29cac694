// block_manager: pure bookkeeping of the paged KV cache (nano-vllm's BlockManager):
// which blocks are free, each block's reference count, and prefix caching by chained
// hashes of full, already-computed blocks so identical prompt prefixes share blocks.
#pragma once

#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "engine/sequence.h"
#include "gpu/backend.h"

namespace conclave::engine {

class block_manager {
 public:
  /// `num_host_blocks`: the KV offload pool's size (0: no offload).
  block_manager(int32_t num_blocks, int32_t block_size, bool prefix_caching = true,
                int32_t num_host_blocks = 0);

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

  /// A table entry whose block was released behind a sliding window (gpu::kNoBlock).
  static constexpr int32_t kReleased = gpu::kNoBlock;
  /// Sliding window W over every layer: the queries still to come (positions >=
  /// seq.num_computed) read keys > position - W only, so the leading blocks wholly
  /// before num_computed - W + 1 are released (entries become kReleased; their content
  /// stays a prefix-cache entry until evicted). Returns the blocks released.
  int32_t release_behind_window(sequence& seq, int32_t window);

  // KV offload: a preempted sequence's computed blocks go to the host pool and come back.
  int32_t num_host_blocks() const { return static_cast<int32_t>(host_used_.size()); }
  int32_t num_free_host_blocks() const { return static_cast<int32_t>(host_free_.size()); }
  /// Blocks holding seq's computed tokens (what an offload copies).
  int32_t blocks_to_offload(const sequence& seq) const;
  /// True when seq has computed blocks and the host pool has room for them.
  bool can_swap_out(const sequence& seq) const;
  /// Moves seq's computed blocks to host blocks (appending the copies to `to_host`) and
  /// releases its device blocks; seq keeps num_computed and gets host_table.
  void swap_out(sequence& seq, std::vector<gpu::kv_block_copy>& to_host);
  /// True when device blocks for seq's offloaded blocks plus the rest of its tokens are free.
  bool can_swap_in(const sequence& seq) const;
  /// Gives seq device blocks for all its tokens, the offloaded ones filled from the host
  /// (copies appended to `to_device`), and frees its host blocks.
  void swap_in(sequence& seq, std::vector<gpu::kv_block_copy>& to_device);
  /// Frees a swapped sequence's host blocks (it finished or was aborted while offloaded).
  void release_host(sequence& seq);
  /// The transfers swap_in asked for have run: the host blocks they read are free again.
  void end_transfers();

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
  std::vector<int32_t> host_free_;  ///< free host blocks (a stack: any order is fine)
  std::vector<bool> host_used_;
  std::vector<int32_t> host_in_flight_;  ///< read by a pending to_device copy
};

}  // namespace conclave::engine
