# The front door. Each target is a thin line over cargo.
.PHONY: test lint fmt doc bench bench-engine bench-check

# Every test, every cargo feature (the madsim build is its own target).
test:
	cargo test --all-features

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --all-features -- -D warnings

fmt:
	cargo fmt --all

doc:
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features

bench: bench-engine

# Engine-only throughput: 3 and 5 engines in one thread, no simulator.
bench-engine:
	cargo bench --bench engine

# Linearizability checker against Porcupine (Go) on the same files, one run:
# quorate's time, Porcupine's and the ratio (Porcupine skipped without `go`).
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
