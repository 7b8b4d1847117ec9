//! Fuzz targets as ordinary functions.
//!
//! The cargo-fuzz crate in `fuzz/` calls these from libFuzzer on nightly, and
//! `tests/fuzz_corpus.rs` runs every file of `corpus/fuzz/<target>/` through
//! [`TARGETS`] on stable, so CI covers the committed corpus without nightly.
//! A target panics exactly when it has found a bug.

use core::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bond::{HandshakeFrame, WireFrame};
use crate::codec::{self, SEAL_BYTES};
use crate::examples::{CounterCmd, KvCmd, RegisterCmd};
use crate::raft::Message;

/// A fuzz target: panics on the bytes of a bug.
pub type Target = fn(&[u8]);

/// Every target by name: the name is its directory under `corpus/fuzz/` and its
/// binary in `fuzz/fuzz_targets/`.
pub const TARGETS: &[(&str, Target)] = &[("codec", codec_target)];

/// Arbitrary bytes decoded as every wire message type, plain and sealed.
///
/// Never panics unless the codec is wrong: decoding fails cleanly or yields a
/// value that encodes, decodes back to itself and re-encodes to the same bytes;
/// unsealing agrees with decoding; a sealed value unseals to itself.
pub fn codec_target(bytes: &[u8]) {
    // `bytes` with its own checksum appended: gets the fuzzer past the CRC into
    // `unseal`'s decoding.
    let mut sealed = bytes.to_vec();
    sealed.extend_from_slice(&crc32c::crc32c(bytes).to_le_bytes());

    round_trip::<Message<KvCmd>>(bytes, &sealed);
    round_trip::<Message<CounterCmd>>(bytes, &sealed);
    round_trip::<Message<RegisterCmd>>(bytes, &sealed);
    round_trip::<WireFrame<KvCmd>>(bytes, &sealed);
    round_trip::<WireFrame<CounterCmd>>(bytes, &sealed);
    round_trip::<WireFrame<RegisterCmd>>(bytes, &sealed);
    round_trip::<HandshakeFrame>(bytes, &sealed);
}

fn round_trip<T>(bytes: &[u8], sealed: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let decoded = codec::decode::<T>(bytes);
    if let Ok(value) = &decoded {
        let encoded = codec::encode(value).expect("a decoded value encodes");
        let again = codec::decode::<T>(&encoded).expect("an encoded value decodes");
        assert_eq!(&again, value, "decode(encode(x)) != x");
        let twice = codec::encode(&again).expect("a decoded value encodes");
        assert_eq!(twice, encoded, "encoding is not canonical");

        let resealed = codec::seal(value).expect("a decoded value seals");
        assert_eq!(resealed.len(), encoded.len() + SEAL_BYTES);
        let unsealed = codec::unseal::<T>(&resealed).expect("a sealed value unseals");
        assert_eq!(&unsealed, value, "unseal(seal(x)) != x");
    }

    // The input as a sealed frame: whatever it unseals to must round-trip too.
    if let Ok(value) = codec::unseal::<T>(bytes) {
        let resealed = codec::seal(&value).expect("an unsealed value seals");
        assert_eq!(codec::unseal::<T>(&resealed).as_ref(), Ok(&value));
    }

    // With a valid checksum, unsealing is decoding.
    assert_eq!(
        codec::unseal::<T>(sealed),
        decoded,
        "unseal and decode disagree"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_inputs_do_not_panic() {
        codec_target(&[]);
        codec_target(&[0]);
        codec_target(&[0xff; 64]);
        codec_target(&[9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    }
}
