//! The fuzz targets over their committed corpus, on stable: every file of
//! `corpus/fuzz/<target>/` through the target of that name in
//! `quorate::fuzz_targets::TARGETS`. A crash libFuzzer finds is added to the
//! corpus, so it stays fixed.
//!
//! `cargo test --test fuzz_corpus -- --ignored write_seed_corpus` regenerates
//! the codec seeds (real encodings of every message variant, plus a few broken
//! ones).

use std::fs;
use std::path::{Path, PathBuf};

use quorate::bond::{HandshakeFrame, PROTOCOL_VERSION, Refusal, WireFrame};
use quorate::codec;
use quorate::examples::{CounterCmd, KvCmd, RegisterCmd};
use quorate::fuzz_targets::TARGETS;
use quorate::raft::{
    ClientId, CommandEntry, ConflictHint, LogEntry, Message, MessageKind, Proposal, ProposalId,
    ProposeError, QueryError,
};
use quorate::{Cursor, GroupIdInput, GroupIdInputs, GroupKey, Index, PeerId, Term, UniqueId};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/fuzz")
}

#[test]
fn every_corpus_file_passes_its_target() {
    let mut directories: Vec<PathBuf> = fs::read_dir(corpus_root())
        .expect("corpus/fuzz exists")
        .map(|entry| entry.expect("readable corpus entry").path())
        .filter(|path| path.is_dir())
        .collect();
    directories.sort();
    assert!(!directories.is_empty(), "corpus/fuzz holds no target");

    for directory in directories {
        let name = directory
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let target = TARGETS
            .iter()
            .find(|(target, _)| *target == name)
            .map(|(_, run)| *run)
            .unwrap_or_else(|| panic!("corpus/fuzz/{name}: no such target in TARGETS"));
        let mut files: Vec<PathBuf> = fs::read_dir(&directory)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "corpus/fuzz/{name} is empty");
        for file in &files {
            let bytes = fs::read(file).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&bytes));
            assert!(
                outcome.is_ok(),
                "target {name} panicked on {}",
                file.display()
            );
        }
        eprintln!("{name}: {} files", files.len());
    }
}

fn cursor(term: u64, index: u64) -> Cursor {
    Cursor(Term(term), Index(index))
}

fn entries<C: Clone>(commands: &[C]) -> Vec<(Term, LogEntry<C>)> {
    let mut entries = vec![(Term(3), LogEntry::Blank)];
    for (sequence, command) in commands.iter().enumerate() {
        entries.push((
            Term(3),
            LogEntry::Command(CommandEntry {
                command: command.clone(),
                proposal: ProposalId {
                    client: ClientId(0x5eed),
                    sequence: sequence as u64 + 1,
                },
                settled_below: sequence as u64,
                session: Index::ZERO,
                batch_end: sequence + 1 == commands.len(),
            }),
        ));
    }
    entries
}

/// One message of every variant, carrying `commands` where there are any.
fn every_message<C: Clone>(commands: &[C]) -> Vec<(&'static str, Message<C>)> {
    let id = ProposalId {
        client: ClientId(7),
        sequence: 300,
    };
    vec![
        (
            "pre-vote",
            Message::PreVote {
                term: Term(4),
                last_log: cursor(3, 17),
            },
        ),
        (
            "pre-vote-response",
            Message::PreVoteResponse {
                term: Term(4),
                granted: true,
            },
        ),
        (
            "request-vote",
            Message::RequestVote {
                term: Term(4),
                last_log: cursor(3, 17),
            },
        ),
        (
            "request-vote-response",
            Message::RequestVoteResponse {
                term: Term(4),
                granted: false,
            },
        ),
        (
            "append-entries",
            Message::AppendEntries {
                term: Term(3),
                prev: cursor(2, 250),
                entries: entries(commands),
                leader_commit: Index(249),
                read_round: 12,
            },
        ),
        (
            "heartbeat",
            Message::AppendEntries {
                term: Term(3),
                prev: cursor(3, 260),
                entries: Vec::new(),
                leader_commit: Index(260),
                read_round: u64::MAX,
            },
        ),
        (
            "append-entries-response-ok",
            Message::AppendEntriesResponse {
                term: Term(3),
                read_round: 12,
                result: Ok(Index(255)),
            },
        ),
        (
            "append-entries-response-conflict",
            Message::AppendEntriesResponse {
                term: Term(3),
                read_round: 12,
                result: Err(ConflictHint {
                    next_index: Index(200),
                    conflict_term: Some(Term(2)),
                    refused_prev: Index(260),
                }),
            },
        ),
        (
            "catch-up",
            Message::CatchUp {
                term: Term(3),
                leader_log_start: cursor(2, 1000),
                leader_commit: Index(1200),
            },
        ),
        (
            "fetch-entries",
            Message::FetchEntries {
                from: Index(17),
                count_max: 64,
            },
        ),
        (
            "fetched-entries",
            Message::FetchedEntries {
                prev: cursor(1, 16),
                entries: entries(commands),
                commit: Index(40),
            },
        ),
        (
            "propose",
            Message::Propose {
                proposal: Proposal {
                    id,
                    command: commands[0].clone(),
                    settled_below: 299,
                    session: Index::ZERO,
                },
            },
        ),
        (
            "propose-response-ok",
            Message::ProposeResponse {
                id,
                result: Ok(cursor(3, 301)),
            },
        ),
        (
            "propose-response-not-leader",
            Message::ProposeResponse {
                id,
                result: Err(ProposeError::NotLeader {
                    leader: Some(PeerId(2)),
                }),
            },
        ),
        ("read-index", Message::ReadIndex { read: 99 }),
        (
            "read-index-response-ok",
            Message::ReadIndexResponse {
                read: 99,
                result: Ok(Index(301)),
            },
        ),
        (
            "read-index-response-timeout",
            Message::ReadIndexResponse {
                read: 99,
                result: Err(QueryError::Timeout),
            },
        ),
    ]
}

