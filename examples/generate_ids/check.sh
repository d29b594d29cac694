#!/usr/bin/env bash
# example.generate_ids: the ids the example prints for each of its two requests must be
# the ids `conclave generate` gives for the same checkpoint, prompt and sampling (greedy
# for the first; temperature 0.8, seed 42 for the second), so a wrong token fails it.
#
#   check.sh GENERATE_IDS CONCLAVE MODEL_DIR
set -u
example=$1
conclave=$2
model=$3

out=$("$example" "$model") || { echo "FAIL: generate_ids exited $?"; exit 1; }
echo "$out"
# "step N: request R -> token T[ (finished)]" -> the ids of request R, as [a,b,...].
ids_of() {
  echo "$out" | sed -n "s/^step [0-9]*: request $1 -> token \([0-9]*\).*/\1/p" | paste -sd, |
    sed 's/^/[/; s/$/]/'
}
# "requests A and B done; ..." names the greedy request (A) and the sampled one (B).
read -r a b < <(echo "$out" | sed -n 's/^requests \([0-9]*\) and \([0-9]*\) done.*/\1 \2/p')
[ -n "${a:-}" ] && [ -n "${b:-}" ] || { echo "FAIL: no \"requests A and B done\" line"; exit 1; }
got1=$(ids_of "$a")
got2=$(ids_of "$b")
want1=$("$conclave" generate --model "$model" --prompt-ids 1,2,3 --max-tokens 8 --temperature 0 \
  2>/dev/null)
want2=$("$conclave" generate --model "$model" --prompt-ids 4,5,6,7 --max-tokens 8 \
  --temperature 0.8 --seed 42 2>/dev/null)

fails=0
check() {
  if [ -n "$3" ] && [ "$2" = "$3" ]; then
    echo "ok   $1: $2"
  else
    echo "FAIL $1: example printed $2, conclave generate gives $3"
    fails=$((fails + 1))
  fi
}
check "request $a (greedy)" "$got1" "$want1"
check "request $b (seeded sampling)" "$got2" "$want2"
echo "$out" | grep -q "KV blocks free" || { echo "FAIL: no KV summary line"; fails=$((fails + 1)); }
exit $((fails > 0))
