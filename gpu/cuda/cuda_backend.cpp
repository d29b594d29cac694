// The CUDA forward pass of Qwen3 / Qwen3-MoE over a paged KV cache: the CPU backend's
// steps (gpu/cpu/cpu_backend.cpp) with device kernels. Activations between ops are fp32
// (residual stream, GEMM outputs); GEMM inputs and the KV cache are in the weight dtype.
#include "gpu/cuda/cuda_backend.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <string>

#include "gpu/cuda/attention.h"
#include "gpu/cuda/attention_timer.h"
#include "gpu/cuda/backend_setup.h"
#include "gpu/cuda/check.h"
#include "gpu/cuda/cuda_moe_ep.h"
#include "gpu/cuda/cuda_weights.h"
#include "gpu/cuda/device_info.h"
#include "gpu/cuda/embedding.h"
#include "gpu/cuda/gemm.h"
#include "gpu/cuda/graph_timer.h"
#include "gpu/cuda/kv_cache.h"
#include "gpu/cuda/kv_offload.h"
#include "gpu/cuda/logits_copy.h"
#include "gpu/cuda/moe_combine.h"
#include "gpu/cuda/moe_experts.h"
#include "gpu/cuda/moe_gemv.h"
#include "gpu/cuda/moe_permute.h"
#include "gpu/cuda/moe_router.h"
#include "gpu/cuda/prefill_attention.h"
#include "gpu/cuda/projection.h"
#include "gpu/cuda/qk_norm_rope.h"
#include "gpu/cuda/random_init.h"
#include "gpu/cuda/rms_norm.h"
#include "gpu/cuda/sampling_rows.h"
#include "gpu/cuda/swiglu.h"
#include "gpu/host_ops.h"
#include "gpu/memory_plan.h"
#include "gpu/step_layout.h"
#include "model/checkpoint.h"
#include "model/gen_model.h"
#include "model/model_error.h"

namespace conclave::gpu::cuda {
namespace {

class cuda_backend final : public cuda_backend_api {
 public:
  cuda_backend(const model::model_config& c, const backend_options& opts,
               const std::function<cuda_weights(elem, const cuda_expert_filter&)>& load,
               rank_context rank = {}, bool random_weights = false)
      : config_(c), t_(parse_elem(opts.weight_dtype)), random_weights_(random_weights) {
    rank = checked_rank_context(std::move(rank), c);
    select_device(opts.device);
    device_ = opts.device;
    plan_before_load(c, opts, t_, rank.size());
    CONCLAVE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CONCLAVE_CUDA_CHECK(cudaEventCreate(&ev_start_));
    CONCLAVE_CUDA_CHECK(cudaEventCreate(&ev_end_));
    blas_ = std::make_unique<blas>();
    blas_->set_stream(stream_);
    blas_ws_ = device_buffer(size_t{32} << 20);
    blas_->set_workspace(blas_ws_.get(), blas_ws_.bytes());
    graphs_on_ = opts.cuda_graphs;
    fast_ = opts.cuda_fast_paths || opts.cuda_graphs;
    ks_ = kernel_switches::from_env();
    quant_paths_ = {ks_.quant_row_gemv, ks_.quant_mma, ks_.quant_row_mma, ks_.quant_mma_min_rows};
    tile_rows_ = prefill_tile_rows(static_cast<size_t>(c.head_dim), ks_.prefill_wgmma);
    pack_ = prefill_pack_gqa(static_cast<size_t>(c.num_heads), static_cast<size_t>(c.num_kv_heads),
                             tile_rows_, ks_.prefill_pack_gqa);
    // An expert-parallel rank loads only its experts and exchanges every MoE layer's rows
    // with its peers, host-staged or on device buffers (no CUDA graphs: the routing
    // crosses to the host each layer, and a graph cannot wait for the peers).
    if (rank.expert_parallel()) ep_ = std::make_unique<moe_ep>(c, t_, stream_, *blas_, rank);
    weights_ = load(t_, ep_ ? ep_->holds_filter() : cuda_expert_filter{});
    // Quantized projections dequantize into this for cuBLAS (prefill, large batches):
    // allocated once, before any graph capture.
    if (const size_t dq = dequant_scratch_bytes(c, weights_, t_); dq > 0) dq_ = device_buffer(dq);
    if (c.num_experts > 0) {
      pinned_offsets_.ensure(static_cast<size_t>(c.num_experts + 1) *
                             static_cast<size_t>(c.num_layers) * sizeof(int32_t));
      pinned_light_.ensure(static_cast<size_t>(c.num_experts) * sizeof(int32_t));
    }
    const rope_table rope = rope_parameters(c, opts.rope_inv_freq_dtype == "bf16");
    inv_freq_ = device_buffer::from(rope.inv_freq);
    rope_scale_ = rope.attention_scaling;
    // Before the KV cache takes what is left.
    sampler_ = std::make_unique<device_sampler>(static_cast<size_t>(c.vocab_size));
    CONCLAVE_CUDA_CHECK(cudaEventCreate(&ev_sampled_));
    allocate_kv(opts);
  }

