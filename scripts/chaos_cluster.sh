#!/usr/bin/env bash
# chaos_cluster.sh: the chaos drill (docs/RELIABILITY.md, row 16) against a cluster on this
# machine. Starts a coordinator (`conclave serve --fault-injection --cluster-port P
# --ranks-per-replica 2 --replicas 2`, a fresh random token file of mode 600) and three
# `conclave node --cpu-ranks 2` processes, each in a restart loop as systemd's
# Restart=always would keep it (a killed node comes back after 1 s and joins again), then
# runs `conclave bench chaos` with the given faults for the given time. Everything it
# started is stopped on exit (trap); logs and results stay in the work folder it prints.
#
#   scripts/chaos_cluster.sh [--model DIR] [--duration S] [--faults "kill_node ..."]
#                            [--bin PATH] [--nodes N] [--out DIR] [-- BENCH_CHAOS_ARGS...]
#
# e.g. scripts/chaos_cluster.sh --duration 600 --faults kill_node -- --clients 8 \
#        --max-tokens 64 --baseline 20 --stall-timeout 60
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bin="$here/build-cpu/app/conclave"
model=""
duration=600
faults="kill_node"
nodes=3
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --faults) faults=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "chaos_cluster.sh: unknown argument $1 (bench chaos options go after --)" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "chaos_cluster.sh: no conclave binary at $bin (--bin PATH)" >&2; exit 2; }

work=${out:-$(mktemp -d /tmp/conclave-chaos-cluster.XXXXXX)}
mkdir -p "$work"
log() { echo "[chaos_cluster $(date +%T)] $*" | tee -a "$work/drill.log" >&2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_port=$(free_port)
cluster_port=$(free_port)

# The cluster's shared secret: 32 random bytes as hex, readable by this user only.
token="$work/cluster.token"
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$token")
chmod 600 "$token"

# The second drill's replica settings (docs/evidence/chaos_drill_2026-11-28b.toml): fault
# injection on, restarts unlimited and quick, failover patient.
cat > "$work/drill.toml" <<EOF
[server]
port = $http_port
drain_timeout_s = 5.0

[replicas]
count = 2
fault_injection = true
max_restarts = 1000000
restart_backoff_s = 0.1
restart_backoff_max_s = 2.0
backoff_reset_s = 2.0
failover_timeout_s = 60.0
failover_attempts = 10
EOF

model_args=()
[ -n "$model" ] && model_args=(--model "$model")
serve_pid=""
loops=()

# Stops pid $1 with SIGTERM, and with SIGKILL when it is still there after $2 seconds.
stop_pid() {
  local pid=$1 grace=$2 what=$3
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq $((grace * 10))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  log "$what (pid $pid) did not stop within $grace s of SIGTERM: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  log "stopping: ${#loops[@]} node loops, their nodes, the coordinator"
  for p in "${loops[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${loops[@]}"; do wait "$p" 2>/dev/null || true; done
  for i in $(seq "$nodes"); do
    [ -f "$work/node$i.pid" ] && stop_pid "$(cat "$work/node$i.pid")" 10 "node $i"
  done
  if [ -n "$serve_pid" ]; then
    stop_pid "$serve_pid" 15 "the coordinator"
    wait "$serve_pid" 2>/dev/null || true
  fi
  log "done (exit $rc); logs and results in $work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One node, restarted 1 s after every exit until this script stops the loop (cleanup then
# stops the node itself, by the pid this loop leaves in node$i.pid).
node_loop() {
  local i=$1 child rc
  trap 'exit 0' TERM INT
  while true; do
    "$bin" node --join "127.0.0.1:$cluster_port" --cluster-token-file "$token" --cpu-ranks 2 \
      "${model_args[@]}" >> "$work/node$i.log" 2>&1 &
    child=$!
    echo "$child" > "$work/node$i.pid"
    rc=0
    wait "$child" || rc=$?
    echo "[chaos_cluster $(date +%T)] node $i (pid $child) exited $rc; restarting in 1 s" \
      >> "$work/node$i.log"
    echo "$(date +%s) node$i exit $rc" >> "$work/node_exits.log"
    sleep 1
  done
}

log "work folder $work; coordinator on http://127.0.0.1:$http_port, cluster door $cluster_port"
"$bin" serve --config "$work/drill.toml" "${model_args[@]}" --kv-cache-mib 64 \
  --cluster-port "$cluster_port" --cluster-token-file "$token" --ranks-per-replica 2 \
  --replicas 2 > "$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$http_port/health" > /dev/null && break
  kill -0 "$serve_pid" 2>/dev/null || { log "the coordinator exited:"; tail -20 "$work/serve.log" >&2; exit 1; }
  sleep 0.2
done

for i in $(seq "$nodes"); do
  node_loop "$i" &
  loops+=($!)
done

log "waiting for both replicas to be up"
up=0
for _ in $(seq 600); do
  up=$(curl -sf "http://127.0.0.1:$http_port/admin/cluster" |
    python3 -c 'import json,sys; print(sum(r["state"] == "up" for r in json.load(sys.stdin)["replicas"]))' \
    2>/dev/null || echo 0)
  [ "$up" -ge 2 ] && break
  sleep 0.2
done
[ "$up" -ge 2 ] || { log "the replicas did not come up"; tail -20 "$work/serve.log" >&2; exit 1; }
log "2 replicas up over $nodes nodes; drill: faults $faults for $duration s"

read -r -a fault_list <<< "$faults"
set +e
"$bin" bench chaos --url "http://127.0.0.1:$http_port" --duration "$duration" \
  --faults "${fault_list[@]}" --json "$work/result.json" "$@" | tee "$work/result.txt"
rc=${PIPESTATUS[0]}
set -e
curl -sf "http://127.0.0.1:$http_port/admin/cluster" > "$work/cluster_after.json" || true
log "node exits during the drill: $(wc -l < "$work/node_exits.log" 2>/dev/null || echo 0)"
exit "$rc"
