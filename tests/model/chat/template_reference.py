#!/usr/bin/env python3
"""Reference renders of chat templates by Python's jinja2, as Hugging Face renders them.

Writes JSON lines for tests/model/chat/template_parity_test.cpp:

  conversations: {"body": <OpenAI chat request>, "expected": <prompt text>}
                 (or "error": <message> when jinja2 raised)
  snippets:      {"template": <Jinja text>, "context": {...}, "expected": <text>}
                 (or "error"), small templates that exercise one feature each.

The environment is transformers' (`_compile_jinja_template`): an
ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and loopcontrols, a
`tojson` that keeps key order and does not escape HTML, and `raise_exception`. The
request -> template variables step mirrors conclave's (docs/chat-templates.md): content
parts joined, null content as "", tool-call arguments parsed, tools as
{type, function: {name, description?, parameters}}, tools=None when there are none.

Usage:
  template_reference.py conversations --template FILE | --tokenizer-config FILE
                        --count N --seed S --out FILE
  template_reference.py snippets --out FILE
"""
import argparse
import json
import random
import sys

try:
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError:  # the C++ test reports itself skipped
    sys.stderr.write("python3-jinja2 is not installed\n")
    sys.exit(77)


def hf_environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def template_variables(body, special_tokens):
    messages = []
    for m in body["messages"]:
        role = "system" if m["role"] == "developer" else m["role"]
        c = m.get("content")
        content = "" if c is None else c if isinstance(c, str) else "".join(p["text"] for p in c)
        d = {"role": role, "content": content}
        if m.get("reasoning_content") is not None:
            d["reasoning_content"] = m["reasoning_content"]
        if m.get("tool_calls"):
            d["tool_calls"] = [{
                "id": tc.get("id", ""),
                "type": "function",
                "function": {"name": tc["function"]["name"],
                             "arguments": json.loads(tc["function"]["arguments"])},
            } for tc in m["tool_calls"]]
        if m.get("tool_call_id"):
            d["tool_call_id"] = m["tool_call_id"]
        if m.get("name"):
            d["name"] = m["name"]
        messages.append(d)
    tools = None
    if body.get("tools"):
        tools = []
        for t in body["tools"]:
            f = t["function"]
            fn = {"name": f["name"]}
            if "description" in f:
                fn["description"] = f["description"]
            fn["parameters"] = f.get("parameters", {})
            tools.append({"type": "function", "function": fn})
    variables = dict(messages=messages, tools=tools, documents=None,
                     add_generation_prompt=body.get("add_generation_prompt", True))
    variables.update(special_tokens)
    variables.update(body.get("chat_template_kwargs", {}))
    return variables


# ---- random conversations ----

WORDS = ["alpha", "beta", "gamma", "file", "path", "the", "a", "of", "run", "tests", "x",
         "déjà vu", "naïve", "日本語", "emoji 🎉", "<b>bold</b>", "a & b", "quote's", '"dq"',
         "tab\there", "back\\slash", "{{ not jinja }}", "{% raw %}", "</think>", "<think>",
         "<tool_call>", "</tool_response>", "  spaced  ", "\u00a0nbsp", "line\r\nbreak"]


def text(rng, lo=1, hi=12, newlines=True):
    n = rng.randint(lo, hi)
    parts = []
    for _ in range(n):
        parts.append(rng.choice(WORDS))
        if newlines and rng.random() < 0.12:
            parts.append("\n")
    s = " ".join(parts)
    if rng.random() < 0.2:
        s = rng.choice(["\n", " ", "\n\n", "  \n"]) + s
    if rng.random() < 0.2:
        s = s + rng.choice(["\n", " ", "\n\n"])
    return s


def json_scalar(rng):
    return rng.choice([rng.randint(-5, 1000), rng.choice([0.5, 1.0, 1e-07, 123456.789, -2.5, 1e+20]),
                       True, False, None, text(rng, 1, 4, False), ""])


def json_value(rng, depth=0):
    r = rng.random()
    if depth < 2 and r < 0.15:
        return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 2 and r < 0.3:
        return {rng.choice(["k", "key", "name", "items", "nested", "ü"]) + str(i): json_value(rng, depth + 1)
                for i in range(rng.randint(0, 3))}
    return json_scalar(rng)


PROP_NAMES = ["path", "content", "command", "timeout", "items", "keys", "query", "limit",
              "recursive", "options", "mode", "old_str", "new_str", "get", "values"]
TYPES = ["string", "integer", "number", "boolean", "array", "object", ["string", "null"]]


