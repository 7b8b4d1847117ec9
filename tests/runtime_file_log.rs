//! The durable log: what survives a reopen, a torn tail, and what is refused as
//! corruption.
#![cfg(feature = "tokio")]

use std::fs;
use std::path::PathBuf;

use quorate::runtime::{FileLogError, FileLogOptions, FileLogStore, RECORD_HEADER_BYTES};
use quorate::{Cursor, HardState, Index, PeerId, Storage, Term};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path =
            std::env::temp_dir().join(format!("quorate-{name}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn open(dir: &TempDir) -> FileLogStore<String> {
    FileLogStore::open(&dir.0, FileLogOptions::default()).expect("log opens")
}

fn open_small_segments(dir: &TempDir) -> FileLogStore<String> {
    let options = FileLogOptions {
        segment_bytes_max: 256,
        ..FileLogOptions::default()
    };
    FileLogStore::open(&dir.0, options).expect("log opens")
}

fn fill(log: &mut FileLogStore<String>, count: u64, term: u64) {
    for n in 0..count {
        log.append(format!("entry-{n}-{}", "x".repeat(20)), Term(term));
    }
    log.sync().expect("sync");
}

/// The length of each of `records` records of equal size in a segment's
/// `bytes`, which end with the sync marker of the one sync (a header alone).
fn record_bytes(bytes: &[u8], records: usize) -> usize {
    assert_eq!((bytes.len() - RECORD_HEADER_BYTES) % records, 0);
    (bytes.len() - RECORD_HEADER_BYTES) / records
}

/// A log of `count` entries (term 1, one sync), closed: its last segment.
fn written(dir: &TempDir, count: u64) -> PathBuf {
    let mut log = open(dir);
    fill(&mut log, count, 1);
    drop(log);
    segments(dir).pop().expect("a segment")
}

/// `log` takes a new entry at `next`, which survives a reopen.
fn appends_after_reopening(dir: &TempDir, mut log: FileLogStore<String>, next: Index) {
    assert_eq!(log.append("after".into(), Term(2)), next);
    log.sync().unwrap();
    drop(log);
    let log = open(dir);
    assert_eq!(log.get(next), Some(("after".into(), Term(2))));
}

fn segments(dir: &TempDir) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir.0)
        .unwrap()
        .map(|item| item.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    paths.sort();
    paths
}

#[test]
fn entries_and_hard_state_survive_a_reopen() {
    let dir = TempDir::new("reopen");
    let mut log = open(&dir);
    fill(&mut log, 5, 1);
    let hard_state = HardState {
        current_term: Term(3),
        voted_for: Some(PeerId(2)),
    };
    log.save_hard_state(hard_state);
    log.sync().unwrap();
    drop(log);

    let log = open(&dir);
    assert_eq!(log.last(), Cursor::new(Term(1), Index(5)));
    assert_eq!(log.hard_state(), hard_state);
    assert_eq!(
        log.get(Index(3)).unwrap().0,
        format!("entry-2-{}", "x".repeat(20))
    );
}

#[test]
fn a_torn_tail_is_cut_back_to_the_last_whole_record() {
    let dir = TempDir::new("torn");
    let segment = written(&dir, 4);
    let length = fs::metadata(&segment).unwrap().len();
    // Cut in the middle of the last record, before its sync marker, as a
    // crash during the write of that sync would.
    let file = fs::OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(length - RECORD_HEADER_BYTES as u64 - 7)
        .unwrap();
    drop(file);

    let log = open(&dir);
    assert_eq!(
        log.last(),
        Cursor::new(Term(1), Index(3)),
        "the torn record is gone"
    );
    appends_after_reopening(&dir, log, Index(4));
}

#[test]
fn garbage_after_the_last_record_is_a_torn_tail() {
    let dir = TempDir::new("garbage-tail");
    let segment = written(&dir, 3);
    let mut bytes = fs::read(&segment).unwrap();
    bytes.extend_from_slice(&[0xAB; 40]);
    fs::write(&segment, bytes).unwrap();

    let log = open(&dir);
    assert_eq!(log.last(), Cursor::new(Term(1), Index(3)));
}

