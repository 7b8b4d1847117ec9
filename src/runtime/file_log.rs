//! [`FileLogStore`]: the durable [`Storage`] of a production node.
//!
//! ```text
//!   DIR/
//!     state                    hard state + log boundary, one checksummed record,
//!                              replaced atomically (write temp, fsync, rename, fsync dir)
//!     0000000001-00000000000000000001.seg   append-only segments:
//!     0000000002-00000000000000004097.seg   {sequence}-{first index}.seg
//!
//!   record = len u32 LE | payload crc32c u32 LE | header crc32c u32 LE | payload
//!   payload = codec(index, term, entry), or nothing: a sync marker
//! ```
//!
//! Writes go to a buffer and reach the file at [`sync`](Storage::sync), which
//! then fsyncs (unless [`FileLogOptions::fsync`] is off, for benchmarks): one
//! sync covers every append since the last, which is the driver's group commit.
//! `Storage`'s write methods cannot fail, so an I/O error is kept and returned
//! by the next `sync`, and by every one after it: the engine then stops.
//!
//! Every sync that wrote records ends them with a sync marker, in the same
//! write and so under the same fsync: every acknowledged record has a marker
//! after it.
//!
//! Recovery on [`open`](FileLogStore::open): a record that fails its checksums
//! (or is cut short) with no valid record after it is a torn tail, cut back to
//! the last whole record. A bad record followed by a valid one (a marker
//! included) is corruption and an error naming the file and offset: nothing is
//! ever skipped silently. So a synced record damaged in place (bit rot) is
//! refused, not cut as if torn: its marker follows it. Only damage that runs
//! from a record through the last marker to the end of the file looks like a
//! torn write; telling those apart would take the synced length written
//! somewhere else, at the price of a second fsync per sync.
//!
//! Every held entry is also cached in memory (reads never touch the disk); a
//! pruned prefix frees both its memory and, segment by segment, its files.

use core::fmt;
use core::ops::RangeInclusive;
use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::id::PeerId;
use crate::log::{Cursor, HardState, Index, Storage, StorageError, Term};
use crate::machine::Command;

/// Bytes of a record header: length, payload checksum, header checksum.
pub const RECORD_HEADER_BYTES: usize = 12;

/// The default size at which a new segment is started.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// Appended bytes buffered before they are written out even without a sync.
const WRITE_BUFFER_BYTES_MAX: usize = 4 * 1024 * 1024;

const STATE_FILE: &str = "state";
const STATE_TEMP_FILE: &str = "state.tmp";
const SEGMENT_SUFFIX: &str = ".seg";
/// Version of the state file's layout, and of the entries the segments hold.
/// Version 2: command entries carry their client's session stamp. Version 3:
/// segments hold sync markers. A version 2 log is read (it has no markers)
/// and upgraded on open.
const STATE_VERSION: u32 = 3;

/// The oldest layout this build reads.
const STATE_VERSION_MIN: u32 = 2;

/// How a [`FileLogStore`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLogOptions {
    /// Whether [`sync`](Storage::sync) calls fsync. Off only for benchmarks: a
    /// crash of the machine may then lose acknowledged entries.
    pub fsync: bool,
    /// A segment holding at least this many bytes is closed and a new one started.
    pub segment_bytes_max: u64,
}

impl Default for FileLogOptions {
    fn default() -> Self {
        Self {
            fsync: true,
            segment_bytes_max: SEGMENT_BYTES_DEFAULT,
        }
    }
}

