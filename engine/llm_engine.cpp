// The generation loop. Sampling happens here, on the host, from the rows the backend
// returned for sequences whose step reached their last token.
#include "engine/llm_engine.h"

#include <spdlog/fmt/fmt.h>
#include <stdexcept>

namespace conclave::engine {
namespace {

config::engine_config checked(const config::engine_config& cfg) {
  if (auto err = cfg.validate(); !err.empty()) throw std::invalid_argument(err);
  return cfg;
}

}  // namespace

llm_engine::llm_engine(std::unique_ptr<gpu::backend> backend, const config::engine_config& cfg)
    : backend_(std::move(backend)),
      cfg_(checked(cfg)),
      max_model_len_(static_cast<size_t>(cfg.max_model_len > 0 ? std::min(cfg.max_model_len,
                                                                             backend_->config().max_position_embeddings)
                                                                : backend_->config().max_position_embeddings)),
      blocks_(backend_->kv_shape().num_blocks, backend_->kv_shape().block_size, cfg.scheduler.enable_prefix_caching),
      scheduler_(cfg.scheduler, blocks_),
      eos_ids_(backend_->config().eos_token_ids) {}

int64_t llm_engine::add_request(std::vector<int32_t> prompt, const sampling_params& params) {
  if (auto err = params.validate(); !err.empty()) throw std::invalid_argument(err);
  if (prompt.empty()) throw std::invalid_argument("prompt must contain at least one token");
  const int64_t vocab = backend_->config().vocab_size;
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= vocab) {
      throw std::invalid_argument(
          fmt::format("prompt token {} at index {} is outside the vocabulary [0, {})", prompt[i], i, vocab));
    }
  }
  const size_t total = prompt.size() + static_cast<size_t>(params.max_tokens);
  if (total > max_model_len_) {
    throw std::invalid_argument(fmt::format(
        "prompt ({} tokens) + max_tokens ({}) = {} exceeds the context length {}", prompt.size(),
        params.max_tokens, total, max_model_len_));
  }
  const int64_t id = next_id_++;
  scheduler_.add(std::make_shared<sequence>(id, std::move(prompt), params));
  return id;
}

std::vector<step_event> llm_engine::step() {
  std::vector<step_event> events;
  const std::vector<scheduled> work = scheduler_.schedule();
  if (work.empty()) return events;

  std::vector<gpu::step_sequence> batch;
  batch.reserve(work.size());
  for (const scheduled& w : work) {
    const sequence& s = *w.seq;
    gpu::step_sequence b;
    b.tokens = s.tokens().subspan(s.num_computed, w.num_tokens);
    b.num_cached = static_cast<int32_t>(s.num_computed);
    b.block_table = s.block_table;
    batch.push_back(b);
  }
  backend_->forward(batch, out_);

  std::vector<int32_t> sampled(work.size(), -1);
  for (size_t i = 0; i < work.size(); ++i) {
    sequence& s = *work[i].seq;
    const bool decode = s.num_output_tokens() > 0 && s.num_uncomputed() == 1;
    if (!decode) counters_.prompt_tokens_computed += work[i].num_tokens;
    if (!work[i].samples()) continue;
    const auto logits = out_.last(i);
    if (on_logits) on_logits(s.id(), logits);
    sampled[i] = s.sampler().sample(logits, s.prompt(), s.output());
  }
  scheduler_.postprocess(work, sampled, eos_ids_, max_model_len_);
  for (size_t i = 0; i < work.size(); ++i) {
    if (sampled[i] < 0) continue;
    const sequence& s = *work[i].seq;
    ++counters_.tokens_generated;
    events.push_back({s.id(), sampled[i], s.status == sequence_status::finished, s.finish});
  }
  ++counters_.steps;
  return events;
}

std::vector<int32_t> llm_engine::generate(std::vector<int32_t> prompt, const sampling_params& params) {
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
  s.kv_blocks_total = blocks_.num_blocks();
  s.kv_blocks_free = blocks_.num_free_blocks();
  s.preemptions = scheduler_.num_preemptions();
  return s;
}

}  // namespace conclave::engine
