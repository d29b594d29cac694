#!/usr/bin/env python3
"""Make conclave's own HF-transformers fixtures (run where torch + transformers exist).

Each fixture is a random-weight checkpoint written by save_pretrained plus reference.json
(input_ids, last_logits, top5 per position, logsumexp per position, greedy continuation),
the same format as ../shared/tools/hf_reference.py. Unlike that script, the reference is
computed from the checkpoint *as loaded back* with from_pretrained(dtype=float32): the
weights are exactly the stored values and RoPE's inv_freq stays fp32, as in real use.

Also checks checkpoints written by `conclave gen-model` (folders given with --check):
loads each in HF and writes the greedy continuation of fixed prompts to hf_greedy.json.

Usage: python3 tools/make_fixtures.py --out DIR [--check GENDIR ...]
"""
import argparse, json, os, shutil
import torch
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
    # Dense Qwen3ForCausalLM with q/k/v/o biases.
    "dense_bias": ("dense", "bfloat16", dict(SMALL, num_hidden_layers=3, attention_bias=True,
                   tie_word_embeddings=False), {}),
}


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
    meta = {"seed": seed, "stored_dtype": dtype, "computed_in": "float32 (from_pretrained)",
            "transformers": __import__("transformers").__version__, "torch": torch.__version__,
            "config": cfg}
    json.dump({"meta": meta, "cases": references(loaded, cfg["vocab_size"], seed)},
              open(os.path.join(d, "reference.json"), "w"))
    print("wrote", d, sorted(os.listdir(d)), flush=True)


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
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for src, name in a.recompute:
        recompute(a.out, src, name)
    for name, (kind, dtype, cfg, extra) in FIXTURES.items():
        make(a.out, name, kind, dtype, cfg, extra)
    for folder in a.check:
        check_generated(folder, a.out)