#[test]
fn a_corrupt_middle_record_is_an_error_naming_file_and_offset() {
    let dir = TempDir::new("corrupt");
    let segment = written(&dir, 5);
    let mut bytes = fs::read(&segment).unwrap();
    let record_bytes = record_bytes(&bytes, 5);
    // Flip a payload byte of the second record.
    bytes[record_bytes + 20] ^= 0xFF;
    fs::write(&segment, &bytes).unwrap();

    let error = FileLogStore::<String>::open(&dir.0, FileLogOptions::default())
        .expect_err("corruption must be refused");
    match &error {
        FileLogError::Corrupt { path, offset, .. } => {
            assert_eq!(path, &segment);
            assert_eq!(*offset, record_bytes as u64);
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&segment.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&format!("offset {record_bytes}")),
        "{message}"
    );
    // Nothing was cut: the file is as it was.
    assert_eq!(fs::read(&segment).unwrap(), bytes);
}

#[test]
fn a_corrupt_header_before_the_tail_is_an_error_too() {
    let dir = TempDir::new("corrupt-header");
    let segment = written(&dir, 5);
    let mut bytes = fs::read(&segment).unwrap();
    let record_bytes = record_bytes(&bytes, 5);
    bytes[2 * record_bytes] ^= 0x40; // the length field of the third record
    fs::write(&segment, &bytes).unwrap();
    assert!(matches!(
        FileLogStore::<String>::open(&dir.0, FileLogOptions::default()),
        Err(FileLogError::Corrupt { offset, .. }) if offset == 2 * record_bytes as u64
    ));
}

#[test]
fn a_synced_last_record_damaged_in_place_is_refused_not_cut() {
    let dir = TempDir::new("rot-last");
    let segment = written(&dir, 4);
    let mut bytes = fs::read(&segment).unwrap();
    let record_bytes = record_bytes(&bytes, 4);
    // Bit rot in the payload of the last record, which was synced: its sync
    // marker after it tells it from a torn write.
    bytes[3 * record_bytes + 20] ^= 0x08;
    fs::write(&segment, &bytes).unwrap();

    match FileLogStore::<String>::open(&dir.0, FileLogOptions::default()) {
        Err(FileLogError::Corrupt { path, offset, .. }) => {
            assert_eq!(path, segment);
            assert_eq!(offset, 3 * record_bytes as u64);
        }
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(log) => panic!("a synced record was cut: the log ends at {}", log.last()),
    }
    assert_eq!(
        fs::read(&segment).unwrap(),
        bytes,
        "a refused log was changed"
    );
}

#[test]
fn a_damaged_last_sync_marker_costs_no_entry() {
    let dir = TempDir::new("rot-marker");
    let segment = written(&dir, 4);
    let mut bytes = fs::read(&segment).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();

    let log = open(&dir);
    assert_eq!(log.last(), Cursor::new(Term(1), Index(4)));
    appends_after_reopening(&dir, log, Index(5));
}

#[test]
fn whole_records_kept_from_a_crash_are_marked_when_the_log_opens() {
    let dir = TempDir::new("recovered-marked");
    let segment = written(&dir, 3);
    // The records were written whole but the sync never returned: no marker.
    let length = fs::metadata(&segment).unwrap().len();
    let file = fs::OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(length - RECORD_HEADER_BYTES as u64).unwrap();
    drop(file);

    // Opening keeps them and marks them: they are durable from now on.
    let log = open(&dir);
    assert_eq!(log.last(), Cursor::new(Term(1), Index(3)));
    drop(log);
    assert_eq!(fs::metadata(&segment).unwrap().len(), length);
    // So damage to the last of them is now refused, not cut.
    let mut bytes = fs::read(&segment).unwrap();
    let record_bytes = record_bytes(&bytes, 3);
    bytes[2 * record_bytes + 20] ^= 0x08;
    fs::write(&segment, &bytes).unwrap();
    assert!(matches!(
        FileLogStore::<String>::open(&dir.0, FileLogOptions::default()),
        Err(FileLogError::Corrupt { offset, .. }) if offset == 2 * record_bytes as u64
    ));
}

