// The CPU forward pass of Qwen3 / Qwen3-MoE over a paged KV cache. One call runs any
// mix of prefill chunks and decode tokens: all tokens of the step go through each GEMM
// together; only attention is per sequence.
#include "gpu/cpu/cpu_backend.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <algorithm>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>

#include "gpu/cpu/cpu_weights.h"
#include "gpu/cpu/moe.h"
#include "gpu/cpu/ops.h"
#include "gpu/cpu/thread_pool.h"
#include "gpu/host_ops.h"
#include "model/checkpoint.h"

namespace conclave::gpu {
namespace {

using namespace conclave::gpu::cpu;

class cpu_backend final : public backend {
 public:
  cpu_backend(const model::checkpoint& ckpt, const backend_options& opts, rank_context rank)
      : config_(ckpt.config()),
        threads_(opts.threads > 0
                     ? opts.threads
                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))),
        pool_(threads_),
        rank_(checked_rank_context(std::move(rank), config_)),
        weights_(load_cpu_weights(ckpt, threads_, holds_filter())),
        rope_(rope_parameters(config_, opts.rope_inv_freq_dtype == "bf16")),
        kv_fp8_(opts.kv_cache_dtype == "fp8") {
    if (kv_fp8_)
      spdlog::info(
          "cpu backend: KV cache values rounded as fp8 e4m3 with per-(token, head) "
          "scales (the CUDA fp8 cache's numerics; the CPU cache stays fp32)");
    single_threaded_blas();  // the pool splits GEMMs instead (ops.h says why)
    kv_.block_size = opts.block_size;
    kv_.num_blocks = opts.num_kv_blocks > 0
                         ? opts.num_kv_blocks
                         : kv_blocks_for_bytes(config_, opts.block_size, opts.kv_cache_bytes,
                                               kv_row_bytes(config_, sizeof(float), false));
    if (kv_.num_blocks <= 0)
      throw std::runtime_error("the KV cache budget holds no block; raise kv_cache_bytes");
    const size_t width = static_cast<size_t>(config_.num_kv_heads * config_.head_dim);
    const size_t per_layer =
        static_cast<size_t>(kv_.num_blocks) * static_cast<size_t>(kv_.block_size) * width;
    kv_.bytes_per_block = 2 * static_cast<size_t>(config_.num_layers) *
                          static_cast<size_t>(kv_.block_size) * width * sizeof(float);
    for (int64_t l = 0; l < config_.num_layers; ++l) {
      // Uninitialised on purpose: pages are committed only as blocks are first written.
      k_cache_.emplace_back(new float[per_layer]);
      v_cache_.emplace_back(new float[per_layer]);
    }
    // The offload pool: the same layout in separate host memory, a second tier that the
    // scheduler's bookkeeping must keep apart from the cache (as pinned memory on a GPU).
    kv_.num_host_blocks = static_cast<int32_t>((opts.kv_offload_bytes + opts.kv_host_prefix_bytes) /
                                               kv_.bytes_per_block);
    const size_t host_per_layer =
        static_cast<size_t>(kv_.num_host_blocks) * static_cast<size_t>(kv_.block_size) * width;
    if (kv_.num_host_blocks > 0) {
      for (int64_t l = 0; l < config_.num_layers; ++l) {
        host_k_.emplace_back(new float[host_per_layer]);
        host_v_.emplace_back(new float[host_per_layer]);
      }
      spdlog::info("cpu backend: KV offload pool {} blocks ({:.1f} MiB)", kv_.num_host_blocks,
                   static_cast<double>(kv_.bytes_per_block) * kv_.num_host_blocks / (1 << 20));
    }
    spdlog::info("cpu backend: {} threads, KV cache {} blocks x {} tokens ({:.1f} MiB reserved)",
                 threads_, kv_.num_blocks, kv_.block_size,
                 static_cast<double>(kv_.bytes_per_block) * kv_.num_blocks / (1 << 20));
    if (rank_.expert_parallel()) {
      spdlog::info("cpu backend: rank {} of {} ({}), placement v{}", rank_.rank(), rank_.size(),
                   rank_.comm->kind(), rank_.placement->version);
      load_.resize(weights_.layers.size());
      for (size_t l = 0; l < weights_.layers.size(); ++l)
        if (weights_.layers[l].moe) load_[l].assign(static_cast<size_t>(config_.num_experts), 0);
    }
  }

