// The generation loop. A sequence whose step reached its last token is sampled either
// on the device, when the backend samples_on_device() and the request allows it
// (device_samplable: no logprobs, no constraint, no on_logits hook; the backend gets a
// device_sampling spec and returns the token), or here on the host from the logits row
// the backend returned. Both draw the same token for the same seed and position.
#include "engine/llm_engine.h"

#include <spdlog/fmt/fmt.h>
#include <algorithm>
#include <stdexcept>
#include <utility>

namespace conclave::engine {
namespace {

config::engine_config checked(const config::engine_config& cfg) {
  if (auto err = cfg.validate(); !err.empty()) throw std::invalid_argument(err);
  return cfg;
}

std::deque<block_manager> rank_blocks(const gpu::kv_cache_shape& kv,
                                      const config::engine_config& cfg, int32_t ranks) {
  if (ranks < 1) throw std::invalid_argument("an engine needs at least one rank");
  // The host tier's share of the pool, in blocks (the backend sized the pool for both).
  const auto tier = static_cast<int32_t>(
      kv.bytes_per_block > 0
          ? std::min<size_t>(cfg.backend.kv_host_prefix_bytes / kv.bytes_per_block,
                             static_cast<size_t>(kv.num_host_blocks))
          : 0);
  std::deque<block_manager> blocks;
  for (int32_t r = 0; r < ranks; ++r)
    blocks.emplace_back(kv.num_blocks, kv.block_size, cfg.scheduler.enable_prefix_caching,
                        kv.num_host_blocks, tier);
  return blocks;
}

std::vector<block_manager*> pointers(std::deque<block_manager>& blocks) {
  std::vector<block_manager*> out;
  for (auto& b : blocks) out.push_back(&b);
  return out;
}

}  // namespace

llm_engine::llm_engine(std::unique_ptr<gpu::backend> backend, const config::engine_config& cfg)
    : llm_engine(backend->config(), backend->kv_shape(), cfg) {
  // Specs only for a backend that uses them (the host path would build penalties twice).
  cfg_.sample_on_device = cfg.sample_on_device && backend->samples_on_device();
  backend_ = std::move(backend);
}

llm_engine::llm_engine(const model::model_config& model, const gpu::kv_cache_shape& kv,
                       const config::engine_config& cfg, int32_t ranks)
    : model_(model),
      cfg_(checked(cfg)),
      max_model_len_(static_cast<size_t>(
          cfg.max_model_len > 0 ? std::min(cfg.max_model_len, model.max_position_embeddings)
                                : model.max_position_embeddings)),
      blocks_(rank_blocks(kv, cfg, ranks)),
      scheduler_(cfg.scheduler, pointers(blocks_)),
      eos_ids_(model.eos_token_ids) {
  // Every layer windowed: keys behind the window are never read again.
  if (model.sliding_window > 0 && model.all_layers_sliding())
    scheduler_.set_sliding_window(static_cast<int32_t>(model.sliding_window));
}

gpu::backend& llm_engine::backend() {
  if (!backend_) throw std::logic_error("llm_engine: this engine does not own a backend");
  return *backend_;
}

bool llm_engine::abort(int64_t id) {
  if (groups_.drop(id)) return true;
  if (step_pending_) {
    if (!scheduler_.contains(id)) return false;
    deferred_aborts_.push_back(id);
    return true;
  }
  const bool found = scheduler_.abort(id);
  queue_released();  // an aborted leader lets its group go
  return found;
}

void llm_engine::queue_released() {
  for (auto& seq : groups_.release()) scheduler_.add(std::move(seq));
}

int64_t llm_engine::add_request(std::vector<int32_t> prompt, const sampling_params& params) {
  return add_request(std::move(prompt), params, {});
}

int64_t llm_engine::add_request(std::vector<int32_t> prompt, const sampling_params& params,
                                std::span<const int32_t> output) {
  if (auto err = params.validate(); !err.empty()) throw std::invalid_argument(err);
  if (prompt.empty()) throw std::invalid_argument("prompt must contain at least one token");
  const int64_t vocab = model_.vocab_size;
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= vocab) {
      throw std::invalid_argument(fmt::format(
          "prompt token {} at index {} is outside the vocabulary [0, {})", prompt[i], i, vocab));
    }
  }
  const size_t total = prompt.size() + static_cast<size_t>(params.max_tokens);
  if (total > max_model_len_) {
    throw std::invalid_argument(
        fmt::format("prompt ({} tokens) + max_tokens ({}) = {} exceeds the context length {}",
                    prompt.size(), params.max_tokens, total, max_model_len_));
  }
  if (output.size() >= static_cast<size_t>(params.max_tokens))
    throw std::invalid_argument("a resumed request has no tokens left to generate");
  for (size_t i = 0; i < output.size(); ++i) {
    if (output[i] < 0 || output[i] >= vocab) {
      throw std::invalid_argument(fmt::format(
          "resumed output token {} at index {} is outside the vocabulary", output[i], i));
    }
  }
  const int64_t id = next_id_++;
  auto seq = std::make_shared<sequence>(id, std::move(prompt), params);
  for (int32_t t : output) seq->append(t);
  scheduler_.check_fits(*seq);
  // Without a prefix cache there is nothing to share: every choice runs at once.
  if (!cfg_.scheduler.enable_prefix_caching || !groups_.hold(seq)) scheduler_.add(std::move(seq));
  return id;
}

std::vector<step_event> llm_engine::step() {
  gpu::backend& be = backend();
  const pending_step p = begin_step();
  if (p.empty()) return {};
  try {
    be.transfer_kv(p.transfer(0));
    if (p.batch.empty()) {
      out_ = {};
    } else {
      be.forward(p.batch, out_);
    }
  } catch (...) {
    step_pending_ = false;
    throw;
  }
  return end_step(p, out_);
}

