//! CRC-32C (Castagnoli), the checksum of sealed frames and log records.
//!
//! Most frames are a few dozen bytes. For those, the `crc32c` crate's general
//! path (align to 8 bytes, then three interleaved streams, then recombine)
//! costs two to three times a plain loop over the SSE 4.2 `crc32`
//! instruction, and a checksum is taken twice for every simulated message. So
//! short inputs on x86-64 take the plain loop; long inputs and other CPUs keep
//! the crate, whose interleaving wins from a few hundred bytes on. Both
//! compute the same function (a test compares them over every length up to
//! `SHORT_BYTES_MAX` and beyond).

/// Inputs up to this many bytes take the plain loop where it is available.
const SHORT_BYTES_MAX: usize = 256;

/// The CRC-32C of `bytes`.
#[inline]
pub fn crc32c(bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() <= SHORT_BYTES_MAX && std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE 4.2, the only feature `short_sse42` enables.
        return unsafe { short_sse42(bytes) };
    }
    crc32c::crc32c(bytes)
}

/// CRC-32C over 8 bytes per `crc32` instruction, then the rest byte by byte.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn short_sse42(bytes: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u64};
    let mut words = bytes.chunks_exact(8);
    let mut crc = u64::from(u32::MAX);
    for word in &mut words {
        crc = _mm_crc32_u64(crc, u64::from_le_bytes(word.try_into().expect("8 bytes")));
    }
    // The instruction leaves the 32-bit CRC in the low half.
    let mut crc = crc as u32;
    for &byte in words.remainder() {
        crc = _mm_crc32_u8(crc, byte);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_crate_at_every_length_and_alignment() {
        let bytes: Vec<u8> = (0..1100u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..8 {
            for end in start..bytes.len() {
                let input = &bytes[start..end];
                assert_eq!(
                    crc32c(input),
                    crc32c::crc32c(input),
                    "{} bytes from offset {start}",
                    input.len()
                );
            }
        }
    }

    #[test]
    fn known_values() {
        // RFC 3720, appendix B.4: 32 bytes of zeros, of ones, ascending.
        assert_eq!(crc32c(&[0; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xff; 32]), 0x62a8_ab43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46dd_794e);
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }
}
