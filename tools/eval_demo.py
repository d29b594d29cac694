#!/usr/bin/env python3
"""Evaluates a demo model (issue #21) through `conclave serve` on the CPU backend, over
the OpenAI chat API, on held-out conversations of tools/demo_data.py (templates and
numbers the training split never had):

  math      with the `math` tool offered: the share of answers that are a well-formed
            `math` call (goal >= 90 %); then, given what conclave's math tool returns
            for that call, the share of final answers that contain it (goal >= 80 %)
  code      asked for a small Python function without tools: the share of answers
            whose code (a ```python block, else the text from the first `def`) parses
            with ast and defines a function (goal >= 50 %)
  no tools  the same arithmetic questions without tools: tool calls emitted (goal 0)

Also printed, with no goal: the share of math calls whose expression computes what the
question asked (the model must copy the operands right), and for held-out agent
conversations (tools/demo_agents.py: the volume flow of examples/agents, tools never
trained on, the repository flow), replayed with their true tool results: the calls the
model makes as the data has them (name and arguments), and the final answers that
contain the result (the converted figure, the tool's result, the first path found).

Greedy decoding (temperature 0). Prints one line per measure and a JSON summary; with
--check, exits 1 when a goal is missed.

  eval_demo.py --conclave build/app/conclave [--model DIR] [--count 40] [--check]
"""
import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import demo_agents  # noqa: E402
import demo_data  # noqa: E402


def start_server(conclave, model, log, home=None):
    """`conclave serve` on a free port; without a model folder, the default (the demo
    model, copied into HOME as CONCLAVE_HOME on first use)."""
    cmd = [conclave, "--log-format", "text", "serve"]
    if model:
        cmd += ["--model", model]
    cmd += ["--name", "demo", "--state-store", "memory", "--port", "0", "--backend", "cpu"]
    env = dict(os.environ, CONCLAVE_HOME=home) if home else None
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("conclave serve exited: " + open(log.name).read())
        m = re.search(r"on http://[0-9.]+:([0-9]+)", open(log.name).read())
        if m:
            port = int(m.group(1))
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2)
                return proc, port
            except OSError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("conclave serve never became ready: " + open(log.name).read())


def chat(port, messages, tools=None, max_tokens=96):
    body = {"model": "demo", "messages": messages, "temperature": 0, "max_tokens": max_tokens}
    if tools:
        body["tools"] = tools
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())["choices"][0]["message"]


def math_value(expression):
    """What conclave's math tool prints for a + - * / expression of two integers, or
    None for anything else (the model wrote something the eval does not evaluate)."""
    m = re.fullmatch(r"\s*(-?\d+)\s*([-+*/])\s*(-?\d+)\s*", expression)
    if not m or (m.group(2) == "/" and int(m.group(3)) == 0):
        return None
    return demo_data.math_result(int(m.group(1)), m.group(2), int(m.group(3)))


def code_parses(text):
    """A Python function in the answer: a ```python block (else the text from its first
    `def`) that parses and defines a function. Prose that happens to parse does not count."""
    blocks = re.findall(r"```(?:python)?\n(.*?)```", text, re.S)
    if not blocks:
        at = text.find("def ")
        blocks = [text[at:]] if at >= 0 else []
    for code in blocks:
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        if any(isinstance(n, ast.FunctionDef) for n in ast.walk(tree)):
            return True
    return False


def replay(port, rec):
    """Walks a held-out agent conversation with its true tool results, asking the model at
    each assistant turn: (calls named and argued as the data has them, calls asked for,
    whether the final answer contains its key: the figure, result or first path quoted)."""
    msgs, tools = rec["messages"], rec.get("tools")
    right = asked = 0
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        got = chat(port, msgs[:i], tools, max_tokens=160)
        if m.get("tool_calls"):
            asked += 1
            want = m["tool_calls"][0]["function"]
            tc = got.get("tool_calls") or []
            try:
                ok = (len(tc) >= 1 and tc[0]["function"]["name"] == want["name"]
                      and same_args(json.loads(tc[0]["function"]["arguments"]),
                                    json.loads(want["arguments"])))
            except ValueError:
                ok = False
            right += ok
            continue
        key = agent_key(rec)
        return right, asked, bool(key) and key in (got.get("content") or "")
    return right, asked, False


def same_args(got, want):
    """Arguments equal up to spaces in strings ("2*3" is "2 * 3") and int/float spelling."""
    norm = lambda v: v.replace(" ", "") if isinstance(v, str) else v  # noqa: E731
    return isinstance(got, dict) and {k: norm(v) for k, v in got.items()} == {
        k: norm(v) for k, v in want.items()}