  void apply_placement(const model::checkpoint& ckpt,
                       std::shared_ptr<const expert_map> placement) override {
    if (!rank_.expert_parallel()) backend::apply_placement(ckpt, placement);
    if (!placement) throw std::invalid_argument("apply_placement: no placement");
    if (const auto why = placement->check(static_cast<int32_t>(config_.num_layers),
                                          static_cast<int32_t>(config_.num_experts));
        !why.empty())
      throw std::invalid_argument("apply_placement: " + why);
    if (placement->ranks != rank_.size())
      throw std::invalid_argument("apply_placement: the placement is for another replica size");
    const int32_t me = rank_.rank();
    // Load what this rank gains first, then drop what it loses: a failed load leaves the
    // old placement whole.
    for (size_t l = 0; l < weights_.layers.size(); ++l) {
      cpu_layer& L = weights_.layers[l];
      if (!L.moe) continue;
      for (int32_t e = 0; e < config_.num_experts; ++e) {
        if (placement->holds(static_cast<int32_t>(l), e, me) &&
            L.expert_gate_up[static_cast<size_t>(e)].empty())
          load_cpu_expert(ckpt, static_cast<int64_t>(l), e, L);
      }
    }
    for (size_t l = 0; l < weights_.layers.size(); ++l) {
      cpu_layer& L = weights_.layers[l];
      if (!L.moe) continue;
      for (int32_t e = 0; e < config_.num_experts; ++e)
        if (!placement->holds(static_cast<int32_t>(l), e, me)) drop_cpu_expert(L, e);
    }
    rank_.placement = std::move(placement);
  }
  uint64_t placement_version() const override {
    return rank_.placement ? rank_.placement->version : 0;
  }
  std::vector<std::vector<int64_t>> take_expert_load() override {
    auto out = load_;
    for (auto& layer : load_) std::fill(layer.begin(), layer.end(), 0);
    return out;
  }
  ep_stats take_ep_stats() override { return std::exchange(ep_stats_, ep_stats{}); }

  std::string_view name() const override { return "cpu"; }
  const model::model_config& config() const override { return config_; }
  kv_cache_shape kv_shape() const override { return kv_; }

  void transfer_kv(const kv_transfer& t) override {
    validate_transfer(t, kv_);
    const size_t block_floats = static_cast<size_t>(kv_.block_size) *
                                static_cast<size_t>(config_.num_kv_heads * config_.head_dim);
    const auto copy = [&](const kv_block_copy& c, bool to_host) {
      const size_t dev = static_cast<size_t>(c.device_block) * block_floats;
      const size_t host = static_cast<size_t>(c.host_block) * block_floats;
      for (size_t l = 0; l < k_cache_.size(); ++l) {
        float* d_k = k_cache_[l].get() + dev;
        float* d_v = v_cache_[l].get() + dev;
        float* h_k = host_k_[l].get() + host;
        float* h_v = host_v_[l].get() + host;
        std::memcpy(to_host ? h_k : d_k, to_host ? d_k : h_k, block_floats * sizeof(float));
        std::memcpy(to_host ? h_v : d_v, to_host ? d_v : h_v, block_floats * sizeof(float));
      }
    };
    for (const auto& c : t.to_host) copy(c, true);
    for (const auto& c : t.to_device) copy(c, false);
  }