/// Why a log directory could not be opened or written.
#[derive(Debug)]
pub enum FileLogError {
    /// An I/O operation failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A record before the tail is damaged: the log cannot be trusted past it.
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// The byte offset of the damaged record.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The state file is damaged (it is written atomically, so this is not a
    /// torn write).
    CorruptState {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The segments do not form one contiguous log.
    Gap {
        /// The segment that does not follow its predecessor.
        path: PathBuf,
        /// The index it should start at.
        expected_index: u64,
        /// The index its name says it starts at.
        found_index: u64,
    },
}

impl fmt::Display for FileLogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io {
                path,
                action,
                source,
            } => write!(f, "{action} {}: {source}", path.display()),
            Self::Corrupt {
                path,
                offset,
                reason,
            } => write!(
                f,
                "corrupt log record in {} at byte offset {offset}: {reason}; \
                 later records exist, so this is not a torn tail and nothing is skipped",
                path.display()
            ),
            Self::CorruptState { path, reason } => {
                write!(f, "corrupt state file {}: {reason}", path.display())
            }
            Self::Gap {
                path,
                expected_index,
                found_index,
            } => write!(
                f,
                "log segment {} starts at index {found_index}, expected {expected_index}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for FileLogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_error<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(io::Error) -> FileLogError + 'a {
    move |source| FileLogError::Io {
        path: path.to_owned(),
        action,
        source,
    }
}

/// What the state file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct StateRecord {
    version: u32,
    current_term: u64,
    voted_for: Option<u64>,
    /// The position before the first held entry (pruned or reset to).
    boundary_term: u64,
    boundary_index: u64,
    /// Segments with a lower sequence number are garbage (left by a prune or
    /// reset that crashed before deleting them).
    segments_from: u64,
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// Bytes written to the file (the write buffer comes after them).
    bytes: u64,
}

/// Where a cached entry lives on disk.
#[derive(Debug, Clone, Copy)]
struct Location {
    segment: u64,
    offset: u64,
}

/// A durable, append-only log in a directory: segment files with a crc32c per
/// record, and the hard state in its own atomically replaced file.
///
/// # Examples
///
/// ```
/// use quorate::runtime::{FileLogOptions, FileLogStore};
/// use quorate::{Index, Storage, Term};
///
/// let dir = std::env::temp_dir().join(format!("quorate-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let mut log = FileLogStore::<String>::open(&dir, FileLogOptions::default()).unwrap();
/// assert_eq!(log.append("hello".to_owned(), Term(1)), Index(1));
/// log.sync().unwrap();
/// drop(log);
/// let log = FileLogStore::<String>::open(&dir, FileLogOptions::default()).unwrap();
/// assert_eq!(log.get(Index(1)), Some(("hello".to_owned(), Term(1))));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct FileLogStore<C> {
    dir: PathBuf,
    options: FileLogOptions,
    state: StateRecord,
    /// Segments by sequence number; the last one is the active one.
    segments: BTreeMap<u64, Segment>,
    /// The active segment, open for writing.
    active: Option<File>,
    /// Appended records not yet written to the active segment.
    buffer: Vec<u8>,
    /// Held entries after the boundary, in index order, and where they are.
    entries: VecDeque<(C, Term)>,
    locations: VecDeque<Location>,
    /// Files written since the last sync (sequence numbers).
    unsynced_segments: Vec<u64>,
    /// Records were appended (or the log cut) since the last sync marker: the
    /// next sync writes one.
    unmarked: bool,
    dir_dirty: bool,
    state_dirty: bool,
    /// The first write error; every later sync reports it.
    failure: Option<StorageError>,
}

