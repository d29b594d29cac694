#include "gpu/memory_plan.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "gpu/backend.h"
#include "gpu/quant_layout.h"
#include "model/gen_model.h"

namespace conclave::gpu {
namespace {

// What the CUDA backend allocates besides the weights, mirrored from gpu/cuda/.
constexpr size_t kBlasWorkspace = size_t{32} << 20;  // cuda_backend.cpp: blas_ws_
constexpr size_t kGraphBatch = 128;                  // cuda_backend.cpp: kMaxGraphBatch
constexpr size_t kGraphBuckets = 8;                  // 1, 2, 4, ... 128
// device_sampler (sampling.cu, sampling_kernels.cuh): kSortRows rows of sort keys and
// values, double-buffered, and kPresizedRows rows of per-slice partials and histograms.
constexpr size_t kSortRows = 16, kSamplerRows = 256, kSamplerSplits = 16, kSamplerBins = 2048;
// Estimates (not mirrored exactly: they depend on the device or on CUDA's internals).
constexpr size_t kSplitTarget = 4 * 132;       // attention.cu: 4 blocks per SM of an H200
constexpr size_t kGraphExecBytes = 16 * kMiB;  // one captured decode graph's executable
constexpr size_t kSortScratchPerRow = 4;       // cub radix sort scratch, bytes per item

double gib(size_t b) {
  return static_cast<double>(b) / static_cast<double>(kGiB);
}

/// GiB with two decimals, or MiB below one GiB.
std::string human(size_t b) {
  return b >= kGiB ? fmt::format("{:.2f} GiB", gib(b))
                   : fmt::format("{:.1f} MiB", static_cast<double>(b) / static_cast<double>(kMiB));
}

size_t ceil_div(size_t a, size_t b) {
  return (a + b - 1) / b;
}

std::string quant_label(const plan_inputs& in) {
  const auto& q = in.model.quant;
  switch (q.method) {
    case model::quant_method::fp8:
      return fmt::format("fp8 ({}x{} blocks)", q.block_out, q.block_in);
    case model::quant_method::awq:
      return fmt::format("awq int4 (groups of {})", q.group_size);
    case model::quant_method::none:
      break;
  }
  return in.weight_elem_bytes == 4 ? "f32" : "bf16";
}

std::string short_quant(const plan_inputs& in) {
  return in.model.quant.quantized() ? std::string(model::quant_method_name(in.model.quant.method))
                                    : (in.weight_elem_bytes == 4 ? "f32" : "bf16");
}

/// The expert index of "model.layers.L.mlp.experts.E.x_proj.weight", or -1.
int64_t expert_index(std::string_view name) {
  constexpr std::string_view key = ".mlp.experts.";
  const auto at = name.find(key);
  if (at == std::string_view::npos) return -1;
  int64_t e = 0;
  for (size_t i = at + key.size(); i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i)
    e = e * 10 + (name[i] - '0');
  return e;
}

int64_t experts_per_rank(const model::model_config& c, int ranks) {
  if (c.num_experts <= 0) return 0;
  return (c.num_experts + ranks - 1) / ranks;
}

/// The device sampler's buffers (made before the KV cache).
size_t sampler_bytes(const model::model_config& c) {
  const size_t v = static_cast<size_t>(c.vocab_size);
  const size_t items = kSortRows * v;
  const size_t sort = 2 * items * (8 + 4) + items * kSortScratchPerRow;
  const size_t rows =
      kSamplerRows * (kSamplerSplits * (4 + 4 + 8) + 4 + 4 + 4 + kSamplerSplits * kSamplerBins * 4);
  return sort + rows;
}

/// The split attention's workspace (attention.cu: counters and the slices' states), an
/// upper bound: a split launch has at most about 2 x kSplitTarget (row, head) blocks.
size_t attention_split_bytes(const model::model_config& c) {
  if (c.num_kv_heads <= 0) return 0;
  const size_t group = static_cast<size_t>(c.num_heads / c.num_kv_heads);
  const size_t states = 2 * kSplitTarget * group * (static_cast<size_t>(c.head_dim) + 8);
  return (ceil_div(kSplitTarget, 8) * 8 + states) * sizeof(float);
}

/// The expert-parallel exchange's device buffers (cuda_moe_ep.cpp) when every rank
/// receives its even share, rows x top-k rows per step: an estimate (a skewed routing
/// sends one rank more). The send side is the device exchange's (NCCL: each pair's row
/// and its token and slot); host-staged, it is pinned host memory instead.
size_t expert_exchange_bytes(const model::model_config& c, size_t rows, size_t es) {
  const size_t h = static_cast<size_t>(c.hidden_size);
  const size_t m = static_cast<size_t>(c.moe_intermediate_size);
  const size_t k = static_cast<size_t>(std::max<int64_t>(c.num_experts_per_tok, 1));
  const size_t received = rows * k;
  return received * (2 * h * es + 3 * 4 + 2 * m * 4 + m * es + 2 * h * 4) +  // dispatch side
         rows * k * (h * es + 8) +                                           // send side
         rows * k * (h * 4 + 8);                                             // combine side
}

void check_inputs(const plan_inputs& in) {
  if (in.ranks < 1) throw std::invalid_argument("the GPU count must be at least 1");
  if (in.device_bytes == 0) throw std::invalid_argument("the GPU memory must be positive");
  if (!(in.gpu_memory_utilization > 0.0 && in.gpu_memory_utilization <= 1.0))
    throw std::invalid_argument("gpu_memory_utilization must be in (0, 1]");
  if (in.block_size < 1) throw std::invalid_argument("the KV block size must be at least 1");
  if (in.max_model_len < 0 || in.max_model_len > in.model.max_position_embeddings)
    throw std::invalid_argument(
        fmt::format("max_model_len {} is beyond the model's max_position_embeddings ({})",
                    in.max_model_len, in.model.max_position_embeddings));
  if (in.max_num_batched_tokens < 1 || in.max_num_seqs < 1)
    throw std::invalid_argument("max_num_batched_tokens and max_num_seqs must be at least 1");
}

}  // namespace

size_t step_buffers::total() const {
  return x + hn + qkv + attn + proj + router_logits + ids + wts + offsets + active + row_token +
         slot_row + xs + gu + act + dn + final_out + logits;
}

step_buffers cuda_step_buffers(const model::model_config& c, size_t rows, size_t es,
                               size_t logit_rows) {
  const size_t h = static_cast<size_t>(c.hidden_size);
  const size_t qw = static_cast<size_t>(c.num_heads * c.head_dim);
  const size_t kvw = static_cast<size_t>(c.num_kv_heads * c.head_dim);
  const size_t E = static_cast<size_t>(c.num_experts);
  const size_t k = static_cast<size_t>(std::max<int64_t>(c.num_experts_per_tok, 1));
  const size_t m = static_cast<size_t>(c.moe_intermediate_size);
  const size_t di = static_cast<size_t>(c.intermediate_size);
  const size_t mlp_rows = std::max(rows * k, rows);
  const size_t mlp_w = std::max(m, di);
  step_buffers b;
  b.x = rows * h * 4;
  b.hn = rows * h * es;
  b.qkv = rows * (qw + 2 * kvw) * 4;
  b.attn = rows * qw * es;
  b.proj = rows * h * 4;
  b.router_logits = rows * std::max<size_t>(E, 1) * 4;
  b.ids = rows * k * 4;
  b.wts = rows * k * 4;
  b.offsets = (E + 1) * static_cast<size_t>(c.num_layers) * 4;
  b.active = std::max<size_t>(E, 1) * 4;
  b.row_token = rows * k * 4;
  b.slot_row = rows * k * 4;
  b.xs = rows * k * h * es;
  b.gu = mlp_rows * 2 * mlp_w * 4;
  b.act = mlp_rows * mlp_w * es;
  b.dn = rows * k * h * 4;
  b.final_out = rows * h * es;
  b.logits = logits_bytes(c, std::min(rows, logit_rows));
  return b;
}

model::quant_config default_quant(std::string_view method) {
  model::quant_config q;
  if (method == "none") return q;
  if (method == "fp8") {
    q.method = model::quant_method::fp8;
  } else if (method == "awq") {
    q.method = model::quant_method::awq;
  } else {
    throw std::invalid_argument(
        fmt::format("unknown quantization \"{}\" (none, fp8 or awq)", method));
  }
  return q;
}

weight_breakdown plan_weights(const plan_inputs& in) {
  const auto& c = in.model;
  const int64_t share = experts_per_rank(c, std::max(in.ranks, 1));
  const quant_layout layout = device_quant_layout(c.quant);
  const auto quantized = [&](std::string_view name) {
    if (!c.quant.quantized()) return false;
    return in.stored_quantized ? in.stored_quantized(name) : model::quantizes_weight(name);
  };
  weight_breakdown w;
  for (const auto& t : model::expected_tensors(c)) {
    const int64_t e = expert_index(t.name);
    if (e >= share) continue;  // another rank's expert (this rank holds the largest share)
    int64_t n = 1;
    for (const int64_t d : t.shape) n *= d;
    w.params += n;
    if (t.linear && quantized(t.name)) {
      w.quant_data += layout.data_bytes(t.shape[0], t.shape[1]);
      w.quant_scales +=
          layout.scale_bytes(t.shape[0], t.shape[1]) + layout.zero_bytes(t.shape[0], t.shape[1]);
    } else if (t.shape.size() == 1) {
      w.norms += static_cast<size_t>(n) * 4;  // norms and biases: fp32 on the device
    } else {
      w.plain += static_cast<size_t>(n) * in.weight_elem_bytes;
    }
  }
  return w;
}

memory_plan plan_memory(const plan_inputs& in, bool suggest) {
  check_inputs(in);
  const auto& c = in.model;
  memory_plan p;
  p.in = in;
  p.max_model_len = in.max_model_len > 0 ? in.max_model_len : c.max_position_embeddings;
  p.experts_per_rank = experts_per_rank(c, in.ranks);
  p.weights = plan_weights(in);
  const size_t es = in.weight_elem_bytes;
  p.fixed_bytes = kBlasWorkspace + sampler_bytes(c) + static_cast<size_t>(c.head_dim / 2) * 4;

  // The KV cache: keys and values of every layer, in the weight dtype or fp8 with scales
  // (cuda_backend.cpp's allocate_kv), plus the scratch block padded graph rows use.
  const size_t bs = static_cast<size_t>(in.block_size);
  p.kv_bytes_per_token = 2 * static_cast<size_t>(c.num_layers) * kv_row_bytes(c, es, in.kv_fp8);
  p.kv_bytes_per_block = p.kv_bytes_per_token * bs;
  const size_t seq_blocks = ceil_div(static_cast<size_t>(p.max_model_len), bs);
  p.one_sequence_kv_bytes = seq_blocks * p.kv_bytes_per_block;
  const double T = static_cast<double>(in.device_bytes);
  const double budget = in.gpu_memory_utilization * T - static_cast<double>(in.device_used_bytes);
  p.budget_bytes = budget > 0 ? static_cast<size_t>(budget) : 0;
  const size_t before_kv = p.weights.total() + p.fixed_bytes;
  const bool explicit_kv = in.num_kv_blocks > 0 || in.kv_cache_bytes > 0;
  size_t blocks = 0;
  if (in.num_kv_blocks > 0) {
    blocks = static_cast<size_t>(in.num_kv_blocks);
  } else if (in.kv_cache_bytes > 0) {
    blocks = in.kv_cache_bytes / p.kv_bytes_per_block;
  } else if (p.budget_bytes > before_kv) {
    blocks = (p.budget_bytes - before_kv) / p.kv_bytes_per_block;
  }
  blocks = std::min<size_t>(blocks, INT32_MAX);
  p.kv_blocks = static_cast<int32_t>(blocks);
  p.kv_bytes = blocks > 0 ? (blocks + 1) * p.kv_bytes_per_block : 0;
  p.kv_tokens = static_cast<int64_t>(blocks * bs);
  p.full_sequences = static_cast<int64_t>(blocks / std::max<size_t>(seq_blocks, 1));

  // Grown on the first steps, after the KV cache took its share.
  const bool graphs = in.cuda_graphs && in.ranks == 1;  // no graphs on an expert-parallel rank
  const size_t rows =
      std::max(static_cast<size_t>(in.max_num_batched_tokens), graphs ? kGraphBatch : size_t{0});
  // Logits for one row a sequence (a decode graph's bucket: kGraphBatch).
  const size_t logit_rows =
      std::max(static_cast<size_t>(std::max(in.max_num_seqs, 1)), graphs ? kGraphBatch : size_t{0});
  p.workspace_bytes = cuda_step_buffers(c, rows, es, logit_rows).total() + attention_split_bytes(c);
  if (in.ranks > 1) p.workspace_bytes += expert_exchange_bytes(c, rows, es);
  if (graphs) {
    const size_t max_blocks = ceil_div(static_cast<size_t>(c.max_position_embeddings), bs) + 1;
    p.workspace_bytes += (6 * kGraphBatch + kGraphBatch * max_blocks + 1) * 4;  // graph_meta_
    p.workspace_bytes += attention_split_bytes(c);                              // graph_attn_ws_
    p.graph_bytes = kGraphBuckets * kGraphExecBytes;
  }
  const size_t lazy = p.workspace_bytes + p.graph_bytes;
  p.reserve_bytes = static_cast<size_t>((1.0 - in.gpu_memory_utilization) * T);
  p.total_bytes = in.device_used_bytes + before_kv + p.kv_bytes + lazy;

  // The verdict: the weights, the fixed buffers and one max_model_len sequence within the
  // budget, and the workspaces within what the KV cache leaves free.
  size_t short_kv = 0;
  if (!explicit_kv) {
    const size_t need = before_kv + p.one_sequence_kv_bytes;
    if (need > p.budget_bytes) short_kv = need - p.budget_bytes;
  } else if (blocks < seq_blocks) {
    short_kv = (seq_blocks - blocks) * p.kv_bytes_per_block;
  }
  const size_t device = in.device_bytes;
  const size_t after_kv = in.device_used_bytes + before_kv + p.kv_bytes;
  const size_t free_after_kv = after_kv < device ? device - after_kv : 0;
  const size_t short_lazy = lazy > free_after_kv ? lazy - free_after_kv : 0;
  p.fits = short_kv == 0 && short_lazy == 0;
  p.shortfall_bytes = std::max(short_kv, short_lazy);
  if (short_kv > 0 && !explicit_kv) {
    p.reason = fmt::format(
        "weights {:.1f} GiB + KV of one {}-token sequence {:.1f} GiB > budget {:.1f} GiB",
        gib(p.weights.total() + p.fixed_bytes), p.max_model_len, gib(p.one_sequence_kv_bytes),
        gib(p.budget_bytes));
  } else if (short_kv > 0) {
    p.reason = fmt::format("the KV cache's {} blocks of {} hold fewer than one {}-token sequence",
                           blocks, bs, p.max_model_len);
  } else if (short_lazy > 0) {
    p.reason = fmt::format(
        "step workspaces and CUDA graphs {:.2f} GiB > the {:.2f} GiB the KV cache leaves free",
        gib(lazy), gib(free_after_kv));
  }

  if (!in.kv_fp8) {
    plan_inputs fp8 = in;
    fp8.kv_fp8 = true;
    const memory_plan alt = plan_memory(fp8, false);
    p.fp8_kv =
        memory_plan::kv_alternative{alt.kv_bytes, alt.kv_tokens, alt.full_sequences, alt.fits};
  }
  if (!p.fits && suggest) {
    if (c.num_experts > 0) {
      for (int n = in.ranks + 1; n <= std::min<int64_t>(c.num_experts, 64); ++n) {
        plan_inputs more = in;
        more.ranks = n;
        if (plan_memory(more, false).fits) {
          p.min_ranks = n;
          break;
        }
      }
    }
    for (const char* m : {"fp8", "awq"}) {
      if (model::quant_method_name(c.quant.method) == m) continue;
      plan_inputs other = in;
      other.model.quant = default_quant(m);
      other.stored_quantized = {};
      other.weight_elem_bytes = 2;
      if (plan_memory(other, false).fits) p.quant_fits.emplace_back(m);
    }
    for (int u = static_cast<int>(std::floor(in.gpu_memory_utilization * 100)) + 1; u <= 99; ++u) {
      plan_inputs higher = in;
      higher.gpu_memory_utilization = u / 100.0;
      if (plan_memory(higher, false).fits) {
        p.min_utilization = higher.gpu_memory_utilization;
        break;
      }
    }
  }
  return p;
}

std::string memory_plan::verdict() const {
  const std::string what = fmt::format(
      "{} ({}) on {} x {:.1f} GiB GPU{} at utilization {:.2f}", in.model_name, short_quant(in),
      in.ranks, gib(in.device_bytes), in.ranks == 1 ? "" : "s", in.gpu_memory_utilization);
  if (fits) {
    return fmt::format(
        "{} fits: {:.1f} GiB of weights and a KV cache of {} tokens ({} sequence{} of {}) per GPU",
        what, gib(weights.total()), kv_tokens, full_sequences, full_sequences == 1 ? "" : "s",
        max_model_len);
  }
  std::vector<std::string> would;
  if (min_ranks) would.push_back(fmt::format("{} GPUs at {}", *min_ranks, short_quant(in)));
  for (const auto& q : quant_fits) would.push_back(fmt::format("{} on {} GPUs", q, in.ranks));
  if (fp8_kv && fp8_kv->fits) would.push_back("kv_cache_dtype fp8");
  if (min_utilization)
    would.push_back(fmt::format("gpu_memory_utilization {:.2f}", *min_utilization));
  // The weights fit and the cache holds some tokens, only not a whole sequence.
  if (kv_tokens >= in.block_size && kv_tokens < max_model_len)
    would.push_back(fmt::format("max_model_len {}", kv_tokens));
  std::string alt = fmt::format(
      "no GPU count up to {}, quantization or utilization (lower max_model_len or "
      "max_num_batched_tokens)",
      std::min<int64_t>(std::max<int64_t>(in.model.num_experts, in.ranks), 64));
  if (!would.empty()) {
    alt.clear();
    for (size_t i = 0; i < would.size(); ++i) alt += (i == 0 ? "" : ", or ") + would[i];
  }
  return fmt::format("{} does not fit: short by {} per GPU ({}); would fit: {}", what,
                     human(shortfall_bytes), reason, alt);
}

std::vector<std::string> memory_plan::summary_lines() const {
  std::vector<std::string> l;
  l.push_back(fmt::format("memory plan: {}, {}, {} GPU{} x {:.1f} GiB, max_model_len {}",
                          in.model_name, quant_label(in), in.ranks, in.ranks == 1 ? "" : "s",
                          gib(in.device_bytes), max_model_len));
  l.push_back(fmt::format(
      "memory plan: weights {:.2f} GiB (quantized {:.2f} + scales {:.2f} + {} {:.2f} + fp32 "
      "{:.2f}){}",
      gib(weights.total()), gib(weights.quant_data), gib(weights.quant_scales),
      in.weight_elem_bytes == 4 ? "f32" : "bf16", gib(weights.plain), gib(weights.norms),
      experts_per_rank > 0
          ? fmt::format(", {} of {} experts per layer", experts_per_rank, in.model.num_experts)
          : ""));
  const std::string alt =
      fp8_kv ? fmt::format("; fp8 KV would hold {}", fp8_kv->full_sequences) : std::string();
  l.push_back(fmt::format(
      "memory plan: KV cache {:.2f} GiB {} ({} tokens, {} x {}-token sequences{}), workspaces "
      "{:.2f} GiB, CUDA graphs ~{:.2f} GiB (estimate)",
      gib(kv_bytes), in.kv_fp8 ? "fp8" : (in.weight_elem_bytes == 4 ? "f32" : "bf16"), kv_tokens,
      full_sequences, max_model_len, alt, gib(workspace_bytes), gib(graph_bytes)));
  l.push_back("memory plan: " + verdict());
  return l;
}

std::string memory_plan::table() const {
  std::string t;
  auto row = [&t](int indent, const std::string& name, size_t bytes, const std::string& note) {
    t += fmt::format("{:{}}{:<{}} {:>9.2f}  {}\n", "", indent, name, 36 - indent, gib(bytes), note);
  };
  t += fmt::format("memory plan: {} ({:.1f} B parameters), {}\n", in.model_name,
                   static_cast<double>(plan_weights([&] {
                                         plan_inputs one = in;
                                         one.ranks = 1;
                                         return one;
                                       }())
                                           .params) /
                       1e9,
                   quant_label(in));
  t += fmt::format("  {} GPU{} x {:.1f} GiB, gpu_memory_utilization {:.2f}, max_model_len {}\n",
                   in.ranks, in.ranks == 1 ? "" : "s", gib(in.device_bytes),
                   in.gpu_memory_utilization, max_model_len);
  if (in.model.num_experts > 0) {
    t += fmt::format("  routed experts: {} of {} per MoE layer on the fullest GPU{}\n",
                     experts_per_rank, in.model.num_experts,
                     in.ranks > 1 ? " (expert parallel; attention, dense weights and KV on every "
                                    "GPU)"
                                  : "");
  }
  t += fmt::format("\n{:<36} {:>9}\n", "per GPU", "GiB");
  row(2, "weights", weights.total(),
      fmt::format("{:.2f} B parameters", static_cast<double>(weights.params) / 1e9));
  const auto& q = in.model.quant;
  if (q.method == model::quant_method::fp8) {
    row(4, "fp8 e4m3 data", weights.quant_data, "attention, experts, dense MLP");
    row(4, "fp8 scales (fp32)", weights.quant_scales,
        fmt::format("one per row and {} inputs", q.block_in));
  } else if (q.method == model::quant_method::awq) {
    row(4, "int4 data (packed)", weights.quant_data, "attention, experts, dense MLP");
    row(4, "awq scales (fp16) + zeros (u8)", weights.quant_scales,
        fmt::format("one per row and {} inputs", q.group_size));
  }
  const std::string plain = in.weight_elem_bytes == 4 ? "f32" : "bf16";
  row(4, plain + " matrices", weights.plain,
      q.quantized() ? "embeddings, routers, lm_head" : "every matrix");
  row(4, "fp32 norms and biases", weights.norms, "");
  row(2, "cuBLAS, sampler, RoPE", fixed_bytes, "sampler sort scratch estimated");
  row(2,
      in.kv_fp8 ? std::string("KV cache (fp8 e4m3 + fp32 scales)")
                : fmt::format("KV cache ({})", plain),
      kv_bytes,
      fmt::format("{} blocks x {} = {} tokens; {} KiB per token", kv_blocks, in.block_size,
                  kv_tokens, kv_bytes_per_token / 1024));
  row(4, fmt::format("one {}-token sequence", max_model_len), one_sequence_kv_bytes,
      fmt::format("the cache holds {} at once", full_sequences));
  if (fp8_kv)  // what an fp8 cache would hold in the same memory
    row(4, "with --kv-cache-dtype fp8", fp8_kv->kv_bytes,
        fmt::format("{} tokens, {} such sequences at once", fp8_kv->kv_tokens,
                    fp8_kv->full_sequences));
  row(2, "budget (utilization x total - used)", budget_bytes, "weights, fixed buffers and KV");
  row(2, "step workspaces", workspace_bytes,
      fmt::format("steps of {} tokens{}", in.max_num_batched_tokens,
                  in.ranks > 1 ? ", expert exchange estimated" : ""));
  row(2, "CUDA graphs (estimate)", graph_bytes,
      graph_bytes > 0 ? "8 decode buckets" : "none (expert parallel or disabled)");
  row(2, in.device_used_measured ? "CUDA context and others" : "CUDA context (estimate)",
      in.device_used_bytes, in.device_used_measured ? "measured" : "");
  row(2, "total", total_bytes, fmt::format("of {:.2f} GiB", gib(in.device_bytes)));
  t += "\n" + verdict() + "\n";
  return t;
}

}  // namespace conclave::gpu
