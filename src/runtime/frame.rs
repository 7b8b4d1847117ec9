//! Length-prefixed frames on a byte stream: `u32` little-endian length, then the
//! payload. The length is checked against a limit before anything is allocated.

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

/// Reads one frame and decodes it as `T`.
///
/// # Errors
///
/// As [`read_frame`], and [`FrameError::Decode`] for bytes that are not a `T`.
pub async fn read_message<T, R>(reader: &mut R, limit: usize) -> Result<T, FrameError>
where
    T: serde::de::DeserializeOwned,
    R: AsyncRead + Unpin,
{
    let payload = read_frame(reader, limit).await?;
    codec::decode(&payload).map_err(FrameError::Decode)
}

/// Appends `payload` as one frame to `out`.
///
/// # Errors
///
/// Refuses a payload over [`codec::FRAME_BYTES_MAX`].
pub fn push_frame(payload: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    if payload.len() > codec::FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes exceeds the limit", payload.len()),
        ));
    }
    let length = u32::try_from(payload.len()).map_err(io::Error::other)?;
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Encodes `value` as one frame.
///
/// # Errors
///
/// An encoding failure, or a payload over [`codec::FRAME_BYTES_MAX`].
pub fn encode_frame<T: serde::Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let payload = codec::encode(value).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(FRAME_LENGTH_BYTES + payload.len());
    push_frame(&payload, &mut frame)?;
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
