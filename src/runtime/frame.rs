//! Length-prefixed frames on a byte stream: `u32` little-endian length, then the
//! payload. The length is checked against a limit before anything is allocated.
//!
//! A message's payload is [sealed](codec::seal): its encoding, then its CRC32C,
//! as the simulator carries it. TCP's 16-bit checksum lets corrupted segments
//! through now and then; without a checksum of its own such a frame could
//! still decode, as another term or index, where sealed it is refused (and
//! its connection closed) like any malformed frame. The simulator's corruption
//! faults test exactly this path.

use core::fmt;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::{self, DecodeError};

/// Bytes of the length prefix.
pub const FRAME_LENGTH_BYTES: usize = 4;

/// The largest frame accepted before a bond is established: handshake frames
/// are small, so an unauthenticated peer cannot make a node allocate much.
pub const HANDSHAKE_FRAME_BYTES_MAX: usize = 64 * 1024;

const _: () = assert!(HANDSHAKE_FRAME_BYTES_MAX <= codec::FRAME_BYTES_MAX);

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The connection failed or closed.
    Io(io::Error),
    /// The peer announced a frame larger than the limit.
    TooLarge {
        /// The announced length.
        bytes: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The frame's bytes are not a valid message.
    Decode(DecodeError),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(error) => write!(f, "connection: {error}"),
            Self::TooLarge { bytes, limit } => {
                write!(f, "frame of {bytes} bytes exceeds the limit of {limit}")
            }
            Self::Decode(error) => write!(f, "undecodable frame: {error}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<io::Error> for FrameError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

/// Reads one frame of at most `limit` bytes.
///
/// # Errors
///
/// [`FrameError::TooLarge`] before reading the payload of an oversized frame;
/// [`FrameError::Io`] when the stream fails or ends.
///
/// # Cancel safety
///
/// Not cancel safe: a partly read frame is lost. Read from one task.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Vec<u8>, FrameError> {
    let mut length = [0u8; FRAME_LENGTH_BYTES];
    reader.read_exact(&mut length).await?;
    let bytes = u32::from_le_bytes(length) as usize;
    if bytes > limit {
        return Err(FrameError::TooLarge { bytes, limit });
    }
    let mut payload = vec![0u8; bytes];
    reader.read_exact(&mut payload).await?;
    Ok(payload)
}

/// Reads one frame, checks its seal and decodes it as `T`.
///
/// # Errors
///
/// As [`read_frame`], and [`FrameError::Decode`] for a frame whose checksum
/// fails ([`DecodeError::Checksum`]) or whose bytes are not a `T`.
pub async fn read_message<T, R>(reader: &mut R, limit: usize) -> Result<T, FrameError>
where
    T: serde::de::DeserializeOwned,
    R: AsyncRead + Unpin,
{
    let payload = read_frame(reader, limit).await?;
    codec::unseal(&payload).map_err(FrameError::Decode)
}

/// Appends `value`, sealed, as one frame to `out`: encoded in place, so a
/// batch of messages costs no buffer per message.
///
/// # Errors
///
/// An encoding failure, or a sealed payload over [`codec::FRAME_BYTES_MAX`];
/// `out` is then as it was.
pub fn push_message<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> io::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_LENGTH_BYTES]);
    let sealed = codec::seal_into(value, out).map_err(io::Error::other);
    let payload = out.len() - start - FRAME_LENGTH_BYTES;
    let length = match sealed {
        Ok(()) if payload <= codec::FRAME_BYTES_MAX => {
            u32::try_from(payload).expect("the frame limit fits a u32")
        }
        Ok(()) => {
            out.truncate(start);
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("frame of {payload} bytes exceeds the limit"),
            ));
        }
        Err(error) => {
            out.truncate(start);
            return Err(error);
        }
    };
    out[start..start + FRAME_LENGTH_BYTES].copy_from_slice(&length.to_le_bytes());
    Ok(())
}

/// Encodes `value`, sealed, as one frame.
///
/// # Errors
///
/// As [`push_message`].
pub fn encode_frame<T: serde::Serialize + ?Sized>(value: &T) -> io::Result<Vec<u8>> {
    let mut frame = Vec::new();
    push_message(value, &mut frame)?;
    Ok(frame)
}

/// Writes already framed bytes and flushes.
///
/// # Errors
///
/// A write error.
pub async fn write_frames<W: AsyncWrite + Unpin>(writer: &mut W, frames: &[u8]) -> io::Result<()> {
    writer.write_all(frames).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 16;

    /// Reads `bytes` as one message of type `(u64, String)`.
    async fn read(bytes: &[u8]) -> Result<(u64, String), FrameError> {
        let mut reader = bytes;
        read_message(&mut reader, LIMIT).await
    }

    #[tokio::test]
    async fn a_sealed_message_reads_back() {
        let value = (42u64, "forty-two".to_owned());
        let mut batch = encode_frame(&value).unwrap();
        push_message(&(7u64, String::new()), &mut batch).unwrap();
        let mut reader = &batch[..];
        let first: (u64, String) = read_message(&mut reader, LIMIT).await.unwrap();
        let second: (u64, String) = read_message(&mut reader, LIMIT).await.unwrap();
        assert_eq!((first, second), (value, (7, String::new())));
        assert!(reader.is_empty());
    }

    /// Any one flipped byte of the payload is refused: without the seal, most
    /// of these flips decode as another, valid message.
    #[tokio::test]
    async fn every_flipped_payload_byte_is_refused() {
        let frame = encode_frame(&(1_000u64, "term".to_owned())).unwrap();
        let mut undetected = Vec::new();
        for position in FRAME_LENGTH_BYTES..frame.len() {
            let mut damaged = frame.clone();
            damaged[position] ^= 0x04;
            match read(&damaged).await {
                Err(FrameError::Decode(_)) => {}
                other => undetected.push((position, format!("{other:?}"))),
            }
        }
        assert!(
            undetected.is_empty(),
            "read despite the flip: {undetected:?}"
        );
    }

    #[tokio::test]
    async fn an_unsealed_payload_is_refused_by_its_checksum() {
        let payload = codec::encode(&(1u64, "old".to_owned())).unwrap();
        let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&payload);
        assert!(matches!(
            read(&frame).await,
            Err(FrameError::Decode(DecodeError::Checksum))
        ));
    }

    #[test]
    fn an_oversized_message_leaves_the_batch_as_it_was() {
        let mut batch = encode_frame(&1u64).unwrap();
        let before = batch.clone();
        let huge = vec![0u8; codec::FRAME_BYTES_MAX];
        assert!(push_message(&huge, &mut batch).is_err());
        assert_eq!(batch, before);
    }
}
