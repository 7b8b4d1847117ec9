//! A fast 64-bit hash for fingerprints that never leave a run's code: the
//! trace hash and the invariant checker's chain hashes. Each 64-bit word is
//! folded in with a 128-bit multiply; the bytes of a value are read as
//! little-endian words, so the result is the same on every machine.
//!
//! Each fold waits for the one before, so a run of words costs a multiply's
//! latency per word. Where several words come at once (a trace event, the
//! bytes of a string), pairs of them are first multiplied together, apart from
//! the fingerprint so far and so side by side in the processor, and only their
//! sum joins the chain.
//!
//! Not for adversarial input (blake3 does the GroupId and the handshake).
//! Two runs that differ in any event differ in their fingerprint unless a
//! 64-bit collision strikes, as likely as with any 64-bit digest.

use core::hash::Hasher;

/// An odd constant with well-mixed bits (the golden ratio's fraction).
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// Keys that set the words of a pair apart (more digits of pi), so that
/// swapping two words changes the product.
const LANES: [u64; 8] = [
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
    0x4528_21e6_38d0_1377,
    0xbe54_66cf_34e9_0c6c,
    0xc0ac_29b7_c97c_50dd,
    0x3f84_d5b5_b547_0917,
    0x9216_d5d9_8979_fb1b,
    0xd131_0ba6_98df_b5ac,
];