  ~cuda_backend() override {
    cudaSetDevice(device_);  // cannot throw from a destructor
    cudaStreamSynchronize(stream_);
    clear_graphs();
    cudaEventDestroy(ev_start_);
    cudaEventDestroy(ev_end_);
    cudaEventDestroy(ev_sampled_);
    cudaStreamDestroy(stream_);
  }

  std::string_view name() const override { return "cuda"; }
  const model::model_config& config() const override { return config_; }
  kv_cache_shape kv_shape() const override { return kv_; }
  step_timing last_timing() const override { return timing_; }
  size_t weight_bytes() const override { return weights_.bytes; }
  void set_fast_paths(bool on) override { fast_ = on; }
  void set_cuda_graphs(bool on) override { graphs_on_ = on; }
  bool last_step_was_graph() const override { return last_graph_; }
  void set_attention_timing(bool on) override {
    use_device();
    attn_timer_.enable(on, weights_.layers.size());
  }
  bool samples_on_device() const override { return true; }

  void apply_placement(const model::checkpoint& ckpt,
                       std::shared_ptr<const expert_map> placement) override {
    if (!ep_) return backend::apply_placement(ckpt, std::move(placement));
    if (random_weights_)
      throw std::logic_error(
          "apply_placement: this rank's weights are random (no checkpoint to load experts from)");
    use_device();
    ep_->apply_placement(ckpt, weights_, std::move(placement));
  }
  uint64_t placement_version() const override { return ep_ ? ep_->placement_version() : 0; }
  std::vector<std::vector<int64_t>> take_expert_load() override {
    return ep_ ? ep_->take_expert_load() : std::vector<std::vector<int64_t>>{};
  }
  ep_stats take_ep_stats() override { return ep_ ? ep_->take_stats() : ep_stats{}; }

  void forward(std::span<const step_sequence> batch, step_output& out) override {
    const auto t0 = std::chrono::steady_clock::now();
    validate_batch(batch, config_, kv_);
    use_device();
    if (ep_ && batch.empty()) {
      // A rank with no tokens still joins every MoE layer's collectives.
      for (size_t l = 0; l < weights_.layers.size(); ++l)
        if (weights_.layers[l].moe)
          ep_->forward(weights_.layers[l], l, nullptr, nullptr, nullptr, 0, fast_, nullptr);
      out = step_output{};
      out.vocab = static_cast<size_t>(config_.vocab_size);
      out.row_begin.assign(1, 0);
      return;
    }
    const size_t bucket = graph_bucket(batch);
    const size_t rows = prepare(batch, bucket);
    last_graph_ = bucket > 0;
    attn_timer_.arm(bucket == 0);  // graphs are not timed
    if (bucket > 0) {
      cudaGraphExec_t exec = graph_for(bucket);
      CONCLAVE_CUDA_CHECK(cudaEventRecord(ev_start_, stream_));
      CONCLAVE_CUDA_CHECK(cudaGraphLaunch(exec, stream_));
      CONCLAVE_CUDA_CHECK(cudaEventRecord(ev_end_, stream_));
      moe_layers_run_.clear();
      for (size_t l = 0; l < weights_.layers.size(); ++l)
        if (weights_.layers[l].moe) moe_layers_run_.push_back(l);
    } else {
      CONCLAVE_CUDA_CHECK(cudaEventRecord(ev_start_, stream_));
      run(rows);
      CONCLAVE_CUDA_CHECK(cudaEventRecord(ev_end_, stream_));
    }
    const size_t sampled = sample_on_device(batch);
    copy_host_sampled_logits(batch, layout_.logit_row_begin(), logits_.as<float>(),
                             static_cast<size_t>(config_.vocab_size), out, stream_);
    CONCLAVE_CUDA_CHECK(cudaEventRecord(ev_sampled_, stream_));
    CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    out.sampled.clear();
    if (sampled > 0) {
      out.sampled.assign(batch.size(), -1);
      const int32_t* tokens = sampler_->tokens();
      for (size_t j = 0; j < sampled; ++j) out.sampled[sample_seq_[j]] = tokens[j];
    }
    float ms = 0;
    CONCLAVE_CUDA_CHECK(cudaEventElapsedTime(&ms, ev_start_, ev_end_));
    timing_.forward_ms = ms;
    CONCLAVE_CUDA_CHECK(cudaEventElapsedTime(&ms, ev_end_, ev_sampled_));
    timing_.sample_ms = ms;
    timing_.rows_sampled = sampled;
    timing_.experts_run = count_experts_run();
    timing_.attention_ms = attn_timer_.total_ms();
    timing_.total_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }

 private:
  // ---- sampling and the logits copy ------------------------------------------------------
  /// Queues the device sampler for the sequences that asked for it; returns their count
  /// (sample_seq_ maps the sampler's rows back to sequences).
  size_t sample_on_device(std::span<const step_sequence> batch) {
    sample_rows_.clear();
    sample_pen_.clear();
    sample_seq_.clear();
    const auto vocab = static_cast<int32_t>(config_.vocab_size);
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!device_sampled(batch[i])) continue;
      append_sample_row(*batch[i].sample,
                        static_cast<int32_t>(layout_.logit_row_begin()[i + 1] - 1), vocab,
                        sample_rows_, sample_pen_);
      sample_seq_.push_back(i);
    }
    sampler_->sample(logits_.as<float>(), sample_rows_.data(), sample_rows_.size(),
                     sample_pen_.data(), sample_pen_.size(), stream_);
    return sample_rows_.size();
  }

