# Sourced by shell tests. make_work sets $work to a new temporary folder, removed at exit
# together with the server serve_tiny started ($pid).
make_work() {
  work=$(mktemp -d)
  pid=
  trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"' EXIT
}

# require_node_modules DIR: exits 77 (skipped) when DIR has no npm packages (the openai SDK)
# installed (scripts/setup.sh installs them).
require_node_modules() {
  if [ ! -d "$1/node_modules/openai" ]; then
    echo "SKIP: $1/node_modules is missing (run scripts/setup.sh)"
    exit 77
  fi
}

# serve_tiny CONCLAVE TOKENIZER_DIR WORK [serve args...] writes the
# tiny-qwen random model into WORK/model (once), starts `conclave serve` on it on a free
# port with a memory state store, its log in WORK/serve.log, and waits until it is ready.
# Sets $pid and $port; fails with the log when the server exits or never gets ready. The
# caller's EXIT trap kills $pid.
serve_tiny() {
  local conclave=$1 tokdir=$2 work=$3
  shift 3
  if [ ! -d "$work/model" ]; then
    "$conclave" gen-model --preset tiny-qwen --out "$work/model" >/dev/null 2>&1
    cp "$tokdir/tokenizer.json" "$work/model/"
  fi
  "$conclave" --log-format text serve --model "$work/model" --name tiny --state-store memory \
    --port 0 "$@" 2>"$work/serve.log" &
  pid=$!
  wait_ready "$work"
}

# serve_demo CONCLAVE WORK [serve args...] starts `conclave serve` with no --model, which
# serves the shipped demo model (copied into WORK/home, its CONCLAVE_HOME), like
# scripts/demo.sh. Sets $pid and $port as serve_tiny does.
serve_demo() {
  local conclave=$1 work=$2
  shift 2
  CONCLAVE_HOME="$work/home" "$conclave" --log-format text serve --name demo \
    --state-store memory --port 0 --backend cpu "$@" 2>"$work/serve.log" &
  pid=$!
  wait_ready "$work"
}

# wait_ready WORK: waits for the server $pid logging to WORK/serve.log; sets $port.
wait_ready() {
  local work=$1
  port=
  for _ in $(seq 600); do
    port=$(grep -oE 'on http://[0-9.]+:[0-9]+' "$work/serve.log" | head -1 | grep -oE '[0-9]+$' || true)
    [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/ready" >/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "conclave serve exited:"; cat "$work/serve.log"; return 1; }
    sleep 0.1
  done
  echo "conclave serve never became ready:"
  cat "$work/serve.log"
  return 1
}
