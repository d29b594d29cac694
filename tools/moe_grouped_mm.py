#!/usr/bin/env python3
"""One MoE layer on PyTorch's grouped GEMM, beside `conclave bench moe` on the same card.

The layer is the one conclave times: router projection, softmax top-k (renormalized),
tokens sorted by expert, gate/up through torch._grouped_mm (CUTLASS on Hopper), SwiGLU,
down through torch._grouped_mm, the router-weighted sum back into each token's row. Every
step stays on the device (offsets by scatter-add and cumsum, no .item()), so the layer is
captured once as a CUDA graph and replayed, as conclave replays its decode layers. The
experts alone (grouped GEMM, SwiGLU, grouped GEMM on rows already sorted: the part the
issue quotes) are timed too.

With --conclave LOG (the output of `conclave bench moe`), prints both side by side and
the ratio conclave / torch for the whole layer. Writes $OUT/moe_grouped_mm.json.

Usage: python3 tools/moe_grouped_mm.py [--tokens 1,8,64,128] [--conclave bench_moe.log]
Needs a CUDA GPU, torch with torch._grouped_mm (2.8+; its fast path is sm_90/sm_100).
"""
import argparse
import json
import os
import re
import sys

import torch
import torch.nn.functional as F


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--inter", type=int, default=768, help="moe_intermediate_size")
    p.add_argument("--experts", type=int, default=128)
    p.add_argument("--topk", type=int, default=8)
    p.add_argument("--tokens", default="1,8,64,128,512")
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--std", type=float, default=0.02, help="weights' init std")
    p.add_argument("--conclave", help="`conclave bench moe` output to compare against")
    return p.parse_args()


def copy_ceiling_tbps():
    """Bytes read + written per second by a 2 GiB device copy (conclave's 'copy' ceiling)."""
    a = torch.empty(1 << 30, device="cuda", dtype=torch.bfloat16)
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    e0, e1 = torch.cuda.Event(True), torch.cuda.Event(True)
    e0.record()
    for _ in range(10):
        b.copy_(a)
    e1.record()
    torch.cuda.synchronize()
    ms = e0.elapsed_time(e1) / 10
    del a, b
    return 2 * (2 << 30) / (ms / 1e3) / 1e12


