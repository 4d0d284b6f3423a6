#!/usr/bin/env bash
# Cluster mode benchmark (issue 16; docs/BENCHMARKS.md "Cluster mode (issue 16)").
#
# Starts three `switchboard serve` nodes of one cluster on loopback (a fresh
# PostgreSQL database, a fresh Redis key prefix, one cluster secret), all pinned to
# $ENGINE_CPUS, then runs with the load generator pinned to $GENERATOR_CPU:
#   1. bridged calls, softphones on node A (same node as the Twilio streams);
#   2. the same calls, softphones on node B (every frame crosses the A–B link);
#   3. the claim path: 50 seats spread over A, B and C, calls owned by A.
# The CPU of all three nodes over each measured window is read from /proc
# (--engine-pid A --node-pid B --node-pid C). Reports (JSON and text) and the node
# logs go to $OUT; `uptime` is recorded before and after each run.
#
#   loadtest/cluster-bench.sh                  # defaults below
#   CALLS=100 SECONDS_=20 ROUNDS=200 BIN=/work/bench-bin loadtest/cluster-bench.sh
set -euo pipefail

BIN=${BIN:-/work/bench-bin}                 # switchboard and switchboard-loadtest (release)
PG=${PG:-postgres://postgres@127.0.0.1:5432/postgres}
REDIS=${REDIS:-redis://127.0.0.1:6379}
ENGINE_CPUS=${ENGINE_CPUS:-0}
GENERATOR_CPU=${GENERATOR_CPU:-1}
CALLS=${CALLS:-100}
SECONDS_=${SECONDS_:-20}
SEATS=${SEATS:-50}
ROUNDS=${ROUNDS:-200}
BASE_PORT=${BASE_PORT:-18181}
OUT=${OUT:-$(mktemp -d /tmp/cluster-bench.XXXXXX)}

run=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
db="sb_clusterbench_${run}"
prefix="sbbench:${run}:"
export SWITCHBOARD_ADMIN_TOKEN="sba_bench_${run}"
export TWILIO_AUTH_TOKEN="bench_twilio_${run}"
secret="bench-cluster-secret-${run}"
database_url="${PG%/*}/${db}"
mkdir -p "$OUT"
echo "cluster-bench: output in $OUT"

for bin in switchboard switchboard-loadtest; do
  [ -x "$BIN/$bin" ] || { echo "no $BIN/$bin (build with cargo build --release)"; exit 1; }
done
if [ "$(strings "$BIN/switchboard" | grep -c cluster/link)" = 0 ]; then
  echo "$BIN/switchboard has no node links (src/cluster/link): another branch's build?"
  exit 1
fi

psql "$PG" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE ${db}"
cat > "$OUT/node.toml" <<EOF
[journal]
spill_path = "$OUT/spill-{node_id}.spill"
EOF

pids=()
urls=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 2
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  redis-cli -u "$REDIS" --scan --pattern "${prefix}*" | xargs -r redis-cli -u "$REDIS" del >/dev/null || true
  psql "$PG" -q -c "DROP DATABASE IF EXISTS ${db}" || true
}
trap cleanup EXIT

for k in 1 2 3; do
  port=$((BASE_PORT + k - 1))
  url="http://127.0.0.1:${port}"
  DATABASE_URL="$database_url" REDIS_URL="$REDIS" SWITCHBOARD_REDIS_PREFIX="$prefix" \
  SWITCHBOARD_CLUSTER_SECRET="$secret" SWITCHBOARD_NODE_ID="node-$k" \
  SWITCHBOARD_NODE_URL="$url" SWITCHBOARD_PUBLIC_URL="$url" SWITCHBOARD_BIND="127.0.0.1:${port}" \
  RUST_LOG=warn NO_COLOR=1 \
    taskset -c "$ENGINE_CPUS" "$BIN/switchboard" --config "$OUT/node.toml" serve \
    >"$OUT/node-$k.log" 2>&1 </dev/null &
  pids+=($!)
  urls+=("$url")
  # One node at a time: the first creates the schema and the secret's verifier.
  for _ in $(seq 1 300); do
    curl -fs "$url/readyz" >/dev/null && break
    sleep 0.1
  done
  curl -fs "$url/readyz" >/dev/null || { echo "node-$k not ready"; tail "$OUT/node-$k.log"; exit 1; }
done
for url in "${urls[@]}"; do
  for _ in $(seq 1 300); do
    links=$(curl -fs "$url/metrics" | awk '$1 == "switchboard_cluster_links" { print $2 }')
    [ "${links:-0}" = 2 ] && break
    sleep 0.1
  done
  [ "${links:-0}" = 2 ] || { echo "$url has ${links:-0} node links, not 2"; exit 1; }
done
echo "cluster-bench: nodes ${pids[*]} at ${urls[*]}, each linked to the other two"

loadtest() {
  local name=$1
  shift
  echo "== $name: $(uptime)" | tee -a "$OUT/uptime.txt"
  "$BIN/switchboard-loadtest" --generator-cpu "$GENERATOR_CPU" \
    --engine-url "${urls[0]}" --engine-pid "${pids[0]}" \
    --node-pid "${pids[1]}" --node-pid "${pids[2]}" "$@" --json >"$OUT/$name.json"
  echo "   after: $(uptime)" | tee -a "$OUT/uptime.txt"
}

loadtest same-node --calls "$CALLS" --seconds "$SECONDS_" --ring own
loadtest cross-node --calls "$CALLS" --seconds "$SECONDS_" --ring own --agent-url "${urls[1]}"
loadtest claim --scenario claim --seats "$SEATS" --rounds "$ROUNDS" \
  --agent-url "${urls[1]}" --agent-url "${urls[2]}"

summary() {
  jq -r '"\(.calls_bridged)/\(.calls_requested) bridged; caller→agent p50 \(.caller_to_agent.latency_p50_us) p99 \(.caller_to_agent.latency_p99_us) µs lost \(.caller_to_agent.lost); agent→caller p50 \(.agent_to_caller.latency_p50_us) p99 \(.agent_to_caller.latency_p99_us) µs lost \(.agent_to_caller.lost); cluster CPU \(.engine_cpu.cluster.seconds) s = \(.engine_cpu.cluster.us_per_frame) µs per received frame (pid, s: \(.engine_cpu.cluster.nodes)); machine busy \(.machine.busy_pct_of_machine) %, others \(.machine.others_pct_of_one_core) % of a core"' "$1"
}
{
  echo "same-node:  $(summary "$OUT/same-node.json")"
  echo "cross-node: $(summary "$OUT/cross-node.json")"
  jq -r '"claim: \(.rounds_measured)/\(.rounds_requested) rounds, seats per node \(.seats_per_node); answer→connected p50 \(.answer_to_connected.p50_ms) p99 \(.answer_to_connected.p99_ms) ms; answer→last ring_cancel p50 \(.answer_to_last_ring_cancel.p50_ms) p99 \(.answer_to_last_ring_cancel.p99_ms) max \(.answer_to_last_ring_cancel.max_ms) ms; remote winners \(.remote_winner_rounds); double claims \(.double_claims); machine busy \(.machine_busy_pct) %"' "$OUT/claim.json"
} | tee "$OUT/summary.txt"
