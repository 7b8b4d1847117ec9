//! Applying committed entries: strictly in log order, in the batches the leader
//! fixed in the log, each command at most once per [`ProposalId`].
//!
//! A batch is a run of command entries of one term that ends at an entry marked
//! `batch_end`, or just before an entry of another term (a leader that failed
//! mid-batch). A batch is applied only once its end is known to be committed, so
//! every node calls `apply_batch` with the same commands and the same
//! [`ApplyContext`] values.

use std::collections::{BTreeMap, VecDeque};

use super::entry::{ClientId, CommandEntry, LogEntry, ProposalId};
use super::node::{EntryOf, Flaw, Node};
use super::outcome::ProposalOutcome;
use crate::log::{Cursor, Index, Storage, Term};
use crate::machine::{ApplyContext, StateMachine};

/// Most sequence numbers remembered per client above its settled floor. A client
/// with more proposals in flight than this may see an old retry applied twice.
const SESSION_SEQUENCES_MAX: usize = 1024;

/// Entries read from storage at a time while applying.
const APPLY_READ_ENTRIES_MAX: u64 = 1024;

/// The deduplication records of one client's session.
#[derive(Debug, Clone, Default)]
struct Session {
    /// The session's [`Proposal::session`](super::Proposal::session).
    stamp: Index,
    /// Every sequence number below this one is settled at the client.
    settled_below: u64,
    /// Applied sequence numbers at or above the floor, with their indexes, in
    /// sequence order. Mostly a client's one or two latest: a queue keeps its
    /// buffer as they come and go, where a map freed and allocated a node.
    applied: VecDeque<(u64, Index)>,
    /// The index of the client's latest applied command, for eviction.
    last_active: Index,
}

/// Whether a command was applied before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// New: apply it.
    New,
    /// Applied before at this index (or at an index since forgotten).
    Duplicate(Option<Index>),
    /// Of a session forgotten (evicted, or replaced by a newer session of
    /// its client): whether it was applied before cannot be told, so it is not
    /// applied now.
    Expired,
}

/// Client sessions for exactly-once application (Ongaro's thesis §6.3). Derived
/// from the log alone, so every node holds the same records at the same index.
///
/// At most `clients_max` sessions are kept. Forgetting one must not let a
/// retry of a command it applied be applied again, and must not turn away new
/// clients for good. Each proposal carries its session's stamp `T`, a commit
/// index its client learned before the session's first proposal, so every
/// entry of the session lands above `T`. Evicting a session raises
/// `evicted_through` to its last applied index, which is then above `T`.
/// So a proposal of an unknown client whose stamp is at or above
/// `evicted_through` belongs to a session that never applied anything: it is
/// new. Below, it may be a retry of a forgotten session, and it is refused as
/// [`Seen::Expired`]; the refusal names a commit index to open the next
/// session with. Ongaro registers clients through the log for the same end;
/// stamps spare that round trip.
#[derive(Debug, Clone)]
pub(crate) struct Sessions {
    clients_max: usize,
    clients: BTreeMap<ClientId, Session>,
    /// The highest last applied index of an evicted session.
    evicted_through: Index,
    /// `(index, client)` of every record, in apply order: the first whose
    /// client is still last active at that index is the least recently active
    /// client (the others are stale, skipped when evicting, and dropped by
    /// [`compact`](Self::compact)). Eviction takes O(1) amortized, where a
    /// scan of every session cost 4,096 steps per apply once more clients
    /// than the bound were active.
    ///
    /// Kept only once the sessions fill half the bound (see
    /// [`keeps_recency`](Self::keeps_recency)); empty before.
    recency: VecDeque<(Index, ClientId)>,
    /// Whether `recency` is kept yet.
    recency_kept: bool,
}

impl Sessions {
    pub(crate) fn new(clients_max: usize) -> Self {
        Self {
            clients_max,
            clients: BTreeMap::new(),
            evicted_through: Index::ZERO,
            recency: VecDeque::new(),
            recency_kept: false,
        }
    }

