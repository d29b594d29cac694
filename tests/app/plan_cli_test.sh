#!/usr/bin/env bash
# `conclave plan`: a model that fits -> exit 0 and the table on stdout; one that does not
# -> exit 3 and exactly one line on stderr; bad input -> exit 2 and one line.
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; fails=$((fails + 1)); }

# expect CODE NAME PATTERN -- command...: exit CODE, one stderr line matching PATTERN.
expect() {
  local code=$1 name=$2 pattern=$3
  shift 4
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$? lines
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" -eq "$code" ] && [ "$lines" -eq 1 ] && grep -q -- "$pattern" "$tmp/err"; then
    pass "$name"
  else
    fail "$name (exit $rc, $lines stderr lines: $(head -c 300 "$tmp/err"))"
  fi
}

# Fits: exit 0, the table, nothing on stderr.
if "$bin" plan --preset tiny >"$tmp/out" 2>"$tmp/err" && [ ! -s "$tmp/err" ] &&
  grep -q "^per GPU" "$tmp/out" && grep -q "KV cache (bf16)" "$tmp/out" &&
  grep -q "tiny (bf16) on 1 x 141.0 GiB GPU at utilization 0.90 fits" "$tmp/out"; then
  pass "tiny fits"
else
  fail "tiny fits: $(cat "$tmp/out" "$tmp/err")"
fi

# Does not fit: exit 3, the shortfall and what would fit in one line; the table still printed.
expect 3 "480b fp8 on 8 GPUs at 262K" "short by 5.26 GiB per GPU.*would fit: 9 GPUs at fp8, or awq on 8 GPUs" -- \
  "$bin" plan --preset qwen3-coder-480b --quant fp8 --gpus 8 --max-model-len 262144
grep -q "fp8 e4m3 data" "$tmp/out" && pass "table printed on a refusal" || fail "table on a refusal"
expect 3 "480b bf16 on 8 GPUs" "does not fit" -- "$bin" plan --preset qwen3-coder-480b --gpus 8
"$bin" plan --preset qwen3-coder-480b --quant awq --gpus 8 --max-model-len 262144 >/dev/null 2>&1 \
  && pass "480b awq on 8 GPUs fits" || fail "480b awq on 8 GPUs fits"

# A checkpoint's stored dtypes give the same weights as the preset with that quantization.
"$bin" gen-model --preset tiny --quant fp8 --out "$tmp/fp8" 2>/dev/null
a=$("$bin" plan --model "$tmp/fp8" | grep -E "^ +(weights|fp8|bf16|fp32)")
b=$("$bin" plan --preset tiny --quant fp8 | grep -E "^ +(weights|fp8|bf16|fp32)")
[ -n "$a" ] && [ "$a" = "$b" ] && pass "--model reads the stored fp8 weights" || fail "--model fp8: $a vs $b"
"$bin" plan --model "$tmp/fp8" --quant awq | grep -q "int4 data" && pass "--quant is a what-if with --model" \
  || fail "--quant with --model"

# Bad input: exit 2, one line.
expect 2 "unknown preset" "unknown preset" -- "$bin" plan --preset nope
expect 2 "zero GPUs" "gpus" -- "$bin" plan --preset tiny --gpus 0
expect 2 "context beyond the model" "beyond the model's max_position_embeddings (4096)" -- \
  "$bin" plan --preset tiny --max-model-len 8192
expect 2 "no model" "give --model DIR or --preset NAME" -- "$bin" plan
expect 2 "missing folder" "" -- "$bin" plan --model "$tmp/nope"
expect 2 "model and preset" "excludes" -- "$bin" plan --model "$tmp/fp8" --preset tiny

if [ "$fails" -ne 0 ]; then echo "$fails plan CLI checks failed"; exit 1; fi
echo "all plan CLI checks passed"
