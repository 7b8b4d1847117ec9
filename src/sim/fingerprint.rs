//! A fast 64-bit hash for fingerprints that never leave a run's code: the
//! trace hash and the invariant checker's chain hashes. Each 64-bit word is
//! folded in with a 128-bit multiply; the bytes of a value are read as
//! little-endian words, so the result is the same on every machine.
//!
//! Not for adversarial input (blake3 does the GroupId and the handshake).
//! Two runs that differ in any event differ in their fingerprint unless a
//! 64-bit collision strikes, as likely as with any 64-bit digest.

use core::hash::Hasher;

/// An odd constant with well-mixed bits (the golden ratio's fraction).
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// A running fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(u64);

impl Fingerprint {
    /// A fingerprint that starts from `seed`.
    pub const fn new(seed: u64) -> Self {
        Self(seed ^ 0x243f_6a88_85a3_08d3)
    }

    /// Folds one word in.
    #[inline]
    pub fn word(&mut self, word: u64) {
        let product = u128::from(self.0 ^ word) * u128::from(MULTIPLIER);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    /// Folds bytes in, with their length (so "ab" + "" differs from "a" + "b").
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.word(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.word(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        if !chunks.remainder().is_empty() {
            let mut tail = [0u8; 8];
            tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
            self.word(u64::from_le_bytes(tail));
        }
    }

    /// The fingerprint so far, with a last mix so that every input bit can
    /// flip every output bit.
    pub fn value(&self) -> u64 {
        let mut last = *self;
        last.word(0x1319_8a2e_0370_7344);
        last.word(last.0 >> 29);
        last.0
    }
}

impl Hasher for Fingerprint {
    fn write(&mut self, bytes: &[u8]) {
        self.bytes(bytes);
    }

    fn write_u8(&mut self, byte: u8) {
        self.word(u64::from(byte));
    }

    fn write_u32(&mut self, word: u32) {
        self.word(u64::from(word));
    }

    fn write_u64(&mut self, word: u64) {
        self.word(word);
    }

    fn write_usize(&mut self, word: usize) {
        self.word(word as u64);
    }

    fn finish(&self) -> u64 {
        self.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(build: impl FnOnce(&mut Fingerprint)) -> u64 {
        let mut fingerprint = Fingerprint::new(0);
        build(&mut fingerprint);
        fingerprint.value()
    }

    #[test]
    fn every_input_matters() {
        let base = of(|f| f.word(1));
        assert_ne!(base, of(|f| f.word(2)));
        assert_ne!(base, of(|f| f.word(1 << 63)));
        assert_ne!(of(|f| f.word(0)), of(|f| (f.word(0), f.word(0)).1));
        assert_ne!(
            of(|f| f.bytes(b"ab")),
            of(|f| (f.bytes(b"a"), f.bytes(b"b")).1)
        );
        assert_ne!(of(|f| f.bytes(b"")), of(|f| f.bytes(b"\0")));
        assert_ne!(Fingerprint::new(1).value(), Fingerprint::new(2).value());
    }

    #[test]
    fn one_flipped_bit_flips_about_half_the_output() {
        for bit in 0..64 {
            let changed = (of(|f| f.word(7)) ^ of(|f| f.word(7 ^ (1 << bit)))).count_ones();
            assert!(
                (12..=52).contains(&changed),
                "bit {bit}: {changed} output bits"
            );
        }
    }

    #[test]
    fn is_the_same_on_every_machine() {
        // Pinned: a change here changes every trace hash (say so in review).
        let pinned = of(|f| {
            f.word(42);
            f.bytes(b"quorate, a replicated state machine");
        });
        assert_eq!(format!("{pinned:016x}"), "951c7bdc7bf41be0");
    }
}
