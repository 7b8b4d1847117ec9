//! The one place that knows the wire and disk encoding.
//!
//! Everything quorate sends or stores is serde-serialized in bincode 2's
//! standard format (little-endian; integers wider than a byte as varints: a
//! value below 251 in one byte, else a marker byte 251 to 254 and the value
//! as a little-endian u16, u32, u64 or u128),
//! byte for byte, by a serde serializer and deserializer of our own: they
//! write into and read from a slice directly and decode strings without
//! zeroing a buffer first, so decoding costs a fifth less than through the
//! `bincode` crate's serde layer. That crate is unmaintained
//! (RUSTSEC-2025-0141) and is now only a dev-dependency: the reference that
//! tests check our bytes and verdicts against, value by value.
//!
//! Decoding takes untrusted bytes: it never panics, refuses input longer than
//! [`FRAME_BYTES_MAX`] before looking at it, lets no length prefix allocate more
//! than the input could hold, and rejects trailing bytes. Every failure is a
//! [`DecodeError`].

mod checksum;
mod decoder;
mod encoder;
mod varint;

use core::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) use checksum::crc32c;
use decoder::{Decoder, Why};
use encoder::Encoder;

/// The largest encoded message or record, in bytes. A frame or record claiming
/// more is refused before anything is allocated for it.
pub const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input is longer than [`FRAME_BYTES_MAX`].
    TooLarge {
        /// The input's length.
        bytes: usize,
    },
    /// The input ended before the value did.
    Truncated,
    /// A value decoded but bytes were left over.
    TrailingBytes {
        /// How many bytes were not consumed.
        bytes: usize,
    },
    /// A sealed frame's checksum does not match its bytes: corrupted in transit.
    Checksum,
    /// The bytes do not describe a value of the expected type.
    Malformed {
        /// What the decoder found wrong.
        reason: String,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { bytes } => {
                write!(f, "{bytes} bytes exceed the limit of {FRAME_BYTES_MAX}")
            }
            Self::Truncated => f.write_str("input ended in the middle of a value"),
            Self::TrailingBytes { bytes } => write!(f, "{bytes} bytes left after the value"),
            Self::Checksum => f.write_str("checksum mismatch: the frame was corrupted"),
            Self::Malformed { reason } => write!(f, "malformed input: {reason}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    /// What the encoder refused.
    pub reason: String,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot encode: {}", self.reason)
    }
}

impl std::error::Error for EncodeError {}

/// Encodes `value`, appending to `buffer`.
///
/// # Errors
///
/// Fails if a serde implementation refuses (for example a map with non-string
/// keys in some formats) or the result would exceed [`FRAME_BYTES_MAX`].
pub fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    buffer: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = buffer.len();
    if let Err(error) = value.serialize(&mut Encoder { out: buffer }) {
        buffer.truncate(start);
        return Err(EncodeError {
            reason: error.into_reason(),
        });
    }
    let written = buffer.len() - start;
    if written > FRAME_BYTES_MAX {
        buffer.truncate(start);
        return Err(EncodeError {
            reason: format!("{written} bytes exceed the limit of {FRAME_BYTES_MAX}"),
        });
    }
    Ok(())
}

/// Encodes `value` into a new buffer.
///
/// # Errors
///
/// As [`encode_into`].
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut buffer = Vec::new();
    encode_into(value, &mut buffer)?;
    Ok(buffer)
}

/// Decodes one value that must span all of `bytes`.
///
/// # Errors
///
/// Any [`DecodeError`]; never panics.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > FRAME_BYTES_MAX {
        return Err(DecodeError::TooLarge { bytes: bytes.len() });
    }
    let mut decoder = Decoder::new(bytes);
    let value = T::deserialize(&mut decoder).map_err(|invalid| match invalid.why() {
        Why::Truncated => DecodeError::Truncated,
        _ => DecodeError::Malformed {
            reason: invalid.to_string(),
        },
    })?;
    match decoder.remaining() {
        0 => Ok(value),
        left => Err(DecodeError::TrailingBytes { bytes: left }),
    }
}

/// Bytes of checksum [`seal`] appends.
pub const SEAL_BYTES: usize = 4;

/// Encodes `value` and appends a checksum (CRC32C, little-endian), for
/// transports that do not detect corruption themselves.
///
/// # Errors
///
/// As [`encode_into`].
pub fn seal<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut buffer = Vec::new();
    seal_into(value, &mut buffer)?;
    Ok(buffer)
}

/// [`seal`], appending to `buffer` (a reused buffer spares an allocation per
/// frame).
///
/// # Errors
///
/// As [`encode_into`]; `buffer` is then as it was.
pub fn seal_into<T: Serialize + ?Sized>(
    value: &T,
    buffer: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = buffer.len();
    encode_into(value, buffer)?;
    let checksum = crc32c(&buffer[start..]);
    buffer.extend_from_slice(&checksum.to_le_bytes());
    Ok(())
}

/// Verifies the checksum of a [`seal`]ed frame, then decodes it.
///
/// # Errors
///
/// [`DecodeError::Checksum`] for corrupted bytes, else as [`decode`].
pub fn unseal<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() < SEAL_BYTES {
        return Err(DecodeError::Truncated);
    }
    let (payload, stored) = bytes.split_at(bytes.len() - SEAL_BYTES);
    if crc32c(payload).to_le_bytes()[..] != *stored {
        return Err(DecodeError::Checksum);
    }
    decode(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Sample {
        Unit,
        Pair(u64, String),
        List(Vec<u32>),
    }

    #[test]
    fn round_trips() {
        for value in [
            Sample::Unit,
            Sample::Pair(7, "seven".into()),
            Sample::List(vec![1, 2, 3]),
        ] {
            let bytes = encode(&value).unwrap();
            assert_eq!(decode::<Sample>(&bytes).unwrap(), value);
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&Sample::Unit).unwrap();
        bytes.push(0);
        assert_eq!(
            decode::<Sample>(&bytes),
            Err(DecodeError::TrailingBytes { bytes: 1 })
        );
    }

    #[test]
    fn truncated_and_unknown_variants_are_errors() {
        let bytes = encode(&Sample::Pair(300, "abc".into())).unwrap();
        assert_eq!(
            decode::<Sample>(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Truncated)
        );
        assert!(matches!(
            decode::<Sample>(&[9]),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn a_hostile_length_does_not_allocate() {
        // Variant 2 (List) claiming u64::MAX elements, then nothing.
        let mut bytes = vec![2u8, 0xff];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode::<Sample>(&bytes).is_err());
    }

    #[test]
    fn a_flipped_bit_in_a_sealed_frame_is_detected() {
        let sealed = seal(&Sample::Pair(7, "seven".into())).unwrap();
        assert_eq!(
            unseal::<Sample>(&sealed),
            Ok(Sample::Pair(7, "seven".into()))
        );
        for position in 0..sealed.len() {
            let mut corrupted = sealed.clone();
            corrupted[position] ^= 0x10;
            assert_eq!(unseal::<Sample>(&corrupted), Err(DecodeError::Checksum));
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = decode::<Sample>(&bytes);
            let _ = decode::<Vec<Sample>>(&bytes);
        }
    }
}

#[cfg(test)]
mod bincode_compat;