  void forward(std::span<const step_sequence> batch, step_output& out) override {
    validate_batch(batch, config_, kv_);
    const auto& c = config_;
    const size_t hidden = static_cast<size_t>(c.hidden_size);
    const size_t hd = static_cast<size_t>(c.head_dim);
    const size_t heads = static_cast<size_t>(c.num_heads);
    const size_t kvh = static_cast<size_t>(c.num_kv_heads);
    const size_t qw = heads * hd, kvw = kvh * hd, qkvw = qw + 2 * kvw;
    const float eps = static_cast<float>(c.rms_norm_eps);

    // Flatten the batch: one row per token.
    std::vector<int32_t> tokens, positions;
    std::vector<attention_seq> seqs;
    std::vector<size_t> logit_rows;
    out.row_begin.assign(1, 0);
    out.sampled.clear();  // samples on the host (the engine)
    for (const step_sequence& s : batch) {
      attention_seq a;
      a.first_row = tokens.size();
      a.num_tokens = static_cast<int32_t>(s.tokens.size());
      a.num_cached = s.num_cached;
      a.block_table = s.block_table;
      seqs.push_back(a);
      for (size_t i = 0; i < s.tokens.size(); ++i) {
        tokens.push_back(s.tokens[i]);
        positions.push_back(s.num_cached + static_cast<int32_t>(i));
        if (s.all_logits || i + 1 == s.tokens.size()) logit_rows.push_back(tokens.size() - 1);
      }
      out.row_begin.push_back(logit_rows.size());
    }
    const size_t rows = tokens.size();
    // A rank of an expert-parallel replica with no tokens this step still joins every MoE
    // layer's collectives (with nothing to send); everything else has no rows to run.
    if (rows == 0) {
      for (size_t l = 0; l < weights_.layers.size(); ++l) {
        if (weights_.layers[l].moe && rank_.expert_parallel())
          moe_forward_ep(weights_.layers[l], c, *rank_.comm, *rank_.placement,
                         static_cast<int32_t>(l), nullptr, nullptr, 0, &pool_, load_[l].data(),
                         &ep_stats_);
      }
      out.vocab = static_cast<size_t>(c.vocab_size);
      out.logits.clear();
      return;
    }

    std::vector<float> x(rows * hidden), h(rows * hidden), qkv(rows * qkvw), attn(rows * qw),
        proj(rows * hidden);
    for (size_t r = 0; r < rows; ++r) {
      std::copy_n(weights_.embed.data() + static_cast<size_t>(tokens[r]) * hidden, hidden,
                  x.data() + r * hidden);
    }

    for (size_t l = 0; l < weights_.layers.size(); ++l) {
      const cpu_layer& L = weights_.layers[l];
      rms_norm(x.data(), L.input_norm.data(), h.data(), rows, hidden, eps);
      linear(h.data(), L.qkv.data(), L.qkv_bias.empty() ? nullptr : L.qkv_bias.data(), qkv.data(),
             rows, qkvw, hidden, &pool_);
      for (size_t r = 0; r < rows; ++r) {
        float* q = qkv.data() + r * qkvw;
        rms_norm(q, L.q_norm.data(), q, heads, hd, eps);
        rms_norm(q + qw, L.k_norm.data(), q + qw, kvh, hd, eps);
      }
      apply_rope(qkv.data(), rows, qkvw, heads, hd, positions.data(), rope_.inv_freq.data(),
                 rope_.attention_scaling);
      apply_rope(qkv.data() + qw, rows, qkvw, kvh, hd, positions.data(), rope_.inv_freq.data(),
                 rope_.attention_scaling);

      paged_kv kv{k_cache_[l].get(),
                  v_cache_[l].get(),
                  kv_.block_size,
                  static_cast<int32_t>(kvh),
                  static_cast<int32_t>(hd),
                  c.layer_window(static_cast<int64_t>(l)),
                  kv_fp8_};
      kv_cache_write(kv, seqs, qkv.data() + qw, qkv.data() + qw + kvw, qkvw);
      paged_attention(kv, seqs, qkv.data(), qkvw, heads, attn.data(), &pool_);
      linear(attn.data(), L.o.data(), L.o_bias.empty() ? nullptr : L.o_bias.data(), proj.data(),
             rows, hidden, qw, &pool_);
      for (size_t i = 0; i < rows * hidden; ++i) x[i] += proj[i];

      rms_norm(x.data(), L.post_norm.data(), h.data(), rows, hidden, eps);
      if (L.moe && rank_.expert_parallel()) {
        moe_forward_ep(L, c, *rank_.comm, *rank_.placement, static_cast<int32_t>(l), h.data(),
                       proj.data(), rows, &pool_, load_[l].data(), &ep_stats_);
      } else if (L.moe) {
        moe_forward(L, c, h.data(), proj.data(), rows, &pool_);
      } else {
        dense_mlp_forward(L, c, h.data(), proj.data(), rows, &pool_);
      }
      for (size_t i = 0; i < rows * hidden; ++i) x[i] += proj[i];
    }

    // Final norm and LM head only for rows whose logits were asked for.
    const size_t n = logit_rows.size();
    std::vector<float> last(n * hidden);
    for (size_t i = 0; i < n; ++i) {
      rms_norm(x.data() + logit_rows[i] * hidden, weights_.final_norm.data(),
               last.data() + i * hidden, 1, hidden, eps);
    }
    out.vocab = static_cast<size_t>(c.vocab_size);
    out.logits.resize(n * out.vocab);
    linear(last.data(), weights_.output_matrix().data(), nullptr, out.logits.data(), n, out.vocab,
           hidden, &pool_);
  }

 private:
  expert_filter holds_filter() const {
    if (!rank_.expert_parallel()) return {};
    return [p = rank_.placement, me = rank_.rank()](int64_t l, int64_t e) {
      return p->holds(static_cast<int32_t>(l), static_cast<int32_t>(e), me);
    };
  }

  model::model_config config_;
  int threads_;
  thread_pool pool_;
  rank_context rank_;
  cpu_weights weights_;
  std::vector<std::vector<int64_t>> load_;  ///< [layer][expert] pairs routed since taken
  ep_stats ep_stats_;
  rope_table rope_;
  bool kv_fp8_ = false;  ///< kv_cache_dtype fp8: values rounded as the CUDA fp8 cache stores them
  kv_cache_shape kv_;
  std::vector<std::unique_ptr<float[]>> k_cache_, v_cache_;
  std::vector<std::unique_ptr<float[]>> host_k_, host_v_;  ///< the offload pool, per layer
};

}  // namespace

std::unique_ptr<backend> make_cpu_backend(const model::checkpoint& ckpt,
                                          const backend_options& opts, rank_context rank) {
  return std::make_unique<cpu_backend>(ckpt, opts, std::move(rank));
}

}  // namespace conclave::gpu
