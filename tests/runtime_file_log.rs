//! The durable log: what survives a reopen, a torn tail, and what is refused as
//! corruption.
#![cfg(feature = "tokio")]

use std::fs;
use std::path::PathBuf;

use quorate::runtime::{FileLogError, FileLogOptions, FileLogStore};
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
    let mut log = open(&dir);
    fill(&mut log, 4, 1);
    drop(log);
    let segment = segments(&dir).pop().unwrap();
    let length = fs::metadata(&segment).unwrap().len();
    // Cut in the middle of the last record, as a crash during a write would.
    let file = fs::OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(length - 7).unwrap();
    drop(file);

    let mut log = open(&dir);
    assert_eq!(
        log.last(),
        Cursor::new(Term(1), Index(3)),
        "the torn record is gone"
    );
    assert_eq!(log.append("after".into(), Term(2)), Index(4));
    log.sync().unwrap();
    drop(log);
    let log = open(&dir);
    assert_eq!(log.get(Index(4)), Some(("after".into(), Term(2))));
}

#[test]
fn garbage_after_the_last_record_is_a_torn_tail() {
    let dir = TempDir::new("garbage-tail");
    let mut log = open(&dir);
    fill(&mut log, 3, 1);
    drop(log);
    let segment = segments(&dir).pop().unwrap();
    let mut bytes = fs::read(&segment).unwrap();
    bytes.extend_from_slice(&[0xAB; 40]);
    fs::write(&segment, bytes).unwrap();

    let log = open(&dir);
    assert_eq!(log.last(), Cursor::new(Term(1), Index(3)));
}

#[test]
fn a_corrupt_middle_record_is_an_error_naming_file_and_offset() {
    let dir = TempDir::new("corrupt");
    let mut log = open(&dir);
    fill(&mut log, 5, 1);
    drop(log);
    let segment = segments(&dir).pop().unwrap();
    let mut bytes = fs::read(&segment).unwrap();
    let record_bytes = bytes.len() / 5;
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
    let mut log = open(&dir);
    fill(&mut log, 5, 1);
    drop(log);
    let segment = segments(&dir).pop().unwrap();
    let mut bytes = fs::read(&segment).unwrap();
    let record_bytes = bytes.len() / 5;
    bytes[2 * record_bytes] ^= 0x40; // the length field of the third record
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
