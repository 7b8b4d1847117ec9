#!/usr/bin/env bash
# make bench-drivers: the same 5-node kv workload, 20 simulated seconds, no
# faults, under quorate's simulator, turmoil and madsim; one table, each
# driver's simulated-time speed and operations per wall second beside the
# ratio to quorate's simulator. madsim builds in target/madsim.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
cargo bench --features turmoil --bench drivers | grep '^DRIVER' >>"$out"
RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim \
    cargo bench --features tokio --bench drivers_madsim | grep '^DRIVER' >>"$out"
awk '
    { driver[NR] = $2; simulated[NR] = $3; wall[NR] = $4; ops[NR] = $5; messages[NR] = $6 }
    END {
        printf "%-12s %8s %8s %9s %10s %12s %9s %12s %9s %8s\n", "driver", "sim s", "wall s", "sim/wall", "ratio", "ops/wall s", "ratio", "msgs/wall s", "ratio", "ops ok"
        for (i = 1; i <= NR; i++) {
            speed = simulated[i] / wall[i]; rate = ops[i] / wall[i]
            if (i == 1) { base_speed = speed; base_rate = rate; base_messages = messages[i] / wall[i] }
            if (messages[i] == "-") { mrate = "-"; mratio = "-" }
            else { mrate = sprintf("%.0f", messages[i] / wall[i]); mratio = sprintf("%.3f", (messages[i] / wall[i]) / base_messages) }
            printf "%-12s %8.1f %8.3f %9.1f %10.3f %12.0f %9.3f %12s %9s %8d\n", driver[i], simulated[i], wall[i], speed, speed / base_speed, rate, rate / base_rate, mrate, mratio, ops[i]
        }
        print "ops ok: client operations that succeeded (reads and writes). quorate-sim wall time includes its end-of-run checks."
        print "messages: quorate-sim counts Raft messages sent, madsim network packets (TCP segments); turmoil exposes no count."
    }' "$out"
