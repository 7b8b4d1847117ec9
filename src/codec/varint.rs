//! Variable-length integers, as bincode 2's standard configuration writes
//! them: a value below 251 is one byte; otherwise a marker byte (251, 252, 253,
//! 254) is followed by the value as a little-endian u16, u32, u64 or u128.
//! Signed values are zigzagged first (0, -1, 1, -2 … become 0, 1, 2, 3 …).

/// The largest value written as itself, in one byte.
pub(super) const SINGLE_BYTE_MAX: u8 = 250;
/// Marks a u16 to follow.
pub(super) const U16_MARKER: u8 = 251;
/// Marks a u32 to follow.
pub(super) const U32_MARKER: u8 = 252;
/// Marks a u64 to follow.
pub(super) const U64_MARKER: u8 = 253;
/// Marks a u128 to follow.
pub(super) const U128_MARKER: u8 = 254;

/// Appends `value` to `out`.
#[inline(always)]
pub(super) fn write_u64(out: &mut Vec<u8>, value: u64) {
    if value <= u64::from(SINGLE_BYTE_MAX) {
        out.push(value as u8);
    } else if value <= u64::from(u16::MAX) {
        // Every log index past 250: common enough to inline too. Marker and
        // bytes as one slice: one capacity check, not two.
        let [b0, b1] = (value as u16).to_le_bytes();
        out.extend_from_slice(&[U16_MARKER, b0, b1]);
    } else {
        write_wide_u64(out, value);
    }
}

/// [`write_u64`] past two bytes: out of line, so the common cases inline small.
#[inline(never)]
fn write_wide_u64(out: &mut Vec<u8>, value: u64) {
    debug_assert!(value > u64::from(u16::MAX), "{value} fits two bytes");
    let [b0, b1, b2, b3, b4, b5, b6, b7] = value.to_le_bytes();
    if value <= u64::from(u32::MAX) {
        out.extend_from_slice(&[U32_MARKER, b0, b1, b2, b3]);
    } else {
        out.extend_from_slice(&[U64_MARKER, b0, b1, b2, b3, b4, b5, b6, b7]);
    }
}

/// Appends `value` to `out`.
pub(super) fn write_u128(out: &mut Vec<u8>, value: u128) {
    match u64::try_from(value) {
        Ok(value) => write_u64(out, value),
        Err(_) => {
            out.push(U128_MARKER);
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
}

/// Zigzag: small magnitudes of either sign become small unsigned values.
#[inline]
pub(super) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// The inverse of [`zigzag`].
#[inline]
pub(super) fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Zigzag for 128 bits.
pub(super) fn zigzag_128(value: i128) -> u128 {
    ((value << 1) ^ (value >> 127)) as u128
}

/// The inverse of [`zigzag_128`].
pub(super) fn unzigzag_128(value: u128) -> i128 {
    ((value >> 1) as i128) ^ -((value & 1) as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_interleaves_signs_and_round_trips() {
        for (value, expected) in [(0, 0), (-1, 1), (1, 2), (-2, 3), (2, 4)] {
            assert_eq!(zigzag(value), expected);
            assert_eq!(unzigzag(expected), value);
        }
        for value in [i64::MIN, i64::MAX, -300, 300] {
            assert_eq!(unzigzag(zigzag(value)), value);
            assert_eq!(unzigzag_128(zigzag_128(value.into())), value.into());
        }
        assert_eq!(unzigzag_128(zigzag_128(i128::MIN)), i128::MIN);
    }

    #[test]
    fn each_width_gets_its_marker() {
        let written = |value| {
            let mut out = Vec::new();
            write_u64(&mut out, value);
            out
        };
        assert_eq!(written(250), [250]);
        assert_eq!(written(251), [U16_MARKER, 251, 0]);
        assert_eq!(written(65_536), [U32_MARKER, 0, 0, 1, 0]);
        assert_eq!(written(1 << 32)[0], U64_MARKER);
        let mut out = Vec::new();
        write_u128(&mut out, u128::MAX);
        assert_eq!((out[0], out.len()), (U128_MARKER, 17));
    }
}
