#!/usr/bin/env python3
"""Make conclave's own HF-transformers fixtures (run where torch + transformers exist).

Each fixture is a random-weight checkpoint written by save_pretrained plus reference.json
(input_ids, last_logits, top5 per position, logsumexp per position, greedy continuation),
the same format as ../shared/tools/hf_reference.py. Unlike that script, the reference is
computed from the checkpoint *as loaded back* with from_pretrained(dtype=float32): the
weights are exactly the stored values and RoPE's inv_freq stays fp32, as in real use.

Quantized fixtures (moe_fp8, moe_awq; docs/quantization.md): the same random bf16 model,
its attention, expert and dense-MLP projections quantized here (fp8 e4m3 with block
scales / 4-bit AWQ GEMM packing, as ../shared/docs/quant-formats.md describes) and written
as a quantized checkpoint; the reference is transformers running the *dequantized* weights
in fp32 (from_pretrained of an fp32 copy), which is what conclave's CPU backend must match.

moe_swa: use_sliding_window true, sliding_window 24; the config.json transformers writes
must keep both keys (make() checks), and the reference is from_pretrained fp32 as above.

Also checks checkpoints written by `conclave gen-model` (folders given with --check):
loads each in HF and writes the greedy continuation of fixed prompts to hf_greedy.json.

transformers' own bf16 path on existing fixtures (--bf16 NAME ...): reference_bf16.json
with its logits and how far they land from the fp32 reference, the yardstick for
conclave's bf16 tolerance (docs/FIDELITY.md).

Usage: python3 tools/make_fixtures.py --out DIR [--check GENDIR ...] [--bf16 NAME ...]
"""
import argparse, glob, json, os, shutil, tempfile
import torch
from safetensors.torch import load_file, save_file
from transformers import (Qwen3Config, Qwen3ForCausalLM, Qwen3MoeConfig,
                          Qwen3MoeForCausalLM, AutoModelForCausalLM)

SMALL = dict(vocab_size=1024, hidden_size=64, intermediate_size=96, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
             rope_theta=1000000.0, rms_norm_eps=1e-6)

FIXTURES = {
    # Dense layers inside a MoE model, norm_topk_prob false, tied embeddings, F16 storage.
    "moe_mixed_f16": ("moe", "float16", dict(SMALL, num_hidden_layers=6, decoder_sparse_step=2,
                      mlp_only_layers=[3], num_experts=8, num_experts_per_tok=3,
                      moe_intermediate_size=32, norm_topk_prob=False, tie_word_embeddings=True),
                      {}),
    # F32 storage; config rewritten to the other spellings (num_experts vs num_local_experts,
    # top-level rope_theta instead of rope_parameters).
    "moe_f32_altkeys": ("moe", "float32", dict(SMALL, num_hidden_layers=3, num_experts=6,
                        num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True,
                        tie_word_embeddings=False), {"alt_keys": True}),
    # YaRN (factor 4 over an original context of 64, so 256 in all), the config rewritten to
    # the rope_scaling spelling Qwen's model cards give; prompts of 120 > 64 tokens.
    "moe_yarn": ("moe", "bfloat16", dict(SMALL, num_hidden_layers=3, num_experts=8,
                 num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True,
                 tie_word_embeddings=False, max_position_embeddings=256,
                 rope_parameters={"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0,
                                  "original_max_position_embeddings": 64}),
                 {"rope_scaling_spelling": True}),
    # Dense Qwen3ForCausalLM with q/k/v/o biases.
    "dense_bias": ("dense", "bfloat16", dict(SMALL, num_hidden_layers=3, attention_bias=True,
                   tie_word_embeddings=False), {}),
    # Sliding-window attention (docs/sliding_window.md): Qwen3-MoE with use_sliding_window,
    # which transformers applies to every layer; window 24 (not a multiple of conclave's
    # block sizes) against prompts of 37 and 120 tokens (past it) and 5 (inside it), and a
    # greedy continuation that decodes past it.
    "moe_swa": ("moe", "bfloat16", dict(SMALL, num_hidden_layers=3, num_experts=8,
                num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True,
                tie_word_embeddings=False, use_sliding_window=True, sliding_window=24), {}),
}