def schema(rng, depth=0):
    props = {}
    for name in rng.sample(PROP_NAMES, rng.randint(0, 5)):
        t = rng.choice(TYPES)
        p = {}
        if rng.random() < 0.9:
            p["type"] = t
        if rng.random() < 0.7:
            p["description"] = text(rng, 1, 8)
        if rng.random() < 0.2:
            p["enum"] = [text(rng, 1, 2, False) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.2:
            p["default"] = json_scalar(rng)
        if t == "array" and rng.random() < 0.6:
            p["items"] = {"type": rng.choice(["string", "integer"])}
        if t == "object" and depth < 1 and rng.random() < 0.5:
            p.update(schema(rng, depth + 1))
        if rng.random() < 0.1:
            p["minimum"] = rng.choice([0, 1.5, -10])
        props[name] = p
    s = {"type": "object", "properties": props}
    if props and rng.random() < 0.6:
        s["required"] = rng.sample(list(props), rng.randint(1, len(props)))
    if rng.random() < 0.2:
        s["additionalProperties"] = False
    return s


def tool(rng, i):
    f = {"name": rng.choice(["read_file", "write_file", "search", "run", "get_weather"]) + str(i)}
    if rng.random() < 0.8:
        f["description"] = text(rng, 1, 15)
    if rng.random() < 0.9:
        f["parameters"] = schema(rng)
    return {"type": "function", "function": f}


def arguments(rng, t):
    props = (t["function"].get("parameters") or {}).get("properties", {})
    args = {}
    for name in props:
        if rng.random() < 0.7:
            args[name] = json_value(rng)
    if rng.random() < 0.1:
        args["unknown_param"] = json_value(rng)
    return json.dumps(args, ensure_ascii=rng.random() < 0.5)


def content(rng):
    if rng.random() < 0.1:
        return [{"type": "text", "text": text(rng)} for _ in range(rng.randint(1, 3))]
    return text(rng)


def conversation(rng):
    tools = [tool(rng, i) for i in range(rng.randint(1, 4))] if rng.random() < 0.6 else []
    msgs = []
    if rng.random() < 0.6:
        msgs.append({"role": rng.choice(["system", "system", "developer"]), "content": text(rng)})
    for turn in range(rng.randint(1, 5)):
        if rng.random() < 0.1:
            u = "<tool_response>" + text(rng, 1, 3) + "</tool_response>"
        else:
            u = content(rng)
        msgs.append({"role": "user", "content": u})
        if rng.random() < 0.1:
            msgs.append({"role": "user", "content": text(rng)})
        if rng.random() < 0.05:
            msgs.append({"role": "system", "content": text(rng)})
        for step in range(rng.randint(0, 3)):
            a = {"role": "assistant"}
            r = rng.random()
            if r < 0.2:
                a["content"] = "<think>\n" + text(rng) + "\n</think>\n\n" + text(rng)
            elif r < 0.35:
                a["content"] = text(rng)
                a["reasoning_content"] = text(rng)
            else:
                a["content"] = content(rng)
            if tools and rng.random() < 0.6:
                calls = []
                for k in range(rng.randint(1, 3)):
                    t = rng.choice(tools)
                    calls.append({"id": "call_%d_%d" % (turn, k), "type": "function",
                                  "function": {"name": t["function"]["name"],
                                               "arguments": arguments(rng, t)}})
                a["tool_calls"] = calls
                if rng.random() < 0.4:
                    a["content"] = None
                msgs.append(a)
                for c in calls:
                    msgs.append({"role": "tool", "tool_call_id": c["id"], "content": text(rng)})
            else:
                msgs.append(a)
                break
    if rng.random() < 0.15 and msgs[-1]["role"] != "assistant":
        msgs.append({"role": "assistant", "content": text(rng)})
    body = {"model": "m", "messages": msgs}
    if tools:
        body["tools"] = tools
    body["add_generation_prompt"] = msgs[-1]["role"] != "assistant" or rng.random() < 0.3
    r = rng.random()
    if r < 0.35:
        body["chat_template_kwargs"] = {"enable_thinking": False}
    elif r < 0.6:
        body["chat_template_kwargs"] = {"enable_thinking": True}
    return body


def special_tokens(config):
    out = {}
    for name in ("bos_token", "eos_token", "pad_token", "unk_token"):
        v = config.get(name)
        if isinstance(v, dict):
            v = v.get("content")
        if isinstance(v, str):
            out[name] = v
    return out


def render_cases(template_text, config, count, seed):
    env = hf_environment()
    compiled = env.from_string(template_text)
    tokens = special_tokens(config)
    rng = random.Random(seed)
    for _ in range(count):
        body = conversation(rng)
        case = {"body": body}
        try:
            case["expected"] = compiled.render(**template_variables(body, tokens))
        except Exception as e:  # noqa: BLE001 - the C++ side must fail too
            case["error"] = "%s: %s" % (type(e).__name__, e)
        yield case


# ---- snippets: one feature each ----

SNIPPETS = [
    ("{{ x }}", {"x": 1.0}), ("{{ x }}", {"x": 1e-7}), ("{{ x }}", {"x": [1, "a", None, True]}),
    ("{{ x }}", {"x": {"a": [1.5, {"b": "c'd"}]}}), ("{{ x | tojson }}", {"x": {"b": 1, "a": "é<&>"}}),
    ("{{ x | tojson(indent=2) }}", {"x": {"a": [1, {"b": []}], "c": {}}}),
    ("{{ x | string }}", {"x": None}), ("{{ y }}|{{ y is defined }}", {}),
    ("{{ '%s' ~ 1 ~ none ~ true }}", {}), ("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ 7 / 2 }} {{ 2 ** 10 }}", {}),
    ("{{ 1 + 2 * 3 - 4 }} {{ (1 + 2) * 3 }} {{ 'a' * 3 }} {{ [1] + [2] }}", {}),
    ("{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}", {}),
    ("{{ 'ab' in 'cabd' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }}", {}),
    ("{{ x[1:] }} {{ x[::-1] }} {{ x[-2] }} {{ x[1:3] }} {{ s[::-1] }} {{ s[1:-1] }}", {"x": [1, 2, 3, 4], "s": "héllo"}),
    ("{% for a in x %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{% endfor %}", {"x": "abc"}),
    ("{% for a in x %}[{{ loop.previtem }}|{{ loop.nextitem }}]{% endfor %}", {"x": [1, 2, 3]}),
    ("{% for k, v in d | items %}{{ k }}={{ v }};{% endfor %}", {"d": {"z": 1, "a": 2}}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d.keys() | list }}{{ d.get('q', 5) }}", {"d": {"z": 1, "items": 2}}),
    ("{% for a in x if a > 1 %}{{ a }}{{ loop.index }}{% else %}none{% endfor %}", {"x": [1, 2, 3]}),
    ("{% for a in x %}{{ a }}{% else %}empty{% endfor %}", {"x": []}),
    ("{% for a in x %}{% if a == 2 %}{% continue %}{% endif %}{% if a == 4 %}{% break %}{% endif %}{{ a }}{% endfor %}", {"x": [1, 2, 3, 4, 5]}),
    ("{% set ns = namespace(n=0) %}{% for a in x %}{% set ns.n = ns.n + a %}{% endfor %}{{ ns.n }}", {"x": [1, 2, 3]}),
    ("{% set v = 1 %}{% for a in x %}{% set v = a %}{% endfor %}{{ v }}", {"x": [5]}),
    ("{% set v = 1 %}{% if true %}{% set v = 2 %}{% endif %}{{ v }}", {}),
    ("{% set a, b = [1, 2] %}{{ b }}{{ a }}", {}),
    ("{% set t %}  in block {{ 1 }} {% endset %}[{{ t }}]", {}),
    ("{% macro m(a, b='d') %}<{{ a }}{{ b }}>{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(b=3, a=4) }}", {}),
    ("{% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(3) }}", {}),
    ("{% filter upper %}abc {{ 'd' }}{% endfilter %}", {}),
    ("{% with a = 1 %}{{ a }}{% endwith %}{{ a is defined }}", {}),
    ("{{ x | length }} {{ x | first }} {{ x | last }} {{ x | join('-') }} {{ x | reverse | list }} {{ x | sort }}", {"x": [3, 1, 2]}),
    ("{{ x | sort(attribute='n') | map(attribute='n') | list }} {{ x | selectattr('n', 'gt', 1) | list | length }}", {"x": [{"n": 2}, {"n": 1}, {"n": 3}]}),
    ("{{ x | select('odd') | list }} {{ x | reject('even') | list }} {{ x | sum }} {{ x | max }} {{ x | min }} {{ x | unique | list }}", {"x": [1, 2, 3, 3]}),
    ("{{ x | map('upper') | join }} {{ x | map('trim') | list }}", {"x": [" a ", "b"]}),
    ("{{ s | trim }}|{{ s | upper }}|{{ s | lower }}|{{ s | title }}|{{ s | capitalize }}|{{ s | replace('a', 'b') }}|{{ s | wordcount }}", {"s": "  hello wOrld-and (more)  "}),
    ("{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip(' x') }}|{{ s.split() }}|{{ s.split(' ', 1) }}|{{ s.rsplit('l', 1) }}", {"s": " xhello world x "}),
    ("{{ s.startswith('ab') }} {{ s.endswith(('z', 'cd')) }} {{ s.find('c') }} {{ s.count('a') }} {{ s.upper() }} {{ s.title() }} {{ s.replace('a', 'x', 1) }}", {"s": "abcdab"}),
    ("{{ s.splitlines() }} {{ '-'.join(['a', 'b']) }} {{ s.isdigit() }} {{ '12'.isdigit() }}", {"s": "a\nb\r\nc"}),
    ("{{ x | default('d') }} {{ none | default('d') }} {{ '' | default('d', true) }} {{ x | d(1) }}", {}),
    ("{{ 3.7 | int }} {{ '42' | int }} {{ 'x' | int(5) }} {{ '2.5' | float }} {{ -3 | abs }} {{ 2.567 | round(2) }} {{ 2.5 | round }}", {}),
    ("{{ x | dictsort }} {{ x | items | list }}", {"x": {"b": 1, "A": 2}}),
    ("{{ 'a\\nb' | indent(2) }}|{{ 'a\\n\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(2, blank=true) }}", {}),
    ("{{ x is string }} {{ x is mapping }} {{ x is iterable }} {{ x is sequence }} {{ n is number }} {{ n is integer }} {{ f is float }} {{ n is none }} {{ b is boolean }}", {"x": "s", "n": 1, "f": 1.5, "b": False}),
    ("{{ d is mapping }} {{ d is sequence }} {{ u is iterable }} {{ u is sequence }} {{ 4 is divisibleby 2 }} {{ 3 is odd }} {{ 'ab' is lower }} {{ 1 is in [1] }}", {"d": {}}),
    ("{{ x is sameas none }} {{ true is true }} {{ 1 is true }} {{ x is not defined }}", {}),
    ("{{ 'yes' if x else 'no' }} {{ 'a' if false }}| {{ x or 'fallback' }} {{ 0 and 1 }} {{ not x }}", {"x": ""}),
    ("{{ range(3) | list }} {{ range(1, 10, 3) | list }} {{ dict(a=1, b=2) }} {{ namespace(a=1).a }}", {}),
    ("{%- if x %}\n  yes\n{%- else %}\n  no\n{%- endif %}\n", {"x": True}),
    ("  {% if x %}\n    a\n  {% endif %}\n  b {{ x }}  \n  {# comment #}\n  c\n", {"x": 1}),
    ("a  {%- if true -%}  b  {%- endif -%}  c\n{{- ' d ' -}}\ne", {}),
    ("{%+ if true %} kept{% endif %}\n{% raw %}{{ not }}{% endraw %}\n", {}),
    ("x\n{# a\nmulti-line comment #}\ny\n    {#- stripped -#}\n   z", {}),
    ("{{ 'a' 'b' }} {{ \"q\\\"uote\" }} {{ 'tab\\tend' }} {{ '\\u00e9' }}", {}),
    ("{% for m in msgs %}{{ m.role }}:{{ m['content'] }};{% endfor %}{{ msgs[0].missing is defined }}", {"msgs": [{"role": "u", "content": "c"}]}),
    ("{{ x.function.name if x.function is defined else x.name }}", {"x": {"name": "n"}}),
    ("{{ raise_exception('bad conversation') }}", {}),
    ("{{ x.y.z }}", {}),
    ("{{ 1 + 'a' }}", {}),
    ("{{ [1, 2] | tojson }} {{ 'é\"' | tojson }} {{ none | tojson }} {{ 1.5e300 * 1e10 }}", {}),
    ("{{ x | tojson }}", {"x": [1.0, 0.1, 100000000000000000.0, -0.0, 2.5e-05]}),
    ("{% for i in range(2) %}{% for j in range(2) %}{{ loop.index }}{{ i }}{% endfor %}{% endfor %}", {}),
    ("{% macro cyc() %}{% for a in 'abc' %}{{ loop.cycle('x', 'y') }}{% endfor %}{% endmacro %}{{ cyc() }}", {}),
    ("{{ x | selectattr('role', 'equalto', 'user') | map(attribute='c') | join(',') }}", {"x": [{"role": "user", "c": 1}, {"role": "a", "c": 2}, {"role": "user", "c": 3}]}),
    ("{{ 'ß'.upper() }} {{ 'ÉCOLE' | lower }} {{ 'ﬁ' | length }} {{ '日本'[1] }} {{ 'ﬁx' | upper }} {{ 'İ' | lower | length }}", {}),
]


def render_snippets():
    env = hf_environment()
    for source, context in SNIPPETS:
        case = {"template": source, "context": context}
        try:
            case["expected"] = env.from_string(source).render(**context)
        except Exception as e:  # noqa: BLE001
            case["error"] = "%s: %s" % (type(e).__name__, e)
        yield case


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["conversations", "snippets"])
    ap.add_argument("--template")
    ap.add_argument("--tokenizer-config")
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.mode == "snippets":
        cases = render_snippets()
    else:
        config = {}
        if a.tokenizer_config:
            with open(a.tokenizer_config, encoding="utf-8") as f:
                config = json.load(f)
        if a.template:
            with open(a.template, encoding="utf-8") as f:
                template_text = f.read()
        else:
            template_text = config["chat_template"]
        cases = render_cases(template_text, config, a.count, a.seed)
    with open(a.out, "w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
