// Weight upload. One code path lays the tensors out; a `source` fills each tensor either
// from the checkpoint (direct copy when the dtype already matches, else converted on the
// host; quantized projections repacked on the host into gpu/quant_layout.h's device layout)
// or with the random generator on the device (quantized there for a quantized config).
#include "gpu/cuda/cuda_weights.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>

#include "gpu/cuda/check.h"
#include "gpu/cuda/random_init.h"
#include "gpu/quant_repack.h"
#include "model/checkpoint.h"
#include "model/gen_model.h"

namespace conclave::gpu::cuda {

void qmatrix::allocate(size_t rows, size_t k, elem t) {
  const auto r = static_cast<int64_t>(rows), kk = static_cast<int64_t>(k);
  if (!quantized()) {
    data = device_buffer(rows * k * elem_size(t));
    return;
  }
  data = device_buffer(q.data_bytes(r, kk));
  scales = device_buffer(q.scale_bytes(r, kk));
  if (q.zero_bytes(r, kk) > 0) zeros = device_buffer(q.zero_bytes(r, kk));
}

namespace {

/// Where the tensors come from. `plain` fills `n` elements of tensor `name` into `dst` as
/// `t`; `layout` picks the device layout of a fused projection from its parts' names
/// (method none: plain); `quant` fills rows [row0, row0 + rows) of a quantized matrix with
/// the weight `name` ([rows, k]).
struct source {
  std::function<void(const std::string& name, void* dst, elem t, size_t n)> plain;
  std::function<quant_layout(const std::vector<std::string>& parts)> layout;
  std::function<void(const std::string& name, const qmatrix& m, size_t row0, size_t rows, size_t k)>
      quant;
};

struct part {
  std::string name;
  size_t rows;
};

/// Byte offsets of row `row` of `m` (k inputs) in its data, scales and zeros.
struct row_offsets {
  size_t data, scales, zeros;
};
row_offsets offsets_of(const qmatrix& m, size_t row, size_t k, elem t) {
  if (!m.quantized()) return {row * k * elem_size(t), 0, 0};
  const auto r = static_cast<int64_t>(row), kk = static_cast<int64_t>(k);
  return {m.q.data_bytes(r, kk), m.q.scale_bytes(r, kk), m.q.zero_bytes(r, kk)};
}

/// Fills rows [row0, row0 + rows) of `m` with tensor `name`.
void fill_rows(const source& src, const qmatrix& m, elem t, const std::string& name, size_t row0,
               size_t rows, size_t k) {
  if (m.quantized()) {
    src.quant(name, m, row0, rows, k);
  } else {
    src.plain(name, m.data.as<char>() + offsets_of(m, row0, k, t).data, t, rows * k);
  }
}

std::string expert_prefix(size_t l, size_t e) {
  return fmt::format("model.layers.{}.mlp.experts.{}.", l, e);
}

/// Fills expert `e` of layer `l` into slot `slot` of the layer's gate_up and down.
void fill_expert(const source& src, const model::model_config& c, elem t, size_t l, size_t e,
                 const qmatrix& gate_up, const qmatrix& down, size_t slot) {
  const size_t h = static_cast<size_t>(c.hidden_size);
  const size_t m = static_cast<size_t>(c.moe_intermediate_size);
  const std::string ep = expert_prefix(l, e);
  fill_rows(src, gate_up, t, ep + "gate_proj.weight", slot * 2 * m, m, h);
  fill_rows(src, gate_up, t, ep + "up_proj.weight", slot * 2 * m + m, m, h);
  fill_rows(src, down, t, ep + "down_proj.weight", slot * h, h, m);
}

/// The layouts of a MoE layer's gate_up and down: decided over every expert (held or not),
/// so that any expert a rebalance brings in fits the layer's buffers.
std::pair<quant_layout, quant_layout> expert_layouts(const source& src,
                                                     const model::model_config& c, size_t l) {
  std::vector<std::string> gu, dn;
  for (size_t e = 0; e < static_cast<size_t>(c.num_experts); ++e) {
    gu.push_back(expert_prefix(l, e) + "gate_proj.weight");
    gu.push_back(expert_prefix(l, e) + "up_proj.weight");
    dn.push_back(expert_prefix(l, e) + "down_proj.weight");
  }
  return {src.layout(gu), src.layout(dn)};
}

cuda_weights build(const model::model_config& c, elem t, const source& src,
                   const cuda_expert_filter& holds) {
  const auto t0 = std::chrono::steady_clock::now();
  const size_t h = static_cast<size_t>(c.hidden_size);
  const size_t q = static_cast<size_t>(c.num_heads * c.head_dim);
  const size_t kv = static_cast<size_t>(c.num_kv_heads * c.head_dim);
  const size_t hd = static_cast<size_t>(c.head_dim);
  const size_t vocab = static_cast<size_t>(c.vocab_size);
  const size_t E = static_cast<size_t>(c.num_experts);
  const size_t m = static_cast<size_t>(c.moe_intermediate_size);
  const size_t di = static_cast<size_t>(c.intermediate_size);
  cuda_weights w;
  w.t = t;
  auto alloc = [&w](device_buffer& b, size_t bytes) {
    b = device_buffer(bytes);
    w.bytes += bytes;
  };
  auto tensor = [&](device_buffer& b, const std::string& name, size_t n, elem et) {
    alloc(b, n * elem_size(et));
    src.plain(name, b.get(), et, n);
  };
  auto allocate = [&](qmatrix& mat, const quant_layout& l, size_t rows, size_t k) {
    mat.q = l;
    mat.allocate(rows, k, t);
    w.bytes += mat.bytes();
    if (mat.quantized()) w.quant = l;
  };
  // A fused projection: its parts' rows one after the other.
  auto matrix = [&](qmatrix& mat, const std::vector<part>& parts, size_t k) {
    std::vector<std::string> names;
    size_t rows = 0;
    for (const auto& p : parts) {
      names.push_back(p.name);
      rows += p.rows;
    }
    allocate(mat, src.layout(names), rows, k);
    size_t row = 0;
    for (const auto& p : parts) {
      fill_rows(src, mat, t, p.name, row, p.rows, k);
      row += p.rows;
    }
  };
  tensor(w.embed, "model.embed_tokens.weight", vocab * h, t);
  tensor(w.final_norm, "model.norm.weight", h, elem::f32);
  if (!c.tie_word_embeddings) tensor(w.lm_head, "lm_head.weight", vocab * h, t);
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (size_t l = 0; l < w.layers.size(); ++l) {
    cuda_layer& L = w.layers[l];
    const std::string p = fmt::format("model.layers.{}.", l);
    tensor(L.input_norm, p + "input_layernorm.weight", h, elem::f32);
    tensor(L.post_norm, p + "post_attention_layernorm.weight", h, elem::f32);
    tensor(L.q_norm, p + "self_attn.q_norm.weight", hd, elem::f32);
    tensor(L.k_norm, p + "self_attn.k_norm.weight", hd, elem::f32);
    matrix(L.qkv,
           {{p + "self_attn.q_proj.weight", q},
            {p + "self_attn.k_proj.weight", kv},
            {p + "self_attn.v_proj.weight", kv}},
           h);
    matrix(L.o, {{p + "self_attn.o_proj.weight", h}}, q);
    if (c.attention_bias) {
      alloc(L.qkv_bias, (q + 2 * kv) * sizeof(float));
      char* b = L.qkv_bias.as<char>();
      src.plain(p + "self_attn.q_proj.bias", b, elem::f32, q);
      src.plain(p + "self_attn.k_proj.bias", b + q * 4, elem::f32, kv);
      src.plain(p + "self_attn.v_proj.bias", b + (q + kv) * 4, elem::f32, kv);
      tensor(L.o_bias, p + "self_attn.o_proj.bias", h, elem::f32);
    }
    L.moe = c.is_moe_layer(static_cast<int64_t>(l));
    if (L.moe) {
      tensor(L.router, p + "mlp.gate.weight", E * h, t);
      L.sparse = static_cast<bool>(holds);
      for (size_t e = 0; e < E; ++e)
        if (!holds || holds(static_cast<int64_t>(l), static_cast<int64_t>(e)))
          L.experts.push_back(static_cast<int32_t>(e));
      const size_t slots = L.experts.size();
      const auto [gu, dn] = expert_layouts(src, c, l);
      allocate(L.gate_up, gu, slots * 2 * m, h);
      allocate(L.down, dn, slots * h, m);
      for (size_t i = 0; i < slots; ++i)
        fill_expert(src, c, t, l, static_cast<size_t>(L.experts[i]), L.gate_up, L.down, i);
      if (!L.sparse) L.experts.clear();
    } else {
      matrix(L.gate_up, {{p + "mlp.gate_proj.weight", di}, {p + "mlp.up_proj.weight", di}}, h);
      matrix(L.down, {{p + "mlp.down_proj.weight", h}}, di);
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (l + 1 == w.layers.size() || l % 8 == 7) {
      spdlog::info("cuda: weights layer {}/{} on the device ({:.2f} GiB, {:.1f} s)", l + 1,
                   w.layers.size(), static_cast<double>(w.bytes) / (1ull << 30), secs);
    }
  }
  synchronize();
  if (w.quant.method != model::quant_method::none)
    spdlog::info("cuda: projections kept {} on the device (group {}, w{}a16)",
                 model::quant_method_name(w.quant.method), w.quant.group,
                 w.quant.method == model::quant_method::fp8 ? 8 : 4);
  return w;
}

/// Copies `rows` rows of `k` inputs from row `from` of `a` to row `to` of `b` (same layout).
void copy_rows(const qmatrix& a, size_t from, const qmatrix& b, size_t to, size_t rows, size_t k,
               elem t) {
  const row_offsets fa = offsets_of(a, from, k, t), ta = offsets_of(b, to, k, t),
                    n = offsets_of(a, rows, k, t);
  CONCLAVE_CUDA_CHECK(cudaMemcpy(b.data.as<char>() + ta.data, a.data.as<char>() + fa.data, n.data,
                                 cudaMemcpyDeviceToDevice));
  if (n.scales > 0)
    CONCLAVE_CUDA_CHECK(cudaMemcpy(b.scales.as<char>() + ta.scales, a.scales.as<char>() + fa.scales,
                                   n.scales, cudaMemcpyDeviceToDevice));
  if (n.zeros > 0)
    CONCLAVE_CUDA_CHECK(cudaMemcpy(b.zeros.as<char>() + ta.zeros, a.zeros.as<char>() + fa.zeros,
                                   n.zeros, cudaMemcpyDeviceToDevice));
}

/// Fills tensors from the checkpoint (converted on the host when the dtype differs);
/// quantized projections repacked on the host into the device layout.
source checkpoint_source(const model::checkpoint& ckpt, elem t) {
  auto f32 = std::make_shared<std::vector<float>>();
  auto b16 = std::make_shared<std::vector<uint16_t>>();
  source src;
  src.plain = [&ckpt, f32, b16](const std::string& name, void* dst, elem et, size_t n) {
    if (ckpt.logical_numel(name) != n)
      throw std::runtime_error(fmt::format("cuda: tensor {} has {} elements, expected {}", name,
                                           ckpt.logical_numel(name), n));
    if (ckpt.has(name)) {
      const auto& tv = ckpt.tensor(name);
      if ((tv.type == model::dtype::bf16 && et == elem::bf16) ||
          (tv.type == model::dtype::f32 && et == elem::f32)) {
        CONCLAVE_CUDA_CHECK(cudaMemcpy(dst, tv.data, tv.nbytes, cudaMemcpyHostToDevice));
        return;
      }
    }
    f32->resize(n);
    ckpt.read_f32(name, f32->data());
    if (et == elem::f32) {
      CONCLAVE_CUDA_CHECK(cudaMemcpy(dst, f32->data(), n * sizeof(float), cudaMemcpyHostToDevice));
    } else {
      b16->resize(n);
      for (size_t i = 0; i < n; ++i) (*b16)[i] = model::f32_to_bf16((*f32)[i]);
      CONCLAVE_CUDA_CHECK(cudaMemcpy(dst, b16->data(), n * 2, cudaMemcpyHostToDevice));
    }
  };
  auto logged = std::make_shared<bool>(false);
  src.layout = [&ckpt, t, logged](const std::vector<std::string>& parts) -> quant_layout {
    const quant_layout l = device_quant_layout(ckpt.config().quant);
    if (l.method == model::quant_method::none) return {};
    size_t fits = 0;
    for (const auto& name : parts) fits += repackable(ckpt.weight(name), l) ? 1 : 0;
    if (t == elem::bf16 && fits == parts.size()) return l;
    if (!*logged && fits > 0) {
      *logged = true;
      if (t == elem::f32) {
        spdlog::info("cuda: weight_dtype f32 dequantizes the {} checkpoint's projections to fp32",
                     model::quant_method_name(l.method));
      } else {
        spdlog::warn(
            "cuda: {} and its fused parts are not all stored {} with the checkpoint's block: "
            "dequantized to bf16 (logged once)",
            parts.front(), model::quant_method_name(l.method));
      }
    }
    return {};
  };
  auto host = std::make_shared<std::vector<std::byte>>();
  src.quant = [&ckpt, host](const std::string& name, const qmatrix& m, size_t row0, size_t rows,
                            size_t k) {
    const model::stored_weight& sw = ckpt.weight(name);
    if (static_cast<size_t>(sw.out) != rows || static_cast<size_t>(sw.in) != k)
      throw std::runtime_error(fmt::format("cuda: weight {} is [{}, {}], expected [{}, {}]", name,
                                           sw.out, sw.in, rows, k));
    const auto r = static_cast<int64_t>(rows), kk = static_cast<int64_t>(k);
    const size_t db = m.q.data_bytes(r, kk), sb = m.q.scale_bytes(r, kk),
                 zb = m.q.zero_bytes(r, kk);
    host->resize(db + sb + zb);
    std::byte* p = host->data();
    repack_rows(sw, m.q, 0, sw.out, {p, p + db, p + db + sb});
    const row_offsets at = offsets_of(m, row0, k, elem::bf16);
    CONCLAVE_CUDA_CHECK(cudaMemcpy(m.data.as<char>() + at.data, p, db, cudaMemcpyHostToDevice));
    CONCLAVE_CUDA_CHECK(
        cudaMemcpy(m.scales.as<char>() + at.scales, p + db, sb, cudaMemcpyHostToDevice));
    if (zb > 0)
      CONCLAVE_CUDA_CHECK(
          cudaMemcpy(m.zeros.as<char>() + at.zeros, p + db + sb, zb, cudaMemcpyHostToDevice));
  };
  return src;
}

}  // namespace

const void* plain_rows(const qmatrix& w, size_t row0, size_t rows, size_t k, elem t,
                       const device_buffer& scratch, stream_t s) {
  if (!w.quantized()) return w.data.as<char>() + row0 * k * elem_size(t);
  if (scratch.bytes() < rows * k * elem_size(t))
    throw std::logic_error("plain_rows: the dequantization scratch is too small");
  dequantize_matrix(w.view().rows_from(row0, k), rows, k, scratch.get(), t, s);
  return scratch.get();
}

void set_gemv_weights(gemv_args& a, const qmatrix& w) {
  a.w = w.data.get();
  a.q = w.q;
  a.scales = w.scales.get();
  a.zeros = w.zeros.get();
}

size_t dequant_scratch_bytes(const model::model_config& c, const cuda_weights& w, elem t) {
  if (w.quant.method == model::quant_method::none) return 0;
  const size_t h = static_cast<size_t>(c.hidden_size);
  const size_t qkv = static_cast<size_t>((c.num_heads + 2 * c.num_kv_heads) * c.head_dim);
  const size_t q = static_cast<size_t>(c.num_heads * c.head_dim);
  const size_t m = static_cast<size_t>(c.moe_intermediate_size);
  const size_t di = static_cast<size_t>(c.intermediate_size);
  return std::max({qkv * h, q * h, 2 * m * h, 2 * di * h}) * elem_size(t);
}

namespace {

/// gen-model's values for `seed` and `init_std`, made on the device: the plain tensors
/// rounded through gen-model's storage dtype `stored` (an fp32 norm then holds the value
/// the written file holds), the quantized ones quantized there from the fp32 values, as
/// gen-model does, when c.quant says so.
source random_source(const model::model_config& c, elem t, uint64_t seed, float init_std,
                     model::dtype stored) {
  const round_through r = stored == model::dtype::bf16  ? round_through::bf16
                          : stored == model::dtype::f16 ? round_through::f16
                                                        : round_through::none;
  source src;
  src.plain = [=](const std::string& name, void* dst, elem et, size_t n) {
    random_fill(dst, et, n, model::random_weight_stream(seed, name), 0, init_std,
                model::is_random_norm_tensor(name), nullptr, r);
  };
  src.layout = [c, t](const std::vector<std::string>& parts) -> quant_layout {
    if (t != elem::bf16) return {};
    for (const auto& name : parts)
      if (!model::quantizes_weight(name)) return {};
    return device_quant_layout(c.quant);
  };
  auto tmp = std::make_shared<device_buffer>();
  src.quant = [=](const std::string& name, const qmatrix& m, size_t row0, size_t rows, size_t k) {
    tmp->ensure(rows * k * sizeof(float));
    random_fill(tmp->get(), elem::f32, rows * k, model::random_weight_stream(seed, name), 0,
                init_std, false, nullptr);
    const row_offsets at = offsets_of(m, row0, k, t);
    quantize_matrix(tmp->as<float>(), rows, k, m.q, m.data.as<char>() + at.data,
                    m.scales.as<char>() + at.scales,
                    m.zeros.get() ? m.zeros.as<char>() + at.zeros : nullptr, nullptr);
  };
  return src;
}

/// Where a checkpoint's weights come from: its files, or the device's generator.
source source_of(const model::checkpoint& ckpt, elem t) {
  if (const auto& r = ckpt.random_weights())
    return random_source(ckpt.config(), t, r->seed, r->init_std, r->stored);
  return checkpoint_source(ckpt, t);
}

}  // namespace

cuda_weights load_cuda_weights(const model::checkpoint& ckpt, elem t,
                               const cuda_expert_filter& holds) {
  return build(ckpt.config(), t, source_of(ckpt, t), holds);
}

void reload_cuda_experts(const model::checkpoint& ckpt, cuda_weights& w, size_t layer,
                         std::vector<int32_t> experts) {
  const auto& c = ckpt.config();
  cuda_layer& L = w.layers.at(layer);
  if (!L.moe || !L.sparse)
    throw std::logic_error("reload_cuda_experts: not an expert-parallel MoE layer");
  if (experts == L.experts) return;
  const size_t h = static_cast<size_t>(c.hidden_size);
  const size_t m = static_cast<size_t>(c.moe_intermediate_size);
  qmatrix gate_up, down;
  gate_up.q = L.gate_up.q;
  down.q = L.down.q;
  gate_up.allocate(experts.size() * 2 * m, h, w.t);
  down.allocate(experts.size() * h, m, w.t);
  const source src = source_of(ckpt, w.t);
  for (size_t i = 0; i < experts.size(); ++i) {
    const auto old = std::lower_bound(L.experts.begin(), L.experts.end(), experts[i]);
    if (old != L.experts.end() && *old == experts[i]) {
      const auto j = static_cast<size_t>(old - L.experts.begin());
      copy_rows(L.gate_up, j * 2 * m, gate_up, i * 2 * m, 2 * m, h, w.t);
      copy_rows(L.down, j * h, down, i * h, h, m, w.t);
    } else {
      fill_expert(src, c, w.t, layer, static_cast<size_t>(experts[i]), gate_up, down, i);
    }
  }
  w.bytes = w.bytes - L.gate_up.bytes() - L.down.bytes() + gate_up.bytes() + down.bytes();
  L.gate_up = std::move(gate_up);
  L.down = std::move(down);
  L.experts = std::move(experts);
}

cuda_weights random_cuda_weights(const model::model_config& c, elem t, uint64_t seed,
                                 float init_std, const cuda_expert_filter& holds) {
  return build(c, t, random_source(c, t, seed, init_std, model::dtype::bf16), holds);
}

}  // namespace conclave::gpu::cuda
