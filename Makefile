# The front door. Each target is a thin line over cargo.
.PHONY: test lint fmt doc bench bench-engine bench-check explore explore-pgo sim replay shrink regress timeline timeline-shot bench-sim bench-sim-instructions bench-flaws

# Every test, every cargo feature (the madsim build is its own target).
test:
	cargo test --all-features

# A simulation campaign on the built-in key-value store (the README's first
# command). Options: make explore ARGS="--seeds 0..1000 --faults all".
explore:
	cargo run --release -- explore $(ARGS)

# The same campaign from a profile-guided build, about 18% faster for long
# campaigns (same trace hashes). Trains the profile first (about two minutes)
# when it is missing or the sources changed. Needs llvm-profdata:
# rustup component add llvm-tools. make explore-pgo ARGS="--seeds 0..100000"
explore-pgo:
	bash scripts/pgo.sh cargo run --release --bin quorate -- explore $(ARGS)

# The long campaign: thousands of seeds of every sim-tests file.
SEEDS ?= 2000
sim:
	QUORATE_SEEDS=$(SEEDS) cargo test --release --test linearizability --test sessions --test elections --test crash_recovery --test reads --test preferences --test bonding
	cargo run --release -- explore --seeds 0..$(SEEDS) --workload counter
	cargo run --release -- explore --seeds 0..$(SEEDS) --workload register

# One seed again, with its readable trace: make replay SEED=42 ARGS="--faults all"
# (or a scenario file: make replay ARGS="--scenario FILE").
replay:
	cargo run --release --features flaws -- replay $(if $(SEED),--seed $(SEED)) $(ARGS)

# A failing seed reduced to a minimal scenario:
# make shrink SEED=42 ARGS="--flaw commit-by-counting" (writes shrunk-seed-42.json).
shrink:
	cargo run --release --features flaws -- shrink --seed $(SEED) $(ARGS)

# A failing seed, shrunk, kept as a regression test that `cargo test` replays:
# make regress NAME=lost-commit SEED=42 ARGS="--faults all" COMMENT="what broke".
regress:
	cargo run --release --features flaws -- shrink --seed $(SEED) $(ARGS) \
	  --out corpus/regressions/$(NAME).json --comment "$(or $(COMMENT),$(NAME))"

# One run as an HTML timeline: make timeline SEED=42 ARGS="--faults all".
timeline:
	cargo run --release --features flaws -- timeline --seed $(SEED) $(ARGS) --out target/timeline/seed-$(SEED).html

# The timeline of a seed as PNG screenshots (headless chromium:
# apt-get install -y chromium): make timeline-shot SEED=42.
timeline-shot:
	mkdir -p target/timeline
	cargo run --release --features flaws -- timeline --seed $(SEED) $(ARGS) --out target/timeline/seed-$(SEED).html
	bash scripts/timeline_shot.sh target/timeline/seed-$(SEED).html target/timeline/seed-$(SEED).png 1600x900 1024x700

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --all-features -- -D warnings

fmt:
	cargo fmt --all

doc:
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features

bench: bench-engine bench-sim bench-check

# Engine-only throughput: 3 and 5 engines in one thread, no simulator.
bench-engine:
	cargo bench --bench engine

# Simulator: events per second under load and swarm faults, overhead against
# the engine-only loop, per-event cost from 5 to 101 nodes, seeds per second.
# FIGURES=2 (or 1,3, ...) prints only those.
bench-sim:
	QUORATE_BENCH_FIGURES=$(FIGURES) cargo bench --bench sim

# Figure 2 counted in instructions under callgrind (steady where wall time is
# not): simulator and bare engines per event, and their ratio. Needs valgrind.
# CACHE=1 adds instruction-cache misses and mispredicted branches per event.
bench-sim-instructions:
	CACHE=$(CACHE) bash benches/instructions.sh

# Every planted flaw against explore: seeds to the first failure (median of
# TRIALS disjoint seed ranges), wall time, and the size of the shrunk failure.
# forget-expired-sessions needs more clients than sessions:
# make bench-flaws FLAWS=forget-expired-sessions EXTRA="--clients 20 --sessions-max 4"
bench-flaws:
	cargo build --release --features flaws
	bash benches/flaws.sh

# Linearizability checker against Porcupine (Go) on the same files, one run:
# quorate's time, Porcupine's and the ratio (Porcupine skipped without `go`).
# Porcupine v1.3.0 comes through the Go module proxy; on a box without it,
# PORCUPINE_SRC=DIR (a local copy of its source) builds it offline.
# QUORATE_BENCH_KV_FILES="A.txt B.txt" times more kv histories on both sides.
bench-check:
	cargo bench --bench check

# Runtime (feature tokio): 3 nodes on loopback, commits/s and p50/p99 at 1, 16
# and 256 clients with fsync on and off; then redis-benchmark against three
# `quorate node` processes beside a plain redis-server.
.PHONY: bench-runtime install-redis-tools
bench-runtime:
	cargo bench --features tokio --bench runtime
	bash benches/redis_compare.sh

# redis-cli, redis-benchmark and redis-server, for the node process test and
# bench-runtime.
install-redis-tools:
	apt-get install -y redis-tools redis-server

# The runtime on madsim (RUSTFLAGS="--cfg madsim": tokio is madsim-tokio, so
# TCP, time, the executor and OS entropy are madsim's), built in its own target
# directory so it never invalidates the normal build. A 3-node group with the
# leader killed and restarted under packet loss, checked for linearizability,
# then the same seed twice (MADSIM_TEST_CHECK_DETERMINISM). Replay a failure
# with `MADSIM_TEST_SEED=n make madsim`; more seeds with MADSIM_TEST_NUM=k.
.PHONY: madsim
MADSIM = RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim
madsim:
	$(MADSIM) cargo test --features tokio --test madsim_entropy --test madsim_group
	$(MADSIM) MADSIM_TEST_CHECK_DETERMINISM=1 cargo test --features tokio --test madsim_group

# The same 5-node kv workload for 20 simulated seconds, no faults, under
# quorate's simulator, turmoil and madsim (built in target/madsim): one table of
# simulated time and operations per wall second, as ratios to quorate's.
.PHONY: bench-drivers
bench-drivers:
	bash benches/drivers.sh

# A cargo-fuzz campaign (nightly) of one target of fuzz/ over its committed
# seed corpus: make fuzz TARGET=codec SECS=300. New inputs go to
# fuzz/corpus/$(TARGET) (ignored), crashes to fuzz/artifacts/$(TARGET); copy a
# crash into corpus/fuzz/$(TARGET)/ once fixed so `cargo test` keeps it fixed.
# TARGET=schedule steers whole simulated runs; FLAWS=name,... plants bugs for
# it to find; a crash's scenario lands in fuzz/artifacts/schedule-scenarios/;
# `quorate shrink --fuzz-input CRASH --flaw NAME` makes it a small scenario.
.PHONY: fuzz
TARGET ?= codec
SECS ?= 300
FLAWS ?=
fuzz:
	@cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	mkdir -p fuzz/corpus/$(TARGET)
	cd fuzz && QUORATE_FLAWS=$(FLAWS) QUORATE_SCENARIO_DIR=$(CURDIR)/fuzz/artifacts/$(TARGET)-scenarios \
	  cargo +nightly fuzz run $(TARGET) corpus/$(TARGET) ../corpus/fuzz/$(TARGET) -- \
	  -max_total_time=$(SECS) -max_len=8192
