// scheduler: continuous batching over a block_manager (plain class, no actors). Each
// step runs every running sequence's next tokens (a decode token, or the next chunk of a
// prompt) and admits waiting sequences while the token budget and free blocks allow.
// In a step that decodes (or while a waiting sequence could be admitted), a prompt chunk's
// attention is bounded by prefill_stall_pairs: a long prompt read in chunks stalls the
// other streams' steps by a bounded amount and leaves room for new prompts. With
// decode_slowdown set, a decode_pacer holds prompt chunks back for decode-only steps
// until the decoders' mean step is back at that multiple of their quiet step (steps timed
// from schedule() to postprocess()).
// When a running sequence needs a block and none is free, the most recently admitted
// one is preempted: with a KV offload pool that has room, its computed blocks are copied
// to host memory and back when it resumes (swapped, resumed before any new admission);
// else its blocks are freed and it is recomputed later from its tokens.
// With data-parallel attention the scheduler serves R ranks, each with its own
// block_manager (its own KV pages, block ids local to it, its own prefix cache): a
// sequence gets a rank when admitted (assign_rank), allocates, shares prefixes and
// preempts only within it, and may get another rank when readmitted after preemption.
#pragma once

#include <deque>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "config/engine_config.h"
#include "engine/block_manager.h"
#include "engine/decode_pacer.h"
#include "engine/sequence.h"

namespace conclave::engine {

/// One sequence's share of a step: run tokens [seq->num_computed, + num_tokens).
struct scheduled {
  std::shared_ptr<sequence> seq;
  size_t num_tokens = 0;
  /// The step reaches the sequence's last token, so a token is sampled (fixed when
  /// scheduled; postprocess moves num_computed afterwards).
  bool reaches_end = false;
  bool samples() const { return reaches_end; }
};

class scheduler {
 public:
  /// One rank.
  scheduler(const config::scheduler_config& cfg, block_manager& blocks);
  /// One block_manager per rank, all of the same size and block size (not owned).
  /// Throws std::invalid_argument otherwise.
  scheduler(const config::scheduler_config& cfg, std::vector<block_manager*> ranks);

  /// Queues a sequence. Throws std::invalid_argument when its prompt plus max_tokens
  /// could never fit in the whole KV cache (it would otherwise preempt itself forever).
  void add(std::shared_ptr<sequence> seq);
  /// The check add() makes, without queueing.
  void check_fits(const sequence& seq) const;
  bool idle() const { return waiting_.empty() && running_.empty() && swapped_.empty(); }
  size_t num_waiting() const { return waiting_.size() + swapped_.size(); }
  size_t num_running() const { return running_.size(); }
  size_t num_swapped() const { return swapped_.size(); }
  /// Tokens found in the prefix cache when sequences were admitted (not computed again).
  uint64_t prefix_hit_tokens() const { return prefix_hit_tokens_; }
  /// Prompt chunks that prefill_stall_pairs cut shorter than the budget allowed.
  uint64_t num_stall_bounded_chunks() const { return stall_bounded_; }
  /// Steps in which prompt chunks waited for the decoders under decode_slowdown.
  uint64_t num_paced_steps() const { return pacer_.held_steps(); }
  /// Sets decode_slowdown (0: off) and the clock that times steps (default: steady_clock
  /// seconds); the pacer starts afresh. Throws std::invalid_argument like the config check.
  void set_decode_pacing(double slowdown, decode_pacer::clock_fn clock = {});
  /// Preemptions that freed a sequence's blocks for recomputation.
  uint64_t num_preemptions() const { return preemptions_; }
  /// Preemptions that offloaded a sequence to host memory instead.
  uint64_t num_swap_outs() const { return swap_outs_; }
  uint64_t num_swap_ins() const { return swap_ins_; }
  /// Blocks copied to host memory and back, over all ranks (offloaded sequences and the
  /// prefix cache's host tier).
  uint64_t blocks_swapped_out() const { return blocks_out_; }
  uint64_t blocks_swapped_in() const { return blocks_in_; }
  /// Sliding window W over every layer of the model (0: none): after each step a running
  /// sequence's blocks wholly behind its window are released (block_manager::
  /// release_behind_window), so long windowed sequences hold about W tokens of cache.
  void set_sliding_window(int32_t window) { window_ = window; }
  /// Blocks released behind sliding windows, over all ranks.
  uint64_t blocks_released_behind_window() const { return window_released_; }
  /// The prefix cache's host tier over all ranks: blocks stored there, and prefix hits
  /// served from it (copied back instead of recomputed).
  uint64_t host_prefix_stores() const;
  uint64_t host_prefix_hits() const;
  /// The copies the last schedule() asked for, per rank: run them (backend::transfer_kv)
  /// before that step's forward pass.
  const std::vector<gpu::kv_transfer>& transfers() const { return transfers_; }
  /// The same, moved out (the engine hands them to the step without a copy).
  std::vector<gpu::kv_transfer> take_transfers() {
    return std::exchange(transfers_, std::vector<gpu::kv_transfer>(ranks_.size()));
  }
  int32_t num_ranks() const { return static_cast<int32_t>(ranks_.size()); }
  const block_manager& blocks(int32_t rank) const { return *ranks_.at(static_cast<size_t>(rank)); }

