//! Applying committed entries: strictly in log order, in the batches the leader
//! fixed in the log, each command at most once per [`ProposalId`].
//!
//! A batch is a run of command entries of one term that ends at an entry marked
//! `batch_end`, or just before an entry of another term (a leader that failed
//! mid-batch). A batch is applied only once its end is known to be committed, so
//! every node calls `apply_batch` with the same commands and the same
//! [`ApplyContext`] values.

use std::collections::BTreeMap;

use super::entry::{ClientId, LogEntry, ProposalId};
use super::node::{EntryOf, Flaw, Node};
use super::outcome::ProposalOutcome;
use crate::log::{Cursor, Index, Storage, Term};
use crate::machine::{ApplyContext, StateMachine};

/// Most sequence numbers remembered per client above its settled floor. A client
/// with more proposals in flight than this may see an old retry applied twice.
const SESSION_SEQUENCES_MAX: usize = 1024;

/// Entries read from storage at a time while applying.
const APPLY_READ_ENTRIES_MAX: u64 = 1024;

/// The deduplication records of one client.
#[derive(Debug, Clone, Default)]
struct Session {
    /// Every sequence number below this one is settled at the client.
    settled_below: u64,
    /// Applied sequence numbers at or above the floor, with their indexes.
    applied: BTreeMap<u64, Index>,
    /// The index of the client's latest applied command, for eviction.
    last_active: Index,
}

/// Whether a command was applied before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// New: apply it.
    New,
    /// Applied before at this index (or at an index since forgotten).
    Duplicate(Option<Index>),
}

/// Client sessions for exactly-once application (Ongaro's thesis §6.3). Derived
/// from the log alone, so every node holds the same records at the same index.
#[derive(Debug, Clone)]
pub(crate) struct Sessions {
    clients_max: usize,
    clients: BTreeMap<ClientId, Session>,
}

impl Sessions {
    pub(super) fn new(clients_max: usize) -> Self {
        Self {
            clients_max,
            clients: BTreeMap::new(),
        }
    }

    pub(super) fn seen(&self, id: ProposalId) -> Seen {
        let Some(session) = self.clients.get(&id.client) else {
            return Seen::New;
        };
        if let Some(index) = session.applied.get(&id.sequence) {
            return Seen::Duplicate(Some(*index));
        }
        if id.sequence < session.settled_below {
            return Seen::Duplicate(None);
        }
        Seen::New
    }

    /// Records that `id` was applied at `index`, and forgets what the client has
    /// settled. Evicts the least recently active client when over the bound
    /// (ties by id), deterministically.
    pub(super) fn record(&mut self, id: ProposalId, settled_below: u64, index: Index) {
        let session = self.clients.entry(id.client).or_default();
        session.settled_below = session.settled_below.max(settled_below);
        let floor = session.settled_below;
        session.applied.retain(|&sequence, _| sequence >= floor);
        if id.sequence >= floor {
            session.applied.insert(id.sequence, index);
        }
        while session.applied.len() > SESSION_SEQUENCES_MAX {
            session.applied.pop_first();
        }
        session.last_active = index;
        if self.clients.len() > self.clients_max {
            let evicted = self
                .clients
                .iter()
                .min_by_key(|(client, session)| (session.last_active, **client))
                .map(|(client, _)| *client)
                .expect("over the bound means not empty");
            self.clients.remove(&evicted);
        }
    }
}

/// The [`ApplyContext`] of one batch.
struct BatchContext {
    committed: Cursor,
    log_position: Cursor,
    term: Term,
}

impl ApplyContext for BatchContext {
    fn committed(&self) -> Cursor {
        self.committed
    }

    fn log_position(&self) -> Cursor {
        self.log_position
    }

    fn current_term(&self) -> Term {
        self.term
    }
}

/// A batch being collected.
struct OpenBatch<C> {
    term: Term,
    entries: Vec<(Index, super::entry::CommandEntry<C>)>,
}

