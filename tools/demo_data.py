#!/usr/bin/env python3
"""Synthetic conversations for the demo model (issue #21), in OpenAI chat format.

Each line of the output is one conversation: {"kind", "messages", "tools"?}. Kinds:

  math        a `math` tool call for an arithmetic question, its result, an answer
              that states the result
  math_multi  two questions in one conversation (a second turn after the first answer)
  math_par    two questions in one message: two parallel `math` calls, two results
  code        a request for a small Python function, answered with the code
  interp      a question answered by running Python through `code_interpreter`, the
              answer quoting the program's output
  plain       no tools: arithmetic answered directly, greetings, code without tools
  tool, volume, repo
              agent conversations (tools/demo_agents.py): one of many made-up tools picked
              by its name and description; the examples/agents flows (math then
              convert_volume; list_files, search, answer citing the paths)

The tool results are what conclave's tools return (toolkit/math_tool.cpp,
toolkit/sandbox.cpp), so the model learns the text it will see when served.

Splits. `train` and `heldout` never share a question template, and their numbers come
from disjoint sets (a hash of the operands), so tools/eval_demo.py asks questions the
training data never contained. Same seed, same output, byte for byte.

  demo_data.py --split train --count 200000 --seed 1 --out train.jsonl
  demo_data.py --split heldout --count 500 --seed 2 --out heldout.jsonl [--kinds math,code]
  demo_data.py --render --count 3     (prints conversations rendered by the Qwen3-Coder
                                       template, as the training script feeds them)
"""
import argparse
import functools
import json
import math
import os
import random
import sys

from demo_tools import INTERP_TOOL, MATH_TOOL, call  # noqa: E402,F401

import demo_agents  # noqa: E402

# How each operation is written ({a} and {b} the operands), then question templates
# around it ({x}). The held-out templates are phrased differently from every training one.
OPS = {
    "+": ["sum of {a} and {b}", "{a} plus {b}", "{a} + {b}"],
    "-": ["{a} minus {b}", "{a} - {b}", "difference between {a} and {b}"],
    "*": ["{a} times {b}", "{a} * {b}", "product of {a} and {b}"],
    "/": ["{a} divided by {b}", "{a} / {b}", "quotient of {a} and {b}"],
}
TRAIN_Q = [
    "What is {x}?", "what is {x}", "Compute {x}.", "Calculate {x}.", "Please calculate {x}.",
    "Can you work out {x}?", "How much is {x}?", "Find {x}.", "I need {x}.",
    "Quick question: what's {x}?", "Tell me {x}.", "Evaluate {x}.", "{x} = ?",
    "Could you compute {x} for me?", "Work out {x}, please.", "What do you get for {x}?",
    "Help me with this: {x}", "Solve {x}.", "What's the value of {x}?", "Give me {x}.",
]
HELDOUT_Q = [
    "Determine {x}.", "Would you figure out {x}?", "I'd like to know {x}.",
    "Result of {x}?", "Kindly tell me {x}, thanks.", "Need a number: {x}",
]
TRAIN_ANS = [
    "{x} = {r}.", "The answer is {r}.", "{x} is {r}.", "That comes to {r}.",
    "It equals {r}.", "The result is {r}.", "{r}.", "You get {r}.",
]
PLAIN_TOPICS = [
    ("Hello!", "Hello! How can I help you today?"),
    ("Hi, who are you?", "I am a small demo model served by conclave."),
    ("Thanks!", "You're welcome."),
    ("What can you do?", "I can answer simple questions, call tools such as math, and write "
     "small Python functions."),
    ("Good morning.", "Good morning! What would you like to do?"),
]

