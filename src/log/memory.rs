//! [`InMemoryLogStore`]: the default storage, and the simulator's model of a disk.
//!
//! Besides serving the engine, the store remembers every write since the last
//! [`sync`](Storage::sync) in an undo journal, so a simulated crash can roll the
//! store back to what a real disk might hold afterwards: everything synced, plus
//! any prefix of the writes that followed (a disk writes in order, but a crash can
//! cut the sequence anywhere).

use core::ops::RangeInclusive;

use super::{Cursor, HardState, Index, Storage, StorageError, Term};
use crate::machine::Command;

/// Unsynced writes kept for crash simulation before the store syncs on its own.
/// A bound, so a caller that never syncs cannot grow the journal without limit;
/// auto-syncing only makes a crash lose less, which is always allowed.
const UNSYNCED_WRITES_MAX: usize = 1 << 16;

/// One write since the last sync, with what is needed to undo it.
#[derive(Debug, Clone)]
enum Undo<C> {
    /// An entry was appended; undo pops it.
    Append,
    /// Entries were removed from the tail; undo puts them back.
    Truncate { removed: Vec<(C, Term)> },
    /// The prefix was pruned; undo restores it and the old boundary.
    Prune {
        removed: Vec<(C, Term)>,
        boundary: Cursor,
    },
    /// The log was reset; undo restores everything.
    Reset {
        entries: Vec<(C, Term)>,
        boundary: Cursor,
    },
    /// The hard state changed; undo restores the old one.
    HardState { previous: HardState },
}

/// What a simulated crash keeps of the writes made since the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashOutcome {
    /// Every unsynced write is lost.
    LoseUnsynced,
    /// The first `writes` unsynced writes survive, the rest are lost (a torn tail).
    KeepPrefix {
        /// How many of the unsynced writes, in order, reached the disk.
        writes: usize,
    },
}

/// A log held in memory: the default [`Storage`], and the simulator's disk model.
///
/// Entries live in a `Vec`; indexes are offset by the prune boundary.
#[derive(Debug, Clone)]
pub struct InMemoryLogStore<C> {
    /// Entries after `boundary`, in index order.
    entries: Vec<(C, Term)>,
    /// The position just before the first held entry (pruned or reset to).
    boundary: Cursor,
    hard_state: HardState,
    /// Writes since the last sync, oldest first.
    unsynced: Vec<Undo<C>>,
    syncs: u64,
}

impl<C> Default for InMemoryLogStore<C> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            boundary: Cursor::ZERO,
            hard_state: HardState::default(),
            unsynced: Vec::new(),
            syncs: 0,
        }
    }
}

impl<C: Command> InMemoryLogStore<C> {
    /// An empty log with default hard state.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many writes were made since the last sync.
    pub fn unsynced_writes(&self) -> usize {
        self.unsynced.len()
    }

    /// How many times [`sync`](Storage::sync) was called.
    pub fn sync_count(&self) -> u64 {
        self.syncs
    }

    /// Rolls the store back to what survives a crash: all synced writes and, per
    /// `outcome`, a prefix of the unsynced ones. Returns how many writes were lost.
    pub fn crash(&mut self, outcome: CrashOutcome) -> usize {
        let keep = match outcome {
            CrashOutcome::LoseUnsynced => 0,
            CrashOutcome::KeepPrefix { writes } => writes.min(self.unsynced.len()),
        };
        let lost = self.unsynced.len() - keep;
        while self.unsynced.len() > keep {
            let undo = self.unsynced.pop().expect("journal is longer than keep");
            self.undo(undo);
        }
        self.unsynced.clear();
        lost
    }

    fn undo(&mut self, undo: Undo<C>) {
        match undo {
            Undo::Append => {
                self.entries.pop().expect("an undone append left its entry");
            }
            Undo::Truncate { removed } => self.entries.extend(removed),
            Undo::Prune {
                mut removed,
                boundary,
            } => {
                removed.append(&mut self.entries);
                self.entries = removed;
                self.boundary = boundary;
            }
            Undo::Reset { entries, boundary } => {
                self.entries = entries;
                self.boundary = boundary;
            }
            Undo::HardState { previous } => self.hard_state = previous,
        }
    }

    fn record(&mut self, undo: Undo<C>) {
        if self.unsynced.len() >= UNSYNCED_WRITES_MAX {
            self.unsynced.clear();
        }
        self.unsynced.push(undo);
    }