impl<M, S> Node<M, S>
where
    M: StateMachine,
    S: Storage<EntryOf<M>>,
{
    /// Applies every committed batch whose end is committed.
    pub(super) fn apply_committed(&mut self) {
        let mut batch: Option<OpenBatch<M::Command>> = None;
        let mut read_from = self.applied.index().next();
        while read_from <= self.commit_index {
            let read_to = Index(
                self.commit_index
                    .0
                    .min(read_from.0 + APPLY_READ_ENTRIES_MAX - 1),
            );
            let entries = self.storage.get_range(&(read_from..=read_to));
            if entries.is_empty() {
                // Not held (a pruned log awaiting catch-up): nothing to apply yet.
                return;
            }
            for (term, index, entry) in entries {
                if let Some(open) = &batch
                    && open.term != term
                {
                    // The leader of `open.term` failed mid-batch: the batch ends here.
                    let open = batch.take().expect("checked above");
                    self.apply_batch(open);
                }
                match entry {
                    LogEntry::Blank => {
                        debug_assert!(batch.is_none());
                        self.applied = Cursor::new(term, index);
                    }
                    LogEntry::Command(command) => {
                        let batch_end = command.batch_end;
                        batch
                            .get_or_insert_with(|| OpenBatch {
                                term,
                                entries: Vec::new(),
                            })
                            .entries
                            .push((index, command));
                        if batch_end {
                            self.apply_batch(batch.take().expect("just inserted"));
                        }
                    }
                }
            }
            read_from = read_to.next();
        }
        // A batch still open here ends beyond the commit index: wait for it.
    }

    fn apply_batch(&mut self, batch: OpenBatch<M::Command>) {
        let (last_index, _) = *batch.entries.last().expect("a batch is never empty");
        let context = BatchContext {
            committed: self.applied,
            log_position: Cursor::new(batch.term, last_index),
            term: batch.term,
        };
        let mut commands = Vec::with_capacity(batch.entries.len());
        let mut outcomes = Vec::new();
        for (index, entry) in batch.entries {
            let id = entry.proposal;
            let seen = if self.flaw(Flaw::ApplyDuplicates) {
                Seen::New
            } else {
                self.sessions.seen(id)
            };
            match seen {
                Seen::New => {
                    self.sessions.record(id, entry.settled_below, index);
                    commands.push(entry.command);
                    outcomes.push((id, index));
                }
                Seen::Duplicate(original) => {
                    tracing::debug!(node = %self.id, proposal = %id, %index, "duplicate proposal skipped");
                    outcomes.push((id, original.unwrap_or(index)));
                }
            }
        }
        if !commands.is_empty() {
            self.machine.apply_batch(commands, &context);
        }
        self.applied = context.log_position;
        for (id, index) in outcomes {
            if self.proposals.contains_key(&id) {
                self.finish_proposal(id, ProposalOutcome::Committed { index });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(client: u64, sequence: u64) -> ProposalId {
        ProposalId {
            client: ClientId(client),
            sequence,
        }
    }

    #[test]
    fn sessions_detect_retries_and_forget_settled_ones() {
        let mut sessions = Sessions::new(8);
        assert_eq!(sessions.seen(id(1, 1)), Seen::New);
        sessions.record(id(1, 1), 1, Index(10));
        assert_eq!(sessions.seen(id(1, 1)), Seen::Duplicate(Some(Index(10))));
        // Out-of-order sequences are fine: 3 before 2.
        sessions.record(id(1, 3), 1, Index(11));
        assert_eq!(sessions.seen(id(1, 2)), Seen::New);
        // The client settled everything below 3: record 1 is forgotten but a
        // late copy of it is still refused.
        sessions.record(id(1, 2), 3, Index(12));
        assert_eq!(sessions.seen(id(1, 1)), Seen::Duplicate(None));
        assert_eq!(sessions.seen(id(1, 3)), Seen::Duplicate(Some(Index(11))));
    }

    #[test]
    fn sessions_evict_the_least_recently_active_client() {
        let mut sessions = Sessions::new(2);
        sessions.record(id(1, 1), 1, Index(1));
        sessions.record(id(2, 1), 1, Index(2));
        sessions.record(id(1, 2), 1, Index(3));
        sessions.record(id(3, 1), 1, Index(4));
        assert_eq!(sessions.seen(id(2, 1)), Seen::New, "client 2 was evicted");
        assert_eq!(sessions.seen(id(1, 2)), Seen::Duplicate(Some(Index(3))));
    }
}