# Small Python functions: (description, name, params, body lines). Names and
# descriptions vary; the eval only checks that the code parses.
FUNCS = [
    ("returns the sum of a list of numbers", "sum_list", "numbers",
     ["total = 0", "for n in numbers:", "    total += n", "return total"]),
    ("returns the largest number in a list", "largest", "numbers",
     ["best = numbers[0]", "for n in numbers[1:]:", "    if n > best:", "        best = n",
      "return best"]),
    ("reverses a string", "reverse_string", "text", ["return text[::-1]"]),
    ("checks whether a number is even", "is_even", "n", ["return n % 2 == 0"]),
    ("computes the factorial of n", "factorial", "n",
     ["result = 1", "for i in range(2, n + 1):", "    result *= i", "return result"]),
    ("returns the n-th Fibonacci number", "fibonacci", "n",
     ["a, b = 0, 1", "for _ in range(n):", "    a, b = b, a + b", "return a"]),
    ("counts the vowels in a string", "count_vowels", "text",
     ["return sum(1 for c in text.lower() if c in 'aeiou')"]),
    ("checks whether a string is a palindrome", "is_palindrome", "text",
     ["cleaned = ''.join(c.lower() for c in text if c.isalnum())",
      "return cleaned == cleaned[::-1]"]),
    ("returns the average of a list of numbers", "average", "numbers",
     ["if not numbers:", "    return 0.0", "return sum(numbers) / len(numbers)"]),
    ("removes duplicates from a list, keeping the order", "unique", "items",
     ["seen = set()", "out = []", "for x in items:", "    if x not in seen:",
      "        seen.add(x)", "        out.append(x)", "return out"]),
    ("checks whether a number is prime", "is_prime", "n",
     ["if n < 2:", "    return False", "i = 2", "while i * i <= n:", "    if n % i == 0:",
      "        return False", "    i += 1", "return True"]),
    ("converts Celsius to Fahrenheit", "celsius_to_fahrenheit", "c", ["return c * 9 / 5 + 32"]),
    ("counts the words in a sentence", "count_words", "sentence",
     ["return len(sentence.split())"]),
    ("returns the squares of a list of numbers", "squares", "numbers",
     ["return [n * n for n in numbers]"]),
    ("returns the greatest common divisor of two numbers", "gcd", "a, b",
     ["while b:", "    a, b = b, a % b", "return a"]),
    ("flattens a list of lists", "flatten", "lists",
     ["return [x for sub in lists for x in sub]"]),
    ("capitalizes every word of a string", "title_case", "text",
     ["return ' '.join(w.capitalize() for w in text.split())"]),
    ("returns the smallest number in a list", "smallest", "numbers",
     ["return min(numbers)"]),
    ("counts how often each item appears in a list", "count_items", "items",
     ["counts = {}", "for x in items:", "    counts[x] = counts.get(x, 0) + 1",
      "return counts"]),
    ("sorts a list of words by length", "sort_by_length", "words",
     ["return sorted(words, key=len)"]),
]
TRAIN_CODE_Q = [
    "Write a Python function that {d}.", "Write a function that {d}.",
    "Can you write Python code that {d}?", "I need a Python function which {d}.",
    "Implement a function in Python that {d}.", "Show me a Python function that {d}.",
    "Please write a function `{name}` that {d}.", "Python: a function that {d}.",
]
HELDOUT_CODE_Q = [
    "Give me some Python which {d}.", "How would I code a function that {d}?",
    "Create a Python helper that {d}.",
]
TRAIN_CODE_A = ["Here is a function that {d}:", "Sure:", "Here you go:", "This does it:"]

# code_interpreter tasks: (question, program, how the output is stated).
def interp_tasks(rng, heldout):
    lo, hi = (30, 60) if heldout else (2, 29)
    n = rng.randint(lo, hi)
    k = rng.randint(2, 9)
    tasks = [
        (f"Use Python to add up the squares of 1 to {n}.",
         f"print(sum(i * i for i in range(1, {n} + 1)))",
         str(sum(i * i for i in range(1, n + 1)))),
        (f"Run some code to find {k} to the power of {n % 12 + 2}.",
         f"print({k} ** {n % 12 + 2})", str(k ** (n % 12 + 2))),
        (f"With Python, how many multiples of {k} are there below {n * 10}?",
         f"print(len([i for i in range({n * 10}) if i % {k} == 0]))",
         str(len([i for i in range(n * 10) if i % k == 0]))),
        (f"Compute the factorial of {n % 15 + 3} by running code.",
         f"import math\nprint(math.factorial({n % 15 + 3}))",
         str(math.factorial(n % 15 + 3))),
    ]
    return rng.choice(tasks)


