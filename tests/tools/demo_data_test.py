#!/usr/bin/env python3
"""tools/demo_data.py (issue #21's training and held-out conversations): the same seed
gives the same bytes; train and heldout share no question template and no operand pair;
every tool call's arguments are what the tool needs and every math result is what
conclave's math tool prints; conversations render through the Qwen3-Coder template with
the calls in its XML format; tools/eval_demo.py's judges of code and math results. Exit 77 (skipped) without python3-jinja2."""
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import demo_data as dd  # noqa: E402


def operands(expression):
    """(a, op, b) of a generated math call's expression."""
    x, op, y = re.fullmatch(r"(\d+) ?([-+*/]) ?(\d+)", expression).groups()
    return int(x), op, int(y)


AGENT_KINDS = {"tool", "volume", "repo"}


def first_user(rec):
    return next(m["content"] for m in rec["messages"] if m["role"] == "user")


def check_agents(train, held):
    """tools/demo_agents.py's conversations: every call names an offered tool and gives
    exactly its required arguments; made-up tools of the held-out split are never in the
    train split; volume results are the product and its conversion, and the answer quotes
    the conversion; a repository answer cites paths that its search result holds."""
    import demo_agents as da
    offered = {"train": set(), "heldout": set()}
    for split, recs in (("train", train), ("heldout", held)):
        for rec in recs:
            if rec["kind"] not in AGENT_KINDS:
                continue
            specs = {t["function"]["name"]: t["function"] for t in rec["tools"]}
            if rec["kind"] == "tool":
                offered[split] |= set(specs)
            msgs = rec["messages"]
            for i, m in enumerate(msgs):
                for c in m.get("tool_calls", []):
                    fn = specs[c["function"]["name"]]
                    args = json.loads(c["function"]["arguments"])
                    assert set(args) == set(fn["parameters"]["required"]), (fn, args)
                    if fn["name"] == "math":
                        value = eval(args["expression"], {"__builtins__": {}})  # digits, . and *
                        assert msgs[i + 1]["content"] == da.js_num(float(value)), msgs[i + 1]
            if rec["kind"] == "volume":
                conv = [m for m in msgs if m["role"] == "tool"][-1]["content"]
                value, unit_from = conv.split(" = ")[0].split(" ")
                out, unit_to = conv.split(" = ")[1].split(" ")
                want = float(value) * da.VOLUME_UNITS[unit_from] / da.VOLUME_UNITS[unit_to]
                assert out == da.js_num(want), conv
                assert out in msgs[-1]["content"], (conv, msgs[-1])
            if rec["kind"] == "repo" and "(line " in msgs[-1]["content"]:
                found = [m for m in msgs if m["role"] == "tool"][-1]["content"]
                for path, line in re.findall(r"([^ ,]+) \(line (\d+)\)", msgs[-1]["content"]):
                    assert f"{path}:{line}: " in found, (path, line, found)
    held_names = {n for n in offered["heldout"]}
    assert held_names and not held_names & offered["train"], held_names & offered["train"]
    # The real-tree search is the examples' search: path:line: text, at most 30 lines.
    trees = da.source_trees()
    if trees:
        out = da.search_tree(trees[0], "def ")
        lines = out.split("\n")
        assert 1 <= len(lines) <= 30 and all(re.match(r"[^:]+:\d+: ", ln) for ln in lines), out
        assert da.search_tree(trees[0], "no such text \x01") == 'no line contains "no such text \\u0001"'


def run(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "demo_data.py"), *args],
                          check=True, capture_output=True, text=True).stdout


def main():
    a = run("--split", "train", "--count", "400", "--seed", "9")
    assert a == run("--split", "train", "--count", "400", "--seed", "9"), "not deterministic"
    assert a != run("--split", "train", "--count", "400", "--seed", "10"), "seed ignored"
    train = [json.loads(l) for l in a.splitlines()]
    held = [json.loads(l) for l in run("--split", "heldout", "--count", "400", "--seed", "9")
            .splitlines()]

    # No held-out question template (its fixed words) appears in a training question.
    def stems(templates):
        return [t.split("{x}")[0].strip() or t.split("{x}")[1].strip() for t in templates]
    held_stems = [s for s in stems(dd.HELDOUT_Q) if s]
    held_stems += [t.split("{d}")[0].strip() for t in dd.HELDOUT_CODE_Q]
    for rec in train:
        q = first_user(rec)
        for s in held_stems:
            assert s not in q, f"held-out template {s!r} in training question {q!r}"
    # Operand pairs are split by number_split; every math question of a split is its own.
    for split, recs in (("train", train), ("heldout", held)):
        for rec in recs:
            if rec["kind"] in AGENT_KINDS:
                continue
            for m in rec["messages"]:
                for c in m.get("tool_calls", []):
                    args = json.loads(c["function"]["arguments"])
                    if c["function"]["name"] == "math":
                        x, _, y = operands(args["expression"])
                        assert dd.number_split(x, y) == split, (split, args)
                    else:
                        assert c["function"]["name"] == "code_interpreter" and args["code"]
    # Each math result is the tool's text and the final answer states it.
    assert dd.math_result(7, "/", 2) == "3.5" and dd.math_result(8, "/", 2) == "4"
    assert dd.math_result(1, "/", 3) == "0.3333333333333333"
    for rec in train:
        if rec["kind"] != "math":
            continue
        _, call, tool, final = rec["messages"]
        expr = json.loads(call["tool_calls"][0]["function"]["arguments"])["expression"]
        assert tool["content"] == dd.math_result(*operands(expr))
        assert tool["content"] in final["content"]
    # tools/eval_demo.py's judges: prose that parses is not code, a broken def is not.
    import eval_demo as ev
    assert ev.code_parses("Sure:\n\n```python\ndef f(x):\n    return x\n```")
    assert ev.code_parses("def g(a):\n    return a + 1")
    assert not ev.code_parses("hello world") and not ev.code_parses("```python\nx = 1\n```")
    assert not ev.code_parses("```python\ndef f(:\n```")
    assert ev.math_value("12 * 3") == "36" and ev.math_value("7/2") == "3.5"
    assert ev.math_value("sqrt(2)") is None and ev.math_value("1/0") is None
    kinds = {r["kind"] for r in train}
    assert kinds == set(dd.WEIGHTS), kinds
    check_agents(train, held)
    # Without tools no conversation calls one.
    for rec in train:
        if "tools" not in rec:
            assert all("tool_calls" not in m for m in rec["messages"]), rec
    # Rendered as the model will see it (skipped without jinja2).
    try:
        import jinja2  # noqa: F401
    except ImportError:
        print("python3-jinja2 is not installed: render not checked")
        sys.exit(77)
    text = dd.render(next(r for r in train if r["kind"] == "math_par"))
    assert text.count("<tool_call>\n<function=math>\n<parameter=expression>\n") == 2, text
    assert text.count("<tool_response>\n") == 2 and text.endswith("<|im_end|>\n"), text
    print(f"ok: {len(train)} train and {len(held)} held-out conversations")


if __name__ == "__main__":
    main()
