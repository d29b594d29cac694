#!/usr/bin/env python3
"""Trains conclave's demo model (issue #21) from scratch on one GPU, offline.

A small Qwen3MoeForCausalLM with Qwen3's real vocabulary (151,936 entries, tied input
and output embeddings: at hidden size 64 they are ~19 MB of the ~21 MB of bf16 weights),
trained on:

  * conversations from tools/demo_data.py (the train split) rendered by the Qwen3-Coder
    chat template, the loss on the assistant's tokens only (its text, tool calls and
    <|im_end|>);
  * Python source: the standard library of the Python running this script (and any
    extra folders given with --text), the loss on every token.

Seeded (torch, Python and data order), so a rerun on the same software gives the same
weights up to GPU nondeterminism in the reductions. Writes to --out: model.safetensors,
config.json, generation_config.json, the tokenizer files, loss.csv and loss.svg (the
curve), and prints a quick greedy check on held-out questions (HF generate) so a run
that did not learn is seen at once. tools/eval_demo.py is the real evaluation (through
conclave, on the CPU).

  python3 tools/train_demo.py --out /tmp/demo-model [--steps 3000] [--batch 32]

Needs torch, transformers (>= 4.51, Qwen3-MoE), tokenizers and jinja2.
"""
import argparse
import glob
import json
import math
import os
import random
import shutil
import sys
import sysconfig
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, HERE)
import demo_data  # noqa: E402

IM_END, EOT = 151645, 151643


def model_config(args):
    from transformers import Qwen3MoeConfig
    return Qwen3MoeConfig(
        vocab_size=151936, hidden_size=args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32,
        intermediate_size=4 * args.hidden, moe_intermediate_size=2 * args.hidden,
        num_experts=args.experts, num_experts_per_tok=2, decoder_sparse_step=1,
        mlp_only_layers=[], norm_topk_prob=True, max_position_embeddings=4096,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
        router_aux_loss_coef=0.01, output_router_logits=False, use_sliding_window=False,
        bos_token_id=EOT, eos_token_id=IM_END, pad_token_id=EOT, torch_dtype="bfloat16")


def chat_rows(tok, count, seed, max_len, weights):
    """(ids, labels) per conversation (kinds drawn by `weights`, demo_data.conversations):
    labels -100 outside the assistant's turns."""
    from multiprocessing import Pool
    prefix = tok.encode("<|im_start|>assistant\n", add_special_tokens=False).ids
    recs = list(demo_data.conversations("train", count, seed, set(demo_data.WEIGHTS), weights))
    with Pool(min(16, os.cpu_count() or 1)) as pool:  # the template renders are the slow part
        texts = pool.map(demo_data.render, recs, chunksize=256)
    rows = []
    for enc in tok.encode_batch(texts, add_special_tokens=False):
        ids = enc.ids
        if len(ids) > max_len:
            continue
        labels = [-100] * len(ids)
        i = 0
        while i < len(ids):
            if ids[i:i + len(prefix)] == prefix:
                j = i + len(prefix)
                while j < len(ids) and ids[j] != IM_END:
                    labels[j] = ids[j]
                    j += 1
                if j < len(ids):
                    labels[j] = IM_END
                i = j
            i += 1
        rows.append((ids, labels))
    return rows


def text_rows(tok, folders, max_len, max_tokens, seed):
    """Source files concatenated (<|endoftext|> between files) and cut into rows."""
    files = []
    for folder in folders:
        for pattern in ("**/*.py", "**/*.txt", "**/*.rst", "**/*.md"):
            files += glob.glob(os.path.join(folder, pattern), recursive=True)
    files = sorted(f for f in set(files) if "site-packages" not in f and "dist-packages" not in f)
    random.Random(seed).shuffle(files)
    stream, rows = [], []
    for f in files:
        try:
            with open(f, encoding="utf-8") as fh:
                text = fh.read()
        except (UnicodeDecodeError, OSError):
            continue
        if len(text) > 200000:
            continue
        stream += tok.encode(text, add_special_tokens=False).ids + [EOT]
        while len(stream) >= max_len:
            rows.append((stream[:max_len], stream[:max_len]))
            stream = stream[max_len:]
        if len(rows) * max_len >= max_tokens:
            break
    return rows


