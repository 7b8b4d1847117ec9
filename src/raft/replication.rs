//! Log replication and commitment (§5.3, §5.4.2): the leader's side (batching
//! proposals, sending AppendEntries, counting acknowledgements) and the follower's
//! side (the consistency check, conflict repair, learning the commit index).

use super::entry::{CommandEntry, LogEntry, ProposalId};
use super::lent::AppendHeader;
use super::message::{ConflictHint, Message};
use super::node::{EntryOf, Flaw, Node, Role};
use super::outcome::Effect;
use crate::env::Instant;
use crate::id::PeerId;
use crate::log::{Cursor, Index, Storage, Term};
use crate::machine::StateMachine;

impl<M, S> Node<M, S>
where
    M: StateMachine,
    S: Storage<EntryOf<M>>,
{
    /// Appends the proposals buffered since the last flush, in batches of at most
    /// `batch_commands_max`, and tells each proposer where its command went. A
    /// retry of a proposal this leader appended in its term and has not applied
    /// yet is told where that copy is, and not appended again.
    pub(super) fn append_buffered_proposals(&mut self, _now: Instant) {
        if self.proposal_buffer.is_empty() {
            return;
        }
        let term = self.hard_state.current_term;
        let mut buffered = core::mem::take(&mut self.proposal_buffer);
        if let Some(state) = &self.leader_state
            && !state.appended.is_empty()
        {
            let mut held = Vec::new();
            buffered.retain(
                |(proposal, forwarded_by)| match state.appended.get(&proposal.id) {
                    Some(position) => {
                        held.push((proposal.id, *forwarded_by, *position));
                        false
                    }
                    None => true,
                },
            );
            for (id, forwarded_by, position) in held {
                self.tell_proposer(id, forwarded_by, position);
            }
        }
        let batch_max = self.options.batch_commands_max;
        let count = buffered.len();
        for (position_in_buffer, (proposal, forwarded_by)) in buffered.into_iter().enumerate() {
            let batch_end =
                (position_in_buffer + 1) % batch_max == 0 || position_in_buffer + 1 == count;
            let entry = LogEntry::Command(CommandEntry {
                command: proposal.command,
                proposal: proposal.id,
                settled_below: proposal.settled_below,
                session: proposal.session,
                batch_end,
            });
            let index = self.storage.append(entry, term);
            self.last_log = Cursor::new(term, index);
            let position = self.last_log;
            if let Some(state) = self.leader_state.as_mut() {
                state.appended.insert(proposal.id, position);
            }
            self.tell_proposer(proposal.id, forwarded_by, position);
        }
        if count == 0 {
            return;
        }
        self.mark_dirty();
        if let Some(state) = self.leader_state.as_mut() {
            state.due_all = true;
            state.commit_due = true;
        }
    }

    /// Tells the proposer of `id` (a follower that forwarded it, or this node's
    /// own caller) that it is in the log at `position`.
    fn tell_proposer(&mut self, id: ProposalId, forwarded_by: Option<PeerId>, position: Cursor) {
        match forwarded_by {
            Some(peer) => self.send(
                peer,
                Message::ProposeResponse {
                    id,
                    result: Ok(position),
                },
            ),
            None => {
                if let Some(pending) = self.proposals.get_mut(&id) {
                    pending.accepted = true;
                    self.held.push(Effect::ProposalAccepted { id, position });
                }
            }
        }
    }

    /// Sends each follower what it lacks: entries within its in-flight window, a
    /// catch-up notice if the leader no longer holds what it needs, or a heartbeat
    /// when one is due or the commit index moved.
    pub(super) fn replicate(&mut self, _now: Instant) {
        let log_start = *self.storage.available().start();
        let state = self
            .leader_state
            .as_mut()
            .expect("only a leader replicates");
        let mut due = core::mem::take(&mut state.due_peers);
        if core::mem::take(&mut state.due_all) {
            for position in 0..state.progress.len() {
                self.replicate_to(position, log_start);
            }
        } else {
            // In id order, each once.
            due.sort_unstable();
            due.dedup();
            for &position in &due {
                self.replicate_to(position, log_start);
            }
        }
        due.clear();
        // Keep the buffer for the next answers.
        if let Some(state) = self.leader_state.as_mut() {
            state.due_peers = due;
        }
    }

    /// Sends the follower at `position` what it lacks.
    fn replicate_to(&mut self, position: usize, log_start: Index) {
        let term = self.hard_state.current_term;
        let commit = self.commit_index;
        let last = self.last_log.index();
        let append_max = self.options.append_entries_max as u64;
        let inflight_max = self.options.inflight_entries_max as u64;
        let state = self
            .leader_state
            .as_mut()
            .expect("only a leader replicates");
        let read_round = state.read_round;
        let peer = state.progress.id(position);
        let progress = state.progress.at_mut(position);

        if !log_start.is_zero() && progress.next_index <= log_start {
            if progress.contact_due {
                progress.contact_due = false;
                let leader_log_start = Cursor::new(
                    self.storage.term_at(log_start).unwrap_or(Term::ZERO),
                    log_start,
                );
                self.outbox.push(Effect::Send {
                    to: peer,
                    message: Message::CatchUp {
                        term,
                        leader_log_start,
                        leader_commit: commit,
                    },
                });
            }
            return;
        }

        let mut sent = false;
        loop {
            let state = self
                .leader_state
                .as_mut()
                .expect("only a leader replicates");
            let progress = state.progress.at_mut(position);
            let next = progress.next_index;
            let inflight = next.0.saturating_sub(progress.match_index.0 + 1);
            let window = if progress.probing {
                append_max
            } else {
                inflight_max
            };
            let room = append_max.min(progress.room_for_entries(inflight, window));
            let can_send_entries = next <= last && room > 0;
            let wants_contact = progress.contact_due || progress.commit_sent < commit;
            let (prev_index, through) = if can_send_entries {
                (next.prev(), Index(last.0.min(next.0 + room - 1)))
            } else if !sent && wants_contact {
                // A heartbeat. With entries in flight it checks only what is known
                // to match, so it does not disturb the pipeline, or after a
                // resume the last entry it skipped (see `Progress::resumed_to`);
                // otherwise it probes the position the next entries would follow.
                let prev_index = if progress.checking_tip {
                    next.prev()
                } else if inflight > 0 {
                    progress.resumed_to.map_or(progress.match_index, |to| {
                        to.prev().max(progress.match_index)
                    })
                } else {
                    next.prev()
                };
                (prev_index, prev_index)
            } else {
                break;
            };
            if can_send_entries {
                progress.next_index = through.next();
                progress.blind_batch_due = false;
            }
            if progress.probing && (can_send_entries || inflight == 0 || progress.checking_tip) {
                // A probe: the batch (or heartbeat, or check of the tip) whose
                // answer tells where the follower's log matches.
                progress.probe_prev = Some(prev_index);
            }
            progress.contact_due = false;
            progress.commit_sent = commit;
            let prev_term = self
                .term_at(prev_index)
                .expect("a leader holds every entry after its log start");
            let header = AppendHeader {
                term,
                prev: Cursor::new(prev_term, prev_index),
                leader_commit: commit,
                read_round,
            };
            let outgoing = if through > prev_index && self.options.lend_entries {
                Effect::SendLent {
                    to: peer,
                    header,
                    entries: prev_index.next()..=through,
                }
            } else {
                let mut entries: Vec<(Term, EntryOf<M>)> = Vec::new();
                if through > prev_index {
                    self.storage
                        .extend_with_range(&(prev_index.next()..=through), &mut entries);
                }
                Effect::Send {
                    to: peer,
                    message: header.with_entries(entries),
                }
            };
            self.outbox.push(outgoing);
            sent = true;
        }
    }

    /// The follower's side of AppendEntries (§5.3).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_append_entries(
        &mut self,
        now: Instant,
        from: PeerId,
        term: Term,
        prev: Cursor,
        entries: Vec<(Term, EntryOf<M>)>,
        leader_commit: Index,
        read_round: u64,
    ) {
        debug_assert_eq!(term, self.hard_state.current_term);
        if self.role == Role::Leader {
            // Two leaders in one term cannot happen among correct nodes.
            tracing::error!(node = %self.id, %from, %term, "AppendEntries from another leader of my term dropped");
            return;
        }
        if self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(now, term, Some(from));
        }
        self.leader_heard_at = Some(now);
        self.restart_election_deadline(now);

        let result = match self.check_prev(prev) {
            Err(hint) if self.flaw(Flaw::TruncateCommitted) && hint.conflict_term.is_some() => {
                // Planted flaw: cut the whole conflicting term, committed or not.
                let mut first = prev.index().min(self.last_log.index());
                while first.prev() > Index::ZERO && self.term_at(first.prev()) == hint.conflict_term
                {
                    first = first.prev();
                }
                self.storage.truncate(first);
                self.last_log = self.storage.last();
                self.synced_last = self.synced_last.min(first.prev());
                self.commit_index = self.commit_index.min(self.last_log.index());
                self.mark_dirty();
                Err(hint)
            }
            Err(hint) => Err(hint),
            Ok(()) => {
                let last_new = self.merge_entries(prev, entries);
                // Entries of the leader's own term came from that leader, so by the
                // Log Matching property the log matches it through its last one.
                if self.last_log.term() == term {
                    Ok(last_new.max(self.last_log.index()))
                } else {
                    Ok(last_new)
                }
            }
        };
        if let Ok(matched) = result {
            // Only entries known to match the leader's may be marked committed.
            let commit = leader_commit.min(matched);
            if commit > self.commit_index {
                self.commit_index = commit;
            }
        }
        self.send(
            from,
            Message::AppendEntriesResponse {
                term,
                read_round,
                result,
            },
        );
    }

    /// The log matching check: does this log hold `prev`? Entries up to the commit
    /// index match any leader's (§5.4.3), so they pass without a look.
    pub(super) fn check_prev(&self, prev: Cursor) -> Result<(), ConflictHint> {
        if prev.index() <= self.commit_index {
            return Ok(());
        }
        if prev.index() > self.last_log.index() {
            return Err(ConflictHint {
                next_index: self.last_log.index().next(),
                conflict_term: None,
                refused_prev: prev.index(),
            });
        }
        let ours = self.term_at(prev.index());
        if ours == Some(prev.term()) {
            return Ok(());
        }
        let Some(conflict_term) = ours else {
            return Err(ConflictHint {
                next_index: self.commit_index.next(),
                conflict_term: None,
                refused_prev: prev.index(),
            });
        };
        // Skip back over every entry of the conflicting term in one step.
        let first = self.first_index_where(self.commit_index.next(), prev.index(), |term| {
            term.is_some_and(|term| term >= conflict_term)
        });
        Err(ConflictHint {
            next_index: first,
            conflict_term: Some(conflict_term),
            refused_prev: prev.index(),
        })
    }

    /// Merges entries that follow a matching `prev` into the log: skips what it
    /// already holds, truncates at the first conflict, appends the rest. Returns
    /// the index of the last entry the message covered.
    pub(super) fn merge_entries(
        &mut self,
        prev: Cursor,
        entries: Vec<(Term, EntryOf<M>)>,
    ) -> Index {
        let mut index = prev.index();
        let mut appending = false;
        self.entries_received.total += entries.len() as u64;
        for (term, entry) in entries {
            index = index.next();
            if !appending {
                if index <= self.commit_index {
                    self.entries_received.already_held += 1;
                    continue;
                }
                if index <= self.last_log.index() {
                    if self.term_at(index) == Some(term) {
                        self.entries_received.already_held += 1;
                        continue;
                    }
                    // A conflicting entry is never committed: commit index < index.
                    assert!(
                        index > self.commit_index,
                        "truncating committed entry {index} (commit {})",
                        self.commit_index
                    );
                    tracing::debug!(node = %self.id, %index, "conflicting suffix truncated");
                    self.storage.truncate(index);
                    self.synced_last = self.synced_last.min(index.prev());
                }
                appending = true;
            }
            let appended = self.storage.append(entry, term);
            debug_assert_eq!(appended, index);
            self.last_log = Cursor::new(term, appended);
            self.mark_dirty();
        }
        if appending {
            self.last_log = self.storage.last();
        }
        index
    }

    /// The leader's side of an AppendEntries response.
    pub(super) fn on_append_entries_response(
        &mut self,
        now: Instant,
        from: PeerId,
        term: Term,
        read_round: u64,
        result: Result<Index, ConflictHint>,
    ) {
        if self.role != Role::Leader || term != self.hard_state.current_term {
            return;
        }
        let last = self.last_log.index();
        let commit_index = self.commit_index;
        let resend_at_match = self.flaw(Flaw::ResendAtMatch);
        let keep_next_on_conflict = self.flaw(Flaw::KeepNextOnConflict);
        let rewind = match result {
            Ok(_) => None,
            Err(hint) => Some(self.rewind_target(hint)),
        };
        let state = self
            .leader_state
            .as_mut()
            .expect("a leader has leader state");
        let Some(position) = state.progress.position(from) else {
            return;
        };
        state.due_peers.push(position);
        let progress = state.progress.at_mut(position);
        progress.last_heard = Some(now);
        progress.silent_ticks = 0;
        let acked_round = progress.acked_round.max(read_round.min(state.read_round));
        if progress.acked_round < state.read_acks_round && acked_round >= state.read_acks_round {
            state.read_acks += 1;
        }
        progress.acked_round = acked_round;
        match (result, rewind) {
            (Ok(match_index), _) => {
                let match_index = match_index.min(last);
                // An answer to something sent before a check of the tip says
                // nothing about the entry checked unless it reaches that far.
                if !progress.checking_tip || match_index >= progress.next_index.prev() {
                    progress.probing = false;
                    progress.checking_tip = false;
                    progress.probe_prev = None;
                }
                if match_index > progress.match_index {
                    // A match at or below the commit index cannot move it: no
                    // quorum count above the commit index changed.
                    if match_index > commit_index {
                        state.commit_due = true;
                        if progress.match_index <= commit_index {
                            state.matched_above_commit += 1;
                        }
                    }
                    progress.match_index = match_index;
                    state.match_max = state.match_max.max(match_index);
                } else if resend_at_match {
                    // Planted flaw: an answer that moves nothing is taken for
                    // a lost batch, and everything after the match goes again.
                    progress.next_index = progress.match_index.next();
                    progress.contact_due = true;
                }
                if progress.next_index <= progress.match_index {
                    progress.next_index = progress.match_index.next();
                }
                // The follower answers again after a stall: what was sent
                // before it is on its way (see `Progress::resume_at`).
                if let Some(at) = progress.resume_at.take() {
                    let at = at.min(last.next());
                    if at > progress.next_index {
                        progress.next_index = at;
                        progress.resumed_to = Some(at);
                    }
                }
                if progress
                    .resumed_to
                    .is_some_and(|to| progress.match_index.next() >= to)
                {
                    progress.resumed_to = None;
                }
            }
            (Err(hint), Some(target)) => {
                // A refusal of something sent before the latest probe tells
                // nothing new: rewinding for it would resend what is already
                // on its way. Nor does one at or below the match: either it
                // answers an older message (reordered or duplicated), or the
                // follower lost entries it had acknowledged (storage that lied
                // about a sync), which no resend can mend, as nothing below
                // the match is sent again. The heartbeat tick retries; a
                // resend at once would ping-pong without end, and each
                // duplicated refusal would start one more such exchange.
                let at_match = hint.refused_prev <= progress.match_index
                    && !(resend_at_match && hint.refused_prev == progress.match_index);
                let stale = at_match
                    || matches!(progress.probe_prev,
                        Some(probe) if progress.probing && hint.refused_prev != probe);
                // A gap (the follower's log ends before what was refused)
                // found by the pipeline, not by a probe: what was sent before
                // the refused message is likelier overtaken (reordered) or
                // held up than lost. Check the refused `prev` before
                // resending it (see `Progress::checking_tip`).
                let gap = hint.conflict_term.is_none()
                    && hint.next_index <= hint.refused_prev
                    && !progress.probing;
                if !stale {
                    progress.probing = true;
                    progress.checking_tip = gap;
                    progress.probe_prev = None;
                    progress.resume_at = None;
                    progress.resumed_to = None;
                    if gap {
                        // What the refused message carried goes again, from
                        // its `prev`, once the check finds that there.
                        progress.contact_due = true;
                        if hint.refused_prev < progress.next_index {
                            progress.next_index = hint.refused_prev.next();
                        }
                    } else if !(keep_next_on_conflict && hint.conflict_term.is_some()) {
                        // Never below what is known to match, never past the end.
                        let target = target.max(progress.match_index.next()).min(last.next());
                        if target < progress.next_index {
                            progress.next_index = target;
                        }
                    }
                }
            }
            (Err(_), None) => unreachable!("a refusal always has a rewind target"),
        }
        self.confirm_reads();
    }

    /// Where to resume sending after a refusal: past the leader's last entry of the
    /// follower's conflicting term if the leader has that term, else the
    /// follower's hint. By Log Matching, the follower's entries of that term
    /// match the leader's as far as both hold them, however many there are: a
    /// follower back from a crash with thousands of entries of an old term
    /// resumes from the leader's last one, not from its commit index.
    fn rewind_target(&self, hint: ConflictHint) -> Index {
        let Some(conflict_term) = hint.conflict_term else {
            return hint.next_index;
        };
        let floor = self.commit_index.min(hint.next_index);
        let after_term = self.first_index_where(floor.next(), self.last_log.index(), |term| {
            term.is_some_and(|term| term > conflict_term)
        });
        let last_of_term = after_term.prev();
        if last_of_term > floor && self.term_at(last_of_term) == Some(conflict_term) {
            return after_term;
        }
        hint.next_index
    }

    /// The first index in `from..=to` at whose term `past` holds, or
    /// `to.next()` if none does. `past` must hold from some index on (terms
    /// never decrease along a log, so "later than term t" and "at least term
    /// t" do): a binary search, twenty lookups for a million entries where
    /// a walk took one per entry.
    fn first_index_where(
        &self,
        from: Index,
        to: Index,
        past: impl Fn(Option<Term>) -> bool,
    ) -> Index {
        // The answer lies in `low..=high`.
        let (mut low, mut high) = (from.0, to.0.saturating_add(1).max(from.0));
        while low < high {
            let middle = low + (high - low) / 2;
            if past(self.term_at(Index(middle))) {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        Index(low)
    }

    /// Commits the highest index a quorum holds, if it is of the current term
    /// (§5.4.2: entries of earlier terms commit only through a later one). The
    /// leader counts itself for the entries it has synced. Returns whether the
    /// commit index moved.
    pub(super) fn advance_commit(&mut self) -> bool {
        let synced = self.synced_index();
        let Some(state) = self.leader_state.as_mut() else {
            return false;
        };
        if !core::mem::take(&mut state.commit_due) {
            return false;
        }
        let commit_index = self.commit_index;
        debug_assert_eq!(
            state.matched_above_commit,
            state
                .progress
                .values()
                .filter(|progress| progress.match_index > commit_index)
                .count()
        );
        let above = state.matched_above_commit + usize::from(synced > commit_index);
        let voters = state.progress.len() + 1;
        let quorum = self.quorum().min(voters);
        if above < quorum {
            return false; // fewer than a quorum hold anything above the commit index
        }
        let state = self.leader_state.as_mut().expect("checked above");
        let mut matched = core::mem::take(&mut state.matched_scratch);
        matched.clear();
        matched.extend(state.progress.values().map(|progress| progress.match_index));
        matched.push(synced);
        let candidate = quorum_match_index(&mut matched, quorum);
        state.matched_scratch = matched;
        if candidate <= commit_index {
            return false;
        }
        let current_term = self.term_at(candidate) == Some(self.hard_state.current_term);
        if !current_term && !self.flaw(Flaw::CommitByCounting) {
            return false;
        }
        self.commit_index = candidate;
        let state = self.leader_state.as_mut().expect("checked above");
        state.matched_above_commit = state
            .progress
            .values()
            .filter(|progress| progress.match_index > candidate)
            .count();
        // Followers learn the new commit index at once.
        state.due_all = true;
        true
    }

    /// The last index known durable here: everything when no write is pending.
    fn synced_index(&self) -> Index {
        if self.dirty {
            self.synced_last
        } else {
            self.last_log.index()
        }
    }
}

/// The highest index held by at least `quorum` of the `matched` indexes.
pub(crate) fn quorum_match_index(matched: &mut [Index], quorum: usize) -> Index {
    debug_assert!(quorum >= 1 && quorum <= matched.len());
    let (_, nth, _) = matched.select_nth_unstable_by(quorum - 1, |a, b| b.cmp(a));
    *nth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_match_index_takes_the_majority_position() {
        let mut matched = [Index(5), Index(9), Index(7)];
        assert_eq!(quorum_match_index(&mut matched, 2), Index(7));
        let mut matched = [Index(1), Index(9), Index(9), Index(2), Index(3)];
        assert_eq!(quorum_match_index(&mut matched, 3), Index(3));
    }
}
