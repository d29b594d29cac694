// Weight upload. One code path lays the tensors out; a `source` fills each tensor either
// from the checkpoint (direct copy when the dtype already matches, else converted on the
// host) or with the random generator on the device.
#include "gpu/cuda/cuda_weights.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>

#include "gpu/cuda/check.h"
#include "gpu/cuda/random_init.h"
#include "model/checkpoint.h"
#include "model/gen_model.h"

namespace conclave::gpu::cuda {
namespace {

/// Fills `n` elements of tensor `name` into `dst` as `t`.
using source = std::function<void(const std::string& name, void* dst, elem t, size_t n)>;

char* at(const device_buffer& b, size_t elem_offset, elem t) {
  return b.as<char>() + elem_offset * elem_size(t);
}

/// Fills expert `e` of layer `l` into slot `slot` of the layer's gate_up and down buffers.
void fill_expert(const source& fill, const model::model_config& c, elem t, size_t l, size_t e,
                 const device_buffer& gate_up, const device_buffer& down, size_t slot) {
  const size_t h = static_cast<size_t>(c.hidden_size);
  const size_t m = static_cast<size_t>(c.moe_intermediate_size);
  const std::string ep = fmt::format("model.layers.{}.mlp.experts.{}.", l, e);
  fill(ep + "gate_proj.weight", at(gate_up, slot * 2 * m * h, t), t, m * h);
  fill(ep + "up_proj.weight", at(gate_up, slot * 2 * m * h + m * h, t), t, m * h);
  fill(ep + "down_proj.weight", at(down, slot * h * m, t), t, h * m);
}

cuda_weights build(const model::model_config& c, elem t, const source& fill,
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
  const size_t es = elem_size(t);
  cuda_weights w;
  w.t = t;
  auto alloc = [&w](device_buffer& b, size_t bytes) {
    b = device_buffer(bytes);
    w.bytes += bytes;
  };
  auto tensor = [&](device_buffer& b, const std::string& name, size_t n, elem et) {
    alloc(b, n * elem_size(et));
    fill(name, b.get(), et, n);
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
    alloc(L.qkv, (q + 2 * kv) * h * es);
    fill(p + "self_attn.q_proj.weight", at(L.qkv, 0, t), t, q * h);
    fill(p + "self_attn.k_proj.weight", at(L.qkv, q * h, t), t, kv * h);
    fill(p + "self_attn.v_proj.weight", at(L.qkv, (q + kv) * h, t), t, kv * h);
    tensor(L.o, p + "self_attn.o_proj.weight", h * q, t);
    if (c.attention_bias) {
      alloc(L.qkv_bias, (q + 2 * kv) * sizeof(float));
      fill(p + "self_attn.q_proj.bias", at(L.qkv_bias, 0, elem::f32), elem::f32, q);
      fill(p + "self_attn.k_proj.bias", at(L.qkv_bias, q, elem::f32), elem::f32, kv);
      fill(p + "self_attn.v_proj.bias", at(L.qkv_bias, q + kv, elem::f32), elem::f32, kv);
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
      alloc(L.gate_up, slots * 2 * m * h * es);
      alloc(L.down, slots * h * m * es);
      for (size_t i = 0; i < slots; ++i)
        fill_expert(fill, c, t, l, static_cast<size_t>(L.experts[i]), L.gate_up, L.down, i);
      if (!L.sparse) L.experts.clear();
    } else {
      alloc(L.gate_up, 2 * di * h * es);
      fill(p + "mlp.gate_proj.weight", at(L.gate_up, 0, t), t, di * h);
      fill(p + "mlp.up_proj.weight", at(L.gate_up, di * h, t), t, di * h);
      tensor(L.down, p + "mlp.down_proj.weight", h * di, t);
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (l + 1 == w.layers.size() || l % 8 == 7) {
      spdlog::info("cuda: weights layer {}/{} on the device ({:.2f} GiB, {:.1f} s)", l + 1,
                   w.layers.size(), static_cast<double>(w.bytes) / (1ull << 30), secs);
    }
  }
  synchronize();
  return w;
}

}  // namespace

namespace {

/// Fills tensors from the checkpoint (converted on the host when the dtype differs).
source checkpoint_source(const model::checkpoint& ckpt) {
  auto f32 = std::make_shared<std::vector<float>>();
  auto b16 = std::make_shared<std::vector<uint16_t>>();
  return [&ckpt, f32, b16](const std::string& name, void* dst, elem et, size_t n) {
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
}

}  // namespace

cuda_weights load_cuda_weights(const model::checkpoint& ckpt, elem t,
                               const cuda_expert_filter& holds) {
  return build(ckpt.config(), t, checkpoint_source(ckpt), holds);
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
  const size_t es = elem_size(w.t);
  const size_t gu_bytes = 2 * m * h * es, dn_bytes = h * m * es;
  device_buffer gate_up(experts.size() * gu_bytes), down(experts.size() * dn_bytes);
  const source fill = checkpoint_source(ckpt);
  for (size_t i = 0; i < experts.size(); ++i) {
    const auto old = std::lower_bound(L.experts.begin(), L.experts.end(), experts[i]);
    if (old != L.experts.end() && *old == experts[i]) {
      const auto j = static_cast<size_t>(old - L.experts.begin());
      CONCLAVE_CUDA_CHECK(cudaMemcpy(gate_up.as<char>() + i * gu_bytes,
                                     L.gate_up.as<char>() + j * gu_bytes, gu_bytes,
                                     cudaMemcpyDeviceToDevice));
      CONCLAVE_CUDA_CHECK(cudaMemcpy(down.as<char>() + i * dn_bytes,
                                     L.down.as<char>() + j * dn_bytes, dn_bytes,
                                     cudaMemcpyDeviceToDevice));
    } else {
      fill_expert(fill, c, w.t, layer, static_cast<size_t>(experts[i]), gate_up, down, i);
    }
  }
  w.bytes = w.bytes - L.gate_up.bytes() - L.down.bytes() + gate_up.bytes() + down.bytes();
  L.gate_up = std::move(gate_up);
  L.down = std::move(down);
  L.experts = std::move(experts);
}

cuda_weights random_cuda_weights(const model::model_config& c, elem t, uint64_t seed,
                                 float init_std) {
  const source fill = [&](const std::string& name, void* dst, elem et, size_t n) {
    random_fill(dst, et, n, model::random_weight_stream(seed, name), 0, init_std,
                model::is_random_norm_tensor(name), nullptr);
  };
  return build(c, t, fill, {});
}

}  // namespace conclave::gpu::cuda
