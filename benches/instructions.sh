#!/usr/bin/env bash
# make bench-sim-instructions: figure 2 of `make bench-sim` (the simulator
# against bare engines fed the same inputs) counted in instructions under
# callgrind rather than in wall time. One run of seed 100 each side; the
# counts are the same from run to run, so a change of a few instructions per
# event shows, where wall time on this box moves by several percent.
# Needs valgrind (apt-get install -y valgrind); takes about a minute.
#
# CACHE=1 (make bench-sim-instructions CACHE=1) also simulates the caches and
# branch predictor (twice as slow) and prints instruction-cache misses and
# mispredicted branches per event. Instructions alone can mislead: moving the
# client events out of the run loop cost 9 instructions an event, yet made the
# simulator 2% faster, and the model counted 12% fewer instruction-cache
# misses. It is a model all the same: later moves of cold code changed its
# count by 10% with no change in wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null; then
    echo "bench-sim-instructions: valgrind not found; apt-get install -y valgrind" >&2
    exit 2
fi
bench=$(cargo bench --bench sim --no-run 2>&1 | sed -n 's/.*Executable benches\/sim.rs (\(.*\))/\1/p')
[ -x "$bench" ] || { echo "bench-sim-instructions: no bench binary built" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Instructions executed inside `function` while running one side.
count() {
    local side=$1 function=$2
    local cache=()
    [ "${CACHE:-}" = 1 ] && cache=(--cache-sim=yes --branch-sim=yes)
    QUORATE_BENCH_CALLGRIND=$side valgrind --tool=callgrind "${cache[@]}" --toggle-collect="$function" \
        --callgrind-out-file="$out/$side.out" "$bench" >"$out/$side.stdout" 2>"$out/$side.stderr"
    sed -n "s/.*I *refs: *\([0-9,]*\).*/\1/p" "$out/$side.stderr" | tr -d ,
}

# A count from a side's summary (with CACHE=1): `I1  misses` or `Mispredicts`.
summary() {
    sed -n "s/.*$2: *\([0-9,]*\).*/\1/p" "$out/$1.stderr" | head -1 | tr -d ,
}
sim=$(count sim 'sim::callgrind_sim')
bare=$(count bare 'sim::callgrind_bare')
events=$(sed -n 's/^EVENTS //p' "$out/sim.stdout")
[ -n "$sim" ] && [ -n "$bare" ] && [ -n "$events" ] || {
    echo "bench-sim-instructions: callgrind gave no count; its output:" >&2
    cat "$out/sim.stderr" "$out/bare.stderr" >&2
    exit 1
}
awk -v sim="$sim" -v bare="$bare" -v events="$events" 'BEGIN {
    printf "2. in instructions, seed 100 (%d events): simulator %.0f per event, bare engines %.0f, ratio %.3fx; the simulator'"'"'s own %.0f per event\n",
        events, sim / events, bare / events, sim / bare, (sim - bare) / events
}'
if [ "${CACHE:-}" = 1 ]; then
    awk -v events="$events" -v si="$(summary sim 'I1  misses')" -v bi="$(summary bare 'I1  misses')" \
        -v sb="$(summary sim 'Mispredicts')" -v bb="$(summary bare 'Mispredicts')" 'BEGIN {
        printf "   per event, in callgrind'"'"'s model of this machine'"'"'s caches: instruction-cache misses %.1f against %.1f, mispredicted branches %.1f against %.1f\n",
            si / events, bi / events, sb / events, bb / events
    }'
fi
