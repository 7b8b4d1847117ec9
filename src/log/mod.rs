//! The replicated log's storage: the [`Storage`] trait and the default [`InMemoryLogStore`].
//!
//! The seed's `Storage` methods are kept with their exact signatures. Raft needs two
//! more things the seed leaves out, and they are added here:
//!
//! * **hard state**: the current term and the vote cast in it, which must survive a
//!   crash or a node could vote twice in one term;
//! * **an explicit sync point**: [`Storage::sync`] makes every earlier write durable.
//!   Writes between two syncs may be lost in a crash (the engine never tells another
//!   node about state that is not yet synced), so a crash can only lose what was
//!   never synced.
//!
//! Entries are indexed from 1. The engine stores [`LogEntry`](crate::raft::LogEntry)
//! values (a user command or a leader's blank entry), so an implementation should be
//! generic over the command type `C`.

mod memory;
mod position;

use core::fmt;
use core::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

pub use memory::{CrashOutcome, InMemoryLogStore};
pub use position::{Cursor, Index, Term};

use crate::id::PeerId;
use crate::machine::Command;

/// The Raft state that must be durable before a node answers anyone: the current
/// term and the candidate this node voted for in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub current_term: Term,
    /// The candidate that received this node's vote in `current_term`, if any.
    pub voted_for: Option<PeerId>,
}

/// A storage failure that the engine cannot work around: the node stops rather
/// than acknowledge state that may not be durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError {
    /// What failed, for the operator.
    pub message: String,
}

impl StorageError {
    /// A storage error with a message for the operator.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "storage error: {}", self.message)
    }
}

impl std::error::Error for StorageError {}

/// The entries of `entries` (`len` of them, the first at index `first_index`)
/// that fall within `range`, for stores that keep their log in a `Vec` or a
/// `VecDeque`.
pub(crate) fn entries_in_range<C, E>(
    entries: &E,
    len: usize,
    first_index: u64,
    range: &RangeInclusive<Index>,
) -> Vec<(Term, Index, C)>
where
    C: Clone,
    E: core::ops::Index<usize, Output = (C, Term)> + ?Sized,
{
    if len == 0 {
        return Vec::new();
    }
    let start = range.start().0.max(first_index);
    let end = range.end().0.min(first_index + len as u64 - 1);
    (start..=end)
        .map(|index| {
            let (command, term) = &entries[(index - first_index) as usize];
            (*term, Index(index), command.clone())
        })
        .collect()
}

/// Where the log and the hard state of one node live.
///
/// The first nine methods are the seed's. The last three are what Raft needs in
/// addition: [`hard_state`](Storage::hard_state), [`save_hard_state`](Storage::save_hard_state)
/// and [`sync`](Storage::sync).
///
/// # Contract
///
/// * Indexes are contiguous: `append` returns `last().index().next()`.
/// * A write (append, truncate, prune, reset, save of hard state) is visible to reads
///   at once but durable only after the next successful `sync`.
/// * `term_at` answers for every available index and also for the index just before
///   the first available one (the position the log was pruned or reset to), so a
///   consistency check at the boundary still works.
pub trait Storage<C: Command>: Send + 'static {
    /// Appends `command` written in `term` at the end of the log; returns its index.
    fn append(&mut self, command: C, term: Term) -> Index;

    /// The range of indexes that can be read. Its start is the index before the
    /// first entry held (0 for a log that was never pruned), its end the last index,
    /// so an empty, never-pruned log answers `0..=0`.
    fn available(&self) -> RangeInclusive<Index>;

    /// The entry at `index`, if held.
    fn get(&self, index: Index) -> Option<(C, Term)>;

    /// The held entries within `range`, in index order; indexes not held are skipped.
    fn get_range(&self, range: &RangeInclusive<Index>) -> Vec<(Term, Index, C)>;

    /// Appends the held entries within `range` to `out` with their terms, as
    /// [`get_range`](Storage::get_range) would list them. A store that can
    /// copy straight from its log should: a leader calls this for every
    /// AppendEntries it sends.
    fn extend_with_range(&self, range: &RangeInclusive<Index>, out: &mut Vec<(Term, C)>) {
        out.extend(
            self.get_range(range)
                .into_iter()
                .map(|(term, _, command)| (term, command)),
        );
    }

    /// Removes every entry at `at` and after it: `at` becomes the next index to append.
    fn truncate(&mut self, at: Index);

    /// The position of the last entry (or of the prune/reset point when none is held).
    fn last(&self) -> Cursor;

    /// The term of the entry at `index`, if known.
    fn term_at(&self, index: Index) -> Option<Term>;

    /// Removes entries up to and including `up_to`; later entries keep their indexes.
    fn prune_prefix(&mut self, up_to: Index);

    /// Discards every entry and restarts the log right after `cursor`, as after
    /// installing a snapshot that covers everything up to it.
    fn reset_to(&mut self, cursor: Cursor);

    /// The durable term and vote (default values for a new node).
    fn hard_state(&self) -> HardState;

    /// Records a new term and vote; durable after the next [`sync`](Storage::sync).
    fn save_hard_state(&mut self, hard_state: HardState);

    /// Makes every earlier write durable.
    ///
    /// # Errors
    ///
    /// Returns an error if the writes could not be made durable; the caller must not
    /// acknowledge anything that depends on them.
    fn sync(&mut self) -> Result<(), StorageError>;
}
