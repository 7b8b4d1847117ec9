#!/usr/bin/env bash
# For each planted flaw: how many seeds and how much wall time `quorate explore`
# needs to find it (stops at the first failing seed; gives up after $SEEDS).
set -uo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-300}
BIN=target/release/quorate
printf '%-26s %8s %10s  %s\n' flaw seeds wall first-failure
for flaw in commit-by-counting vote-without-log-check reply-before-sync read-without-read-index \
            truncate-committed quorum-of-reachable apply-duplicates; do
  start=$(date +%s.%N)
  found=""
  for seed in $(seq 0 $((SEEDS - 1))); do
    if ! out=$("$BIN" explore --seeds "$seed..$((seed + 1))" --flaw "$flaw" 2>&1); then
      found=$(printf '%s\n' "$out" | grep -m1 -E '^  \[' | sed 's/^ *//' | cut -c1-100)
      [ -n "$found" ] || found="failed (see: $BIN explore --seeds $seed..$((seed + 1)) --flaw $flaw)"
      break
    fi
  done
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  if [ -n "$found" ]; then
    printf '%-26s %8d %9.1fs  %s\n' "$flaw" $((seed + 1)) "$wall" "$found"
  else
    printf '%-26s %8s %9.1fs  %s\n' "$flaw" ">$SEEDS" "$wall" "not found"
  fi
done