  /// Picks the next step's work. Empty only when idle (or nothing fits at all, which
  /// add() rules out by refusing sequences larger than the whole cache).
  std::vector<scheduled> schedule();

  /// After the step ran: advances num_computed, appends sampled tokens (`sampled[i]` for
  /// step entry i; ignored where !samples()), applies stop rules, frees finished
  /// sequences' blocks. Returns the sequences that finished in this step.
  std::vector<std::shared_ptr<sequence>> postprocess(const std::vector<scheduled>& step,
                                                     std::span<const int32_t> sampled,
                                                     std::span<const int32_t> eos_ids,
                                                     size_t max_model_len);

  /// Finishes a sequence with finish_reason::aborted wherever it is (an offloaded one's
  /// host blocks are freed); false if unknown.
  bool abort(int64_t id);
  /// True when the sequence is waiting or running.
  bool contains(int64_t id) const;

 private:
  /// schedule() without the host prefix tier's copies.
  std::vector<scheduled> pick();
  void preempt(const std::shared_ptr<sequence>& seq);
  /// Brings offloaded sequences back, oldest first, while budget, slots and blocks allow;
  /// false when one is left (then no new sequence is admitted this step). `shared`: other
  /// sequences decode or wait (chunks are bounded, prompt_chunk).
  bool resume_swapped(std::vector<scheduled>& step, size_t& budget, bool shared);
  /// Admits waiting sequences in order while budget, slots and blocks allow; `decodes`:
  /// the step decodes and chunks are bounded (prompt_chunk).
  void admit(std::vector<scheduled>& step, size_t& budget, bool decodes);
  /// Whether a scheduled step decodes, and next to prompt chunks (decode_pacer).
  static decode_pacer::step_kind kind_of(const std::vector<scheduled>& step);
  /// A sequence's tokens this step out of `budget`: all it has left, at most the budget,
  /// and when other sequences decode or wait (`shared`) a prompt chunk no longer than
  /// scheduler_config::stall_chunk allows.
  size_t prompt_chunk(const sequence& seq, size_t budget, bool shared);
  /// A slot is free (with `admitting` sequences on their way in) and some rank has the
  /// blocks to admit `seq` now.
  bool admissible(const sequence& seq, size_t admitting = 0) const;
  void finish(const std::shared_ptr<sequence>& seq, finish_reason reason);
  block_manager& blocks_of(const sequence& seq) { return *ranks_[static_cast<size_t>(seq.rank)]; }
  /// The rank admission gives the next sequence (assign_rank over the ranks' loads).
  int32_t pick_rank() const;

  config::scheduler_config cfg_;
  std::vector<block_manager*> ranks_;
  std::deque<std::shared_ptr<sequence>> waiting_;
  std::deque<std::shared_ptr<sequence>> running_;
  std::deque<std::shared_ptr<sequence>> swapped_;  ///< offloaded, oldest first
  std::vector<gpu::kv_transfer> transfers_;        ///< per rank, for the step scheduled last
  uint64_t preemptions_ = 0, swap_outs_ = 0, swap_ins_ = 0, blocks_out_ = 0, blocks_in_ = 0;
  uint64_t prefix_hit_tokens_ = 0;
  uint64_t stall_bounded_ = 0;
  decode_pacer pacer_;
  int32_t window_ = 0;
  uint64_t window_released_ = 0;
};

}  // namespace conclave::engine