    /// Whether the sessions fill half the bound, so that the recency queue
    /// is kept. Below that no eviction is near, and keeping it anyway (a push
    /// per record, a rebuild every few dozen) weighed on every restart, as a
    /// restarted node replays its whole log through `record`. Sessions are
    /// only ever evicted down to the bound, never below half of it, so once
    /// kept the queue stays kept.
    fn keeps_recency(&self) -> bool {
        self.clients.len().saturating_mul(2) >= self.clients_max
    }

    /// Whether `id`, of the session stamped `stamp`, was applied before.
    pub(crate) fn seen(&self, id: ProposalId, stamp: Index) -> Seen {
        let Some(session) = self.clients.get(&id.client) else {
            return if stamp >= self.evicted_through {
                Seen::New
            } else {
                Seen::Expired
            };
        };
        if stamp != session.stamp {
            // A newer session applied nothing yet (its first entry would
            // have replaced this one); an older one was replaced.
            return if stamp > session.stamp {
                Seen::New
            } else {
                Seen::Expired
            };
        }
        if let Ok(found) = session
            .applied
            .binary_search_by_key(&id.sequence, |(sequence, _)| *sequence)
        {
            return Seen::Duplicate(Some(session.applied[found].1));
        }
        if id.sequence < session.settled_below {
            return Seen::Duplicate(None);
        }
        Seen::New
    }

    /// Records that `id`, of the session stamped `stamp`, was applied at
    /// `index`, and forgets what the client has settled. A newer session of the
    /// client replaces its older one. Evicts the least recently active client
    /// when over the bound (ties by id), deterministically.
    pub(crate) fn record(
        &mut self,
        id: ProposalId,
        settled_below: u64,
        stamp: Index,
        index: Index,
    ) {
        let session = self.clients.entry(id.client).or_default();
        // (An older session is refused before it gets here.)
        if stamp > session.stamp {
            *session = Session {
                stamp,
                ..Session::default()
            };
        }
        session.settled_below = session.settled_below.max(settled_below);
        let floor = session.settled_below;
        while session
            .applied
            .front()
            .is_some_and(|(sequence, _)| *sequence < floor)
        {
            session.applied.pop_front();
        }
        if id.sequence >= floor {
            // Usually past the last: a client's sequence numbers grow.
            if session
                .applied
                .back()
                .is_none_or(|&(last, _)| last < id.sequence)
            {
                session.applied.push_back((id.sequence, index));
            } else {
                let at = session
                    .applied
                    .partition_point(|(sequence, _)| *sequence < id.sequence);
                match session.applied.get_mut(at) {
                    Some(entry) if entry.0 == id.sequence => entry.1 = index,
                    _ => session.applied.insert(at, (id.sequence, index)),
                }
            }
        }
        while session.applied.len() > SESSION_SEQUENCES_MAX {
            session.applied.pop_front();
        }
        session.last_active = index;
        if self.recency_kept {
            // Applies come in log order; should one not, the queue is rebuilt
            // in order rather than trusted.
            let out_of_order = self.recency.back() > Some(&(index, id.client));
            self.recency.push_back((index, id.client));
            if out_of_order {
                self.compact();
            }
        } else if self.keeps_recency() {
            // Built from the sessions, this record's included.
            self.recency_kept = true;
            self.compact();
        }
        if self.clients.len() > self.clients_max {
            loop {
                let (index, client) = self
                    .recency
                    .pop_front()
                    .expect("every session has a record in the queue");
                if self
                    .clients
                    .get(&client)
                    .is_some_and(|session| session.last_active == index)
                {
                    self.clients.remove(&client);
                    self.evicted_through = self.evicted_through.max(index);
                    break;
                }
            }
        }
        if self.recency.len() > 2 * self.clients.len() + RECENCY_SLACK {
            self.compact();
        }
    }