def agent_key(rec):
    """What a right final answer must contain: the last tool result's converted figure
    (volume), the tool's result (tool), or the first path of the search result (repo)."""
    last = [m for m in rec["messages"] if m["role"] == "tool"][-1]["content"]
    if rec["kind"] == "volume":
        return demo_agents.converted_figure(last)
    if rec["kind"] == "repo":
        return last.split(":")[0] if ":" in last else None
    return last


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conclave", required=True)
    ap.add_argument("--model", help="model folder (default: what `conclave serve` serves "
                    "with no --model, the demo model, copied into a temporary CONCLAVE_HOME)")
    ap.add_argument("--count", type=int, default=40, help="questions per measure")
    ap.add_argument("--agent-count", type=int, default=20,
                    help="held-out agent conversations per kind (volume, tool, repo)")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = ap.parse_args()

    home = None if args.model else tempfile.mkdtemp(prefix="conclave-eval-")
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as log:
        proc, port = start_server(args.conclave, args.model, log, home)
    try:
        math_recs = list(demo_data.conversations("heldout", args.count, args.seed, {"math"}))
        calls = answered = exact = 0
        for rec in math_recs:
            q = rec["messages"][0]
            wanted = json.loads(rec["messages"][1]["tool_calls"][0]["function"]["arguments"])
            msg = chat(port, [q], [demo_data.MATH_TOOL])
            tc = msg.get("tool_calls") or []
            expr = None
            if len(tc) == 1 and tc[0]["function"]["name"] == "math":
                try:
                    expr = json.loads(tc[0]["function"]["arguments"]).get("expression")
                except (ValueError, AttributeError):
                    expr = None
            if not isinstance(expr, str):
                continue
            calls += 1
            # The result conclave's math tool would give (an expression the eval cannot
            # evaluate gets the tool's error text, and the answer cannot contain a result).
            result = math_value(expr)
            exact += result is not None and result == math_value(wanted["expression"])
            tool_text = result if result is not None else "error: not evaluated by the eval"
            final = chat(port, [q, {"role": "assistant", "content": msg.get("content") or "",
                                    "tool_calls": tc},
                                {"role": "tool", "tool_call_id": tc[0].get("id", "call_0"),
                                 "content": tool_text}], [demo_data.MATH_TOOL])
            answered += result is not None and result in (final.get("content") or "")
        code_recs = list(demo_data.conversations("heldout", args.count, args.seed + 1, {"code"}))
        parsed = 0
        for rec in code_recs:
            msg = chat(port, [rec["messages"][0]], None, max_tokens=160)
            parsed += code_parses(msg.get("content") or "")
        stray = 0
        for rec in math_recs:
            msg = chat(port, [rec["messages"][0]], None)
            stray += bool(msg.get("tool_calls")) or "<tool_call>" in (msg.get("content") or "")
        agents = {}
        for kind in ("volume", "tool", "repo"):
            recs = list(demo_data.conversations("heldout", args.agent_count, args.seed + 2, {kind}))
            res = [replay(port, r) for r in recs]
            agents[kind] = (sum(r[0] for r in res), sum(r[1] for r in res),
                            sum(r[2] for r in res), len(recs))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        os.unlink(log.name)
        if home:
            shutil.rmtree(home, ignore_errors=True)

    n = len(math_recs)
    summary = {
        "math_call": calls / n, "math_answer": answered / n, "math_call_exact": exact / n,
        "code_parses": parsed / len(code_recs), "tool_calls_without_tools": stray,
        "questions": n,
    }
    print(f"math: a well-formed math call in {calls}/{n} ({100 * calls / n:.0f} %, goal 90 %)")
    print(f"math: the answer contains the tool's result in {answered}/{n} "
          f"({100 * answered / n:.0f} %, goal 80 %)")
    print(f"math: the call computes what was asked in {exact}/{n} ({100 * exact / n:.0f} %, "
          "no goal: the model copies the operands)")
    print(f"code: parses in {parsed}/{len(code_recs)} ({100 * parsed / len(code_recs):.0f} %, "
          f"goal 50 %)")
    print(f"no tools: {stray} answers with a tool call (goal 0)")
    what = {"volume": "volume (math, then convert_volume)",
            "tool": "made-up tools never trained on",
            "repo": "repository (list, search, answer citing a path)"}
    for kind, (right, asked, final, n) in agents.items():
        print(f"agents, {what[kind]}: {right}/{asked} calls right, {final}/{n} answers "
              "with the result (no goal)")
        summary[f"agent_{kind}_calls"] = right / max(1, asked)
        summary[f"agent_{kind}_answers"] = final / max(1, n)
    print(json.dumps(summary))
    if args.check:
        ok = (summary["math_call"] >= 0.9 and summary["math_answer"] >= 0.8
              and summary["code_parses"] >= 0.5 and stray == 0)
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
