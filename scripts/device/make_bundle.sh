#!/usr/bin/env bash
# Packs what the GPU machine needs to run conclave's CUDA tests and benchmarks into
# .devbundle/ (ignored through .git/info/exclude): stripped binaries from build-cuda, the
# non-system shared libraries they load (compressed: the tree that travels is capped at
# 64 MiB), and HF's speed script.
# Usage: scripts/device/make_bundle.sh [build-dir] [bundle-dir (default .devbundle)]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-cuda}
bundle=${2:-.devbundle}
grep -qx "/$bundle/" .git/info/exclude 2>/dev/null || echo "/$bundle/" >>.git/info/exclude
stage=$(mktemp -d)
mkdir -p "$stage/bin" "$stage/lib" "$bundle"
# BINS: the binaries (default cuda_tests and conclave; tests/gpu_tests, the CPU suite, only
# when asked: it adds about 5 MiB to a tree capped at 64).
for b in ${BINS:-tests/cuda_tests app/conclave}; do
  strip -o "$stage/bin/$(basename "$b")" "$build/$b"
done
# Libraries outside glibc/libstdc++ and CUDA (the device has its own cuBLAS).
for b in "$stage"/bin/*; do
  ldd "$b" | awk '/=> \//{print $3}'
done | sort -u | grep -Ev '/(libc|libm|libstdc\+\+|libgcc_s|librt|libpthread|libdl)\.so|/usr/local/cuda' |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done
cp ../shared/tools/hf_speed.py "$stage/" 2>/dev/null || true
rm -f "$bundle/bundle.tar.xz"
tar -C "$stage" -cJf "$bundle/bundle.tar.xz" .
rm -rf "$stage"
ls -la "$bundle"
# What a device call sends: the tracked tree, the untracked files git does not ignore and
# the carried paths (this bundle and the tokenizer), capped at 64 MiB. The demo weights
# (assets/demo-model, 21 MB) push it past that: move them aside for the call, since a
# tracked file that is absent does not travel, and put them back after.
tracked=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s}')
carried=$(du -sb "$bundle" third_party/qwen3-tokenizer 2>/dev/null | awk '{s += $1} END {print s}')
total=$(( (tracked + carried) / 1048576 ))
echo "a device call would send about $total MiB (tracked files present + bundle + tokenizer; the cap is 64)"
if [ "$total" -ge 64 ]; then
  echo "over the cap: mv assets/demo-model/model.safetensors /tmp/ before the call, back after"
fi
