// Continuous batching. Running sequences are served first, oldest first, so a decode is
// never starved by new prompts; prompts are chunked to the step's token budget.
#include "engine/scheduler.h"

#include <spdlog/fmt/fmt.h>
#include <algorithm>
#include <stdexcept>

#include "engine/rank_assign.h"

namespace conclave::engine {

scheduler::scheduler(const config::scheduler_config& cfg, block_manager& blocks)
    : scheduler(cfg, std::vector<block_manager*>{&blocks}) {}

scheduler::scheduler(const config::scheduler_config& cfg, std::vector<block_manager*> ranks)
    : cfg_(cfg), ranks_(std::move(ranks)), transfers_(ranks_.size()), pacer_(cfg.decode_slowdown) {
  if (ranks_.empty() || std::find(ranks_.begin(), ranks_.end(), nullptr) != ranks_.end())
    throw std::invalid_argument("scheduler needs a block_manager per rank");
  for (const block_manager* b : ranks_) {
    if (b->num_blocks() != ranks_[0]->num_blocks() || b->block_size() != ranks_[0]->block_size())
      throw std::invalid_argument("every rank's KV cache must have the same shape");
  }
}

void scheduler::set_decode_pacing(double slowdown, decode_pacer::clock_fn clock) {
  pacer_ = decode_pacer(slowdown, std::move(clock));
  cfg_.decode_slowdown = slowdown;
}

int32_t scheduler::pick_rank() const {
  if (ranks_.size() == 1) return 0;
  std::vector<rank_load> load(ranks_.size());
  for (size_t r = 0; r < ranks_.size(); ++r) load[r].free_blocks = ranks_[r]->num_free_blocks();
  for (const auto& seq : running_) ++load[static_cast<size_t>(seq->rank)].running;
  return assign_rank(load);
}

void scheduler::check_fits(const sequence& seq) const {
  // Every rank's cache has this shape; a sequence lives in one.
  const block_manager& blocks = *ranks_[0];
  const size_t bs = static_cast<size_t>(blocks.block_size());
  const size_t max_tokens = seq.num_prompt_tokens() + static_cast<size_t>(seq.params().max_tokens);
  const size_t needed = (std::max(max_tokens, seq.size()) + bs - 1) / bs;
  if (needed > static_cast<size_t>(blocks.num_blocks())) {
    throw std::invalid_argument(fmt::format(
        "prompt + max_tokens = {} tokens need {} KV blocks but the whole cache holds {} ({} "
        "tokens)",
        max_tokens, needed, blocks.num_blocks(), static_cast<size_t>(blocks.num_blocks()) * bs));
  }
}

void scheduler::add(std::shared_ptr<sequence> seq) {
  check_fits(*seq);
  seq->status = sequence_status::waiting;
  waiting_.push_back(std::move(seq));
}

void scheduler::preempt(const std::shared_ptr<sequence>& seq) {
  block_manager& blocks = blocks_of(*seq);
  if (blocks.can_swap_out(*seq)) {
    auto& to_host = transfers_[static_cast<size_t>(seq->rank)].to_host;
    const size_t before = to_host.size();
    blocks.swap_out(*seq, to_host);
    blocks_out_ += to_host.size() - before;
    ++swap_outs_;
    seq->status = sequence_status::swapped;
    // Oldest (lowest id) first: resumed in admission order.
    swapped_.insert(
        std::upper_bound(swapped_.begin(), swapped_.end(), seq,
                         [](const auto& a, const auto& b) { return a->id() < b->id(); }),
        seq);
    return;
  }
  blocks.deallocate(*seq);
  seq->status = sequence_status::waiting;
  waiting_.push_front(seq);
  ++preemptions_;
}

bool scheduler::resume_swapped(std::vector<scheduled>& step, size_t& budget, bool shared) {
  while (!swapped_.empty()) {
    auto& seq = swapped_.front();
    block_manager& blocks = blocks_of(*seq);
    if (budget == 0 || running_.size() >= static_cast<size_t>(cfg_.max_num_seqs) ||
        !blocks.can_swap_in(*seq))
      return false;
    auto& to_device = transfers_[static_cast<size_t>(seq->rank)].to_device;
    const size_t before = to_device.size();
    blocks.swap_in(*seq, to_device);
    blocks_in_ += to_device.size() - before;
    ++swap_ins_;
    const size_t n = prompt_chunk(*seq, budget, shared);
    budget -= n;
    seq->status = sequence_status::running;
    step.push_back({seq, n, seq->num_computed + n == seq->size()});
    running_.push_back(seq);
    swapped_.pop_front();
  }
  return true;
}

void scheduler::finish(const std::shared_ptr<sequence>& seq, finish_reason reason) {
  blocks_of(*seq).deallocate(*seq);
  seq->status = sequence_status::finished;
  seq->finish = reason;
}

std::vector<scheduled> scheduler::schedule() {
  std::vector<scheduled> step = pick();
  // The host prefix tier's copies (evictions, hits) join the step's transfers.
  for (size_t r = 0; r < ranks_.size(); ++r) {
    auto& t = transfers_[r];
    const size_t out = t.to_host.size(), in = t.to_device.size();
    ranks_[r]->take_copies(t);
    blocks_out_ += t.to_host.size() - out;
    blocks_in_ += t.to_device.size() - in;
  }
  return step;
}

bool scheduler::admissible(const sequence& seq, size_t admitting) const {
  return running_.size() + admitting < static_cast<size_t>(cfg_.max_num_seqs) &&
         std::any_of(ranks_.begin(), ranks_.end(),
                     [&](const block_manager* b) { return b->can_allocate(seq); });
}

size_t scheduler::prompt_chunk(const sequence& seq, size_t budget, bool shared) {
  const size_t n = std::min(seq.num_uncomputed(), budget);
  if (!shared || n <= 1) return n;
  const size_t bounded = cfg_.stall_chunk(seq.num_computed, seq.num_uncomputed());
  if (bounded >= n) return n;
  ++stall_bounded_;
  return bounded;
}

std::vector<scheduled> scheduler::pick() {
  std::vector<scheduled> step;
  size_t budget = static_cast<size_t>(cfg_.max_num_batched_tokens);
  // The previous step's copies have run (a step is scheduled after the last one ended).
  for (block_manager* b : ranks_) b->end_transfers();
  transfers_.assign(ranks_.size(), {});

  // Prompt chunks are bounded by prefill_stall_pairs in a step that decodes, and while a
  // waiting sequence could be admitted: a long prompt then leaves room for it.
  const bool bounded = cfg_.prefill_stall_pairs > 0;
  const bool any_decode = std::any_of(running_.begin(), running_.end(),
                                      [](const auto& s) { return s->num_uncomputed() == 1; });
  const bool decodes = bounded && any_decode;
  const bool shared = decodes || (bounded && !waiting_.empty() && admissible(*waiting_.front()));
  // Under decode_slowdown, a step that decodes carries no prompt chunk (no running prompt's
  // next chunk, no admission) until the decoders are back on pace. (postprocess() closed
  // the last step; a step that never got there, its forward pass failed, ends now.)
  pacer_.close_step();
  const bool hold = any_decode && !pacer_.allows_chunks();
  bool held = false;

  // 1. Running sequences, oldest first. A sequence that cannot get a block preempts the
  //    newest running one of its rank (possibly itself).
  std::deque<std::shared_ptr<sequence>> kept;
  while (!running_.empty() && budget > 0) {
    auto seq = running_.front();
    running_.pop_front();
    if (hold && seq->num_uncomputed() > 1) {  // a prompt's next chunk waits a step
      held = true;
      kept.push_back(seq);
      continue;
    }
    block_manager& blocks = blocks_of(*seq);
    bool fits = true;
    while (!blocks.can_grow(*seq)) {
      const auto newest = std::find_if(running_.rbegin(), running_.rend(),
                                       [&](const auto& s) { return s->rank == seq->rank; });
      if (newest == running_.rend()) {
        preempt(seq);
        fits = false;
        break;
      }
      preempt(*newest);
      running_.erase(std::next(newest).base());
    }
    if (!fits) continue;
    blocks.grow(*seq);
    const size_t n = prompt_chunk(*seq, budget, shared);
    budget -= n;
    step.push_back({seq, n, seq->num_computed + n == seq->size()});
    kept.push_back(seq);
  }
  for (auto& seq : running_) kept.push_back(seq);  // out of budget this step: still running
  running_ = std::move(kept);

  // 2. Offloaded sequences come back first (they are older than any waiting one); while one
  //    is left, nothing new is admitted, so that it cannot be starved.
  // 3. Admit waiting sequences in order while budget, slots and blocks allow.
  //    The pacer holds admissions back with the running prompts' chunks.
  if (resume_swapped(step, budget, shared)) {
    if (hold && !waiting_.empty())
      held = true;
    else
      admit(step, budget, decodes);
  }
  pacer_.open_step(kind_of(step), held);
  return step;
}

decode_pacer::step_kind scheduler::kind_of(const std::vector<scheduled>& step) {
  bool decode = false, prompt = false;
  for (const scheduled& w : step) (w.seq->num_uncomputed() == 1 ? decode : prompt) = true;
  if (!decode) return decode_pacer::step_kind::other;
  return prompt ? decode_pacer::step_kind::busy : decode_pacer::step_kind::quiet;
}

void scheduler::admit(std::vector<scheduled>& step, size_t& budget, bool decodes) {
  const bool bounded = cfg_.prefill_stall_pairs > 0;
  while (!waiting_.empty() && budget > 0 &&
         running_.size() < static_cast<size_t>(cfg_.max_num_seqs)) {
    auto& seq = waiting_.front();
    // The rank its prefix waits in (a choice of an n > 1 request follows the first), when
    // that one can take it; else the rank with the most free blocks: if it cannot take
    // the sequence, none can.
    int32_t rank = seq->preferred_rank;
    if (rank < 0 || rank >= num_ranks() || !ranks_[static_cast<size_t>(rank)]->can_allocate(*seq))
      rank = pick_rank();
    block_manager& blocks = *ranks_[static_cast<size_t>(rank)];
    if (!blocks.can_allocate(*seq)) break;
    seq->rank = rank;
    const size_t before = seq->num_computed;
    blocks.allocate(*seq);
    if (seq->num_computed > before) prefix_hit_tokens_ += seq->num_computed - before;
    // Shared with the decodes, or with the next waiting sequence if it could come in too.
    const bool others = decodes || (bounded && waiting_.size() > 1 && admissible(*waiting_[1], 1));
    const size_t n = prompt_chunk(*seq, budget, others);
    budget -= n;
    seq->status = sequence_status::running;
    step.push_back({seq, n, seq->num_computed + n == seq->size()});
    running_.push_back(seq);
    waiting_.pop_front();
  }
}

std::vector<std::shared_ptr<sequence>> scheduler::postprocess(const std::vector<scheduled>& step,
                                                              std::span<const int32_t> sampled,
                                                              std::span<const int32_t> eos_ids,
                                                              size_t max_model_len) {
  pacer_.close_step();
  std::vector<std::shared_ptr<sequence>> done;
  for (size_t i = 0; i < step.size(); ++i) {
    const auto& seq = step[i].seq;
    const size_t n = step[i].num_tokens;
    if (seq->status != sequence_status::running) continue;  // aborted meanwhile
    const bool samples = step[i].samples();
    seq->num_computed += n;
    blocks_of(*seq).mark_computed(*seq);
    if (window_ > 0)
      window_released_ +=
          static_cast<uint64_t>(blocks_of(*seq).release_behind_window(*seq, window_));
    if (!samples) continue;
    const int32_t token = sampled[i];
    seq->append(token);
    const auto& p = seq->params();
    const auto is_in = [token](std::span<const int32_t> ids) {
      return std::find(ids.begin(), ids.end(), token) != ids.end();
    };
    finish_reason reason = finish_reason::none;
    if (is_in(p.stop_token_ids) || (!p.ignore_eos && is_in(eos_ids))) {
      reason = finish_reason::stop;
    } else if (seq->num_output_tokens() >= static_cast<size_t>(p.max_tokens) ||
               seq->size() >= max_model_len) {
      reason = finish_reason::length;
    }
    if (reason != finish_reason::none) {
      finish(seq, reason);
      done.push_back(seq);
    }
  }
  std::erase_if(running_, [](const auto& s) { return s->status == sequence_status::finished; });
  return done;
}

bool scheduler::abort(int64_t id) {
  for (auto* queue : {&waiting_, &running_, &swapped_}) {
    auto it =
        std::find_if(queue->begin(), queue->end(), [id](const auto& s) { return s->id() == id; });
    if (it != queue->end()) {
      if ((*it)->status == sequence_status::swapped) blocks_of(**it).release_host(**it);
      finish(*it, finish_reason::aborted);
      queue->erase(it);
      return true;
    }
  }
  return false;
}

}  // namespace conclave::engine

namespace conclave::engine {

uint64_t scheduler::host_prefix_stores() const {
  uint64_t n = 0;
  for (const block_manager* b : ranks_) n += b->host_prefix_stores();
  return n;
}

uint64_t scheduler::host_prefix_hits() const {
  uint64_t n = 0;
  for (const block_manager* b : ranks_) n += b->host_prefix_hits();
  return n;
}

bool scheduler::contains(int64_t id) const {
  const auto has = [id](const auto& q) {
    return std::any_of(q.begin(), q.end(), [id](const auto& s) { return s->id() == id; });
  };
  return has(waiting_) || has(running_) || has(swapped_);
}

}  // namespace conclave::engine