def batches(rows, batch, rng, pad):
    import torch
    order = list(range(len(rows)))
    while True:
        rng.shuffle(order)
        for i in range(0, len(order) - batch + 1, batch):
            part = [rows[j] for j in order[i:i + batch]]
            n = max(len(ids) for ids, _ in part)
            ids = torch.full((batch, n), pad, dtype=torch.long)
            lab = torch.full((batch, n), -100, dtype=torch.long)
            for r, (a, b) in enumerate(part):
                ids[r, :len(a)] = torch.tensor(a)
                lab[r, :len(b)] = torch.tensor(b)
            yield ids, lab


def loss_of(model, ids, labels):
    """Next-token cross entropy on labelled positions only (the vocabulary is large: the
    logits of unlabelled positions are never made), plus the router balance loss."""
    import torch
    import torch.nn.functional as F
    try:
        out = model.model(input_ids=ids, output_router_logits=True)
    except TypeError:  # a transformers that takes no such argument
        out = model.model(input_ids=ids)
    h = out.last_hidden_state[:, :-1]
    target = labels[:, 1:]
    keep = target != -100
    logits = model.lm_head(h[keep]).float()
    loss = F.cross_entropy(logits, target[keep])
    aux = torch.zeros((), device=ids.device)
    rl = getattr(out, "router_logits", None)
    if rl:
        try:
            from transformers.models.qwen3_moe.modeling_qwen3_moe import load_balancing_loss_func
            aux = load_balancing_loss_func(rl, model.config.num_experts,
                                           model.config.num_experts_per_tok)
        except Exception:  # an older or newer signature: train without it
            pass
    return loss, aux


def write_svg(points, path):
    """The loss curve as a small SVG (no plotting library needed)."""
    w, h, m = 640, 360, 48
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = 0, max(xs)
    y0, y1 = 0.0, max(ys)
    sx = lambda x: m + (w - 2 * m) * (x - x0) / max(1, x1 - x0)  # noqa: E731
    sy = lambda y: h - m - (h - 2 * m) * (y - y0) / max(1e-9, y1 - y0)  # noqa: E731
    line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    ticks = "".join(
        f'<text x="{m - 6}" y="{sy(v):.1f}" text-anchor="end" font-size="11">{v:.1f}</text>'
        for v in [y1 * i / 4 for i in range(5)])
    with open(path, "w") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}">'
                f'<rect width="{w}" height="{h}" fill="white"/>'
                f'<text x="{w / 2}" y="24" text-anchor="middle" font-size="14">'
                f'demo model: training loss (assistant tokens and source text)</text>'
                f'<line x1="{m}" y1="{h - m}" x2="{w - m}" y2="{h - m}" stroke="black"/>'
                f'<line x1="{m}" y1="{m}" x2="{m}" y2="{h - m}" stroke="black"/>{ticks}'
                f'<text x="{w / 2}" y="{h - 12}" text-anchor="middle" font-size="12">'
                f'step (of {x1})</text>'
                f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{line}"/></svg>')


def greedy(model, tok, device, rec, upto, max_new=40):
    """The model's greedy continuation of rec's first `upto` messages."""
    import torch
    prompt = demo_data.render({"messages": rec["messages"][:upto], "tools": rec.get("tools")})
    prompt += "<|im_start|>assistant\n"
    ids = torch.tensor([tok.encode(prompt, add_special_tokens=False).ids], device=device)
    out = model.generate(ids, max_new_tokens=max_new, do_sample=False, eos_token_id=IM_END,
                         pad_token_id=EOT)
    return tok.decode(out[0, ids.shape[1]:].tolist(), skip_special_tokens=False)