def interp_result(stdout):
    # conclave's code_interpreter result text (toolkit/sandbox.cpp describe()).
    return f"exit status 0\n--- stdout ---\n{stdout}\n\n--- stderr ---\n"


def number_split(a, b):
    """Which split an operand pair belongs to: 'heldout' for one pair in 7."""
    return "heldout" if (a * 31 + b * 17) % 7 == 3 else "train"


def math_result(a, op, b):
    # As toolkit/math_tool.cpp formats it: integers without a point, else the shortest
    # decimal that reads back the same double (fmt's "{}", Python's repr).
    v = {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[op]
    if float(v) == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


def pick_operands(rng, split):
    while True:
        digits = rng.choice([1, 1, 2, 2, 2, 3, 3, 4])
        a = rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10 ** digits - 1)
        b = rng.randint(1, 10 ** rng.choice([1, 2, 2, 3]) - 1)
        if number_split(a, b) == split:
            return a, b


def math_question(rng, split):
    a, b = pick_operands(rng, split)
    op = rng.choice(list(OPS))
    x = rng.choice(OPS[op]).format(a=a, b=b)
    q = rng.choice(TRAIN_Q if split == "train" else HELDOUT_Q).format(x=x)
    expr = f"{a}{op}{b}" if rng.random() < 0.5 else f"{a} {op} {b}"
    return q, x, expr, math_result(a, op, b)


def answer(rng, x, r):
    return rng.choice(TRAIN_ANS).format(x=x, r=r)


def conv_math(rng, split):
    q, x, expr, r = math_question(rng, split)
    return [
        {"role": "user", "content": q},
        {"role": "assistant", "content": "", "tool_calls": [call("math", {"expression": expr})]},
        {"role": "tool", "content": r},
        {"role": "assistant", "content": answer(rng, x, r)},
    ]


def conv_math_multi(rng, split):
    return conv_math(rng, split) + conv_math(rng, split)


def conv_math_par(rng, split):
    q1, x1, e1, r1 = math_question(rng, split)
    q2, x2, e2, r2 = math_question(rng, split)
    joiner = rng.choice([" Also, ", " And ", " Then: "])
    return [
        {"role": "user", "content": q1 + joiner + q2[0].lower() + q2[1:]},
        {"role": "assistant", "content": "",
         "tool_calls": [call("math", {"expression": e1}), call("math", {"expression": e2})]},
        {"role": "tool", "content": r1},
        {"role": "tool", "content": r2},
        {"role": "assistant", "content": f"{x1} = {r1}, and {x2} = {r2}."},
    ]


def code_block(name, params, body):
    return "```python\ndef {}({}):\n{}\n```".format(
        name, params, "\n".join("    " + line for line in body))


def conv_code(rng, split):
    d, name, params, body = rng.choice(FUNCS)
    q = rng.choice(TRAIN_CODE_Q if split == "train" else HELDOUT_CODE_Q).format(d=d, name=name)
    lead = rng.choice(TRAIN_CODE_A).format(d=d)
    return [{"role": "user", "content": q},
            {"role": "assistant", "content": lead + "\n\n" + code_block(name, params, body)}]


def conv_interp(rng, split):
    q, program, out = interp_tasks(rng, split == "heldout")
    return [
        {"role": "user", "content": q},
        {"role": "assistant", "content": "",
         "tool_calls": [call("code_interpreter", {"code": program})]},
        {"role": "tool", "content": interp_result(out)},
        {"role": "assistant", "content": rng.choice(
            ["The program printed {o}.", "The answer is {o}.", "It comes out as {o}."]).format(o=out)},
    ]


