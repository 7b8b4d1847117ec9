//! A history file as `quorate check` reads it (byte 0 picks the format, the
//! rest is the text): never a panic, and a short history's verdict is the same
//! partitioned and whole. The body is `quorate::fuzz_targets::history_target`,
//! which `cargo test` also runs over `corpus/fuzz/history/` on stable.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    quorate::fuzz_targets::history_target(bytes);
});
