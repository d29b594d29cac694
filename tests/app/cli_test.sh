#!/usr/bin/env bash
# The `conclave` command's contract: output forms other tools rely on, and bad input
# -> exit code 2 with exactly one line on stderr, never a crash.
set -u
bin=$1
data=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; fails=$((fails + 1)); }

# expect_bad NAME PATTERN -- command...
expect_bad() {
  local name=$1 pattern=$2
  shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$? lines
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" -eq 2 ] && [ "$lines" -eq 1 ] && grep -q -- "$pattern" "$tmp/err"; then
    pass "$name"
  else
    fail "$name (exit $rc, $lines stderr lines: $(head -c 300 "$tmp/err"))"
  fi
}

# generate prints one JSON array of ids; --dump-logits writes vocab floats.
out=$("$bin" generate --model "$data/tiny_moe" --prompt-ids 5317,1509,5553,2692,3557 --max-tokens 5 \
  --temperature 0 --dump-logits "$tmp/logits.json" 2>/dev/null)
[ "$out" = "[4382,2491,7908,7908,2359]" ] && pass "generate greedy ids" || fail "generate greedy ids: $out"
python3 -c "import json,sys; l=json.load(open('$tmp/logits.json')); sys.exit(0 if len(l)==8192 else 1)" \
  && pass "dump-logits" || fail "dump-logits"

# same seed, same tokens; sampling differs from greedy somewhere.
a=$("$bin" generate --model "$data/tiny_moe" --prompt-ids 1,2,3 --max-tokens 12 --temperature 1.5 --top-p 0.95 --seed 7 2>/dev/null)
b=$("$bin" generate --model "$data/tiny_moe" --prompt-ids 1,2,3 --max-tokens 12 --temperature 1.5 --top-p 0.95 --seed 7 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && pass "seeded sampling repeats" || fail "seeded sampling: $a vs $b"

# gen-model: same seed, same bytes.
"$bin" gen-model --preset tiny --out "$tmp/g1" --seed 5 2>/dev/null
"$bin" gen-model --preset tiny --out "$tmp/g2" --seed 5 2>/dev/null
cmp -s "$tmp/g1/model.safetensors" "$tmp/g2/model.safetensors" && cmp -s "$tmp/g1/config.json" "$tmp/g2/config.json" \
  && pass "gen-model deterministic" || fail "gen-model deterministic"

# bench engine runs and prints the machine.
"$bin" bench engine --model "$tmp/g1" --prompt-len 16 --decode-tokens 3 --decode-context 8 --batches 1,2 >"$tmp/bench" 2>&1 \
  && grep -q "machine:" "$tmp/bench" && pass "bench engine" || fail "bench engine: $(cat "$tmp/bench")"

# Bad input: exit 2, one line.
expect_bad "missing model folder" "not a directory" -- "$bin" generate --model "$tmp/nope" --prompt-ids 1
expect_bad "bad prompt ids" "is not a token id" -- "$bin" generate --model "$tmp/g1" --prompt-ids 1,x,3
expect_bad "token outside vocab" "outside the vocabulary" -- "$bin" generate --model "$tmp/g1" --prompt-ids 1,99999
expect_bad "context overflow" "exceeds the context length" -- "$bin" generate --model "$tmp/g1" --prompt-ids 1 --max-tokens 100000
expect_bad "bad sampling value" "top_p must be in" -- "$bin" generate --model "$tmp/g1" --prompt-ids 1 --top-p 1.5 --temperature 1
cp -r "$tmp/g1" "$tmp/arch"
sed -i 's/Qwen3MoeForCausalLM/GPT2LMHeadModel/' "$tmp/arch/config.json"
expect_bad "unknown architecture" "GPT2LMHeadModel\" is not supported" -- "$bin" generate --model "$tmp/arch" --prompt-ids 1
cp -r "$tmp/g1" "$tmp/trunc"
truncate -s 100000 "$tmp/trunc/model.safetensors"
expect_bad "truncated weights" "model.safetensors: tensor" -- "$bin" generate --model "$tmp/trunc" --prompt-ids 1
expect_bad "unknown preset" "unknown preset" -- "$bin" gen-model --preset nope --out "$tmp/x"
expect_bad "unknown option" "" -- "$bin" generate --model "$tmp/g1" --prompt-ids 1 --bogus
# serve's cluster flags: checked before anything loads.
printf '%s\n' "0123456789abcdef0123456789abcdef" >"$tmp/token"
chmod 644 "$tmp/token"
expect_bad "group-readable cluster token" "readable by group or others" -- "$bin" serve --model "$tmp/g1" --cluster-token-file "$tmp/token"
expect_bad "cluster without a token file" "cluster.token_file must be given" -- "$bin" serve --model "$tmp/g1" --cluster-port 0
expect_bad "too many ranks per replica" "cluster.ranks_per_replica must be in" -- "$bin" serve --model "$tmp/g1" --cluster-token-file "$tmp/token" --ranks-per-replica 65
# The gateway's store: a URL it cannot take is refused before anything loads.
expect_bad "bad state store URL" "gateway.store must be" -- "$bin" serve --model "$tmp/g1" --state-store "postgres://x"
expect_bad "admin key equal to a user key" "must differ" -- "$bin" serve --model "$tmp/g1" --api-key same-key-123 --admin-key same-key-123
# Quantized checkpoints: gen-model writes them, generate runs them (dequantized on the
# CPU), and a method conclave does not load is refused in one line.
for q in fp8 awq; do
  "$bin" gen-model --preset tiny --out "$tmp/$q" --quant $q --awq-group 32 2>/dev/null
  out=$("$bin" generate --model "$tmp/$q" --prompt-ids 1,2,3 --max-tokens 4 2>/dev/null)
  [[ "$out" =~ ^\[[0-9]+,[0-9]+,[0-9]+,[0-9]+\]$ ]] && pass "generate on $q" || fail "generate on $q: $out"
done
cp -r "$tmp/fp8" "$tmp/gptq"
sed -i 's/"quant_method": "fp8"/"quant_method": "gptq"/' "$tmp/gptq/config.json"
expect_bad "unknown quantization method" 'quantization method "gptq" is not supported' -- "$bin" generate --model "$tmp/gptq" --prompt-ids 1
expect_bad "AWQ group that does not fit" "AWQ group size 128 does not fit" -- "$bin" gen-model --preset tiny --out "$tmp/awq128" --quant awq

if [ "$fails" -ne 0 ]; then echo "$fails CLI checks failed"; exit 1; fi
echo "all CLI checks passed"
