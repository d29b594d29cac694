// block_manager: pure bookkeeping of the paged KV cache (nano-vllm's BlockManager):
// which blocks are free, each block's reference count, and prefix caching by chained
// hashes of full, already-computed blocks so identical prompt prefixes share blocks.
// With a host pool (KV offload), the prefix cache has a second tier there: a cached
// block evicted from the device is copied to a host block first, and a later prefix hit
// on it is copied back instead of recomputed (host_prefix_*). The copies are queued for
// the step being scheduled (take_copies).
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
  /// `num_host_blocks`: the KV offload pool's size (0: no offload); `host_prefix_blocks`:
  /// how many of them the prefix cache's host tier may hold (0: no tier).
  block_manager(int32_t num_blocks, int32_t block_size, bool prefix_caching = true,
                int32_t num_host_blocks = 0, int32_t host_prefix_blocks = 0);

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
  /// Host blocks a swap can take: free ones plus those holding evictable prefix entries.
  int32_t num_free_host_blocks() const {
    return static_cast<int32_t>(host_free_.size() + host_lru_.size());
  }
  /// Prefix-cache blocks held in the host tier now; blocks stored there and hits on them
  /// (restored to the device instead of recomputed), since construction.
  int32_t num_host_prefix_blocks() const {
    return static_cast<int32_t>(host_lru_.size() + host_fresh_.size());
  }
  uint64_t host_prefix_stores() const { return host_stores_; }
  uint64_t host_prefix_hits() const { return host_hits_; }
  /// Moves the copies the host prefix tier queued (evictions to the host, hits back to
  /// the device) into `t`: they run with the step's other transfers, before its forward.
  void take_copies(gpu::kv_transfer& t);
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
  /// Table entries holding seq's computed tokens (released ones included).
  size_t computed_entries(const sequence& seq) const;
  void take_specific(int32_t id);
  /// A host block for a swap or an eviction: a free one, else the least recently stored
  /// prefix entry's (dropped from the tier).
  int32_t take_host_block();
  int32_t take_host_block_from_lru();  ///< drops the least recently stored entry
  /// Before device block `id` is overwritten: its prefix entry goes to the host tier.
  void store_on_host(int32_t id);
  /// A host-tier entry for `hash` holding `tokens`, removed from the tier, or -1.
  int32_t take_host_hit(uint64_t hash, std::span<const int32_t> tokens);
  bool host_tier() const { return prefix_caching_ && host_prefix_cap_ > 0; }
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
  // The host prefix tier: entries by host block and by hash, least recently stored first.
  struct host_entry {
    uint64_t hash = 0;
    std::vector<int32_t> tokens;
    std::list<int32_t>::iterator lru_pos;
    bool fresh = true;  ///< in host_fresh_ (else host_lru_)
  };
  std::unordered_map<int32_t, host_entry> host_entries_;
  std::unordered_map<uint64_t, int32_t> host_by_hash_;
  std::list<int32_t> host_lru_;  ///< evictable: their copy to the host has run
  /// Stored while the step being scheduled was: their copy has not run yet, so they may
  /// be hit (the copy back runs after it) but not handed out (end_transfers moves them).
  std::list<int32_t> host_fresh_;
  gpu::kv_transfer copies_;  ///< queued by the tier for the step being scheduled
  uint64_t host_stores_ = 0, host_hits_ = 0;
  int32_t host_prefix_cap_ = 0;
};

}  // namespace conclave::engine
