//! A short 3- or 5-node key-value run whose faults, message fates and client
//! timing are steered by the input bytes, with every checker on. The body is
//! `quorate::fuzz_targets::schedule_target`, which `cargo test` also runs over
//! `corpus/fuzz/schedule/` on stable. Planted flaws come from `$QUORATE_FLAWS`
//! (e.g. `make fuzz TARGET=schedule FLAWS=commit-by-counting`); a failing
//! input's scenario is written to `$QUORATE_SCENARIO_DIR`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    quorate::fuzz_targets::schedule_target(bytes);
});
