//! Catching up a follower whose entries the leader no longer holds, through the
//! machine's [`StateSync`](crate::StateSync). For [`LogReplaySync`](crate::LogReplaySync):
//! the follower fetches committed entries from any peer that holds them.
//!
//! Safety: a peer serves only entries at or below its own commit index, and the
//! follower merges them with the same rule as AppendEntries (never touching its
//! own committed prefix), so a replayed entry can never conflict with a committed
//! one.

use super::message::Message;
use super::node::{CatchUpState, EntryOf, Expiring, Node, Role};
use crate::env::Instant;
use crate::id::PeerId;
use crate::log::{Cursor, Index, Storage, Term};
use crate::machine::StateMachine;

impl<M, S> Node<M, S>
where
    M: StateMachine,
    S: Storage<EntryOf<M>>,
{
    /// Prunes this node's log through `through` (capped at the applied index).
    /// The leader will then send lagging followers to catch up from peers.
    ///
    /// A node using `LogReplaySync` cannot restart from a pruned log (the log is
    /// its state), so this is meant for tests and for machines whose state lives
    /// outside the log.
    pub fn compact(&mut self, through: Index) {
        let through = through.min(self.applied.index());
        if through > *self.storage.available().start() {
            self.storage.prune_prefix(through);
            self.mark_dirty();
        }
    }

    /// A follower told by its leader to catch up.
    pub(super) fn on_catch_up(
        &mut self,
        now: Instant,
        from: PeerId,
        term: Term,
        leader_log_start: Cursor,
        leader_commit: Index,
    ) {
        if self.role == Role::Leader {
            return;
        }
        if self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(now, term, Some(from));
        }
        self.leader_heard_at = Some(now);
        self.restart_election_deadline(now);
        // The committed prefix matches every leader's log (Leader Completeness):
        // report it, so the leader resumes sending once it holds the rest.
        self.send(
            from,
            Message::AppendEntriesResponse {
                term,
                read_round: 0,
                result: Ok(self.commit_index),
            },
        );
        let behind = self.commit_index < leader_log_start.index().min(leader_commit);
        if behind && self.catch_up.is_none() {
            self.request_entries(now, None);
        }
    }

    /// Asks the next peer after `previous` (in id order, wrapping) for committed
    /// entries after this node's commit index.
    fn request_entries(&mut self, now: Instant, previous: Option<PeerId>) {
        let peers: Vec<PeerId> = self.peers().collect();
        let Some(&first) = peers.first() else {
            return;
        };
        let next = previous
            .and_then(|previous| peers.iter().copied().find(|peer| *peer > previous))
            .unwrap_or(first);
        if let Some(state) = self.catch_up.take() {
            self.remove_deadline(state.deadline, Expiring::CatchUp);
        }
        let deadline = now + self.config.election_timeout_min;
        self.catch_up = Some(CatchUpState {
            asked: Some(next),
            deadline,
        });
        self.add_deadline(deadline, Expiring::CatchUp);
        let count_max = u32::try_from(self.fetch_entries_max()).unwrap_or(u32::MAX);
        self.send(
            next,
            Message::FetchEntries {
                from: self.commit_index.next(),
                count_max,
            },
        );
    }

    /// The outstanding fetch timed out: ask the next peer.
    pub(super) fn retry_catch_up(&mut self, now: Instant) {
        if let Some(state) = self.catch_up.take() {
            self.request_entries(now, state.asked);
        }
    }

    /// Serves committed entries from `start` on, as many as asked and allowed.
    pub(super) fn on_fetch_entries(&mut self, from: PeerId, start: Index, count_max: u32) {
        let start = start.max(Index(1));
        let count = u64::from(count_max)
            .min(self.fetch_entries_max() as u64)
            .min(self.options.append_entries_max as u64)
            .max(1);
        let prev_index = start.prev();
        let Some(prev_term) = self.term_at(prev_index) else {
            // Not held here either: an empty answer sends the asker elsewhere.
            self.send(
                from,
                Message::FetchedEntries {
                    prev: Cursor::ZERO,
                    entries: Vec::new(),
                    commit: self.commit_index,
                },
            );
            return;
        };
        let through = Index(self.commit_index.0.min(start.0.saturating_add(count - 1)));
        let entries = if through >= start {
            self.storage
                .get_range(&(start..=through))
                .into_iter()
                .map(|(term, _, entry)| (term, entry))
                .collect()
        } else {
            Vec::new()
        };
        self.send(
            from,
            Message::FetchedEntries {
                prev: Cursor::new(prev_term, prev_index),
                entries,
                commit: self.commit_index,
            },
        );
    }

    /// Merges fetched committed entries and fetches more if still behind.
    pub(super) fn on_fetched_entries(
        &mut self,
        now: Instant,
        from: PeerId,
        prev: Cursor,
        mut entries: Vec<(Term, EntryOf<M>)>,
        commit: Index,
    ) {
        // Only entries the sender has committed may be taken.
        let committed_count = commit.0.saturating_sub(prev.index().0);
        entries.truncate(usize::try_from(committed_count).unwrap_or(usize::MAX));
        if entries.is_empty() || self.check_prev(prev).is_err() {
            if self
                .catch_up
                .as_ref()
                .is_some_and(|state| state.asked == Some(from))
            {
                self.retry_catch_up(now);
            }
            return;
        }
        let last_fetched = self.merge_entries(prev, entries);
        if last_fetched > self.commit_index {
            self.commit_index = last_fetched;
        }
        if self
            .catch_up
            .as_ref()
            .is_some_and(|state| state.asked == Some(from))
        {
            if commit > last_fetched {
                // The sender has more: keep asking it.
                let previous = self.peers().filter(|peer| *peer < from).last();
                self.request_entries(now, previous);
            } else if let Some(state) = self.catch_up.take() {
                self.remove_deadline(state.deadline, Expiring::CatchUp);
            }
        }
    }
}