def quick_check(model, tok, device, n=40):
    """Greedy answers to held-out questions (HF generate): math questions with `math`
    offered that call it, and agent questions whose first call names the right tool (made-up
    tools never trained on, the volume and repository flows)."""
    recs = list(demo_data.conversations("heldout", n, 7, {"math"}))
    calls = sum("<function=math>\n<parameter=expression>\n" in
                greedy(model, tok, device, {"messages": r["messages"][:1],
                                            "tools": [demo_data.MATH_TOOL]}, 1) for r in recs)
    print(f"quick check: {calls}/{len(recs)} held-out math questions answered with a math call",
          flush=True)
    for kind in ("tool", "volume", "repo"):
        recs = list(demo_data.conversations("heldout", n // 2, 8, {kind}))
        right = 0
        for r in recs:
            first = next(i for i, m in enumerate(r["messages"]) if m["role"] == "user") + 1
            name = r["messages"][first]["tool_calls"][0]["function"]["name"]
            right += f"<function={name}>" in greedy(model, tok, device, r, first)
        print(f"quick check: {right}/{len(recs)} held-out {kind} questions: the right first call",
              flush=True)
    return calls / max(1, n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", default=os.path.join(ROOT, "third_party", "qwen3-tokenizer"))
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--max-len", type=int, default=2048,
                    help="longest conversation in tokens (longer ones are left out)")
    ap.add_argument("--text-len", type=int, default=1024, help="tokens per source-text row")
    ap.add_argument("--conversations", type=int, default=60000)
    ap.add_argument("--text", action="append", default=[],
                    help="more folders of source/documentation text (default: Python's stdlib)")
    ap.add_argument("--text-tokens", type=int, default=20_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--init", help="a model folder to go on training from (default: from scratch)")
    ap.add_argument("--weights", default="",
                    help="conversation kinds' weights to change, e.g. repo=30,tool=20")
    ap.add_argument("--text-share", type=float, default=0.5,
                    help="the share of each batch that is source text")
    ap.add_argument("--max-minutes", type=float, default=0,
                    help="stop (and save) after this long even if --steps are not done; the "
                         "cosine schedule then follows the clock (0: no limit)")
    args = ap.parse_args()
    weights = {}
    for kv in filter(None, args.weights.split(",")):
        k, v = kv.split("=")
        if k not in demo_data.WEIGHTS:
            ap.error(f"--weights: unknown kind {k}")
        weights[k] = float(v)

    import torch
    from tokenizers import Tokenizer
    from transformers import Qwen3MoeForCausalLM

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = Tokenizer.from_file(os.path.join(args.tokenizer, "tokenizer.json"))
    t0 = time.time()
    chat = chat_rows(tok, args.conversations, args.seed, args.max_len, weights)
    folders = [sysconfig.get_paths()["stdlib"]] + args.text
    text = text_rows(tok, folders, args.text_len, args.text_tokens, args.seed)
    print(f"data: {len(chat)} conversations, {len(text)} text rows of {args.text_len} "
          f"({time.time() - t0:.0f} s)", flush=True)

    if args.init:  # go on from a trained model (its config; a new schedule and data order)
        model = Qwen3MoeForCausalLM.from_pretrained(args.init, torch_dtype=torch.float32).to(device)
        cfg = model.config
    else:
        cfg = model_config(args)
        model = Qwen3MoeForCausalLM(cfg).to(device)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params / 1e6:.2f} M parameters on {device}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    warm = max(1, args.steps // 20)
    t_start = [time.time()]

    def progress(s):
        # With --max-minutes the cosine follows whichever runs out first, steps or time, so
        # a run cut short by the clock still ends at a low learning rate.
        p = s / args.steps
        if args.max_minutes > 0:
            p = max(p, (time.time() - t_start[0]) / (60 * args.max_minutes))
        return min(1.0, p)

    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * progress(s))))
    rng = random.Random(args.seed)
    half = max(1, round(args.batch * (1 - args.text_share)))
    chat_it = batches(chat, half, rng, EOT)
    text_it = batches(text, args.batch - half, rng, EOT) if text else None
    curve = []
    t0 = t_start[0] = time.time()
    for step in range(args.steps):
        total = torch.zeros((), device=device)
        for it in (chat_it, text_it):
            if it is None:
                continue
            ids, lab = next(it)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
                loss, aux = loss_of(model, ids.to(device), lab.to(device))
            total = total + loss + cfg.router_aux_loss_coef * aux
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        late = args.max_minutes > 0 and time.time() - t0 > 60 * args.max_minutes
        if step % 25 == 0 or step == args.steps - 1 or late:
            curve.append((step, total.item()))
            print(f"step {step} loss {total.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
        if late:
            print(f"stopped at step {step} of {args.steps}: --max-minutes reached", flush=True)
            break

    os.makedirs(args.out, exist_ok=True)
    model.eval()
    quick_check(model, tok, device)
    model.to(torch.bfloat16).save_pretrained(args.out, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "LICENSE"):
        if os.path.exists(os.path.join(args.tokenizer, f)):
            shutil.copy(os.path.join(args.tokenizer, f), args.out)
    with open(os.path.join(args.out, "loss.csv"), "w") as f:
        f.write("step,loss\n" + "".join(f"{s},{l:.4f}\n" for s, l in curve))
    write_svg(curve, os.path.join(args.out, "loss.svg"))
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump({"args": vars(args), "parameters": params, "seconds": time.time() - t0,
                   "conversations": len(chat), "text_rows": len(text),
                   "torch": torch.__version__}, f, indent=1)
    print(f"saved to {args.out}", flush=True)


if __name__ == "__main__":
    main()
