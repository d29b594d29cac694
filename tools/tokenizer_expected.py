#!/usr/bin/env python3
"""Writes the reference ids the tokenizer tests compare against, using Hugging Face
`tokenizers` (pip install tokenizers).

Usage:
  tools/tokenizer_expected.py [TOKENIZER_JSON [CORPUS [OUT]]]
defaults: third_party/qwen3-tokenizer/tokenizer.json, tests/data/tokenizer/corpus.json,
          tests/data/tokenizer/expected_ids.json

For every corpus string the output holds:
  ids             Tokenizer.encode(s, add_special_tokens=False).ids
  ids_no_special  the same with encode_special_tokens = True (special added tokens are
                  encoded as plain text; non-special added tokens such as <tool_call> are
                  still matched)
  decoded         Tokenizer.decode(ids, skip_special_tokens=False)
"""
import json
import os
import sys

from tokenizers import Tokenizer, __version__ as tokenizers_version


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = sys.argv[1:]
    tokenizer_path = args[0] if len(args) > 0 else os.path.join(root, "third_party/qwen3-tokenizer/tokenizer.json")
    corpus_path = args[1] if len(args) > 1 else os.path.join(root, "tests/data/tokenizer/corpus.json")
    out_path = args[2] if len(args) > 2 else os.path.join(root, "tests/data/tokenizer/expected_ids.json")

    tok = Tokenizer.from_file(tokenizer_path)
    with open(corpus_path, encoding="utf-8") as f:
        corpus = json.load(f)

    cases = []
    for text in corpus:
        tok.encode_special_tokens = False
        ids = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = True
        ids_no_special = tok.encode(text, add_special_tokens=False).ids
        decoded = tok.decode(ids, skip_special_tokens=False)
        cases.append({"text": text, "ids": ids, "ids_no_special": ids_no_special, "decoded": decoded})

    reference = f"HF tokenizers {tokenizers_version}"
    with open(out_path, "w", encoding="utf-8") as f:
        f.write('{"reference": ' + json.dumps(reference) + ',\n"cases": [\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in cases))
        f.write("\n]}\n")
    print(f"{out_path}: {len(cases)} cases ({reference})")


if __name__ == "__main__":
    main()
