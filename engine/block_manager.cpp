// Block bookkeeping. A block's hash covers its tokens and, through the chain, every
// token before it, so a hit means the whole prefix matches (tokens are compared too,
// so a hash collision cannot alias two prefixes).
#include "engine/block_manager.h"

#include <xxhash.h>
#include <algorithm>
#include <stdexcept>

namespace conclave::engine {

block_manager::block_manager(int32_t num_blocks, int32_t block_size, bool prefix_caching,
                             int32_t num_host_blocks, int32_t host_prefix_blocks)
    : block_size_(block_size),
      prefix_caching_(prefix_caching),
      blocks_(static_cast<size_t>(num_blocks)),
      host_used_(static_cast<size_t>(std::max(num_host_blocks, 0)), false) {
  if (num_blocks <= 0 || block_size <= 0) throw std::invalid_argument("block_manager needs blocks");
  if (num_host_blocks < 0 || host_prefix_blocks < 0 || host_prefix_blocks > num_host_blocks)
    throw std::invalid_argument("block_manager: bad host pool sizes");
  host_prefix_cap_ = host_prefix_blocks;
  for (int32_t i = 0; i < num_blocks; ++i)
    blocks_[static_cast<size_t>(i)].free_pos = free_.insert(free_.end(), i);
  for (int32_t i = num_host_blocks - 1; i >= 0; --i) host_free_.push_back(i);
}

uint64_t block_manager::chain_hash(uint64_t prev, std::span<const int32_t> tokens) const {
  return XXH64(tokens.data(), tokens.size_bytes(), prev);
}

void block_manager::unregister(int32_t id) {
  block& b = blocks_[static_cast<size_t>(id)];
  if (b.hashed) {
    auto it = by_hash_.find(b.hash);
    if (it != by_hash_.end() && it->second == id) by_hash_.erase(it);
  }
  b.hashed = false;
  b.tokens.clear();
}

int32_t block_manager::take_free_block() {
  if (free_.empty())
    throw std::logic_error("block_manager: no free block (call can_allocate/can_grow first)");
  const int32_t id = free_.front();
  take_specific(id);
  if (host_tier() && blocks_[static_cast<size_t>(id)].hashed) store_on_host(id);
  unregister(id);  // its old content is being overwritten
  return id;
}

int32_t block_manager::take_host_block() {
  if (!host_free_.empty()) {
    const int32_t h = host_free_.back();
    host_free_.pop_back();
    return h;
  }
  if (host_lru_.empty()) throw std::logic_error("block_manager: no host block left");
  return take_host_block_from_lru();
}

int32_t block_manager::take_host_block_from_lru() {
  const int32_t h = host_lru_.front();
  host_lru_.pop_front();
  const auto it = host_entries_.find(h);
  host_by_hash_.erase(it->second.hash);
  host_entries_.erase(it);
  return h;
}

void block_manager::store_on_host(int32_t id) {
  const block& b = blocks_[static_cast<size_t>(id)];
  if (host_by_hash_.count(b.hash) != 0) return;  // already there
  int32_t h = -1;
  if (num_host_prefix_blocks() < host_prefix_cap_ && !host_free_.empty()) {
    h = host_free_.back();
    host_free_.pop_back();
  } else if (!host_lru_.empty()) {
    h = take_host_block_from_lru();
  } else {
    return;  // the tier is full of entries stored this step, or the pool of swaps
  }
  host_used_[static_cast<size_t>(h)] = true;
  host_entry& e = host_entries_[h];
  e.fresh = true;
  e.hash = b.hash;
  e.tokens = b.tokens;
  e.lru_pos = host_fresh_.insert(host_fresh_.end(), h);
  host_by_hash_[b.hash] = h;
  copies_.to_host.push_back({id, h});  // runs before this step overwrites the block
  ++host_stores_;
}

int32_t block_manager::take_host_hit(uint64_t hash, std::span<const int32_t> tokens) {
  const auto it = host_by_hash_.find(hash);
  if (it == host_by_hash_.end()) return -1;
  const int32_t h = it->second;
  host_entry& e = host_entries_.at(h);
  if (!std::equal(tokens.begin(), tokens.end(), e.tokens.begin(), e.tokens.end())) return -1;
  (e.fresh ? host_fresh_ : host_lru_).erase(e.lru_pos);
  host_by_hash_.erase(it);
  host_entries_.erase(h);
  // Free again once this step's copy back has read it (end_transfers).
  host_in_flight_.push_back(h);
  ++host_hits_;
  return h;
}

void block_manager::take_copies(gpu::kv_transfer& t) {
  t.to_host.insert(t.to_host.end(), copies_.to_host.begin(), copies_.to_host.end());
  t.to_device.insert(t.to_device.end(), copies_.to_device.begin(), copies_.to_device.end());
  copies_ = {};
}

void block_manager::take_specific(int32_t id) {
  block& b = blocks_[static_cast<size_t>(id)];
  free_.erase(b.free_pos);
  b.free_pos = free_.end();
  b.ref_count = 1;
}

bool block_manager::can_allocate(const sequence& seq) const {
  return static_cast<int32_t>(seq.num_blocks(static_cast<size_t>(block_size_))) <=
         num_free_blocks();
}

void block_manager::allocate(sequence& seq) {
  if (!seq.block_table.empty())
    throw std::logic_error("block_manager::allocate: sequence already has blocks");
  const size_t bs = static_cast<size_t>(block_size_);
  const size_t n = seq.num_blocks(bs);
  size_t cached = 0;
  bool prefix_intact = prefix_caching_;
  uint64_t h = 0, cached_hash = 0;
  for (size_t i = 0; i < n; ++i) {
    const auto toks = seq.block_tokens(i, bs);
    int32_t id = -1;
    // Only blocks that end before the last token may be shared: that token's block is written.
    if (prefix_intact && toks.size() == bs && (i + 1) * bs < seq.size()) {
      h = chain_hash(h, toks);
      auto it = by_hash_.find(h);
      if (it != by_hash_.end()) {
        const block& b = blocks_[static_cast<size_t>(it->second)];
        if (b.hashed && std::equal(toks.begin(), toks.end(), b.tokens.begin(), b.tokens.end()))
          id = it->second;
      }
    }
    int32_t host = -1;
    if (id < 0 && prefix_intact && host_tier() && toks.size() == bs && (i + 1) * bs < seq.size())
      host = take_host_hit(h, toks);
    if (host >= 0) {
      // Back from the host tier: a fresh device block, filled by this step's copy, and a
      // prefix entry again.
      id = take_free_block();
      block& b = blocks_[static_cast<size_t>(id)];
      b.hashed = true;
      b.hash = h;
      b.tokens.assign(toks.begin(), toks.end());
      by_hash_[h] = id;
      copies_.to_device.push_back({id, host});
      cached += bs;
      cached_hash = h;
    } else if (id >= 0) {
      block& b = blocks_[static_cast<size_t>(id)];
      if (b.ref_count > 0) {
        ++b.ref_count;
      } else {
        take_specific(id);
      }
      cached += bs;
      cached_hash = h;
    } else {
      prefix_intact = false;
      id = take_free_block();
    }
    seq.block_table.push_back(id);
  }
  seq.num_computed = cached;
  seq.num_hashed_blocks = cached / bs;
  seq.prefix_hash = cached_hash;
}

void block_manager::deallocate(sequence& seq) {
  for (auto it = seq.block_table.rbegin(); it != seq.block_table.rend(); ++it) {
    if (*it == kReleased) continue;
    block& b = blocks_[static_cast<size_t>(*it)];
    if (--b.ref_count == 0) {
      b.free_pos = free_.insert(free_.end(), *it);
      if (!b.hashed) b.tokens.clear();
    }
  }
  seq.block_table.clear();
  seq.num_computed = 0;
  seq.num_hashed_blocks = 0;
  seq.prefix_hash = 0;
}

int32_t block_manager::blocks_missing(const sequence& seq) const {
  const size_t need = seq.num_blocks(static_cast<size_t>(block_size_));
  return need > seq.block_table.size() ? static_cast<int32_t>(need - seq.block_table.size()) : 0;
}

void block_manager::grow(sequence& seq) {
  for (int32_t i = blocks_missing(seq); i > 0; --i) seq.block_table.push_back(take_free_block());
}

void block_manager::mark_computed(sequence& seq) {
  if (!prefix_caching_) return;
  const size_t bs = static_cast<size_t>(block_size_);
  const size_t full = std::min(seq.num_computed / bs, seq.block_table.size());
  if (full <= seq.num_hashed_blocks) return;
  uint64_t h = seq.prefix_hash;
  for (size_t i = seq.num_hashed_blocks; i < full; ++i) {
    const auto toks = seq.block_tokens(i, bs);
    h = chain_hash(h, toks);
    const int32_t id = seq.block_table[i];
    if (id == kReleased) continue;  // behind a sliding window: nothing to register
    block& b = blocks_[static_cast<size_t>(id)];
    if (b.hashed) continue;  // a shared prefix block: registered under this very hash
    b.hashed = true;
    b.hash = h;
    b.tokens.assign(toks.begin(), toks.end());
    by_hash_.try_emplace(h, id);
  }
  seq.num_hashed_blocks = full;
  seq.prefix_hash = h;
}

int32_t block_manager::release_behind_window(sequence& seq, int32_t window) {
  const int64_t n = std::min<int64_t>(
      gpu::blocks_behind_window(static_cast<int64_t>(seq.num_computed), window, block_size_),
      static_cast<int64_t>(seq.block_table.size()));
  int32_t released = 0;
  for (int64_t i = 0; i < n; ++i) {
    int32_t& id = seq.block_table[static_cast<size_t>(i)];
    if (id == kReleased) continue;
    block& b = blocks_[static_cast<size_t>(id)];
    if (--b.ref_count == 0) {
      b.free_pos = free_.insert(free_.end(), id);
      if (!b.hashed) b.tokens.clear();
    }
    id = kReleased;
    ++released;
  }
  return released;
}

size_t block_manager::computed_entries(const sequence& seq) const {
  const size_t bs = static_cast<size_t>(block_size_);
  return std::min((seq.num_computed + bs - 1) / bs, seq.block_table.size());
}

int32_t block_manager::blocks_to_offload(const sequence& seq) const {
  const size_t n = computed_entries(seq);
  return static_cast<int32_t>(n) -
         static_cast<int32_t>(std::count(seq.block_table.begin(),
                                         seq.block_table.begin() + static_cast<std::ptrdiff_t>(n),
                                         kReleased));
}

bool block_manager::can_swap_out(const sequence& seq) const {
  const int32_t n = blocks_to_offload(seq);
  return n > 0 && n <= num_free_host_blocks();
}

void block_manager::swap_out(sequence& seq, std::vector<gpu::kv_block_copy>& to_host) {
  if (!can_swap_out(seq)) throw std::logic_error("block_manager::swap_out: no room (can_swap_out)");
  const size_t n = computed_entries(seq);
  seq.host_table.clear();
  for (size_t i = 0; i < n; ++i) {
    if (seq.block_table[i] == kReleased) {  // behind the window: nothing to keep
      seq.host_table.push_back(kReleased);
      continue;
    }
    const int32_t h = take_host_block();
    host_used_[static_cast<size_t>(h)] = true;
    seq.host_table.push_back(h);
    to_host.push_back({seq.block_table[i], h});
  }
  const size_t computed = seq.num_computed;
  deallocate(seq);  // the device blocks are free (their hashed content stays reusable)
  seq.num_computed = computed;
}

bool block_manager::can_swap_in(const sequence& seq) const {
  const auto released = std::count(seq.host_table.begin(), seq.host_table.end(), kReleased);
  return static_cast<int32_t>(seq.num_blocks(static_cast<size_t>(block_size_))) -
             static_cast<int32_t>(released) <=
         num_free_blocks();
}

void block_manager::swap_in(sequence& seq, std::vector<gpu::kv_block_copy>& to_device) {
  if (!seq.block_table.empty())
    throw std::logic_error("block_manager::swap_in: sequence already has blocks");
  if (!can_swap_in(seq)) throw std::logic_error("block_manager::swap_in: no room (can_swap_in)");
  for (const int32_t h : seq.host_table) {
    if (h == kReleased) {
      seq.block_table.push_back(kReleased);
      continue;
    }
    const int32_t id = take_free_block();
    seq.block_table.push_back(id);
    to_device.push_back({id, h});
    // Not reusable before this step's copies ran: a later swap_out of the same step would
    // otherwise overwrite it before it is read (end_transfers frees it).
    host_in_flight_.push_back(h);
  }
  seq.host_table.clear();
  grow(seq);
  seq.num_hashed_blocks = 0;  // mark_computed registers the blocks again
  seq.prefix_hash = 0;
}

void block_manager::end_transfers() {
  for (const int32_t h : host_in_flight_) {
    host_used_[static_cast<size_t>(h)] = false;
    host_free_.push_back(h);
  }
  host_in_flight_.clear();
  // Their copies have run: evictable now, after every older entry.
  for (const int32_t h : host_fresh_) host_entries_.at(h).fresh = false;
  host_lru_.splice(host_lru_.end(), host_fresh_);
}

void block_manager::release_host(sequence& seq) {
  for (const int32_t h : seq.host_table) {
    if (h == kReleased) continue;
    if (h < 0 || h >= num_host_blocks() || !host_used_[static_cast<size_t>(h)])
      throw std::logic_error("block_manager: host block released twice");
    host_used_[static_cast<size_t>(h)] = false;
    host_free_.push_back(h);
  }
  seq.host_table.clear();
}

}  // namespace conclave::engine