  // ---- setup ---------------------------------------------------------------------------
  void allocate_kv(const backend_options& opts) {
    const auto& c = config_;
    kv_.block_size = opts.block_size;
    kv_fp8_ = opts.kv_cache_dtype == "fp8";
    if (kv_fp8_ && t_ != elem::bf16)
      throw std::invalid_argument(
          "cuda backend: kv_cache_dtype fp8 needs weight_dtype bf16 (f32 is the exactness mode)");
    kv_row_ = kv_row_bytes(c, elem_size(t_), kv_fp8_);
    kv_.bytes_per_block =
        2 * static_cast<size_t>(c.num_layers) * static_cast<size_t>(opts.block_size) * kv_row_;
    kv_.num_blocks = kv_block_count(c, opts, kv_row_);
    // One block more than reported: the scratch block padded graph rows write and read.
    slots_per_layer_ =
        static_cast<size_t>(kv_.num_blocks + 1) * static_cast<size_t>(kv_.block_size);
    kv_cache_ = device_buffer(static_cast<size_t>(kv_.num_blocks + 1) * kv_.bytes_per_block);
    CONCLAVE_CUDA_CHECK(cudaMemset(kv_cache_.get(), 0, kv_cache_.bytes()));
    spdlog::info(
        "cuda backend: {} weights {:.2f} GiB; KV cache {} blocks x {} tokens ({:.2f} GiB, {})",
        weights_.quant.method != model::quant_method::none
            ? std::string(model::quant_method_name(weights_.quant.method)) + " (w" +
                  (weights_.quant.method == model::quant_method::fp8 ? "8" : "4") + "a16)"
            : std::string(t_ == elem::bf16 ? "bf16" : "f32"),
        static_cast<double>(weights_.bytes) / (1ull << 30), kv_.num_blocks, kv_.block_size,
        static_cast<double>(kv_cache_.bytes()) / (1ull << 30),
        kv_fp8_ ? "fp8 e4m3, a scale per token and KV head" : (t_ == elem::bf16 ? "bf16" : "f32"));
    kv_.num_host_blocks = static_cast<int32_t>((opts.kv_offload_bytes + opts.kv_host_prefix_bytes) /
                                               kv_.bytes_per_block);
    if (kv_.num_host_blocks > 0) {
      offload_ = std::make_unique<kv_offload>(
          static_cast<size_t>(kv_.num_host_blocks),
          kv_cache_layout{kv_cache_.as<char>(), slots_per_layer_ * kv_row_,
                          static_cast<size_t>(kv_.block_size) * kv_row_,
                          static_cast<size_t>(c.num_layers)});
    }
  }

  void transfer_kv(const kv_transfer& t) override {
    validate_transfer(t, kv_);
    use_device();
    if (offload_) offload_->run(t, stream_);
  }

  void* k_cache(size_t l) const {
    return kv_cache_.as<char>() + (2 * l) * slots_per_layer_ * kv_row_;
  }
  void* v_cache(size_t l) const {
    return kv_cache_.as<char>() + (2 * l + 1) * slots_per_layer_ * kv_row_;
  }

  // ---- CUDA graphs ---------------------------------------------------------------------
  static constexpr size_t kMaxGraphBatch = 128;  // the grouped-GEMV path: no host sync

  /// The bucket a decode step replays as a graph (0: run it eagerly).
  size_t graph_bucket(std::span<const step_sequence> batch) const {
    if (!graphs_on_ || !fast_ || ep_ || batch.empty() || batch.size() > kMaxGraphBatch) return 0;
    for (const auto& s : batch)
      if (s.tokens.size() != 1 || s.all_logits) return 0;
    size_t b = 1;
    while (b < batch.size()) b *= 2;
    // A graph holds no host sync: its MoE layers must take the grouped launches.
    return b <= ks_.grouped_max_tokens ? b : 0;
  }