impl<C> fmt::Debug for FileLogStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileLogStore")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl<C: Command> FileLogStore<C> {
    /// Opens (or creates) the log in `dir`, recovering from a torn tail.
    ///
    /// # Errors
    ///
    /// [`FileLogError`]: I/O failures, a damaged record before the tail (naming
    /// the file and offset), a damaged state file, or a gap between segments.
    pub fn open(dir: impl AsRef<Path>, options: FileLogOptions) -> Result<Self, FileLogError> {
        let dir = dir.as_ref().to_owned();
        fs::create_dir_all(&dir).map_err(io_error(&dir, "create directory"))?;
        let state = read_state(&dir)?;
        let mut store = Self {
            dir,
            options,
            state,
            segments: BTreeMap::new(),
            active: None,
            buffer: Vec::new(),
            entries: VecDeque::new(),
            locations: VecDeque::new(),
            unsynced_segments: Vec::new(),
            unmarked: false,
            dir_dirty: false,
            state_dirty: false,
            failure: None,
        };
        store.load_segments()?;
        if store.state.version < STATE_VERSION {
            // First the state, so that a build that reads only the old layout
            // refuses this log by its version rather than by its markers.
            store.state.version = STATE_VERSION;
            store
                .write_state()
                .map_err(io_error(&store.dir.join(STATE_FILE), "upgrade"))?;
        }
        if store.unmarked {
            // Records kept from before a crash (or from a version 2 log) are
            // now held as durable: mark them before anyone is told so.
            let dir = store.dir.clone();
            store
                .sync_inner()
                .map_err(io_error(&dir, "mark the recovered records of"))?;
        }
        Ok(store)
    }

    /// The directory of this log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many segment files the log has.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn boundary(&self) -> Cursor {
        Cursor::new(
            Term(self.state.boundary_term),
            Index(self.state.boundary_index),
        )
    }

    fn first_index(&self) -> u64 {
        self.state.boundary_index + 1
    }

    fn last_index(&self) -> u64 {
        self.state.boundary_index + self.entries.len() as u64
    }

    fn position(&self, index: Index) -> Option<usize> {
        if index.0 < self.first_index() || index.0 > self.last_index() {
            return None;
        }
        usize::try_from(index.0 - self.first_index()).ok()
    }

    /// Reads every segment, cutting a torn tail and refusing corruption.
    fn load_segments(&mut self) -> Result<(), FileLogError> {
        let mut found: Vec<(u64, u64, PathBuf)> = Vec::new();
        let listing = fs::read_dir(&self.dir).map_err(io_error(&self.dir, "list"))?;
        for item in listing {
            let item = item.map_err(io_error(&self.dir, "list"))?;
            let name = item.file_name();
            let Some((sequence, first_index)) = name.to_str().and_then(parse_segment_name) else {
                continue;
            };
            found.push((sequence, first_index, item.path()));
        }
        found.sort_unstable();
        let count = found.len();
        for (position, (sequence, first_index, path)) in found.into_iter().enumerate() {
            let is_last = position + 1 == count;
            let stale = sequence < self.state.segments_from;
            if stale {
                fs::remove_file(&path).map_err(io_error(&path, "remove stale segment"))?;
                self.dir_dirty = true;
                continue;
            }
            self.load_segment(sequence, first_index, path, is_last)?;
        }
        if let Some(segment) = self.segments.values().next_back() {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&segment.path)
                .map_err(io_error(&segment.path, "open segment"))?;
            self.active = Some(file);
        }
        if self.dir_dirty {
            sync_dir(&self.dir).map_err(io_error(&self.dir, "fsync directory"))?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    fn load_segment(
        &mut self,
        sequence: u64,
        first_index: u64,
        path: PathBuf,
        is_last: bool,
    ) -> Result<(), FileLogError> {
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut file| file.read_to_end(&mut bytes))
            .map_err(io_error(&path, "read segment"))?;
        // Where the next entry's index should be; entries at or before the
        // boundary (a prune that crashed before deleting) are skipped.
        let mut expected = first_index;
        if !self.segments.is_empty() {
            let follows = self.first_index() + self.entries.len() as u64;
            if first_index != follows {
                return Err(FileLogError::Gap {
                    path,
                    expected_index: follows,
                    found_index: first_index,
                });
            }
        } else if first_index > self.first_index() {
            return Err(FileLogError::Gap {
                path,
                expected_index: self.first_index(),
                found_index: first_index,
            });
        }
        let mut offset = 0usize;
        // Whether the records read so far end with a sync marker.
        let mut marked = true;
        while offset < bytes.len() {
            match parse_record::<C>(&bytes[offset..]) {
                Ok(Record::Marker { length }) => {
                    marked = true;
                    offset += length;
                }
                Ok(Record::Entry {
                    index,
                    term,
                    entry,
                    length,
                }) => {
                    if index != expected {
                        return Err(FileLogError::Corrupt {
                            path,
                            offset: offset as u64,
                            reason: format!("record holds index {index}, expected {expected}"),
                        });
                    }
                    if index >= self.first_index() {
                        self.entries.push_back((entry, Term(term)));
                        self.locations.push_back(Location {
                            segment: sequence,
                            offset: offset as u64,
                        });
                    }
                    expected += 1;
                    offset += length;
                    marked = false;
                }
                Err(reason) => {
                    if !is_last || valid_record_after(&bytes, offset + 1) {
                        return Err(FileLogError::Corrupt {
                            path,
                            offset: offset as u64,
                            reason,
                        });
                    }
                    tracing::warn!(
                        file = %path.display(),
                        offset,
                        cut_bytes = bytes.len() - offset,
                        "torn tail cut back to the last whole record ({reason})"
                    );
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io_error(&path, "open segment"))?;
                    file.set_len(offset as u64)
                        .and_then(|()| file.sync_all())
                        .map_err(io_error(&path, "cut torn tail of"))?;
                    bytes.truncate(offset);
                    break;
                }
            }
        }
        if is_last {
            self.unmarked = !marked;
        }
        self.segments.insert(
            sequence,
            Segment {
                path,
                bytes: bytes.len() as u64,
            },
        );
        Ok(())
    }

    /// Remembers the first failure; the next sync reports it.
    fn fail(&mut self, message: String) {
        if self.failure.is_none() {
            tracing::error!(dir = %self.dir.display(), "log write failed: {message}");
            self.failure = Some(StorageError::new(message));
        }
    }

    /// Writes the buffered records to the active segment.
    fn write_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let Some((&sequence, segment)) = self.segments.iter_mut().next_back() else {
            return Err(io::Error::other("no active segment"));
        };
        let Some(file) = self.active.as_ref() else {
            return Err(io::Error::other("active segment not open"));
        };
        file.write_all_at(&self.buffer, segment.bytes)?;
        segment.bytes += self.buffer.len() as u64;
        self.buffer.clear();
        if !self.unsynced_segments.contains(&sequence) {
            self.unsynced_segments.push(sequence);
        }
        Ok(())
    }

    /// Starts a new segment whose first entry will be `first_index`.
    fn start_segment(&mut self, first_index: u64) -> io::Result<()> {
        self.write_buffer()?;
        if let Some(file) = self.active.take()
            && self.options.fsync
        {
            file.sync_data()?;
        }
        let sequence = self
            .segments
            .keys()
            .next_back()
            .map_or(self.state.segments_from.max(1), |last| last + 1);
        let path = self.dir.join(segment_name(sequence, first_index));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        self.segments.insert(sequence, Segment { path, bytes: 0 });
        self.active = Some(file);
        self.dir_dirty = true;
        Ok(())
    }

    fn append_record(&mut self, index: u64, term: Term, command: &C) -> Result<Location, String> {
        let payload =
            codec::encode(&(index, term.0, command)).map_err(|error| error.to_string())?;
        let record_bytes = (RECORD_HEADER_BYTES + payload.len()) as u64;
        let needs_segment = match self.segments.values().next_back() {
            None => true,
            Some(segment) => {
                let used = segment.bytes + self.buffer.len() as u64;
                used > 0 && used + record_bytes > self.options.segment_bytes_max
            }
        };
        if needs_segment {
            self.start_segment(index)
                .map_err(|error| format!("start segment: {error}"))?;
        }
        let (&sequence, segment) = self
            .segments
            .iter()
            .next_back()
            .ok_or("no active segment")?;
        let offset = segment.bytes + self.buffer.len() as u64;
        encode_record(&payload, &mut self.buffer);
        self.unmarked = true;
        if self.buffer.len() >= WRITE_BUFFER_BYTES_MAX {
            self.write_buffer()
                .map_err(|error| format!("write segment: {error}"))?;
        }
        Ok(Location {
            segment: sequence,
            offset,
        })
    }

    /// Removes the segments `keep` refuses (given each segment and its sequence
    /// number); pruning and resets remove whole segments only.
    fn remove_segments(&mut self, keep: impl Fn(&Segment, u64) -> bool) -> io::Result<()> {
        let doomed: Vec<u64> = self
            .segments
            .iter()
            .filter(|(sequence, segment)| !keep(segment, **sequence))
            .map(|(sequence, _)| *sequence)
            .collect();
        for sequence in doomed {
            if let Some(segment) = self.segments.remove(&sequence) {
                fs::remove_file(&segment.path)?;
                self.unsynced_segments.retain(|s| *s != sequence);
                self.dir_dirty = true;
            }
        }
        if self.segments.is_empty() {
            self.active = None;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Writes the state file now: write a temp file, fsync it, rename it over
    /// the old one, fsync the directory.
    fn write_state(&mut self) -> io::Result<()> {
        let payload = codec::encode(&self.state).map_err(io::Error::other)?;
        let mut record = Vec::with_capacity(RECORD_HEADER_BYTES + payload.len());
        encode_record(&payload, &mut record);
        let temp = self.dir.join(STATE_TEMP_FILE);
        let mut file = File::create(&temp)?;
        file.write_all(&record)?;
        if self.options.fsync {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&temp, self.dir.join(STATE_FILE))?;
        if self.options.fsync {
            sync_dir(&self.dir)?;
        }
        self.state_dirty = false;
        Ok(())
    }

    fn sync_inner(&mut self) -> io::Result<()> {
        if self.unmarked && !self.segments.is_empty() {
            // In the same write as the records, under the same fsync.
            encode_record(&[], &mut self.buffer);
            self.unmarked = false;
        }
        self.write_buffer()?;
        if self.options.fsync {
            for sequence in core::mem::take(&mut self.unsynced_segments) {
                let Some(segment) = self.segments.get(&sequence) else {
                    continue;
                };
                let is_active = self.segments.keys().next_back() == Some(&sequence);
                match (&self.active, is_active) {
                    (Some(file), true) => file.sync_data()?,
                    _ => File::open(&segment.path)?.sync_data()?,
                }
            }
            if self.dir_dirty {
                sync_dir(&self.dir)?;
            }
        } else {
            self.unsynced_segments.clear();
        }
        self.dir_dirty = false;
        if self.state_dirty {
            self.write_state()?;
        }
        Ok(())
    }
}

impl<C: Command> Storage<C> for FileLogStore<C> {
    fn append(&mut self, command: C, term: Term) -> Index {
        let index = self.last_index() + 1;
        if self.failure.is_none() {
            match self.append_record(index, term, &command) {
                Ok(location) => self.locations.push_back(location),
                Err(message) => self.fail(format!("append index {index}: {message}")),
            }
        }
        if self.locations.len() < self.entries.len() + 1 {
            // Failed: keep the cache contiguous; the next sync reports the failure.
            self.locations.push_back(Location {
                segment: 0,
                offset: 0,
            });
        }
        self.entries.push_back((command, term));
        Index(index)
    }

    fn available(&self) -> RangeInclusive<Index> {
        self.boundary().index()..=Index(self.last_index())
    }

    fn get(&self, index: Index) -> Option<(C, Term)> {
        self.position(index).map(|at| self.entries[at].clone())
    }

    fn get_range(&self, range: &RangeInclusive<Index>) -> Vec<(Term, Index, C)> {
        crate::log::entries_in_range(&self.entries, self.entries.len(), self.first_index(), range)
    }

    fn truncate(&mut self, at: Index) {
        let Some(keep) = self.position(at) else {
            return;
        };
        let location = self.locations[keep];
        self.entries.truncate(keep);
        self.locations.truncate(keep);
        if self.failure.is_some() {
            return;
        }
        // Later segments go first, then the segment holding `at` is cut: a crash
        // in between leaves a shorter log, never a gap.
        let result = self.write_buffer().and_then(|()| {
            self.remove_segments(|_, sequence| sequence <= location.segment)?;
            let Some(segment) = self.segments.get_mut(&location.segment) else {
                return Ok(());
            };
            let file = OpenOptions::new().write(true).open(&segment.path)?;
            file.set_len(location.offset)?;
            segment.bytes = location.offset;
            // The cut may have taken the marker of the records kept.
            self.unmarked = true;
            // An emptied segment keeps a correct name: `at` was its first entry
            // and is the next one appended.
            if !self.unsynced_segments.contains(&location.segment) {
                self.unsynced_segments.push(location.segment);
            }
            if let Some(active) = self.segments.values().next_back() {
                self.active = Some(
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&active.path)?,
                );
            }
            Ok(())
        });
        if let Err(error) = result {
            self.fail(format!("truncate at index {at}: {error}"));
        }
    }

    fn last(&self) -> Cursor {
        match self.entries.back() {
            Some((_, term)) => Cursor::new(*term, Index(self.last_index())),
            None => self.boundary(),
        }
    }

    fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.boundary().index() {
            return Some(self.boundary().term());
        }
        self.position(index).map(|at| self.entries[at].1)
    }

    fn prune_prefix(&mut self, up_to: Index) {
        let up_to = Index(up_to.0.min(self.last_index()));
        if up_to <= self.boundary().index() {
            return;
        }
        let Some(term) = self.term_at(up_to) else {
            return;
        };
        let count = (up_to.0 - self.state.boundary_index) as usize;
        self.entries.drain(..count);
        self.locations.drain(..count);
        self.state.boundary_term = term.0;
        self.state.boundary_index = up_to.0;
        if self.failure.is_some() {
            return;
        }
        // The boundary is made durable before any segment disappears, so a crash
        // never leaves a log whose start is unknown.
        let first_kept = self.locations.front().map(|location| location.segment);
        let result = self.write_buffer().and_then(|()| {
            if let Some(first_kept) = first_kept {
                self.state.segments_from = first_kept;
            } else if let Some(last) = self.segments.keys().next_back() {
                self.state.segments_from = last + 1;
            }
            self.write_state()?;
            let from = self.state.segments_from;
            self.remove_segments(|_, sequence| sequence >= from)
        });
        if let Err(error) = result {
            self.fail(format!("prune through index {up_to}: {error}"));
        }
    }

    fn reset_to(&mut self, cursor: Cursor) {
        self.entries.clear();
        self.locations.clear();
        self.state.boundary_term = cursor.term().0;
        self.state.boundary_index = cursor.index().0;
        if self.failure.is_some() {
            return;
        }
        let next = self.segments.keys().next_back().map_or(1, |last| last + 1);
        self.state.segments_from = next.max(self.state.segments_from);
        let result = self.write_state().and_then(|()| {
            let from = self.state.segments_from;
            self.remove_segments(|_, sequence| sequence >= from)
        });
        if let Err(error) = result {
            self.fail(format!("reset to {cursor}: {error}"));
        }
    }

    fn hard_state(&self) -> HardState {
        HardState {
            current_term: Term(self.state.current_term),
            voted_for: self.state.voted_for.map(PeerId),
        }
    }

    fn save_hard_state(&mut self, hard_state: HardState) {
        self.state.current_term = hard_state.current_term.0;
        self.state.voted_for = hard_state.voted_for.map(|peer| peer.0);
        self.state_dirty = true;
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        if let Err(error) = self.sync_inner() {
            self.fail(format!("sync {}: {error}", self.dir.display()));
        }
        match &self.failure {
            Some(failure) => Err(failure.clone()),
            None => Ok(()),
        }
    }
}