# Quantized fixtures: a MoE model with one dense layer; fp8 blocks of [32, 48] leave
# partial blocks on both sides of every matrix, AWQ groups of 32 fit every input width.
QUANT_CFG = dict(SMALL, num_hidden_layers=3, num_experts=8, num_experts_per_tok=2,
                 moe_intermediate_size=32, norm_topk_prob=True, tie_word_embeddings=False,
                 mlp_only_layers=[1])
QUANT_FIXTURES = {
    "moe_fp8": ("fp8", {"block": [32, 48]}),
    "moe_awq": ("awq", {"group": 32}),
}
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]  # nibble i holds column 8j + AWQ_ORDER[i]


def quantizable(name):
    """Attention, expert and dense-MLP projections; not the router, embeddings or lm_head."""
    if not name.endswith("_proj.weight"):
        return False
    return ".self_attn." in name or ".mlp.experts." in name or ".mlp." in name


def fp8_quant(w, bo, bi):
    out, inn = w.shape
    so, si = -(-out // bo), -(-inn // bi)
    pad = torch.zeros(so * bo, si * bi)
    pad[:out, :inn] = w
    blocks = pad.view(so, bo, si, bi)
    amax = blocks.abs().amax(dim=(1, 3))
    s = torch.where(amax > 0, amax / 448.0, torch.ones_like(amax))
    x = (blocks / s[:, None, :, None]).view(so * bo, si * bi)[:out, :inn].clamp(-448, 448)
    q = x.to(torch.float8_e4m3fn)
    full = s.repeat_interleave(bo, 0)[:out].repeat_interleave(bi, 1)[:, :inn]
    deq = q.float() * full  # one fp32 rounding, as conclave's dequantize
    return {"weight": q, "weight_scale_inv": s.float().contiguous()}, deq


def awq_pack(x):
    """[rows, cols] of 0..15 -> int32 [rows, cols / 8] in AWQ's order."""
    rows, cols = x.shape
    x = x.view(rows, cols // 8, 8).to(torch.int64)
    packed = torch.zeros(rows, cols // 8, dtype=torch.int64)
    for i, c in enumerate(AWQ_ORDER):
        packed |= x[:, :, c] << (4 * i)
    packed = torch.where(packed >= 2**31, packed - 2**32, packed)
    return packed.to(torch.int32).contiguous()


def awq_quant(w, g):
    out, inn = w.shape
    wg = w.view(out, inn // g, g)
    lo = wg.amin(-1).clamp(max=0)
    hi = wg.amax(-1).clamp(min=0)
    s = ((hi - lo) / 15).half().float()
    s = torch.where(s > 0, s, torch.ones_like(s))
    z = torch.round(-lo / s).clamp(0, 15)
    q = (torch.round(wg / s[..., None]) + z[..., None]).clamp(0, 15)
    deq = ((q - z[..., None]) * s[..., None]).view(out, inn)  # exact ints times s: one rounding
    parts = {"qweight": awq_pack(q.view(out, inn).t().contiguous()),
             "qzeros": awq_pack(z.t().contiguous()),
             "scales": s.t().contiguous().half()}
    return parts, deq


def make_quantized(out, name, method, extra, seed=13, std=0.08):
    model = Qwen3MoeForCausalLM(Qwen3MoeConfig(**QUANT_CFG)).float().eval()
    randomize(model, torch.bfloat16, std, seed)
    work = tempfile.mkdtemp()
    model.to(torch.bfloat16).save_pretrained(work, safe_serialization=True)
    tensors = {}
    for f in sorted(glob.glob(os.path.join(work, "*.safetensors"))):
        tensors.update(load_file(f))
    stored, dequantized = {}, {}
    for tname, t in tensors.items():
        if not quantizable(tname):
            stored[tname] = t.contiguous()
            dequantized[tname] = t.float().contiguous()
            continue
        base = tname[: -len(".weight")]
        if method == "fp8":
            parts, deq = fp8_quant(t.float(), *extra["block"])
        else:
            parts, deq = awq_quant(t.float(), extra["group"])
        for suffix, p in parts.items():
            stored[f"{base}.{suffix}"] = p
        dequantized[tname] = deq.contiguous()
    cfg = json.load(open(os.path.join(work, "config.json")))
    if method == "fp8":
        qc = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
              "weight_block_size": extra["block"],
              "modules_to_not_convert": ["lm_head", "mlp.gate"]}
    else:
        qc = {"quant_method": "awq", "bits": 4, "group_size": extra["group"],
              "zero_point": True, "version": "gemm", "modules_to_not_convert": ["lm_head", "mlp.gate"]}
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    save_file(stored, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    json.dump(dict(cfg, quantization_config=qc), open(os.path.join(d, "config.json"), "w"), indent=2)
    if os.path.exists(os.path.join(work, "generation_config.json")):
        shutil.copy(os.path.join(work, "generation_config.json"), d)
    # The reference: transformers on the dequantized weights, in fp32.
    ref_dir = tempfile.mkdtemp()
    save_file(dequantized, os.path.join(ref_dir, "model.safetensors"), metadata={"format": "pt"})
    json.dump(dict(cfg, torch_dtype="float32", dtype="float32"),
              open(os.path.join(ref_dir, "config.json"), "w"), indent=2)
    loaded = AutoModelForCausalLM.from_pretrained(ref_dir, dtype=torch.float32).eval()
    meta = {"seed": seed, "stored": method, "quantization_config": qc,
            "computed_in": "float32 (from_pretrained of the dequantized weights)",
            "transformers": __import__("transformers").__version__, "torch": torch.__version__,
            "config": QUANT_CFG}
    json.dump({"meta": meta, "cases": references(loaded, QUANT_CFG["vocab_size"], seed)},
              open(os.path.join(d, "reference.json"), "w"))
    shutil.rmtree(work)
    shutil.rmtree(ref_dir)
    print("wrote", d, sorted(os.listdir(d)), flush=True)


def randomize(model, store, std, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, std)
            p.copy_(p.to(store).float())


def references(model, vocab, seed, prompts=(37, 5, 120), new=24):
    g = torch.Generator().manual_seed(seed + 1)
    cases = []
    for n in prompts:
        ids = torch.randint(0, vocab, (1, n), generator=g)
        with torch.no_grad():
            logits = model(ids).logits[0].double()
            out = model.generate(ids, max_new_tokens=new, do_sample=False, pad_token_id=0,
                                 eos_token_id=None)
        cases.append({"input_ids": ids[0].tolist(), "last_logits": logits[-1].tolist(),
                      "top5": logits.topk(5, dim=-1).indices.tolist(),
                      "logsumexp": torch.logsumexp(logits, -1).tolist(),
                      "greedy_continuation": out[0, n:].tolist()})
    return cases


def make(out, name, kind, dtype, cfg, extra, seed=11, std=0.08):
    store = getattr(torch, dtype)
    if kind == "moe":
        model = Qwen3MoeForCausalLM(Qwen3MoeConfig(**cfg)).float().eval()
    else:
        model = Qwen3ForCausalLM(Qwen3Config(**cfg)).float().eval()
    randomize(model, store, std, seed)
    d = os.path.join(out, name)
    model.to(store).save_pretrained(d, safe_serialization=True, max_shard_size="200KB")
    if extra.get("rope_scaling_spelling"):
        c = json.load(open(os.path.join(d, "config.json")))
        rp = dict(c.pop("rope_parameters", None) or cfg["rope_parameters"])
        c["rope_theta"] = rp.pop("rope_theta", cfg["rope_theta"])
        c["rope_scaling"] = rp  # {"rope_type": "yarn", "factor": ..., "original_max_...": ...}
        json.dump(c, open(os.path.join(d, "config.json"), "w"), indent=2)
    if extra.get("alt_keys"):
        c = json.load(open(os.path.join(d, "config.json")))
        if "num_local_experts" in c:  # transformers 5 writes this spelling; test the other
            c["num_experts"] = c.pop("num_local_experts")
        else:
            c["num_local_experts"] = c.pop("num_experts")
        theta = c.pop("rope_parameters", {}).get("rope_theta", cfg["rope_theta"])
        c["rope_theta"] = theta
        json.dump(c, open(os.path.join(d, "config.json"), "w"), indent=2)
    loaded = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    if cfg.get("use_sliding_window"):
        written = json.load(open(os.path.join(d, "config.json")))
        assert written.get("use_sliding_window") is True, written
        assert written.get("sliding_window") == cfg["sliding_window"], written
        assert loaded.config.sliding_window == cfg["sliding_window"], loaded.config
    meta = {"seed": seed, "stored_dtype": dtype, "computed_in": "float32 (from_pretrained)",
            "transformers": __import__("transformers").__version__, "torch": torch.__version__,
            "config": cfg}
    json.dump({"meta": meta, "cases": references(loaded, cfg["vocab_size"], seed)},
              open(os.path.join(d, "reference.json"), "w"))
    print("wrote", d, sorted(os.listdir(d)), flush=True)


def dequantized_state(d):
    """The fixture's tensors in fp32, quantized projections dequantized (fp8 block scales,
    AWQ GEMM packing) exactly as conclave and the fp32 reference do."""
    cfg = json.load(open(os.path.join(d, "config.json")))
    qc = cfg.get("quantization_config")
    tensors = {}
    for f in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        tensors.update(load_file(f))
    state = {}
    for tname, t in tensors.items():
        if qc and qc["quant_method"] == "fp8" and tname.endswith(".weight_scale_inv"):
            continue
        if qc and qc["quant_method"] == "fp8" and t.dtype == torch.float8_e4m3fn:
            s = tensors[tname + "_scale_inv"].float()
            bo, bi = qc["weight_block_size"]
            out, inn = t.shape
            full = s.repeat_interleave(bo, 0)[:out].repeat_interleave(bi, 1)[:, :inn]
            state[tname] = t.float() * full
        elif tname.endswith(".qweight"):
            base = tname[: -len(".qweight")]
            g = qc["group_size"]
            def unpack(x):
                x = x.to(torch.int64) & 0xFFFFFFFF
                cols = torch.stack([(x >> (4 * i)) & 0xF for i in range(8)], -1)  # nibble i
                outc = torch.empty_like(cols)
                for i, c in enumerate(AWQ_ORDER):
                    outc[..., c] = cols[..., i]
                return outc.reshape(x.shape[0], -1).float()
            q = unpack(t)                                  # [in, out]
            z = unpack(tensors[base + ".qzeros"])          # [in / g, out]
            sc = tensors[base + ".scales"].float()         # [in / g, out]
            w = (q - z.repeat_interleave(g, 0)) * sc.repeat_interleave(g, 0)
            state[base + ".weight"] = w.t().contiguous()
        elif tname.endswith(".qzeros") or tname.endswith(".scales"):
            continue
        else:
            state[tname] = t.float()
    cfg.pop("quantization_config", None)
    return cfg, state


def bf16_reference(out, name, data="tests/data"):
    """transformers' own bf16 path on a fixture (the weights as stored, or dequantized,
    cast to bf16; computed in bf16 on the GPU when there is one) against its fp32
    reference.json: how far a bf16 implementation lands on this fixture."""
    src = os.path.join(data, name)
    # The reference computed with fp32 inv_freq, as from_pretrained does here.
    ref_file = next(f for f in ("reference_f32rope.json", "reference.json")
                    if os.path.exists(os.path.join(src, f)))
    ref = json.load(open(os.path.join(src, ref_file)))
    cfg, state = dequantized_state(src)
    work = tempfile.mkdtemp()
    save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(work, "model.safetensors"),
              metadata={"format": "pt"})
    json.dump(dict(cfg, dtype="float32", torch_dtype="float32"),
              open(os.path.join(work, "config.json"), "w"), indent=2)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    # The dequantization above must give back the fp32 reference exactly.
    f32 = AutoModelForCausalLM.from_pretrained(work, dtype=torch.float32).eval()
    c0 = ref["cases"][0]
    with torch.no_grad():
        l0 = f32(torch.tensor([c0["input_ids"]])).logits[0, -1].double()
    r0 = torch.tensor(c0["last_logits"], dtype=torch.float64)
    check = ((l0 - r0).abs().max() / r0.abs().max()).item()
    if check > 1e-4:
        print(f"warning: {name}: fp32 reload differs from {ref_file} by {check:.3g}", flush=True)
    del f32
    model = AutoModelForCausalLM.from_pretrained(work, dtype=torch.bfloat16).to(dev).eval()
    cases, same, positions, worst = [], 0, 0, 0.0
    for c in ref["cases"]:
        ids = torch.tensor([c["input_ids"]], device=dev)
        with torch.no_grad():
            logits = model(ids).logits[0].double().cpu()
        top5 = logits.topk(5, dim=-1).indices.tolist()
        same += sum(1 for a, b in zip(top5, c["top5"]) if a[0] == b[0])
        positions += len(top5)
        last_ref = torch.tensor(c["last_logits"], dtype=torch.float64)
        err = ((logits[-1] - last_ref).abs().max() / last_ref.abs().max()).item()
        worst = max(worst, err)
        cases.append({"last_logits": logits[-1].tolist(), "top5": top5, "last_rel_err": err})
    summary = {"top1_same": same, "positions": positions, "worst_last_rel_err": worst}
    meta = {"computed_in": f"bfloat16 on {dev}", "against": ref_file, "fp32_reload_check": check, "transformers": __import__("transformers").__version__,
            "torch": torch.__version__, "gpu": torch.cuda.get_device_name() if dev == "cuda" else None}
    os.makedirs(os.path.join(out, name), exist_ok=True)
    json.dump({"meta": meta, "summary": summary, "cases": cases},
              open(os.path.join(out, name, "reference_bf16.json"), "w"))
    shutil.rmtree(work)
    print("bf16", name, summary, flush=True)


def recompute(out, src, name):
    """Reference for an existing checkpoint, loaded with fp32 inv_freq (same prompts)."""
    ref = json.load(open(os.path.join(src, "reference.json")))
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    cases = []
    for c in ref["cases"]:
        ids = torch.tensor([c["input_ids"]])
        with torch.no_grad():
            logits = model(ids).logits[0].double()
            gen = model.generate(ids, max_new_tokens=len(c["greedy_continuation"]), do_sample=False,
                                 pad_token_id=0, eos_token_id=None)
        cases.append({"input_ids": c["input_ids"], "last_logits": logits[-1].tolist(),
                      "top5": logits.topk(5, dim=-1).indices.tolist(),
                      "logsumexp": torch.logsumexp(logits, -1).tolist(),
                      "greedy_continuation": gen[0, ids.shape[1]:].tolist()})
    inv = model.model.rotary_emb.inv_freq
    meta = dict(ref["meta"], computed_in="float32 (from_pretrained)", inv_freq_dtype=str(inv.dtype))
    os.makedirs(os.path.join(out, name), exist_ok=True)
    json.dump({"meta": meta, "cases": cases}, open(os.path.join(out, name, "reference.json"), "w"))
    print("recomputed", src, "->", name, flush=True)


def check_generated(folder, out):
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(123)
    res = []
    for n in (7, 33):
        ids = torch.randint(0, vocab, (1, n), generator=g)
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=20, do_sample=False, pad_token_id=0, eos_token_id=None)
        res.append({"input_ids": ids[0].tolist(), "greedy": gen[0, n:].tolist()})
    name = os.path.basename(folder.rstrip("/"))
    json.dump({"folder": name, "arch": model.config.architectures, "cases": res},
              open(os.path.join(out, f"hf_greedy_{name}.json"), "w"))
    print("checked", folder, res, flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--recompute", nargs=2, metavar=("SRC", "NAME"), action="append", default=[])
    ap.add_argument("--check", nargs="*", default=[])
    ap.add_argument("--only", nargs="*", default=[], help="make only these fixtures")
    ap.add_argument("--bf16", nargs="*", default=None,
                    help="only write reference_bf16.json (transformers in bf16) for these "
                         "existing fixtures of tests/data")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.bf16 is not None:
        for name in a.bf16:
            bf16_reference(a.out, name)
        raise SystemExit(0)
    for src, name in a.recompute:
        recompute(a.out, src, name)
    for name, (kind, dtype, cfg, extra) in FIXTURES.items():
        if not a.only or name in a.only:
            make(a.out, name, kind, dtype, cfg, extra)
    for name, (method, extra) in QUANT_FIXTURES.items():
        if not a.only or name in a.only:
            make_quantized(a.out, name, method, extra)
    for folder in a.check:
        check_generated(folder, a.out)