/// Up to 8 bytes as a little-endian word.
#[inline]
fn le(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

/// The two halves of the 128-bit product of `a` and `b`, folded together.
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

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
        self.0 = fold(self.0 ^ word, MULTIPLIER);
    }

    /// Folds eight words in, in one step of the chain: their four pairs are
    /// multiplied apart from it. Word order matters.
    #[inline]
    pub fn eight(&mut self, words: [u64; 8]) {
        let pairs = fold(words[0] ^ LANES[0], words[1] ^ LANES[1])
            ^ fold(words[2] ^ LANES[2], words[3] ^ LANES[3])
            ^ fold(words[4] ^ LANES[4], words[5] ^ LANES[5])
            ^ fold(words[6] ^ LANES[6], words[7] ^ LANES[7]);
        self.word(pairs);
    }

    /// Up to 24 bytes as three words that, with the length, tell every byte
    /// (read as overlapping words, as [`bytes`](Self::bytes) reads its tail):
    /// a short text folded in with no step of its own. `None` if longer.
    #[inline]
    pub fn short_text(bytes: &[u8]) -> Option<[u64; 3]> {
        let length = bytes.len();
        Some(match length {
            0 => [0; 3],
            1..4 => [
                u64::from(bytes[0]) | u64::from(bytes[length / 2]) << 8,
                u64::from(bytes[length - 1]),
                0,
            ],
            4..8 => [le(&bytes[..4]), le(&bytes[length - 4..]), 0],
            8..=16 => [le(&bytes[..8]), le(&bytes[length - 8..]), 0],
            17..=24 => [le(&bytes[..8]), le(&bytes[8..16]), le(&bytes[length - 8..])],
            _ => return None,
        })
    }

    /// Folds bytes in, with their length (so "ab" + "" differs from "a" + "b"),
    /// 16 at a time. The last few are read as whole words that overlap the
    /// bytes before (the length tells where), never copied out byte by byte.
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.word(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(16);
        for chunk in &mut chunks {
            self.pair(le(&chunk[..8]), le(&chunk[8..]));
        }
        let rest = chunks.remainder();
        if rest.is_empty() {
            return;
        }
        let (low, high) = if bytes.len() >= 16 {
            // The last 16 bytes, overlapping the chunk before.
            let last = &bytes[bytes.len() - 16..];
            (le(&last[..8]), le(&last[8..]))
        } else {
            let [low, high, _] = Self::short_text(rest).expect("under 16 bytes");
            (low, high)
        };
        self.pair(low, high);
    }

    #[inline]
    fn pair(&mut self, low: u64, high: u64) {
        self.word(fold(low ^ LANES[0], high ^ LANES[1]));
    }

    /// The fingerprint of `bytes` alone, unfinished: a word to fold into
    /// another fingerprint, computed apart from it.
    pub fn of_bytes(bytes: &[u8]) -> u64 {
        let mut fingerprint = Self::new(0);
        fingerprint.bytes(bytes);
        fingerprint.0
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

    // Every integer width is written as whole words: `Hasher`'s defaults
    // for u16 and u128 (and so i16 and i128) write native-endian bytes,
    // which would make a trace hash differ between machines.
    fn write_u16(&mut self, word: u16) {
        self.word(u64::from(word));
    }

    fn write_u32(&mut self, word: u32) {
        self.word(u64::from(word));
    }

    fn write_u64(&mut self, word: u64) {
        self.word(word);
    }

    fn write_u128(&mut self, word: u128) {
        self.word(word as u64);
        self.word((word >> 64) as u64);
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

    /// Integers of every width go in as little-endian words, never as native
    /// bytes: a command's `Hash` gives the same trace hash on every machine.
    #[test]
    fn integers_of_every_width_are_words() {
        use core::hash::Hash;
        let word = |value: u64| of(|f| f.word(value));
        assert_eq!(of(|f| 0x0102u16.hash(f)), word(0x0102));
        assert_eq!(of(|f| (-2i16).hash(f)), word(0xfffe));
        assert_eq!(of(|f| 0x0102_0304u32.hash(f)), word(0x0102_0304));
        assert_eq!(of(|f| 7usize.hash(f)), word(7));
        assert_eq!(of(|f| (-1isize).hash(f)), word(u64::MAX));
        let wide = (5u128 << 64) | 9;
        assert_eq!(
            of(|f| wide.hash(f)),
            of(|f| {
                f.word(9);
                f.word(5);
            })
        );
        assert_eq!(
            of(|f| (-1i128).hash(f)),
            of(|f| {
                f.word(u64::MAX);
                f.word(u64::MAX);
            })
        );
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
        // Every byte counts, at every length (whole chunks, and each size of
        // the overlapping reads of the rest).
        let text = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEF";
        for length in 1..=text.len() {
            let text = &text[..length];
            for at in 0..length {
                let mut changed = text.to_vec();
                changed[at] ^= 1;
                assert_ne!(
                    of(|f| f.bytes(text)),
                    of(|f| f.bytes(&changed)),
                    "byte {at} of {length}"
                );
            }
        }
        // Every word of eight, each word's place, and the order of events.
        let eight = [1, 2, 3, 4, 5, 6, 7, 8];
        for at in 0..8 {
            let mut changed = eight;
            changed[at] ^= 1 << (at * 7);
            assert_ne!(
                of(|f| f.eight(eight)),
                of(|f| f.eight(changed)),
                "word {at}"
            );
            let mut swapped = eight;
            swapped.swap(at, (at + 1) % 8);
            assert_ne!(
                of(|f| f.eight(eight)),
                of(|f| f.eight(swapped)),
                "swap {at}"
            );
        }
        assert_ne!(
            of(|f| (f.eight(eight), f.eight([0; 8])).1),
            of(|f| (f.eight([0; 8]), f.eight(eight)).1)
        );
        // A short text's words tell every byte, at every length up to 24.
        for length in 1..=24 {
            let text = &text[..length];
            for at in 0..length {
                let mut changed = text.to_vec();
                changed[at] ^= 1;
                assert_ne!(
                    Fingerprint::short_text(text),
                    Fingerprint::short_text(&changed),
                    "byte {at} of {length}"
                );
            }
        }
        assert_eq!(Fingerprint::short_text(&[b'x'; 25]), None);
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
        assert_eq!(format!("{pinned:016x}"), "d270f7159082ba27");
    }
}