    /// The entries from `from` to the end, borrowed, with their terms (for
    /// checkers that read a log without copying it).
    pub fn entries_from(&self, from: Index) -> impl Iterator<Item = (Term, &C)> {
        let skip = from.0.saturating_sub(self.first_index());
        self.entries
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .map(|(command, term)| (*term, command))
    }

    /// The entries at `range`, borrowed as `(entry, term)` pairs (what
    /// [`LentAppendEntries`](crate::raft::LentAppendEntries) encodes); `None`
    /// unless every one of them is held.
    pub fn held(&self, range: &RangeInclusive<Index>) -> Option<&[(C, Term)]> {
        let (start, end) = (range.start().0, range.end().0);
        if start < self.first_index() || end > self.last_index() || start > end {
            return None;
        }
        let first = self.first_index();
        Some(&self.entries[(start - first) as usize..=(end - first) as usize])
    }

    fn first_index(&self) -> u64 {
        self.boundary.index().0 + 1
    }

    fn last_index(&self) -> u64 {
        self.boundary.index().0 + self.entries.len() as u64
    }

    /// The vector position of `index`, if held.
    fn position(&self, index: Index) -> Option<usize> {
        if index.0 < self.first_index() || index.0 > self.last_index() {
            return None;
        }
        usize::try_from(index.0 - self.first_index()).ok()
    }
}

impl<C: Command> Storage<C> for InMemoryLogStore<C> {
    fn append(&mut self, command: C, term: Term) -> Index {
        self.entries.push((command, term));
        self.record(Undo::Append);
        Index(self.last_index())
    }

    fn available(&self) -> RangeInclusive<Index> {
        self.boundary.index()..=Index(self.last_index())
    }

    fn get(&self, index: Index) -> Option<(C, Term)> {
        self.position(index).map(|at| self.entries[at].clone())
    }

    fn get_range(&self, range: &RangeInclusive<Index>) -> Vec<(Term, Index, C)> {
        crate::log::entries_in_range(&self.entries, self.entries.len(), self.first_index(), range)
    }

    fn extend_with_range(&self, range: &RangeInclusive<Index>, out: &mut Vec<(Term, C)>) {
        let first = self.first_index();
        let start = range.start().0.max(first);
        let end = range.end().0.min(self.last_index());
        if start > end {
            return;
        }
        let held = &self.entries[(start - first) as usize..=(end - first) as usize];
        out.extend(held.iter().map(|(command, term)| (*term, command.clone())));
    }

    fn truncate(&mut self, at: Index) {
        let keep = at.0.saturating_sub(self.first_index()) as usize;
        if keep >= self.entries.len() {
            return;
        }
        let removed = self.entries.split_off(keep);
        self.record(Undo::Truncate { removed });
    }

    fn last(&self) -> Cursor {
        match self.entries.last() {
            Some((_, term)) => Cursor::new(*term, Index(self.last_index())),
            None => self.boundary,
        }
    }

    fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.boundary.index() {
            return Some(self.boundary.term());
        }
        self.position(index).map(|at| self.entries[at].1)
    }

    fn prune_prefix(&mut self, up_to: Index) {
        let up_to = Index(up_to.0.min(self.last_index()));
        if up_to <= self.boundary.index() {
            return;
        }
        let term = self.term_at(up_to).expect("a held index has a term");
        let count = (up_to.0 - self.boundary.index().0) as usize;
        let rest = self.entries.split_off(count);
        let removed = core::mem::replace(&mut self.entries, rest);
        let boundary = core::mem::replace(&mut self.boundary, Cursor::new(term, up_to));
        self.record(Undo::Prune { removed, boundary });
    }

    fn reset_to(&mut self, cursor: Cursor) {
        let entries = core::mem::take(&mut self.entries);
        let boundary = core::mem::replace(&mut self.boundary, cursor);
        self.record(Undo::Reset { entries, boundary });
    }

    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn save_hard_state(&mut self, hard_state: HardState) {
        let previous = core::mem::replace(&mut self.hard_state, hard_state);
        self.record(Undo::HardState { previous });
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.unsynced.clear();
        self.syncs += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::PeerId;

    fn store_with(values: &[(u64, u64)]) -> InMemoryLogStore<u64> {
        let mut store = InMemoryLogStore::new();
        for &(value, term) in values {
            store.append(value, Term(term));
        }
        store
    }

    #[test]
    fn indexes_start_at_one_and_survive_pruning() {
        let mut store = store_with(&[(10, 1), (20, 1), (30, 2)]);
        assert_eq!(store.available(), Index(0)..=Index(3));
        store.prune_prefix(Index(2));
        assert_eq!(store.available(), Index(2)..=Index(3));
        assert_eq!(store.get(Index(2)), None);
        assert_eq!(store.get(Index(3)), Some((30, Term(2))));
        assert_eq!(
            store.term_at(Index(2)),
            Some(Term(1)),
            "boundary term is kept"
        );
        assert_eq!(store.append(40, Term(2)), Index(4));
        assert_eq!(
            store.get_range(&(Index(1)..=Index(9))),
            vec![(Term(2), Index(3), 30), (Term(2), Index(4), 40)]
        );
    }

    #[test]
    fn held_lends_exactly_the_entries_get_range_lists() {
        let mut store = store_with(&[(10, 1), (20, 1), (30, 2), (40, 2), (50, 3)]);
        store.prune_prefix(Index(2));
        for start in 0..8 {
            for end in 0..8 {
                let range = Index(start)..=Index(end);
                let listed = store.get_range(&range);
                let whole = start >= 3 && end <= 5 && start <= end;
                match store.held(&range) {
                    Some(held) => {
                        assert!(whole, "{range:?} lent though not all held");
                        let held: Vec<(Term, u64)> = held
                            .iter()
                            .map(|(command, term)| (*term, *command))
                            .collect();
                        let listed: Vec<(Term, u64)> = listed
                            .into_iter()
                            .map(|(term, _, command)| (term, command))
                            .collect();
                        assert_eq!(held, listed, "{range:?}");
                    }
                    None => assert!(!whole, "{range:?} all held but not lent"),
                }
            }
        }
    }

    #[test]
    fn extend_with_range_lists_what_get_range_does() {
        let mut store = store_with(&[(10, 1), (20, 1), (30, 2), (40, 2), (50, 3)]);
        store.prune_prefix(Index(2));
        let mut empty = InMemoryLogStore::<u64>::new();
        empty.reset_to(Cursor::new(Term(4), Index(9)));
        for log in [&store, &empty, &InMemoryLogStore::new()] {
            for start in 0..8 {
                for end in 0..8 {
                    let range = Index(start)..=Index(end);
                    let mut out = vec![(Term(9), 99)];
                    log.extend_with_range(&range, &mut out);
                    let expected: Vec<(Term, u64)> = core::iter::once((Term(9), 99))
                        .chain(log.get_range(&range).into_iter().map(|(t, _, c)| (t, c)))
                        .collect();
                    assert_eq!(out, expected, "{range:?}");
                }
            }
        }
    }

    #[test]
    fn truncate_removes_at_and_after() {
        let mut store = store_with(&[(10, 1), (20, 1), (30, 2)]);
        store.truncate(Index(2));
        assert_eq!(store.last(), Cursor::new(Term(1), Index(1)));
        store.truncate(Index(7));
        assert_eq!(store.last(), Cursor::new(Term(1), Index(1)));
    }

    #[test]
    fn reset_starts_after_the_cursor() {
        let mut store = store_with(&[(10, 1)]);
        store.reset_to(Cursor::new(Term(3), Index(40)));
        assert_eq!(store.last(), Cursor::new(Term(3), Index(40)));
        assert_eq!(store.append(50, Term(4)), Index(41));
    }

    #[test]
    fn crash_keeps_synced_writes_only() {
        let mut store = store_with(&[(10, 1), (20, 1)]);
        store.sync().unwrap();
        store.truncate(Index(2));
        store.append(21, Term(2));
        store.save_hard_state(HardState {
            current_term: Term(2),
            voted_for: Some(PeerId(1)),
        });
        assert_eq!(store.crash(CrashOutcome::LoseUnsynced), 3);
        assert_eq!(store.get(Index(2)), Some((20, Term(1))));
        assert_eq!(store.hard_state(), HardState::default());
    }

    #[test]
    fn crash_can_keep_a_prefix_of_unsynced_writes() {
        let mut store = store_with(&[(10, 1)]);
        store.sync().unwrap();
        store.append(20, Term(1));
        store.append(30, Term(1));
        store.prune_prefix(Index(1));
        assert_eq!(store.crash(CrashOutcome::KeepPrefix { writes: 1 }), 2);
        assert_eq!(store.available(), Index(0)..=Index(2));
        assert_eq!(store.get(Index(1)), Some((10, Term(1))));
        assert_eq!(store.get(Index(3)), None);
    }
}
