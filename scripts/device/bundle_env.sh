# Sourced by the device scripts on the GPU machine (from the repository root, the bundle
# carried): the environment, $OUT, the bundle unpacked into /tmp/cb (every time: a warm
# machine may still hold an older one) and /work/main pointing here, since the binaries
# read fixtures and the tokenizer from the path they were built at.
# BUNDLE=dir picks another bundle than .devbundle.
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/cb
tar -C /tmp/cb -xJf "${BUNDLE:-.devbundle}/bundle.tar.xz"
export LD_LIBRARY_PATH=/tmp/cb/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
if [ ! -e /work/main/tests/data ]; then mkdir -p /work && ln -sfn "$PWD" /work/main; fi
# For the one-call scripts: seconds left of BUDGET (default 560) since sourcing, the card.
t0=$SECONDS
left() { echo $(( ${BUDGET:-560} - (SECONDS - t0) )); }
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