fn segment_name(sequence: u64, first_index: u64) -> String {
    format!("{sequence:010}-{first_index:020}{SEGMENT_SUFFIX}")
}

fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    let (sequence, first_index) = stem.split_once('-')?;
    Some((sequence.parse().ok()?, first_index.parse().ok()?))
}

/// Appends a record (header, then payload) to `out`.
fn encode_record(payload: &[u8], out: &mut Vec<u8>) {
    let length = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let payload_crc = crate::codec::crc32c(payload).to_le_bytes();
    let mut header = [0u8; 8];
    header[..4].copy_from_slice(&length);
    header[4..].copy_from_slice(&payload_crc);
    let header_crc = crate::codec::crc32c(&header).to_le_bytes();
    out.extend_from_slice(&header);
    out.extend_from_slice(&header_crc);
    out.extend_from_slice(payload);
}

/// Checks a record's framing and checksums; returns its payload and length.
fn check_record(bytes: &[u8]) -> Result<(&[u8], usize), String> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Err(format!("{} bytes left, a header needs 12", bytes.len()));
    }
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if crate::codec::crc32c(&bytes[..8]) != word(8) {
        return Err("header checksum mismatch".into());
    }
    let length = word(0) as usize;
    if length > codec::FRAME_BYTES_MAX {
        return Err(format!("record length {length} exceeds the limit"));
    }
    let end = RECORD_HEADER_BYTES + length;
    if bytes.len() < end {
        return Err(format!("record of {length} bytes cut short"));
    }
    let payload = &bytes[RECORD_HEADER_BYTES..end];
    if crate::codec::crc32c(payload) != word(4) {
        return Err("payload checksum mismatch".into());
    }
    Ok((payload, end))
}