#[test]
fn truncate_is_durable_and_new_entries_follow() {
    let dir = TempDir::new("truncate");
    let mut log = open_small_segments(&dir);
    fill(&mut log, 20, 1);
    assert!(segments(&dir).len() > 3, "small segments roll over");
    log.truncate(Index(6));
    log.append("six".into(), Term(2));
    log.sync().unwrap();
    drop(log);

    let log = open_small_segments(&dir);
    assert_eq!(log.last(), Cursor::new(Term(2), Index(6)));
    assert_eq!(log.get(Index(6)), Some(("six".into(), Term(2))));
    assert_eq!(log.term_at(Index(5)), Some(Term(1)));
    assert_eq!(log.get(Index(7)), None);
}

#[test]
fn pruning_removes_whole_segments_only() {
    let dir = TempDir::new("prune");
    let mut log = open_small_segments(&dir);
    fill(&mut log, 20, 1);
    let before = segments(&dir).len();
    log.prune_prefix(Index(10));
    log.sync().unwrap();
    let after = segments(&dir).len();
    assert!(after < before, "{before} segments before, {after} after");
    assert_eq!(log.available(), Index(10)..=Index(20));
    drop(log);

    let log = open_small_segments(&dir);
    assert_eq!(log.available(), Index(10)..=Index(20));
    assert_eq!(log.term_at(Index(10)), Some(Term(1)));
    assert_eq!(log.get(Index(10)), None);
    assert!(log.get(Index(11)).is_some());
}

#[test]
fn reset_discards_everything_durably() {
    let dir = TempDir::new("reset");
    let mut log = open_small_segments(&dir);
    fill(&mut log, 10, 1);
    log.reset_to(Cursor::new(Term(4), Index(40)));
    assert_eq!(log.append("41".into(), Term(5)), Index(41));
    log.sync().unwrap();
    drop(log);
    let log = open_small_segments(&dir);
    assert_eq!(log.available(), Index(40)..=Index(41));
    assert_eq!(log.get(Index(41)), Some(("41".into(), Term(5))));
}

#[test]
fn a_corrupt_state_file_is_refused() {
    let dir = TempDir::new("state");
    let mut log = open(&dir);
    log.save_hard_state(HardState {
        current_term: Term(2),
        voted_for: None,
    });
    log.sync().unwrap();
    drop(log);
    let state = dir.0.join("state");
    let mut bytes = fs::read(&state).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&state, bytes).unwrap();
    let error = FileLogStore::<String>::open(&dir.0, FileLogOptions::default()).unwrap_err();
    assert!(
        matches!(error, FileLogError::CorruptState { .. }),
        "{error}"
    );
}

/// Damage done to one segment file between a close and a reopen.
#[derive(Debug, Clone)]
enum Damage {
    /// Bytes XORed with nonzero masks, from an offset (scaled into the file).
    Flip { at: u64, masks: Vec<u8> },
    /// The file cut to a length (scaled into the file), as a torn write would.
    Truncate { at: u64 },
    /// Bytes appended after the last record.
    Garbage { bytes: Vec<u8> },
}