pending_step llm_engine::begin_step() {
  if (step_pending_) throw std::logic_error("llm_engine: a step is already pending");
  pending_step p;
  p.work = scheduler_.schedule();
  p.batch.reserve(p.work.size());
  p.entry_rank.reserve(p.work.size());
  // Sized before any pointer into them is taken.
  p.sampling.resize(p.work.size());
  p.penalties.resize(p.work.size());
  for (size_t i = 0; i < p.work.size(); ++i) {
    const scheduled& w = p.work[i];
    const sequence& s = *w.seq;
    gpu::step_sequence b;
    b.tokens = s.tokens().subspan(s.num_computed, w.num_tokens);
    b.num_cached = static_cast<int32_t>(s.num_computed);
    b.block_table = s.block_table;
    if (w.samples() && device_samplable(s.params())) {
      // The request's draw for this token, whichever side samples.
      const double u = s.params().greedy() ? 0.0 : s.sampler().draw(s.output().size());
      p.sampling[i] =
          s.sampler().device_spec(s.prompt(), s.output(), sampling_vocab(), u, p.penalties[i]);
      b.sample = &p.sampling[i];
    }
    p.batch.push_back(b);
    p.entry_rank.push_back(s.rank);
  }
  p.transfers = scheduler_.take_transfers();
  step_pending_ = !p.empty();
  return p;
}

bool llm_engine::device_samplable(const sampling_params& params) const {
  return cfg_.sample_on_device && !on_logits && params.logprobs < 0 && !params.constraint;
}

size_t llm_engine::sampling_vocab() const {
  const auto vocab = static_cast<size_t>(model_.vocab_size);
  return cfg_.sampling_vocab_size > 0
             ? std::min(vocab, static_cast<size_t>(cfg_.sampling_vocab_size))
             : vocab;
}

std::vector<step_event> llm_engine::end_step(const pending_step& p, const gpu::step_output& out) {
  step_pending_ = false;
  std::vector<step_event> events;
  const auto& work = p.work;
  for (int64_t id : std::exchange(deferred_aborts_, {})) scheduler_.abort(id);
  std::vector<int32_t> sampled(work.size(), -1);
  std::vector<std::optional<token_logprobs>> logprobs(work.size());
  for (size_t i = 0; i < work.size(); ++i) {
    sequence& s = *work[i].seq;
    const bool decode = s.num_output_tokens() > 0 && s.num_uncomputed() == 1;
    if (!decode) counters_.prompt_tokens_computed += work[i].num_tokens;
    if (!work[i].samples() || s.status != sequence_status::running) continue;
    if (const int32_t t = out.sampled_token(i); t >= 0) {
      sampled[i] = t;  // the backend sampled it on its device
      continue;
    }
    const auto logits = out.last(i);
    if (on_logits) on_logits(s.id(), logits);
    const size_t limit = std::min(logits.size(), sampling_vocab());
    // The same draw as a spec carried: it depends only on the seed and the position.
    sampled[i] = s.sampler().sample(logits.first(limit), s.prompt(), s.output());
    if (const int32_t n = s.sampler().params().logprobs; n >= 0)
      logprobs[i] = compute_logprobs(logits.first(limit), sampled[i], n);
  }
  ++counters_.steps;  // it has run; postprocess ends its timing (decode_pacer)
  scheduler_.postprocess(work, sampled, eos_ids_, max_model_len_);
  queue_released();  // choices whose shared prompt is now in the prefix cache
  for (size_t i = 0; i < work.size(); ++i) {
    if (sampled[i] < 0) continue;
    const sequence& s = *work[i].seq;
    ++counters_.tokens_generated;
    events.push_back({s.id(), sampled[i], s.status == sequence_status::finished, s.finish,
                      std::move(logprobs[i])});
  }
  return events;
}

std::vector<int32_t> llm_engine::generate(std::vector<int32_t> prompt,
                                          const sampling_params& params) {
  const int64_t id = add_request(std::move(prompt), params);
  std::vector<int32_t> out;
  bool done = false;
  while (!done && has_work()) {
    for (const step_event& e : step()) {
      if (e.id != id) continue;
      out.push_back(e.token);
      done = e.finished;
    }
  }
  return out;
}

engine_stats llm_engine::stats() const {
  engine_stats s = counters_;
  s.num_waiting = scheduler_.num_waiting();
  s.num_running = scheduler_.num_running();
  for (const block_manager& b : blocks_) {
    s.kv_blocks_total += b.num_blocks();
    s.kv_blocks_free += b.num_free_blocks();
  }
  s.preemptions = scheduler_.num_preemptions();
  s.swap_outs = scheduler_.num_swap_outs();
  s.swap_ins = scheduler_.num_swap_ins();
  s.blocks_swapped_out = scheduler_.blocks_swapped_out();
  s.blocks_swapped_in = scheduler_.blocks_swapped_in();
  s.blocks_released_behind_window = scheduler_.blocks_released_behind_window();
  s.stall_bounded_chunks = scheduler_.num_stall_bounded_chunks();
  s.paced_steps = scheduler_.num_paced_steps();
  s.host_prefix_stores = scheduler_.host_prefix_stores();
  s.host_prefix_hits = scheduler_.host_prefix_hits();
  s.num_swapped = scheduler_.num_swapped();
  s.num_waiting += groups_.num_held();
  s.prefix_hit_tokens = scheduler_.prefix_hit_tokens();
  return s;
}

}  // namespace conclave::engine
