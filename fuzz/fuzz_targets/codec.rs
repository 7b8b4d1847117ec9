//! Arbitrary bytes decoded as every wire message type: never a panic, and
//! whatever decodes round-trips. The body is `quorate::fuzz_targets::codec_target`,
//! which `cargo test` also runs over `corpus/fuzz/codec/` on stable.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    quorate::fuzz_targets::codec_target(bytes);
});