def time_us(fn, iters, graph):
    """Mean microseconds per call: replayed from a CUDA graph when `graph`, else eager."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    run = fn
    if graph:
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn()
        run = g.replay
    for _ in range(3):
        run()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(True), torch.cuda.Event(True)
    e0.record()
    for _ in range(iters):
        run()
    e1.record()
    torch.cuda.synchronize()
    return e0.elapsed_time(e1) * 1e3 / iters


class Layer:
    def __init__(self, a, tokens, gen):
        h, m, E, k = a.hidden, a.inter, a.experts, a.topk
        dev, bf = "cuda", torch.bfloat16
        self.k, self.E = k, E
        self.x = torch.randn(tokens, h, device=dev, generator=gen).to(bf)
        self.wr = (torch.randn(E, h, device=dev, generator=gen) * a.std).to(bf)
        # HF's layout: gate_up [E, 2m, h], down [E, h, m]; grouped_mm takes them transposed
        # (column-major B), which is a view.
        self.w_gu = (torch.randn(E, 2 * m, h, device=dev, generator=gen) * a.std).to(bf)
        self.w_dn = (torch.randn(E, h, m, device=dev, generator=gen) * a.std).to(bf)
        self.ones = torch.ones(tokens * k, device=dev, dtype=torch.int32)
        self.out = torch.zeros(tokens, h, device=dev, dtype=torch.float32)
        self.route()  # for the experts-only timing: sorted rows and offsets, fixed

    def route(self):
        logits = F.linear(self.x, self.wr)
        w, ids = logits.float().softmax(-1).topk(self.k, dim=-1)
        w = w / w.sum(-1, keepdim=True)
        flat = ids.reshape(-1)
        order = flat.argsort(stable=True)
        counts = torch.zeros(self.E, device="cuda", dtype=torch.int32).scatter_add_(0, flat, self.ones)
        offs = counts.cumsum(0, dtype=torch.int32)
        tok = order // self.k
        self.xs, self.offs, self.tok, self.w_sorted = self.x[tok], offs, tok, w.reshape(-1)[order]
        return counts

    def experts(self):
        gu = torch._grouped_mm(self.xs, self.w_gu.transpose(-2, -1), offs=self.offs)
        g, u = gu.chunk(2, dim=-1)
        return torch._grouped_mm(F.silu(g) * u, self.w_dn.transpose(-2, -1), offs=self.offs)

    def layer(self):
        self.route()
        dn = self.experts() * self.w_sorted.unsqueeze(-1).to(torch.bfloat16)
        self.out.zero_()
        self.out.index_add_(0, self.tok, dn.float())
        return self.out


def read_conclave(path):
    """{tokens: (us, experts)} from `conclave bench moe` output."""
    rows, table = {}, False
    for line in open(path):
        if re.match(r"\s*tokens\s+us/layer", line):
            table = True
            continue
        m = re.match(r"\s*(\d+)\s+([\d.]+)\s+(\d+)\s", line) if table else None
        if m:
            rows[int(m.group(1))] = (float(m.group(2)), int(m.group(3)))
    return rows


def main():
    a = parse_args()
    if not torch.cuda.is_available() or not hasattr(torch, "_grouped_mm"):
        sys.exit("moe_grouped_mm.py: needs a CUDA GPU and torch._grouped_mm")
    out_dir = os.environ.get("OUT", ".")
    res = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "shape": vars(a), "copy_TBps_rw": copy_ceiling_tbps(), "rows": []}
    print(f"torch._grouped_mm MoE layer on {res['gpu']} (torch {res['torch']}), hidden {a.hidden}, "
          f"{a.experts} experts of {a.inter}, top-{a.topk}, bf16; copy {res['copy_TBps_rw']:.2f} TB/s")
    expert_bytes = 3 * a.hidden * a.inter * 2
    gen = torch.Generator(device="cuda").manual_seed(0)
    print(f"{'tokens':>7} {'layer us':>10} {'eager us':>10} {'experts us':>11} {'experts':>8} {'TB/s':>6}")
    with torch.no_grad():
        for t in [int(v) for v in a.tokens.split(",")]:
            L = Layer(a, t, gen)
            touched = int((L.route() > 0).sum())
            row = {"tokens": t, "experts": touched}
            try:
                row["layer_us"] = time_us(L.layer, a.iters, graph=True)
                row["graph"] = True
            except Exception as e:  # capture refused: time it eagerly and say so
                print(f"  tokens {t}: CUDA graph capture failed ({e}); eager only", file=sys.stderr)
                row["graph"] = False
            row["eager_us"] = time_us(L.layer, a.iters, graph=False)
            row.setdefault("layer_us", row["eager_us"])
            row["experts_us"] = time_us(L.experts, a.iters, graph=row["graph"])
            bytes_ = touched * expert_bytes + a.experts * a.hidden * 2
            row["TBps"] = bytes_ / (row["layer_us"] * 1e-6) / 1e12
            res["rows"].append(row)
            print(f"{t:>7} {row['layer_us']:>10.1f} {row['eager_us']:>10.1f} {row['experts_us']:>11.1f} "
                  f"{touched:>8} {row['TBps']:>6.2f}", flush=True)
            del L
            torch.cuda.empty_cache()
    if a.conclave:
        ours = read_conclave(a.conclave)
        print("\nconclave vs torch._grouped_mm, whole layer (router to combine), same card")
        print(f"{'tokens':>7} {'conclave us':>12} {'torch us':>10} {'ratio':>7}  issue #16 wants")
        for row in res["rows"]:
            t = row["tokens"]
            if t not in ours:
                continue
            ratio = ours[t][0] / row["layer_us"]
            row["conclave_us"], row["ratio"] = ours[t][0], ratio
            want = "<= 0.80" if t in (64, 128) else "< 1.00" if t in (1, 8) else "-"
            ok = (ratio <= 0.8) if t in (64, 128) else (ratio < 1.0) if t in (1, 8) else None
            verdict = "" if ok is None else ("met" if ok else "missed")
            print(f"{t:>7} {ours[t][0]:>12.1f} {row['layer_us']:>10.1f} {ratio:>7.2f}  {want} {verdict}")
    with open(os.path.join(out_dir, "moe_grouped_mm.json"), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