    /// Rebuilds the recency queue from the sessions: one record each, least
    /// recently active first (ties by id).
    ///
    /// In place: the queue keeps its buffer, where a fresh one grew again
    /// (reallocating) after every compaction.
    fn compact(&mut self) {
        self.recency.clear();
        self.recency.extend(
            self.clients
                .iter()
                .map(|(client, session)| (session.last_active, *client)),
        );
        self.recency.make_contiguous().sort_unstable();
    }
}

/// Stale records the recency queue may hold beyond twice the sessions before
/// it is compacted.
const RECENCY_SLACK: usize = 64;

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

/// The buffers applying reuses, so that applying a batch allocates nothing
/// of its own: entries read from storage, the batch being collected, its new
/// commands and the outcomes to report.
pub(super) struct ApplyBuffers<C> {
    read: Vec<(Term, LogEntry<C>)>,
    batch: Vec<(Index, CommandEntry<C>)>,
    commands: Vec<C>,
    outcomes: Vec<(ProposalId, ProposalOutcome)>,
}

impl<C> Default for ApplyBuffers<C> {
    fn default() -> Self {
        Self {
            read: Vec::new(),
            batch: Vec::new(),
            commands: Vec::new(),
            outcomes: Vec::new(),
        }
    }
}

impl<M, S> Node<M, S>
where
    M: StateMachine,
    S: Storage<EntryOf<M>>,
{
    /// Applies every committed batch whose end is committed.
    pub(super) fn apply_committed(&mut self) {
        let mut read_from = self.applied.index().next();
        if read_from > self.commit_index {
            return;
        }
        let mut buffers = core::mem::take(&mut self.apply_buffers);
        // The term of the batch collected in `buffers.batch`.
        let mut batch_term = None;
        while read_from <= self.commit_index {
            if !self.storage.available().contains(&read_from) {
                // Not held (a pruned log awaiting catch-up): nothing to apply yet.
                break;
            }
            let read_to = Index(
                self.commit_index
                    .0
                    .min(read_from.0 + APPLY_READ_ENTRIES_MAX - 1),
            );
            buffers.read.clear();
            self.storage
                .extend_with_range(&(read_from..=read_to), &mut buffers.read);
            let mut read = core::mem::take(&mut buffers.read);
            // Held entries are contiguous, so they start at `read_from`.
            let mut index = read_from;
            for (term, entry) in read.drain(..) {
                if batch_term.is_some_and(|open| open != term) {
                    // The leader of the open batch failed mid-batch: it ends here.
                    self.apply_batch(batch_term.take().expect("checked above"), &mut buffers);
                }
                match entry {
                    LogEntry::Blank => {
                        debug_assert!(batch_term.is_none());
                        self.applied = Cursor::new(term, index);
                    }
                    LogEntry::Command(command) => {
                        let batch_end = command.batch_end;
                        batch_term = Some(term);
                        buffers.batch.push((index, command));
                        if batch_end {
                            self.apply_batch(term, &mut buffers);
                            batch_term = None;
                        }
                    }
                }
                index = index.next();
            }
            buffers.read = read;
            read_from = index;
        }
        // A batch still open here ends beyond the commit index: it is read
        // again once its end is committed.
        buffers.batch.clear();
        self.apply_buffers = buffers;
    }

    /// Applies the batch of `term` collected in `buffers.batch`, leaving it empty.
    fn apply_batch(&mut self, term: Term, buffers: &mut ApplyBuffers<M::Command>) {
        let (last_index, _) = *buffers.batch.last().expect("a batch is never empty");
        let context = BatchContext {
            committed: self.applied,
            log_position: Cursor::new(term, last_index),
            term,
        };
        let skip_duplicates = !self.flaw(Flaw::ApplyDuplicates);
        let refuse_expired = !self.flaw(Flaw::ForgetExpiredSessions);
        for (index, entry) in buffers.batch.drain(..) {
            let id = entry.proposal;
            if let Some(state) = self.leader_state.as_mut() {
                state.appended.remove(&id);
            }
            let seen = if skip_duplicates {
                self.sessions.seen(id, entry.session)
            } else {
                Seen::New
            };
            let seen = match seen {
                Seen::Expired if !refuse_expired => Seen::New,
                seen => seen,
            };
            match seen {
                Seen::New => {
                    self.sessions
                        .record(id, entry.settled_below, entry.session, index);
                    buffers.commands.push(entry.command);
                    buffers
                        .outcomes
                        .push((id, ProposalOutcome::Committed { index }));
                }
                Seen::Duplicate(original) => {
                    tracing::debug!(node = %self.id, proposal = %id, %index, "duplicate proposal skipped");
                    let index = original.unwrap_or(index);
                    buffers
                        .outcomes
                        .push((id, ProposalOutcome::Committed { index }));
                }
                Seen::Expired => {
                    tracing::debug!(node = %self.id, proposal = %id, %index, "proposal of an expired session refused");
                    buffers
                        .outcomes
                        .push((id, ProposalOutcome::SessionExpired { index }));
                }
            }
        }
        if !buffers.commands.is_empty() {
            self.machine
                .apply_batch(buffers.commands.drain(..), &context);
        }
        self.applied = context.log_position;
        for (id, outcome) in buffers.outcomes.drain(..) {
            if self.proposals.contains_key(&id) {
                self.finish_proposal(id, outcome);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stamp of a client's first session.
    const FIRST: Index = Index::ZERO;

    /// A modelled client: its session's stamp, its next sequence number, and
    /// every proposal it sent, with the stamp it was sent with.
    type ClientModel = (Index, u64, Vec<(ProposalId, Index)>);

    fn id(client: u64, sequence: u64) -> ProposalId {
        ProposalId {
            client: ClientId(client),
            sequence,
        }
    }

    #[test]
    fn sessions_detect_retries_and_forget_settled_ones() {
        let mut sessions = Sessions::new(8);
        assert_eq!(sessions.seen(id(1, 1), FIRST), Seen::New);
        sessions.record(id(1, 1), 1, FIRST, Index(10));
        assert_eq!(
            sessions.seen(id(1, 1), FIRST),
            Seen::Duplicate(Some(Index(10)))
        );
        // Out-of-order sequences are fine: 3 before 2.
        sessions.record(id(1, 3), 1, FIRST, Index(11));
        assert_eq!(sessions.seen(id(1, 2), FIRST), Seen::New);
        // The client settled everything below 3: record 1 is forgotten but a
        // late copy of it is still refused.
        sessions.record(id(1, 2), 3, FIRST, Index(12));
        assert_eq!(sessions.seen(id(1, 1), FIRST), Seen::Duplicate(None));
        assert_eq!(
            sessions.seen(id(1, 3), FIRST),
            Seen::Duplicate(Some(Index(11)))
        );
    }

    proptest::proptest! {
        /// Eviction through the recency queue forgets the very client a scan
        /// for the least recently active one (ties by id) would: every node
        /// must keep the same sessions.
        #[test]
        fn sessions_evict_as_a_scan_would(
            clients_max in 0usize..16,
            records in proptest::collection::vec((1u64..20, 1u64..4, 0u64..2), 0..300),
        ) {
            let mut sessions = Sessions::new(clients_max);
            let mut scanned: BTreeMap<ClientId, Index> = BTreeMap::new();
            for (step, (client, sequence, repeat)) in records.into_iter().enumerate() {
                // Mostly increasing indexes, now and then the same one twice.
                let index = Index(step as u64 + 1 - repeat.min(step as u64));
                sessions.record(id(client, sequence), 0, FIRST, index);
                scanned.insert(ClientId(client), index);
                if scanned.len() > clients_max {
                    let evicted = scanned
                        .iter()
                        .min_by_key(|(client, index)| (**index, **client))
                        .map(|(client, _)| *client)
                        .expect("over the bound");
                    scanned.remove(&evicted);
                }
                let kept: Vec<ClientId> = sessions.clients.keys().copied().collect();
                let expected: Vec<ClientId> = scanned.keys().copied().collect();
                proptest::prop_assert_eq!(kept, expected);
                proptest::prop_assert!(sessions.recency.len() <= 2 * sessions.clients.len() + RECENCY_SLACK + 1);
            }
        }

        /// However many clients come and go, and whatever is retried or
        /// duplicated when, no proposal is applied twice. Clients follow the
        /// protocol: a session's proposals keep its stamp, and a refusal as
        /// expired stamps the client's next session with the refused index.
        #[test]
        fn no_proposal_is_applied_twice_however_sessions_are_forgotten(
            clients_max in 1usize..4,
            steps in proptest::collection::vec((1u64..8, 0u8..4, 0usize..64), 1..300),
        ) {
            let mut sessions = Sessions::new(clients_max);
            // Per client: its session's stamp, next sequence, proposals sent.
            let mut clients: BTreeMap<u64, ClientModel> = BTreeMap::new();
            let mut applied = std::collections::BTreeSet::new();
            for (step, (client, kind, pick)) in steps.into_iter().enumerate() {
                let index = Index(step as u64 + 1);
                let (stamp, next, sent) = clients.entry(client).or_insert((FIRST, 1, Vec::new()));
                // A new proposal, or a copy of one sent before (a retry, or a
                // duplicate the network delayed), of any session.
                let (proposal, proposal_stamp) = if kind == 0 || sent.is_empty() {
                    let proposal = id(client, *next);
                    *next += 1;
                    sent.push((proposal, *stamp));
                    (proposal, *stamp)
                } else {
                    sent[pick % sent.len()]
                };
                match sessions.seen(proposal, proposal_stamp) {
                    Seen::New => {
                        proptest::prop_assert!(
                            applied.insert(proposal),
                            "{} applied twice, again at {}", proposal, index
                        );
                        sessions.record(proposal, 0, proposal_stamp, index);
                    }
                    Seen::Duplicate(_) => {
                        proptest::prop_assert!(applied.contains(&proposal));
                    }
                    Seen::Expired => *stamp = (*stamp).max(index),
                }
            }
        }
    }

    #[test]
    fn sessions_evict_the_least_recently_active_client() {
        let mut sessions = Sessions::new(2);
        sessions.record(id(1, 1), 1, FIRST, Index(1));
        sessions.record(id(2, 1), 1, FIRST, Index(2));
        sessions.record(id(1, 2), 1, FIRST, Index(3));
        sessions.record(id(3, 1), 1, FIRST, Index(4));
        assert_eq!(
            sessions.seen(id(2, 1), FIRST),
            Seen::Expired,
            "client 2 was evicted"
        );
        assert_eq!(
            sessions.seen(id(1, 2), FIRST),
            Seen::Duplicate(Some(Index(3)))
        );
    }

    #[test]
    fn a_forgotten_session_is_refused_and_the_next_one_is_new() {
        let mut sessions = Sessions::new(2);
        sessions.record(id(1, 1), 1, FIRST, Index(1));
        sessions.record(id(2, 1), 1, FIRST, Index(2));
        sessions.record(id(3, 1), 1, FIRST, Index(3));
        // Client 1 is forgotten: a retry of what it applied at 1 is refused,
        // and so is anything else of that session.
        assert_eq!(sessions.seen(id(1, 1), FIRST), Seen::Expired);
        assert_eq!(sessions.seen(id(1, 2), FIRST), Seen::Expired);
        // A client never seen is new while its stamp is at or above the
        // evictions (through index 1), refused below.
        assert_eq!(sessions.seen(id(9, 1), Index(1)), Seen::New);
        assert_eq!(sessions.seen(id(9, 1), FIRST), Seen::Expired);
        // Refused at 4, client 1 opens a new session stamped 4.
        assert_eq!(sessions.seen(id(1, 2), Index(4)), Seen::New);
        sessions.record(id(1, 2), 2, Index(4), Index(5));
        assert_eq!(
            sessions.seen(id(1, 2), Index(4)),
            Seen::Duplicate(Some(Index(5)))
        );
        // A late copy from the old session is refused, not applied.
        assert_eq!(sessions.seen(id(1, 1), FIRST), Seen::Expired);
    }
}