fn every_handshake() -> Vec<(&'static str, HandshakeFrame)> {
    let inputs = GroupIdInputs::new(
        &GroupKey::from_secret("s3cret"),
        [0xab; 32],
        UniqueId::from("kv_v1"),
        UniqueId::from("log_replay_v1"),
    );
    vec![
        (
            "hello",
            HandshakeFrame::Hello {
                version: PROTOCOL_VERSION,
                peer: PeerId(3),
                nonce: [0x42; 32],
            },
        ),
        ("proof", HandshakeFrame::Proof { mac: [0x17; 32] }),
        ("identity", HandshakeFrame::Identity { inputs }),
        (
            "refused-mismatch",
            HandshakeFrame::Refused {
                reason: Refusal::Mismatch(vec![
                    GroupIdInput::ConsensusParameters,
                    GroupIdInput::MachineSignature,
                ]),
            },
        ),
        (
            "refused-authentication",
            HandshakeFrame::Refused {
                reason: Refusal::Authentication,
            },
        ),
    ]
}

/// Writes the codec seed corpus. Not part of the suite: run it by hand after a
/// wire type changes, and commit what changed.
#[test]
#[ignore = "writes corpus/fuzz/codec; run by hand"]
fn write_seed_corpus() {
    let directory = corpus_root().join("codec");
    fs::create_dir_all(&directory).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        fs::write(directory.join(format!("{name}.bin")), bytes).unwrap();
    };

    let kv = [
        KvCmd::Put {
            key: "k1".into(),
            value: "v1".into(),
        },
        KvCmd::Append {
            key: "k1".into(),
            value: "-more".into(),
        },
        KvCmd::Delete {
            key: "k2".into(),
            tag: Some(5),
        },
        KvCmd::Increment {
            key: "n".into(),
            by: -3,
            tag: None,
        },
    ];
    for (name, message) in every_message(&kv) {
        write(&format!("kv-{name}"), &codec::encode(&message).unwrap());
    }
    let counter = [
        CounterCmd::Increment(5),
        CounterCmd::Decrement(i64::MIN),
        CounterCmd::Reset,
    ];
    let register = [
        RegisterCmd::Write(9),
        RegisterCmd::Cas {
            expected: Some(9),
            new: 10,
        },
        RegisterCmd::Cas {
            expected: None,
            new: 1,
        },
    ];
    for (name, message) in every_message(&counter) {
        if name == "append-entries" || name == "propose" {
            write(
                &format!("counter-{name}"),
                &codec::encode(&message).unwrap(),
            );
        }
    }
    for (name, message) in every_message(&register) {
        if name == "fetched-entries" || name == "propose" {
            write(
                &format!("register-{name}"),
                &codec::encode(&message).unwrap(),
            );
        }
    }
    for (name, frame) in every_handshake() {
        write(
            &format!("handshake-{name}"),
            &codec::encode(&frame).unwrap(),
        );
        let wire: WireFrame<KvCmd> = WireFrame::Handshake(frame);
        write(
            &format!("wire-handshake-{name}"),
            &codec::encode(&wire).unwrap(),
        );
    }
    let (_, append) = every_message(&kv).swap_remove(4);
    let wire = WireFrame::Raft(append);
    write("wire-raft-append-entries", &codec::encode(&wire).unwrap());
    let sealed = codec::seal(&wire).unwrap();
    write("sealed-wire-raft-append-entries", &sealed);

    // Broken inputs: truncated, trailing bytes, a corrupted seal, hostile lengths.
    write("broken-truncated", &sealed[..sealed.len() / 2]);
    let mut trailing = codec::encode(&wire).unwrap();
    trailing.push(0);
    write("broken-trailing-byte", &trailing);
    let mut corrupted = sealed.clone();
    corrupted[3] ^= 0x10;
    write("broken-bad-checksum", &corrupted);
    let mut hostile = vec![4, 3, 2, 250, 12];
    hostile.extend_from_slice(&[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    write("broken-hostile-length", &hostile);
    write("broken-unknown-variant", &[0x2a, 0, 0, 0]);
    write("broken-empty", &[]);
}

/// `MessageKind::ALL` lists one kind per variant of `Message`, in order, each
/// named as its variant: what the trace hash and the trace's text rely on.
#[test]
fn message_kinds_follow_the_message_variants() {
    // Some variants come more than once (with and without entries, say).
    let mut kinds: Vec<MessageKind> = every_message(&[1u64, 2])
        .iter()
        .map(|(_, message)| message.kind())
        .collect();
    kinds.dedup();
    assert_eq!(kinds, MessageKind::ALL);
    for (_, message) in every_message(&[1u64]) {
        let debug = format!("{message:?}");
        assert!(
            debug.starts_with(message.name()),
            "{} names {debug}",
            message.name()
        );
    }
}