def conv_plain(rng, split):
    r = rng.random()
    if r < 0.4:
        q, x, _, res = math_question(rng, split)
        return [{"role": "user", "content": q}, {"role": "assistant", "content": answer(rng, x, res)}]
    if r < 0.7:
        return conv_code(rng, split)
    q, a = rng.choice(PLAIN_TOPICS)
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


KINDS = {
    "math": (conv_math, [MATH_TOOL]),
    "math_multi": (conv_math_multi, [MATH_TOOL]),
    "math_par": (conv_math_par, [MATH_TOOL]),
    "code": (conv_code, None),
    "interp": (conv_interp, [INTERP_TOOL]),
    "plain": (conv_plain, None),
    # tools/demo_agents.py: these make their own tool lists
    "tool": (demo_agents.conv_tool, "own"),
    "volume": (demo_agents.conv_volume, "own"),
    "repo": (demo_agents.conv_repo, "own"),
}
WEIGHTS = {"math": 36, "math_multi": 8, "math_par": 8, "code": 20, "interp": 12, "plain": 22,
           "tool": 16, "volume": 10, "repo": 12}


def conversations(split, count, seed, kinds, weights=None):
    """`count` conversations of `kinds`, drawn by WEIGHTS (or `weights`: kind -> weight,
    the kinds it leaves out at their WEIGHTS)."""
    rng = random.Random(seed)
    table = {**WEIGHTS, **(weights or {})}
    names = [k for k in WEIGHTS if k in kinds]
    draw = [table[k] for k in names]
    for _ in range(count):
        kind = rng.choices(names, draw)[0]
        make, tools = KINDS[kind]
        if tools == "own":
            messages, own = make(rng, split)
            yield {"kind": kind, "messages": messages, "tools": own}
            continue
        rec = {"kind": kind, "messages": make(rng, split)}
        # Tools offered beside the one a conversation uses (both, half the time), and
        # code questions sometimes asked with tools that must not be called.
        if tools is not None:
            rec["tools"] = [MATH_TOOL, INTERP_TOOL] if rng.random() < 0.5 else tools
        elif kind == "code" and rng.random() < 0.3:
            rec["tools"] = [MATH_TOOL]
        yield rec


@functools.lru_cache(maxsize=1)
def coder_template():
    """The built-in Qwen3-Coder template, compiled once, in transformers' jinja2 setup."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "tests", "model", "chat"))
    import template_reference as tr  # noqa: E402 (jinja2 environment of transformers)
    with open(os.path.join(here, "..", "model", "chat", "templates", "qwen3_coder.jinja")) as f:
        return tr.hf_environment().from_string(f.read())


def render(rec):
    """The conversation as the training text: the Qwen3-Coder template's render."""
    tpl = coder_template()
    messages = []
    for m in rec["messages"]:
        d = dict(m)
        if "tool_calls" in d:
            d["tool_calls"] = [{"type": "function", "function": {
                "name": c["function"]["name"],
                "arguments": json.loads(c["function"]["arguments"])}} for c in d["tool_calls"]]
        messages.append(d)
    return tpl.render(messages=messages, tools=rec.get("tools"), add_generation_prompt=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=["train", "heldout"], default="train")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kinds", default=",".join(WEIGHTS), help="comma-separated kinds")
    ap.add_argument("--out", default="-")
    ap.add_argument("--render", action="store_true", help="print rendered text instead")
    args = ap.parse_args()
    kinds = set(args.kinds.split(","))
    bad = kinds - set(WEIGHTS)
    if bad:
        ap.error("unknown kinds: " + ", ".join(sorted(bad)))
    out = sys.stdout if args.out == "-" else open(args.out, "w")
    for rec in conversations(args.split, args.count, args.seed, kinds):
        if args.render:
            out.write(render(rec) + "\n" + "=" * 60 + "\n")
        else:
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