  /// The executable graph of `bucket`, captured on first use. Everything it touches
  /// lives at fixed addresses: graph_meta_, the workspace (grown to kMaxGraphBatch rows
  /// first; a later growth drops every graph), graph_attn_ws_, pinned_offsets_.
  cudaGraphExec_t graph_for(size_t bucket) {
    auto it = graphs_.find(bucket);
    if (it != graphs_.end()) return it->second;
    cudaGraph_t g = nullptr;
    CONCLAVE_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      run(bucket);
    } catch (...) {
      cudaStreamEndCapture(stream_, &g);
      if (g != nullptr) cudaGraphDestroy(g);
      throw;
    }
    CONCLAVE_CUDA_CHECK(cudaStreamEndCapture(stream_, &g));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    CONCLAVE_CUDA_CHECK(e);
    graphs_[bucket] = exec;
    spdlog::debug("cuda backend: captured the decode graph of {} rows", bucket);
    return exec;
  }

  void clear_graphs() {
    for (auto& [b, exec] : graphs_) cudaGraphExecDestroy(exec);
    graphs_.clear();
  }

  // ---- per step ------------------------------------------------------------------------
  /// Flattens the batch into per-row metadata on the device; returns the row count. A
  /// graph step (bucket > 0) is padded to `bucket` rows of dummies that write and read
  /// only the scratch KV block, and uses the fixed graph_meta_ layout.
  size_t prepare(std::span<const step_sequence> batch, size_t bucket) {
    // Prefill chunks of at least kMinTileTokens tokens go through the tensor-core kernel
    // in tiles of 64 rows, or 128 on Hopper (fast paths, bf16 activations), each tile
    // tile_rows_ / pack_ positions; the other rows through the GQA kernel.
    step_layout_options lo;
    lo.block_size = kv_.block_size;
    lo.use_tiles = fast_ && bucket == 0 && t_ == elem::bf16 &&
                   prefill_attention_supported(static_cast<size_t>(config_.head_dim));
    lo.min_tile_tokens = kMinTileTokens;
    lo.tile_span = tile_rows_ / pack_;
    lo.bucket = bucket;
    lo.scratch_block = kv_.num_blocks;  // the extra block allocate_kv reserved
    lo.max_positions = static_cast<int32_t>(config_.max_position_embeddings);
    layout_.build(batch, lo);
    const size_t rows = layout_.rows();
    logit_rows_ = layout_.logit_rows().size();
    max_ctx_ = layout_.max_ctx();
    // One pinned staging area, one copy.
    const step_layout_offsets f = layout_.offsets();
    const size_t total = f.total;
    auto* host = static_cast<int32_t*>(pinned_meta_.ensure(total * sizeof(int32_t)));
    // The previous step's copy from this staging area finished: forward() synchronised.
    layout_.pack(host);
    device_buffer& meta = bucket > 0 ? graph_meta_ : meta_;
    if (bucket > 0) {
      // Fixed for the backend's life: every bucket's rows and the longest tables.
      const int32_t bs = kv_.block_size;
      const size_t max_blocks =
          static_cast<size_t>((config_.max_position_embeddings + bs - 1) / bs + 1);
      const size_t cap = 6 * kMaxGraphBatch + kMaxGraphBatch * max_blocks + 1;
      if (graph_meta_.get() == nullptr) graph_meta_ = device_buffer(cap * sizeof(int32_t));
      if (total > cap) throw std::logic_error("cuda backend: graph metadata overflow");
      ensure_workspace(kMaxGraphBatch);
      if (graph_attn_ws_.get() == nullptr) {
        size_t most = 1;
        for (size_t b = 1; b <= kMaxGraphBatch; b *= 2) {
          attention_args a;
          a.rows = b;
          a.heads = static_cast<size_t>(config_.num_heads);
          a.kv_heads = static_cast<size_t>(config_.num_kv_heads);
          a.head_dim = static_cast<size_t>(config_.head_dim);
          a.max_ctx = max_ctx_;
          a.tiled = true;
          most = std::max(most, attention_workspace_floats(a));
        }
        graph_attn_ws_ = device_buffer(most * sizeof(float));
        // The split's arrival counters start at zero (each launch leaves them so).
        CONCLAVE_CUDA_CHECK(
            cudaMemsetAsync(graph_attn_ws_.get(), 0, most * sizeof(float), stream_));
      }
    } else {
      meta_.ensure(total * sizeof(int32_t));
    }
    CONCLAVE_CUDA_CHECK(cudaMemcpyAsync(meta.get(), host, total * sizeof(int32_t),
                                        cudaMemcpyHostToDevice, stream_));
    int32_t* d = meta.as<int32_t>();
    use_graph_ws_ = bucket > 0;
    d_tokens_ = d + f.tokens;
    d_positions_ = d + f.positions;
    d_slots_ = d + f.slots;
    d_ctx_ = d + f.ctx;
    d_table_off_ = d + f.table_off;
    d_logit_rows_ = d + f.logit_rows;
    d_tables_ = d + f.tables;
    d_tiles_ = d + f.tiles;
    num_tiles_ = layout_.num_tiles();
    plan_prefill_split(layout_.tile_ctx());
    d_gqa_rows_ = num_tiles_ == 0 ? nullptr : d + f.gqa_rows;
    num_gqa_rows_ = layout_.num_gqa_rows();
    ensure_workspace(rows);
    ensure_logits(std::max<size_t>(logit_rows_, bucket > 0 ? kMaxGraphBatch : 0));
    return rows;
  }

  /// A chunk whose tiles leave most multiprocessors idle (a short chunk late in a long
  /// prompt) splits each tile over the context (wgmma kernel; CONCLAVE_PREFILL_SPLIT=1 on).
  /// The merge's workspace stays within 64 MiB (prefill_splits).
  void plan_prefill_split(int32_t tile_ctx) {
    prefill_splits_ = 1;
    if (num_tiles_ == 0 || tile_rows_ != kPrefillWideTileRows || !ks_.prefill_split) return;
    const auto heads = static_cast<size_t>(config_.num_heads);
    const int32_t splits = prefill_splits(num_tiles_, heads, tile_ctx, current_sm_count(), pack_);
    if (splits > 1)
      prefill_ws_.ensure(prefill_split_workspace_floats(num_tiles_, heads, splits, pack_) * 4);
    prefill_splits_ = splits;
  }

  void ensure_workspace(size_t rows) {
    if (rows <= ws_rows_) return;
    rows = (rows + 511) / 512 * 512;  // not doubled: the plan counts max_num_batched_tokens
    // Captured graphs point into the old buffers.
    CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    clear_graphs();
    // The sizes the memory plan counts (gpu/memory_plan.h).
    const step_buffers b = cuda_step_buffers(config_, rows, elem_size(t_));
    x_.ensure(b.x);
    hn_.ensure(b.hn);
    qkv_.ensure(b.qkv);
    attn_.ensure(b.attn);
    proj_.ensure(b.proj);
    router_logits_.ensure(b.router_logits);
    ids_.ensure(b.ids);
    wts_.ensure(b.wts);
    offsets_.ensure(b.offsets);
    active_.ensure(b.active);
    row_token_.ensure(b.row_token);
    slot_row_.ensure(b.slot_row);
    xs_.ensure(b.xs);
    gu_.ensure(b.gu);
    act_.ensure(b.act);
    dn_.ensure(b.dn);
    final_.ensure(b.final_out);
    if (route_counter_.bytes() == 0) {  // moe_router_route_permute_one's arrivals, left 0
      route_counter_.ensure(sizeof(unsigned int));
      CONCLAVE_CUDA_CHECK(cudaMemsetAsync(route_counter_.get(), 0, sizeof(unsigned int), stream_));
    }
    ws_rows_ = rows;
  }

  /// Logits for `n` rows (each sequence's last, or every row of an all_logits one).
  void ensure_logits(size_t n) {
    const size_t bytes = logits_bytes(config_, n);  // checked every step: arithmetic only
    if (bytes <= logits_.bytes() && logits_.get() != nullptr) return;
    CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    clear_graphs();
    logits_.ensure(std::max<size_t>(bytes, 1));
  }

  void run(size_t rows) {
    const auto& c = config_;
    const size_t h = static_cast<size_t>(c.hidden_size);
    const size_t hd = static_cast<size_t>(c.head_dim);
    const size_t heads = static_cast<size_t>(c.num_heads);
    const size_t kvh = static_cast<size_t>(c.num_kv_heads);
    const size_t qw = heads * hd, kvw = kvh * hd, qkvw = qw + 2 * kvw;
    const float eps = static_cast<float>(c.rms_norm_eps);
    float* x = x_.as<float>();
    float* proj = proj_.as<float>();
    embedding_gather(weights_.embed.get(), t_, d_tokens_, rows, h, x, stream_);
    const float* pending_add = nullptr;  // the previous sublayer's output, not yet in x
    const float* pending_bias = nullptr;
    for (size_t l = 0; l < weights_.layers.size(); ++l) {
      const cuda_layer& L = weights_.layers[l];
      add_rms_norm(x, pending_add, pending_bias, L.input_norm.as<float>(), hn_.get(), t_, nullptr,
                   rows, h, eps, stream_);
      linear(hn_.get(), L.qkv, qkv_.as<float>(), rows, qkvw, h);
      qk_norm_rope_kv(
          qkv_.as<float>(), L.qkv_bias.as<float>(), L.q_norm.as<float>(), L.k_norm.as<float>(),
          d_positions_, inv_freq_.as<float>(), rows, heads, kvh, hd, eps, rope_scale_,
          kv_target{d_slots_, k_cache(l), v_cache(l), t_, kv_fp8_, kv_row_}, ks_.fused_kv, stream_);
      attention_args a;
      a.q = qkv_.as<float>();
      a.q_stride = qkvw;
      a.k_cache = k_cache(l);
      a.v_cache = v_cache(l);
      a.t = t_;
      a.kv_fp8 = kv_fp8_;
      a.kv_row_bytes = kv_row_;
      a.ctx_len = d_ctx_;
      a.table_offset = d_table_off_;
      a.block_tables = d_tables_;
      a.block_size = kv_.block_size;
      a.rows = rows;
      a.heads = heads;
      a.kv_heads = kvh;
      a.head_dim = hd;
      a.out = attn_.get();
      a.max_ctx = max_ctx_;
      a.tiled = fast_;
      a.decode_mma = ks_.decode_mma;
      a.window = c.layer_window(static_cast<int64_t>(l));
      if (num_tiles_ > 0) {  // the decode kernels take the rows the prefill tiles do not
        a.row_index = d_gqa_rows_;
        a.index_rows = num_gqa_rows_;
      }
      if (use_graph_ws_) {
        a.workspace = graph_attn_ws_.as<float>();
      } else {
        const size_t ws = attention_workspace_floats(a) * sizeof(float);
        if (ws > attn_ws_.bytes()) {  // new memory: zero the split's arrival counters
          attn_ws_.ensure(ws);
          CONCLAVE_CUDA_CHECK(cudaMemsetAsync(attn_ws_.get(), 0, ws, stream_));
        }
        a.workspace = attn_ws_.as<float>();
      }
      attn_timer_.before(l, stream_);
      if (num_tiles_ > 0) {
        prefill_attention_args p;
        p.q = a.q;
        p.q_stride = a.q_stride;
        p.k_cache = a.k_cache;
        p.v_cache = a.v_cache;
        p.tiles = reinterpret_cast<const prefill_tile*>(d_tiles_);
        p.num_tiles = num_tiles_;
        p.block_tables = d_tables_;
        p.block_size = kv_.block_size;
        p.heads = heads;
        p.kv_heads = kvh;
        p.head_dim = hd;
        p.out = attn_.get();
        p.window = a.window;
        p.kv_fp8 = kv_fp8_;
        p.kv_row_bytes = kv_row_;
        p.tile_rows = tile_rows_;
        p.wgmma_schedule = static_cast<int>(ks_.prefill_wgmma_schedule) - 1;
        p.splits = prefill_splits_;
        p.split_workspace = prefill_splits_ > 1 ? prefill_ws_.as<float>() : nullptr;
        p.pack_gqa = pack_;
        p.tma = ks_.prefill_tma;
        p.num_slots = slots_per_layer_;
        prefill_attention(p, stream_);
      }
      paged_attention(a, stream_);
      attn_timer_.after(l, stream_);
      linear(attn_.get(), L.o, proj, rows, h, qw);
      add_rms_norm(x, proj, L.o_bias.as<float>(), L.post_norm.as<float>(), hn_.get(), t_, nullptr,
                   rows, h, eps, stream_);
      if (L.moe) {
        moe(L, l, rows);
      } else {
        dense_mlp(L, rows);
      }
      pending_add = proj;
      pending_bias = nullptr;
    }
    // Final residual add and norm only for rows whose logits are wanted, then the LM head.
    add_rms_norm(x, pending_add, nullptr, weights_.final_norm.as<float>(), final_.get(), t_,
                 d_logit_rows_, logit_rows_, h, eps, stream_);
    blas_->linear(final_.get(), weights_.output_matrix(), t_, logits_.as<float>(), logit_rows_,
                  static_cast<size_t>(c.vocab_size), h);
    // Every MoE layer's per-expert row counts, for the statistics (read after the sync).
    if (!moe_layers_run_.empty()) {
      const size_t E = static_cast<size_t>(c.num_experts);
      CONCLAVE_CUDA_CHECK(cudaMemcpyAsync(pinned_offsets_.data(), offsets_.get(),
                                          (E + 1) * static_cast<size_t>(c.num_layers) * 4,
                                          cudaMemcpyDeviceToHost, stream_));
    }
  }

  /// A projection into fp32 (gpu/cuda/projection.h: GEMV for a few rows on the fast
  /// paths, else cuBLAS; quantized weights dequantized on the way).
  template <class W>
  void linear(const void* x, const W& w, float* y, size_t m, size_t n, size_t k) {
    const projection p{blas_.get(), &dq_, t_, stream_, fast_, quant_paths_};
    p(x, w, y, m, n, k);
  }

  void moe(const cuda_layer& L, size_t layer, size_t rows) {
    const auto& c = config_;
    const size_t h = static_cast<size_t>(c.hidden_size);
    const size_t E = static_cast<size_t>(c.num_experts);
    const size_t k = static_cast<size_t>(c.num_experts_per_tok);
    const size_t m = static_cast<size_t>(c.moe_intermediate_size);
    int32_t* offsets = offsets_.as<int32_t>() + layer * (E + 1);
    const bool grouped = fast_ && rows <= ks_.grouped_max_tokens;
    // The grouped kernels' blocks go to the experts with rows through an active list, unless
    // the grid covers every expert anyway (rows x k >= E): then block y is expert y, which
    // lets its first weights load before the permutation is done (moe_mma.cu).
    int32_t* active =
        grouped && (rows * k < E || !ks_.early_expert_weights) ? active_.as<int32_t>() : nullptr;
    const bool one_launch = !ep_ && fast_ && ks_.fused_moe && ks_.fused_router && rows == 1 &&
                            router_route_one_ok(t_, E, k, h, hn_.get(), L.router.get());
    if (!one_launch) linear(hn_.get(), L.router.get(), router_logits_.as<float>(), rows, E, h);
    if (one_launch) {
      moe_route_path_ = "router projection, route and permute in one launch";
      moe_router_route_permute_one(hn_.get(), L.router.get(), t_, h, E, k, c.norm_topk_prob,
                                   router_logits_.as<float>(), ids_.as<int32_t>(), wts_.as<float>(),
                                   offsets, row_token_.as<int32_t>(), slot_row_.as<int32_t>(),
                                   active, route_counter_.as<unsigned int>(), stream_);
    } else if (!ep_ && fast_ && ks_.fused_moe && rows <= ks_.route_permute_max_tokens &&
               E <= kRoutePermuteMaxExperts) {
      moe_route_path_ = "route+permute in one launch";
      moe_route_permute(router_logits_.as<float>(), rows, E, k, c.norm_topk_prob,
                        ids_.as<int32_t>(), wts_.as<float>(), offsets, row_token_.as<int32_t>(),
                        slot_row_.as<int32_t>(), active, stream_);
    } else {
      moe_route_path_ = "router top-k, permute";
      router_topk(router_logits_.as<float>(), rows, E, k, c.norm_topk_prob, ids_.as<int32_t>(),
                  wts_.as<float>(), stream_);
      if (ep_) {
        ep_->forward(L, layer, hn_.get(), ids_.as<int32_t>(), wts_.as<float>(), rows, fast_,
                     proj_.as<float>());
        return;
      }
      moe_permute(ids_.as<int32_t>(), rows, k, E, offsets, row_token_.as<int32_t>(),
                  slot_row_.as<int32_t>(), active, stream_);
    }
    moe_layers_run_.push_back(layer);
    expert_rows x;
    x.gate_up = &L.gate_up;
    x.down = &L.down;
    x.t = t_;
    x.x = hn_.get();
    x.row_token = row_token_.as<int32_t>();
    x.offsets = offsets;
    x.active = active;
    x.experts = E;
    x.rows = rows * k;
    // A token picks an expert at most once: rows bounds an expert's rows. On the grouped
    // path the bound only sizes the GEMM's pass (an expert with more rows takes more
    // passes): decode steps take ks_.expert_pass_rows (smaller tiles, more blocks resident).
    x.max_rows = grouped ? std::min(rows, ks_.expert_pass_rows) : rows;
    x.h = h;
    x.m = m;
    x.gu = gu_.as<float>();
    x.act = act_.get();
    x.dn = dn_.as<float>();
    x.qp = quant_paths_;
    if (grouped && rows == 1 && ks_.fused_moe &&
        fused_token_experts(x, ids_.as<int32_t>(), slot_row_.as<int32_t>(), wts_.as<float>(), k,
                            proj_.as<float>(), stream_)) {
      moe_expert_path_ = "gate/up+SwiGLU and down+combine GEMVs";
      return;
    }
    if (grouped) {
      moe_expert_path_ = grouped_experts(x, rows, ks_.expert_mma, ks_.fused_moe, stream_);
    } else {
      // The light experts' list goes up through active_ (unused on this path).
      const light_experts light{static_cast<int32_t*>(pinned_light_.data()), active_.as<int32_t>()};
      moe_expert_path_ = gemm_experts(
          x, *blas_, static_cast<int32_t*>(pinned_offsets_.data()) + layer * (E + 1), xs_.get(),
          dq_, stream_, fast_ && ks_.expert_mma && ks_.light_experts ? &light : nullptr);
    }
    moe_combine(dn_.as<float>(), slot_row_.as<int32_t>(), wts_.as<float>(), rows, k, h,
                proj_.as<float>(), stream_);
  }

  moe_layer_timing time_moe_layer(size_t tokens, int iters) override {
    if (tokens == 0) throw std::invalid_argument("time_moe_layer: tokens must be > 0");
    if (ep_) throw std::invalid_argument("time_moe_layer: not on an expert-parallel rank");
    use_device();
    const auto& layers = weights_.layers;
    const auto it = std::find_if(layers.begin(), layers.end(), [](const auto& L) { return L.moe; });
    if (it == layers.end())
      throw std::invalid_argument("time_moe_layer: the model has no MoE layer");
    const size_t layer = static_cast<size_t>(it - layers.begin());
    const size_t E = static_cast<size_t>(config_.num_experts);
    ensure_workspace(tokens);
    random_fill(hn_.get(), t_, tokens * static_cast<size_t>(config_.hidden_size),
                model::random_weight_stream(tokens, "bench.moe.x"), 0, 1.0f, false, stream_);
    moe_layer_timing r;
    // As a decode step of this size: a graph up to kMaxGraphBatch on the grouped launches.
    r.graph = fast_ && tokens <= kMaxGraphBatch && tokens <= ks_.grouped_max_tokens;
    r.us = mean_device_us(
        stream_, [&] { moe(*it, layer, tokens); }, iters, r.graph);
    moe_layers_run_.clear();
    r.path = std::string(moe_route_path_) + ", " + moe_expert_path_;
    std::vector<int32_t> off(E + 1);
    CONCLAVE_CUDA_CHECK(cudaMemcpyAsync(off.data(), offsets_.as<int32_t>() + layer * (E + 1),
                                        off.size() * sizeof(int32_t), cudaMemcpyDeviceToHost,
                                        stream_));
    CONCLAVE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    r.experts_run = experts_with_rows(off.data(), E);
    return r;
  }

  /// Experts with rows in one MoE layer's offsets ([E + 1]).
  static size_t experts_with_rows(const int32_t* off, size_t E) {
    size_t n = 0;
    for (size_t e = 0; e < E; ++e) n += off[e + 1] > off[e] ? 1 : 0;
    return n;
  }

  /// Experts that got rows, summed over this step's MoE layers (after the final sync).
  size_t count_experts_run() {
    const size_t E = static_cast<size_t>(config_.num_experts);
    size_t n = 0;
    for (size_t layer : moe_layers_run_)
      n += experts_with_rows(static_cast<const int32_t*>(pinned_offsets_.data()) + layer * (E + 1),
                             E);
    moe_layers_run_.clear();
    return n;
  }

  void dense_mlp(const cuda_layer& L, size_t rows) {
    const size_t h = static_cast<size_t>(config_.hidden_size);
    const size_t di = static_cast<size_t>(config_.intermediate_size);
    blas_->linear(hn_.get(), plain_rows(L.gate_up, 0, 2 * di, h, t_, dq_, stream_), t_,
                  gu_.as<float>(), rows, 2 * di, h);
    swiglu(gu_.as<float>(), rows, di, act_.get(), t_, stream_);
    blas_->linear(act_.get(), plain_rows(L.down, 0, h, di, t_, dq_, stream_), t_, proj_.as<float>(),
                  rows, h, di);
  }

  model::model_config config_;
  elem t_;
  /// Every entry point that touches the device makes this backend's device current: the
  /// caller's thread may have another one (ranks of one process on several GPUs, each
  /// called from threads that did not build it).
  void use_device() const { CONCLAVE_CUDA_CHECK(cudaSetDevice(device_)); }

  int device_ = 0;
  bool random_weights_ = false;  ///< made by make_cuda_backend_random: no checkpoint behind
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ev_start_ = nullptr, ev_end_ = nullptr, ev_sampled_ = nullptr;
  std::unique_ptr<device_sampler> sampler_;
  std::vector<sample_row> sample_rows_;
  std::vector<sample_penalty> sample_pen_;
  std::vector<size_t> sample_seq_;
  std::unique_ptr<blas> blas_;
  std::unique_ptr<moe_ep> ep_;  ///< set on a rank of an expert-parallel replica
  cuda_weights weights_;
  device_buffer dq_;  ///< dequantized projection scratch (quantized weights only)
  device_buffer inv_freq_;
  float rope_scale_ = 1.0f;  ///< yarn's attention scaling of cos and sin
  kv_cache_shape kv_;
  bool kv_fp8_ = false;                  ///< kv_cache_dtype fp8 (kv_elem.cuh)
  attention_timer attn_timer_;           ///< set_attention_timing
  size_t kv_row_ = 0;                    ///< bytes of one slot's keys (or values) of one layer
  std::unique_ptr<kv_offload> offload_;  ///< the host tier (kv_offload_bytes > 0)
  size_t slots_per_layer_ = 0;
  device_buffer kv_cache_;
  step_timing timing_;
  std::vector<size_t> moe_layers_run_;
  /// The last MoE layer's kernels, in words (time_moe_layer): static strings, so the
  /// per-layer bookkeeping costs two pointer stores.
  const char* moe_route_path_ = "";
  const char* moe_expert_path_ = "";

  // Step metadata (host vectors reused across steps; device pointers into meta_).
  step_layout layout_;  ///< this step's host metadata (uploaded by prepare)
  static constexpr int32_t kMinTileTokens = 16;
  const int32_t *d_tiles_ = nullptr, *d_gqa_rows_ = nullptr;
  size_t num_tiles_ = 0, num_gqa_rows_ = 0;
  pinned_buffer pinned_meta_, pinned_offsets_, pinned_light_;
  device_buffer meta_;
  const int32_t *d_tokens_ = nullptr, *d_positions_ = nullptr, *d_slots_ = nullptr,
                *d_ctx_ = nullptr, *d_table_off_ = nullptr, *d_logit_rows_ = nullptr,
                *d_tables_ = nullptr;
  size_t logit_rows_ = 0;
  int32_t max_ctx_ = 0;
  device_buffer attn_ws_;
  device_buffer prefill_ws_;  ///< the split prefill attention's partial results
  int32_t prefill_splits_ = 1;

  kernel_switches ks_;                    ///< the kernel choices (CONCLAVE_* environment switches)
  quant_paths quant_paths_;               ///< ks_'s choices for quantized weights
  int32_t tile_rows_ = kPrefillTileRows;  ///< prefill attention tile rows (prefill_tile_rows)
  int32_t pack_ = 1;                      ///< query heads a prefill block takes (pack_gqa)
  // CUDA graphs of decode steps, per bucket.
  bool fast_ = false, graphs_on_ = false, last_graph_ = false, use_graph_ws_ = false;
  std::map<size_t, cudaGraphExec_t> graphs_;
  device_buffer graph_meta_, graph_attn_ws_, blas_ws_;

  // Workspace, grown to the largest step seen.
  size_t ws_rows_ = 0;
  device_buffer x_, hn_, qkv_, attn_, proj_, router_logits_, ids_, wts_, offsets_, row_token_,
      slot_row_, xs_, gu_, act_, dn_, final_, logits_, active_;
  device_buffer route_counter_;  ///< one word for the one-token router launch's last block
};

}  // namespace

std::unique_ptr<cuda_backend_api> make_cuda_backend(const model::checkpoint& ckpt,
                                                    const backend_options& opts,
                                                    rank_context rank) {
  return std::make_unique<cuda_backend>(
      ckpt.config(), opts,
      [&ckpt](elem t, const cuda_expert_filter& holds) {
        return load_cuda_weights(ckpt, t, holds);
      },
      std::move(rank));
}

std::unique_ptr<cuda_backend_api> make_cuda_backend_random(const model::model_config& c,
                                                           const backend_options& opts,
                                                           uint64_t seed, float init_std,
                                                           rank_context rank) {
  c.validate("random weights");
  return std::make_unique<cuda_backend>(
      c, opts,
      [&](elem t, const cuda_expert_filter& holds) {
        return random_cuda_weights(c, t, seed, init_std, holds);
      },
      std::move(rank), true);
}

}  // namespace conclave::gpu::cuda
