#!/usr/bin/env bash
# For each planted flaw (feature `flaws`): how many seeds `quorate explore`
# needs to find it, in $TRIALS trials over disjoint seed ranges (the median is
# the figure), the wall time of a trial, and the size of the failure after
# `quorate shrink`. Gives up on a trial after $SEEDS seeds.
# Six break safety or linearizability; keep-next-on-conflict breaks liveness (a
# follower is left stuck), found by the end-of-run checks. resend-at-match is
# not among them: it breaks no property of the group; it makes the message
# storm that `tests/campaign.rs` uses.
set -uo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-200}
TRIALS=${TRIALS:-5}
FLAWS=${FLAWS:-"commit-by-counting vote-without-log-check reply-before-sync read-without-read-index truncate-committed quorum-of-reachable apply-duplicates keep-next-on-conflict"}
# forget-expired-sessions needs more clients than sessions: FLAWS=forget-expired-sessions
# and EXTRA="--clients 20 --sessions-max 4".
BIN=target/release/quorate
OUT=target/bench-flaws
rm -rf "$OUT" && mkdir -p "$OUT"

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else print a[int((NR + 1) / 2)] }'; }
now() { date +%s.%N; }

printf '%-24s %7s  %-26s %8s  %-40s %7s\n' flaw median "seeds per trial" "wall" "shrunk to" "shrink"
for flaw in $FLAWS; do
  counts=() walls=() first=""
  for trial in $(seq 0 $((TRIALS - 1))); do
    start=$((trial * 100000))
    t0=$(now)
    out=$("$BIN" explore --seeds "$start..$((start + SEEDS))" --flaw "$flaw" ${EXTRA:-} --stop-after 1 \
          --save-failures "$OUT/$flaw" 2>/dev/null)
    walls+=("$(echo "$(now) - $t0" | bc)")
    seed=$(printf '%s\n' "$out" | grep -m1 -oE '^seed [0-9]+ FAILED' | grep -oE '[0-9]+')
    if [ -n "$seed" ]; then
      counts+=($((seed - start + 1)))
      [ -n "$first" ] || first="$OUT/$flaw/seed-$seed.json"
    else
      counts+=(">$SEEDS")
    fi
  done
  # A trial that found nothing counts as more than SEEDS for the median.
  med=$(printf '%s\n' "${counts[@]}" | sed "s/>$SEEDS/$((SEEDS + 1))/" | median)
  [ "$med" -gt "$SEEDS" ] 2>/dev/null && med=">$SEEDS"
  wall=$(printf '%s\n' "${walls[@]}" | median)
  shrunk="-" shrink_wall="-"
  if [ -n "$first" ]; then
    t0=$(now)
    after=$("$BIN" shrink --scenario "$first" --out "$OUT/$flaw.shrunk.json" \
            --comment "planted flaw $flaw" 2>/dev/null | grep -m1 '^after:' | sed 's/^after: *//')
    shrink_wall=$(printf '%.1fs' "$(echo "$(now) - $t0" | bc)")
    shrunk=${after:-"did not shrink"}
  fi
  printf '%-24s %7s  %-26s %7.1fs  %-40s %7s\n' "$flaw" "$med" "${counts[*]}" "$wall" "$shrunk" "$shrink_wall"
done
echo
echo "failing scenarios: $OUT/<flaw>/seed-N.json; shrunk: $OUT/<flaw>.shrunk.json"
