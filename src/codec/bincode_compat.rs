//! The codec's own serde format against the `bincode` crate's, whose format it
//! keeps: the same bytes for every kind of value serde has, and the same
//! verdict (and value) on any input, valid or not.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::{decode, encode};
use crate::examples::KvCmd;
use crate::log::{Cursor, Index, Term};
use crate::raft::{ClientId, LogEntry, Message, Proposal, ProposalId};

fn reference() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ super::FRAME_BYTES_MAX }>()
}

fn bincode_encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, reference()).expect("bincode encodes it")
}

/// What bincode decodes from `bytes`, all of them, re-encoded; `None` if it
/// refuses.
fn bincode_verdict<T: Serialize + serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<Vec<u8>> {
    match bincode::serde::decode_from_slice::<T, _>(bytes, reference()) {
        Ok((value, read)) if read == bytes.len() => Some(bincode_encode(&value)),
        _ => None,
    }
}

/// What our codec decodes from `bytes`, re-encoded; `None` if it refuses.
fn our_verdict<T: Serialize + serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<Vec<u8>> {
    decode::<T>(bytes)
        .ok()
        .map(|value| encode(&value).expect("encodes"))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Unit;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Wrapper(i32);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Variety {
    Unit,
    Newtype(i32),
    Tuple(u16, String),
    Struct { a: u64, b: Option<char> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Integers {
    u8: u8,
    i8: i8,
    u16: u16,
    i16: i16,
    u32: u32,
    i32: i32,
    u64: u64,
    i64: i64,
    u128: u128,
    i128: i128,
    usize: usize,
    isize: isize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Everything {
    integers: Integers,
    flag: bool,
    f32: f32,
    f64: f64,
    char: char,
    text: String,
    bytes: Vec<u8>,
    maybe: Option<u32>,
    maybe_text: Option<String>,
    pair: (u8, i64),
    map: BTreeMap<String, u64>,
    unit: (),
    unit_struct: Unit,
    wrapper: Wrapper,
    varieties: Vec<Variety>,
}

fn integers() -> impl Strategy<Value = Integers> {
    (
        (any::<u8>(), any::<i8>(), any::<u16>(), any::<i16>()),
        (any::<u32>(), any::<i32>(), any::<u64>(), any::<i64>()),
        (any::<u128>(), any::<i128>(), any::<usize>(), any::<isize>()),
        // Small values too, where each varint width begins.
        prop::sample::select(vec![
            0u64,
            250,
            251,
            65_535,
            65_536,
            u64::from(u32::MAX) + 1,
        ]),
    )
        .prop_map(
            |((u8, i8, u16, i16), (u32, i32, u64, i64), (u128, i128, usize, isize), edge)| {
                Integers {
                    u8,
                    i8,
                    u16,
                    i16,
                    u32,
                    i32,
                    u64: u64 ^ edge,
                    i64,
                    u128,
                    i128,
                    usize,
                    isize,
                }
            },
        )
}

fn variety() -> impl Strategy<Value = Variety> {
    prop_oneof![
        Just(Variety::Unit),
        any::<i32>().prop_map(Variety::Newtype),
        (any::<u16>(), ".{0,8}").prop_map(|(a, b)| Variety::Tuple(a, b)),
        (any::<u64>(), any::<Option<char>>()).prop_map(|(a, b)| Variety::Struct { a, b }),
    ]
}

fn everything() -> impl Strategy<Value = Everything> {
    (
        (integers(), any::<bool>(), any::<f32>(), any::<f64>()),
        (
            any::<char>(),
            ".{0,300}",
            prop::collection::vec(any::<u8>(), 0..300),
        ),
        (
            any::<Option<u32>>(),
            any::<Option<String>>(),
            any::<(u8, i64)>(),
        ),
        (
            prop::collection::btree_map(".{0,4}", any::<u64>(), 0..4),
            any::<i32>(),
            prop::collection::vec(variety(), 0..6),
        ),
    )
        .prop_map(
            |(
                (integers, flag, f32, f64),
                (char, text, bytes),
                (maybe, maybe_text, pair),
                (map, wrapped, varieties),
            )| Everything {
                integers,
                flag,
                f32,
                f64,
                char,
                text,
                bytes,
                maybe,
                maybe_text,
                pair,
                map,
                unit: (),
                unit_struct: Unit,
                wrapper: Wrapper(wrapped),
                varieties,
            },
        )
}

fn messages() -> Vec<Message<KvCmd>> {
    let entry = |n: u64| {
        (
            Term(n),
            LogEntry::Command(crate::raft::CommandEntry {
                proposal: ProposalId {
                    client: ClientId(n),
                    sequence: n * 1000,
                },
                settled_below: n,
                session: Index(n << 33),
                command: KvCmd::Append {
                    key: format!("k{n}"),
                    value: "é".repeat(n as usize * 100),
                },
                batch_end: n.is_multiple_of(2),
            }),
        )
    };
    vec![
        Message::PreVote {
            term: Term(3),
            last_log: Cursor::new(Term(2), Index(70_000)),
        },
        Message::AppendEntries {
            term: Term(9),
            prev: Cursor::new(Term(8), Index(250)),
            entries: (1..5).map(entry).collect(),
            leader_commit: Index(251),
            read_round: u64::MAX,
        },
        Message::AppendEntriesResponse {
            term: Term(9),
            read_round: 17,
            result: Err(crate::raft::ConflictHint {
                next_index: Index(4),
                conflict_term: Some(Term(1)),
                refused_prev: Index(9),
            }),
        },
        Message::Propose {
            proposal: Proposal {
                id: ProposalId {
                    client: ClientId(1 << 40),
                    sequence: 5,
                },
                command: KvCmd::Append {
                    key: String::new(),
                    value: "v".into(),
                },
                settled_below: 4,
                session: Index(70_001),
            },
        },
    ]
}

#[test]
fn raft_messages_have_the_bytes_bincode_gives_them() {
    for message in messages() {
        let bytes = encode(&message).unwrap();
        assert_eq!(bytes, bincode_encode(&message), "{}", message.name());
        assert_eq!(decode::<Message<KvCmd>>(&bytes).unwrap(), message);
    }
}

#[test]
fn a_sequence_without_a_length_is_refused_as_bincode_refuses_it() {
    struct Unsized;
    impl Serialize for Unsized {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq((0..3).filter(|_| true))
        }
    }
    let mut buffer = vec![7];
    assert!(super::encode_into(&Unsized, &mut buffer).is_err());
    assert_eq!(buffer, [7], "a refused value leaves the buffer as it was");
    assert!(bincode::serde::encode_to_vec(Unsized, reference()).is_err());
}

/// Bytes where the format's rules change: booleans and options (0, 1, 2),
/// varint markers (250 to 255), UTF-8 lead and continuation bytes.
fn telling_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(vec![
            0u8, 1, 2, 3, 250, 251, 252, 253, 254, 255, 0x7f, 0x80, 0xc1, 0xc2, 0xe0, 0xf4, 0xf5
        ]),
        any::<u8>(),
    ]
}

proptest! {
    #[test]
    fn every_kind_of_value_has_bincodes_bytes(value in everything()) {
        let bytes = encode(&value).unwrap();
        prop_assert_eq!(&bytes, &bincode_encode(&value));
        prop_assert_eq!(our_verdict::<Everything>(&bytes), Some(bytes));
    }

    #[test]
    fn damaged_values_get_bincodes_verdict(
        value in everything(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), telling_byte()), 0..3),
    ) {
        let mut bytes = encode(&value).unwrap();
        for (position, byte) in flips {
            let position = position.index(bytes.len());
            bytes[position] = byte;
        }
        // Sometimes cut short, sometimes with a byte too many.
        match cut.index(3) {
            0 => bytes.truncate(cut.index(bytes.len())),
            1 => bytes.push(0),
            _ => {}
        }
        prop_assert_eq!(our_verdict::<Everything>(&bytes), bincode_verdict::<Everything>(&bytes));
    }

    #[test]
    fn arbitrary_bytes_get_bincodes_verdict(bytes in prop::collection::vec(telling_byte(), 0..40)) {
        prop_assert_eq!(our_verdict::<Vec<Variety>>(&bytes), bincode_verdict::<Vec<Variety>>(&bytes));
        prop_assert_eq!(
            our_verdict::<(Option<char>, i16, u128, bool)>(&bytes),
            bincode_verdict::<(Option<char>, i16, u128, bool)>(&bytes)
        );
        // Every stretch of the input, as a sequence of one small kind each.
        for start in 0..bytes.len() {
            for end in start..=bytes.len() {
                let part = &bytes[start..end];
                prop_assert_eq!(our_verdict::<Vec<bool>>(part), bincode_verdict::<Vec<bool>>(part));
                prop_assert_eq!(
                    our_verdict::<Vec<Option<u16>>>(part),
                    bincode_verdict::<Vec<Option<u16>>>(part)
                );
                prop_assert_eq!(our_verdict::<Vec<char>>(part), bincode_verdict::<Vec<char>>(part));
                prop_assert_eq!(
                    our_verdict::<Vec<(i32, u64)>>(part),
                    bincode_verdict::<Vec<(i32, u64)>>(part)
                );
                prop_assert_eq!(our_verdict::<String>(part), bincode_verdict::<String>(part));
            }
        }
        prop_assert_eq!(
            our_verdict::<Message<KvCmd>>(&bytes),
            bincode_verdict::<Message<KvCmd>>(&bytes)
        );
    }
}
