#!/usr/bin/env bash
# redis-benchmark -t set,get against a 3-node `quorate node` cluster (on
# loopback, fsync on), then the same command against a plain redis-server on
# the same machine, for scale. Needs redis-tools and redis-server
# (`make install-redis-tools`). Usage: benches/redis_compare.sh [requests]
set -euo pipefail
requests=${1:-50000}
for tool in redis-benchmark redis-server; do
  command -v "$tool" >/dev/null || { echo "SKIPPED: $tool not installed (make install-redis-tools)"; exit 0; }
done
cargo build --release --features tokio --bin quorate
bin=${CARGO_TARGET_DIR:-target}/release/quorate
data=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$data"; }
trap cleanup EXIT
for i in 1 2 3; do
  peers=()
  for j in 1 2 3; do [ "$i" != "$j" ] && peers+=(--peer "$j=127.0.0.1:1740$j"); done
  "$bin" node --id "$i" --listen "127.0.0.1:1740$i" --resp "127.0.0.1:1638$i" \
    "${peers[@]}" --key bench --data "$data/$i" 2>"$data/log$i" &
  pids+=($!)
done
until [ "$(redis-cli -p 16381 SET ready 1 2>/dev/null)" = "OK" ]; do sleep 0.2; done
echo "== quorate node, 3 nodes, fsync on (clients on node 1; writes forwarded if it follows)"
redis-benchmark -p 16381 -t set,get -n "$requests" -q 2>&1 | tr '\r' '\n' | grep -E "^(SET|GET):.*p50" || true
redis-server --port 16390 --save "" --appendonly no --daemonize no >/dev/null &
pids+=($!)
until redis-cli -p 16390 PING >/dev/null 2>&1; do sleep 0.1; done
echo "== redis-server, one process, no persistence"
redis-benchmark -p 16390 -t set,get -n "$requests" -q 2>&1 | tr '\r' '\n' | grep -E "^(SET|GET):.*p50" || true
