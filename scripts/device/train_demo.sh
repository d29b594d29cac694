#!/usr/bin/env bash
# Runs on the GPU machine (no bundle needed; carry third_party/qwen3-tokenizer): trains the
# demo model with tools/train_demo.py and packs it for the trip back. Files from $OUT are
# capped at 16 MiB each, so the weights come back split (cat model.safetensors.part-* to
# join them) and the small files as demo-meta.tgz (the tokenizer stays behind: the repo
# has it).
# Usage: scripts/device/train_demo.sh [tools/train_demo.py arguments]
set -uo pipefail
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
dir=${DEMO_DIR:-/tmp/demo-model}
mkdir -p "$OUT"
rm -rf "$dir"
python3 tools/train_demo.py --out "$dir" "$@" 2>&1 | tee "$OUT/train.log" |
  awk '$1 != "step" || $2 % 250 == 0 || /stopped/'
rc=${PIPESTATUS[0]}
if [ -f "$dir/model.safetensors" ]; then
  split -b 15M -d "$dir/model.safetensors" "$OUT/model.safetensors.part-"
  sha256sum "$dir/model.safetensors" | tee "$OUT/model.sha256"
  tar -C "$dir" -czf "$OUT/demo-meta.tgz" --exclude model.safetensors --exclude tokenizer.json .
fi
exit "$rc"
