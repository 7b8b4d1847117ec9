//! [`SharedLogStore`]: a simulated disk for the runtime under turmoil or
//! madsim, an [`InMemoryLogStore`] that outlives the node using it.
//!
//! A simulator restarts a host by dropping its tasks and running its software
//! again. A node on a fresh [`InMemoryLogStore`] would come back having
//! forgotten its vote and log, which no real disk does; a node on a
//! [`FileLogStore`](super::FileLogStore) would touch the real disk, outside the
//! simulator's control. A `SharedLogStore` is handed to each incarnation in
//! turn: call [`crash`](SharedLogStore::crash) before starting the next one,
//! so it keeps exactly what was synced.

use core::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::log::{
    CrashOutcome, Cursor, HardState, InMemoryLogStore, Index, Storage, StorageError, Term,
};
use crate::machine::Command;

/// An [`InMemoryLogStore`] shared by the incarnations of one simulated node.
///
/// Clones share the store. Only one incarnation may run at a time (the
/// simulator stops the old one before it starts the next).
///
/// # Examples
///
/// ```
/// use quorate::log::{CrashOutcome, Storage, Term};
/// use quorate::runtime::SharedLogStore;
///
/// let disk: SharedLogStore<u64> = SharedLogStore::default();
/// let mut incarnation = disk.clone();
/// incarnation.append(7, Term(1));
/// incarnation.sync().unwrap();
/// incarnation.append(8, Term(1));
/// drop(incarnation); // the host crashed
/// assert_eq!(disk.crash(CrashOutcome::LoseUnsynced), 1);
/// assert_eq!(disk.last().index().0, 1);
/// ```
#[derive(Debug)]
pub struct SharedLogStore<C> {
    store: Arc<Mutex<InMemoryLogStore<C>>>,
}

impl<C> Clone for SharedLogStore<C> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
        }
    }
}

impl<C: Command> Default for SharedLogStore<C> {
    fn default() -> Self {
        Self {
            store: Arc::new(Mutex::new(InMemoryLogStore::new())),
        }
    }
}

impl<C: Command> SharedLogStore<C> {
    fn lock(&self) -> MutexGuard<'_, InMemoryLogStore<C>> {
        // A poisoned lock means a node panicked mid-write; the store itself is
        // still consistent (every method finishes its change before returning).
        self.store.lock().unwrap_or_else(|error| error.into_inner())
    }

    /// Rolls back to what a crash leaves (see [`InMemoryLogStore::crash`]);
    /// returns how many writes were lost.
    pub fn crash(&self, outcome: CrashOutcome) -> usize {
        self.lock().crash(outcome)
    }
}

impl<C: Command> Storage<C> for SharedLogStore<C> {
    fn append(&mut self, command: C, term: Term) -> Index {
        self.lock().append(command, term)
    }

    fn available(&self) -> RangeInclusive<Index> {
        self.lock().available()
    }

    fn get(&self, index: Index) -> Option<(C, Term)> {
        self.lock().get(index)
    }

    fn get_range(&self, range: &RangeInclusive<Index>) -> Vec<(Term, Index, C)> {
        self.lock().get_range(range)
    }

    fn truncate(&mut self, at: Index) {
        self.lock().truncate(at);
    }

    fn last(&self) -> Cursor {
        self.lock().last()
    }

    fn term_at(&self, index: Index) -> Option<Term> {
        self.lock().term_at(index)
    }

    fn prune_prefix(&mut self, up_to: Index) {
        self.lock().prune_prefix(up_to);
    }

    fn reset_to(&mut self, cursor: Cursor) {
        self.lock().reset_to(cursor);
    }

    fn hard_state(&self) -> HardState {
        self.lock().hard_state()
    }

    fn save_hard_state(&mut self, hard_state: HardState) {
        self.lock().save_hard_state(hard_state);
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.lock().sync()
    }
}