fn damage() -> impl proptest::strategy::Strategy<Value = Damage> {
    use proptest::prelude::*;
    prop_oneof![
        (any::<u64>(), proptest::collection::vec(1u8..=255, 1..8))
            .prop_map(|(at, masks)| Damage::Flip { at, masks }),
        any::<u64>().prop_map(|at| Damage::Truncate { at }),
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(|bytes| Damage::Garbage { bytes }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]

    /// Any damage to any segment: the reopened log either holds a prefix of
    /// what was written, entry for entry, losing nothing before the damaged
    /// segment, or is refused with an error naming that segment, which it
    /// left as it was. Damage to a segment other than the last is always
    /// refused: only the last one can end in a torn write.
    #[test]
    fn a_damaged_segment_loses_nothing_silently(
        entries in 8u64..40,
        segment_choice in proptest::prelude::any::<proptest::sample::Index>(),
        damage in damage(),
    ) {
        let dir = TempDir::new("damaged");
        let options = FileLogOptions { fsync: false, segment_bytes_max: 256 };
        let mut log = FileLogStore::<String>::open(&dir.0, options.clone()).expect("log opens");
        fill(&mut log, entries, 1);
        drop(log);
        let written: Vec<String> = (0..entries)
            .map(|n| format!("entry-{n}-{}", "x".repeat(20)))
            .collect();

        let all = segments(&dir);
        let chosen = segment_choice.index(all.len());
        let segment = &all[chosen];
        let is_last = chosen + 1 == all.len();
        let mut bytes = fs::read(segment).unwrap();
        let length = bytes.len();
        // Entries in the segments before the damaged one: none may be lost.
        let before = if chosen == 0 {
            0
        } else {
            let name = segment.file_stem().unwrap().to_string_lossy().into_owned();
            name.split('-').nth(1).unwrap().parse::<u64>().unwrap() - 1
        };
        match &damage {
            Damage::Flip { at, masks } => {
                let start = (*at % bytes.len() as u64) as usize;
                for (byte, mask) in bytes[start..].iter_mut().zip(masks) {
                    *byte ^= mask;
                }
            }
            Damage::Truncate { at } => bytes.truncate((*at % bytes.len() as u64) as usize),
            Damage::Garbage { bytes: garbage } => bytes.extend_from_slice(garbage),
        }
        fs::write(segment, &bytes).unwrap();

        match FileLogStore::<String>::open(&dir.0, options) {
            Ok(log) => {
                let last = log.last().index().0;
                proptest::prop_assert!(
                    is_last,
                    "damage to segment {chosen} of {} was accepted: {damage:?}",
                    all.len()
                );
                proptest::prop_assert!(last >= before, "lost entries before the damaged segment: {last} < {before}");
                // Only a torn tail may be cut. The one sync left a marker
                // after the last record, so a flip costs an entry only if it
                // runs from that record into the marker (which makes it look
                // torn); garbage after the marker costs none. A damaged record
                // with a whole one after it is corruption, never cut.
                let lost_max = match &damage {
                    Damage::Flip { at, masks } => {
                        let start = (*at % length as u64) as usize;
                        let marker = length - RECORD_HEADER_BYTES;
                        u64::from(start < marker && start + masks.len() > marker)
                    }
                    Damage::Truncate { .. } => entries,
                    Damage::Garbage { .. } => 0,
                };
                proptest::prop_assert!(
                    entries - last <= lost_max,
                    "{damage:?} cost {} entries", entries - last
                );
                for index in 1..=last {
                    proptest::prop_assert_eq!(
                        log.get(Index(index)),
                        Some((written[index as usize - 1].clone(), Term(1))),
                        "entry {} after reopening", index
                    );
                }
            }
            Err(error) => {
                let named = match &error {
                    FileLogError::Corrupt { path, .. } | FileLogError::Gap { path, .. } => {
                        path == segment || all.contains(path)
                    }
                    _ => false,
                };
                proptest::prop_assert!(named, "{error}");
                proptest::prop_assert_eq!(fs::read(segment).unwrap(), bytes, "a refused log was changed");
            }
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Any bytes at all as the only segment, whole records of the right
    /// indexes among them or not: opening never panics, and a refused file is
    /// left as it was.
    #[test]
    fn any_bytes_as_a_segment_open_or_are_refused_without_panic(
        records in 0u64..6,
        noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        noise_at in proptest::prelude::any::<proptest::sample::Index>(),
    ) {
        let dir = TempDir::new("any-bytes");
        let mut log = open(&dir);
        fill(&mut log, records.max(1), 1);
        drop(log);
        let segment = segments(&dir).pop().unwrap();
        let mut bytes = fs::read(&segment).unwrap();
        let at = noise_at.index(bytes.len() + 1);
        let tail = bytes.split_off(at);
        bytes.extend_from_slice(&noise);
        if records > 0 {
            bytes.extend_from_slice(&tail);
        }
        fs::write(&segment, &bytes).unwrap();

        match FileLogStore::<String>::open(&dir.0, FileLogOptions::default()) {
            Ok(log) => {
                for index in 1..=log.last().index().0 {
                    proptest::prop_assert!(log.get(Index(index)).is_some(), "entry {} missing", index);
                }
            }
            Err(_) => proptest::prop_assert_eq!(fs::read(&segment).unwrap(), bytes),
        }
    }
}