/// One record of a segment.
enum Record<C> {
    /// An entry at its index, with its term.
    Entry {
        index: u64,
        term: u64,
        entry: C,
        /// The record's length in bytes.
        length: usize,
    },
    /// A sync marker: every record before it was synced.
    Marker {
        /// The record's length in bytes.
        length: usize,
    },
}

/// Parses one record. An entry's payload is never empty (its index takes a
/// byte at least), so an empty one is a marker.
fn parse_record<C: Command>(bytes: &[u8]) -> Result<Record<C>, String> {
    let (payload, length) = check_record(bytes)?;
    if payload.is_empty() {
        return Ok(Record::Marker { length });
    }
    let (index, term, entry) = codec::decode::<(u64, u64, C)>(payload)
        .map_err(|error| format!("checksum valid but undecodable: {error}"))?;
    Ok(Record::Entry {
        index,
        term,
        entry,
        length,
    })
}

/// Whether any whole, valid record starts at or after `from`: a damaged record
/// followed by a valid one is corruption, not a torn tail.
fn valid_record_after(bytes: &[u8], from: usize) -> bool {
    (from..bytes.len()).any(|start| check_record(&bytes[start..]).is_ok())
}

fn read_state(dir: &Path) -> Result<StateRecord, FileLogError> {
    let path = dir.join(STATE_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok(StateRecord {
                version: STATE_VERSION,
                current_term: 0,
                voted_for: None,
                boundary_term: 0,
                boundary_index: 0,
                segments_from: 0,
            });
        }
        Err(error) => return Err(io_error(&path, "read")(error)),
    };
    let corrupt = |reason: String| FileLogError::CorruptState {
        path: path.clone(),
        reason,
    };
    let (payload, length) = check_record(&bytes).map_err(corrupt)?;
    if length != bytes.len() {
        return Err(corrupt(format!("{} trailing bytes", bytes.len() - length)));
    }
    let state: StateRecord = codec::decode(payload).map_err(|error| corrupt(error.to_string()))?;
    if state.version < STATE_VERSION_MIN {
        return Err(corrupt(format!(
            "layout version {}, but this build reads versions {STATE_VERSION_MIN} to \
             {STATE_VERSION} (entries of version 1 carry no session stamp)",
            state.version
        )));
    }
    if state.version > STATE_VERSION {
        return Err(corrupt(format!(
            "layout version {}, written by a newer build: this one reads versions \
             {STATE_VERSION_MIN} to {STATE_VERSION}",
            state.version
        )));
    }
    Ok(state)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "quorate-file-log-unit-{name}-{}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn write_state_version(dir: &Path, version: u32) {
        let state = StateRecord {
            version,
            current_term: 3,
            voted_for: Some(2),
            boundary_term: 0,
            boundary_index: 0,
            segments_from: 0,
        };
        let mut record = Vec::new();
        encode_record(&codec::encode(&state).unwrap(), &mut record);
        fs::write(dir.join(STATE_FILE), record).unwrap();
    }

    #[test]
    fn a_version_2_log_is_read_then_upgraded_and_marked() {
        let dir = TempDir::new("v2");
        let mut log = FileLogStore::<String>::open(&dir.0, FileLogOptions::default()).unwrap();
        log.append("one".into(), Term(1));
        log.append("two".into(), Term(1));
        log.sync().unwrap();
        let segment = log.segments.values().next().unwrap().path.clone();
        drop(log);
        // As version 2 wrote it: the same records, no sync marker.
        let marked = fs::read(&segment).unwrap();
        fs::write(&segment, &marked[..marked.len() - RECORD_HEADER_BYTES]).unwrap();
        write_state_version(&dir.0, 2);

        let log = FileLogStore::<String>::open(&dir.0, FileLogOptions::default()).unwrap();
        assert_eq!(log.get(Index(2)), Some(("two".into(), Term(1))));
        assert_eq!(log.hard_state().current_term, Term(3));
        assert_eq!(read_state(&dir.0).unwrap().version, STATE_VERSION);
        assert_eq!(
            fs::read(&segment).unwrap(),
            marked,
            "the records are marked"
        );
    }

    #[test]
    fn a_layout_this_build_cannot_read_is_refused_by_its_version() {
        let dir = TempDir::new("versions");
        for (version, says) in [(1, "session stamp"), (STATE_VERSION + 1, "newer build")] {
            write_state_version(&dir.0, version);
            let error = FileLogStore::<String>::open(&dir.0, FileLogOptions::default())
                .expect_err("an unreadable layout is refused")
                .to_string();
            assert!(
                error.contains(&format!("layout version {version}")),
                "{error}"
            );
            assert!(error.contains(says), "{error}");
        }
    }
}
