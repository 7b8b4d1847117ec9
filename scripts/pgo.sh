#!/usr/bin/env bash
# Profile-guided optimization of the simulator, for long campaigns.
#
#   bash scripts/pgo.sh profile         # train: writes target/pgo/merged.profdata
#   bash scripts/pgo.sh cargo ARGS...   # any cargo command, built with that profile
#
# `cargo` trains first when there is no profile, or when the sources changed
# since it was trained (a stale profile only costs speed, never correctness).
#
# Training runs an instrumented `quorate explore` over every workload and the
# main fault presets, so the profile covers the engine, the codec, the
# simulator and the checkers as campaigns use them. The profiled build runs
# the same code and gives the same trace hashes: PGO only moves code and
# changes the compiler's inlining and branch layout.
#
# Needs llvm-profdata, from the Rust toolchain's llvm-tools component
# (`rustup component add llvm-tools`) or the system's LLVM.
set -euo pipefail

cd "$(dirname "$0")/.."
dir="$PWD/target/pgo"
profile="$dir/merged.profdata"
stamp="$dir/sources.sha256"

# What the profile was trained on: every source file of the crate.
sources_hash() {
    find src Cargo.toml Cargo.lock -type f | LC_ALL=C sort | xargs cat | sha256sum | cut -d' ' -f1
}

find_profdata() {
    local sysroot host
    sysroot=$(rustc --print sysroot)
    host=$(rustc -vV | sed -n 's/^host: //p')
    for candidate in "$sysroot/lib/rustlib/$host/bin/llvm-profdata" \
        "$(command -v llvm-profdata || true)"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then
            echo "$candidate"
            return
        fi
    done
    echo "pgo: llvm-profdata not found; install it with: rustup component add llvm-tools" >&2
    exit 2
}

train() {
    local profdata trained_on
    profdata=$(find_profdata)
    trained_on=$(sources_hash)
    rm -rf "$dir/raw"
    RUSTFLAGS="-Cprofile-generate=$dir/raw" CARGO_TARGET_DIR="$dir/instrumented" \
        cargo build --release --bin quorate
    local quorate="$dir/instrumented/release/quorate"
    # Each workload, and the fault presets campaigns use most. Failures would
    # be findings, not training errors: a campaign's exit status is ignored.
    "$quorate" explore --seeds 0..300 >/dev/null || true
    "$quorate" explore --seeds 0..100 --workload counter --faults all >/dev/null || true
    "$quorate" explore --seeds 0..100 --workload register --faults crashes >/dev/null || true
    "$quorate" explore --seeds 0..50 --faults partitions --duration 60 >/dev/null || true
    "$profdata" merge -o "$profile" "$dir/raw"
    echo "$trained_on" >"$stamp"
    echo "pgo: profile written to $profile"
}

case "${1:-}" in
profile)
    train
    ;;
cargo)
    shift
    if [ ! -f "$profile" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$(sources_hash)" ]; then
        train
    fi
    # A target directory of its own, so the normal build is never invalidated.
    RUSTFLAGS="-Cprofile-use=$profile" CARGO_TARGET_DIR="$dir/optimized" cargo "$@"
    ;;
*)
    echo "usage: bash scripts/pgo.sh profile | cargo ARGS..." >&2
    exit 2
    ;;
esac
