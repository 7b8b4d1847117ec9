//! The client side of a node: proposals (appended by the leader, forwarded by
//! followers), queries (weak: local; strong: read index, §6.4), and the
//! bookkeeping that reports each outcome exactly once.

use super::entry::{Proposal, ProposalId};
use super::message::{Message, ReadId};
use super::node::{
    EntryOf, Expiring, Flaw, LeaderRead, LeaderState, Node, PendingProposal, PendingQuery,
    QueryStage, ReadRequester, Role,
};
use super::outcome::{
    Consistency, Effect, ProposalOutcome, ProposeError, QueryAnswer, QueryError, QueryId,
};
use crate::env::Instant;
use crate::id::PeerId;
use crate::log::{Cursor, Index, Storage};
use crate::machine::StateMachine;

impl<M, S> Node<M, S>
where
    M: StateMachine,
    S: Storage<EntryOf<M>>,
{
    /// Proposes a command. The outcome arrives exactly once, as an
    /// [`Effect::ProposalOutcome`]: committed (with its index), rejected (nothing
    /// was appended through this call), or unknown after the proposal timeout.
    ///
    /// A leader appends the command at the next flush; a follower forwards it to
    /// the leader it knows; a node that knows no leader rejects it at once.
    pub fn propose(&mut self, now: Instant, proposal: Proposal<M::Command>) {
        let id = proposal.id;
        if self.proposals.contains_key(&id)
            || self.proposals.len() >= self.options.pending_proposals_max
        {
            self.held.push(Effect::ProposalOutcome {
                id,
                outcome: ProposalOutcome::Rejected(ProposeError::Busy),
            });
            return;
        }
        let target = match self.role {
            Role::Leader => None,
            _ => match self.leader {
                Some(leader) if leader != self.id => Some(leader),
                _ => {
                    self.held.push(Effect::ProposalOutcome {
                        id,
                        outcome: ProposalOutcome::Rejected(ProposeError::NotLeader {
                            leader: None,
                        }),
                    });
                    return;
                }
            },
        };
        let deadline = now + self.options.proposal_timeout;
        self.proposals.insert(
            id,
            PendingProposal {
                deadline,
                accepted: false,
            },
        );
        self.add_deadline(deadline, Expiring::Proposal(id));
        match target {
            None => self.proposal_buffer.push((proposal, None)),
            Some(leader) => self.send(leader, Message::Propose { proposal }),
        }
    }

    /// Asks a query. The outcome arrives as an [`Effect::QueryOutcome`] with the
    /// log position the answer reflects.
    ///
    /// * `Weak`: answered from this node's state at the next flush.
    /// * `Strong`: the leader confirms it still leads with a quorum round, and the
    ///   answer waits until this node has applied everything committed when the
    ///   query arrived. Fails with `NotLeader` if no leader is known, and with
    ///   `Timeout` if confirmation does not come within the query timeout (as on a
    ///   deposed leader cut off from the quorum).
    pub fn query(&mut self, now: Instant, id: QueryId, query: M::Query, consistency: Consistency) {
        if self.queries.contains_key(&id) || self.queries.len() >= self.options.pending_queries_max
        {
            self.held.push(Effect::QueryOutcome {
                id,
                outcome: Err(QueryError::Busy),
            });
            return;
        }
        if consistency == Consistency::Weak {
            let answer = QueryAnswer {
                result: self.machine.query(query),
                position: self.applied,
            };
            self.held.push(Effect::QueryOutcome {
                id,
                outcome: Ok(answer),
            });
            return;
        }
        let stage = match self.role {
            Role::Leader => QueryStage::Confirmation,
            _ => match self.leader {
                Some(leader) if leader != self.id => {
                    self.send(leader, Message::ReadIndex { read: id });
                    QueryStage::ReadIndex
                }
                _ => {
                    self.held.push(Effect::QueryOutcome {
                        id,
                        outcome: Err(QueryError::NotLeader { leader: None }),
                    });
                    return;
                }
            },
        };
        let deadline = now + self.options.query_timeout;
        self.queries.insert(
            id,
            PendingQuery {
                query,
                deadline,
                stage,
            },
        );
        self.add_deadline(deadline, Expiring::Query(id));
        if stage == QueryStage::Confirmation {
            self.start_read(ReadRequester::Local(id));
        }
    }

    /// Starts a read round at the leader: the read may be served at the current
    /// commit index (or this term's first entry, whichever is later) once a quorum
    /// has answered a message sent after this moment.
    fn start_read(&mut self, requester: ReadRequester) {
        let commit = self.commit_index;
        if self.flaw(Flaw::ReadWithoutReadIndex) {
            // Planted flaw: answer at the local commit index, unconfirmed.
            match requester {
                ReadRequester::Local(id) => {
                    if let Some(query) = self.queries.get_mut(&id) {
                        query.stage = QueryStage::Apply(commit);
                        self.awaiting_apply.insert((commit, id));
                    }
                }
                ReadRequester::Remote(peer, read) => self.send(
                    peer,
                    Message::ReadIndexResponse {
                        read,
                        result: Ok(commit),
                    },
                ),
            }
            return;
        }
        let state = self
            .leader_state
            .as_mut()
            .expect("only a leader starts reads");
        state.read_round += 1;
        let read = LeaderRead {
            round: state.read_round,
            read_index: commit.max(state.term_start),
            requester,
        };
        state.reads.push_back(read);
        state.due_all = true;
        for progress in state.progress.values_mut() {
            progress.contact_due = true;
        }
    }

    /// Serves every read whose round a quorum has confirmed.
    pub(super) fn confirm_reads(&mut self) {
        let quorum = self.quorum();
        let Some(state) = self.leader_state.as_mut() else {
            return;
        };
        let Some(oldest) = state.reads.front().map(|read| read.round) else {
            return;
        };
        if state.read_acks_round != oldest {
            state.read_acks_round = oldest;
            state.read_acks = acked_at_least(state, oldest);
        }
        debug_assert_eq!(state.read_acks, acked_at_least(state, oldest));
        // The leader counts itself for every round.
        if state.read_acks + 1 < quorum {
            return;
        }
        let mut acked = core::mem::take(&mut state.rounds_scratch);
        acked.clear();
        acked.extend(state.progress.values().map(|p| p.acked_round));
        acked.push(u64::MAX); // the leader itself
        let (_, confirmed, _) = acked.select_nth_unstable_by(quorum - 1, |a, b| b.cmp(a));
        let confirmed = *confirmed;
        state.rounds_scratch = acked;
        let split = state.reads.partition_point(|read| read.round <= confirmed);
        let mut ready = core::mem::take(&mut state.confirmed_scratch);
        ready.extend(state.reads.drain(..split));
        if let Some(oldest) = state.reads.front().map(|read| read.round) {
            state.read_acks_round = oldest;
            state.read_acks = acked_at_least(state, oldest);
        }
        for read in ready.drain(..) {
            match read.requester {
                ReadRequester::Local(id) => {
                    if let Some(query) = self.queries.get_mut(&id) {
                        query.stage = QueryStage::Apply(read.read_index);
                        self.awaiting_apply.insert((read.read_index, id));
                    }
                }
                ReadRequester::Remote(peer, read_id) => self.send(
                    peer,
                    Message::ReadIndexResponse {
                        read: read_id,
                        result: Ok(read.read_index),
                    },
                ),
            }
        }
        if let Some(state) = self.leader_state.as_mut() {
            state.confirmed_scratch = ready;
        }
    }

    /// Answers strong queries whose read index has been applied.
    #[inline]
    pub(super) fn answer_ready_queries(&mut self) {
        let applied = self.applied.index();
        // Most flushes: no query waits for an index applied by now.
        if self
            .awaiting_apply
            .first()
            .is_none_or(|&(index, _)| index > applied)
        {
            debug_assert!(self.none_ready_at(applied), "a ready query was skipped");
            return;
        }
        self.answer_queries_ready_at(applied);
    }

    /// Whether no pending query waits for an index up to `applied` (every
    /// query in the Apply stage must be in `awaiting_apply`).
    fn none_ready_at(&self, applied: Index) -> bool {
        !self
            .queries
            .values()
            .any(|query| matches!(query.stage, QueryStage::Apply(index) if index <= applied))
    }

    /// Answers every query awaiting an index up to `applied`.
    #[inline(never)]
    fn answer_queries_ready_at(&mut self, applied: Index) {
        let mut ready = Vec::new();
        while let Some(&(index, id)) = self.awaiting_apply.first()
            && index <= applied
        {
            self.awaiting_apply.pop_first();
            ready.push(id);
        }
        // Answered in id order, as when every pending query was searched.
        ready.sort_unstable();
        for id in ready {
            let query = self
                .queries
                .remove(&id)
                .expect("a query awaiting apply is pending");
            self.remove_deadline(query.deadline, Expiring::Query(id));
            let answer = QueryAnswer {
                result: self.machine.query(query.query),
                position: self.applied,
            };
            self.held.push(Effect::QueryOutcome {
                id,
                outcome: Ok(answer),
            });
        }
        debug_assert!(
            self.none_ready_at(applied),
            "a ready query was left waiting"
        );
    }

    /// The leader's side of a forwarded proposal. Proposals are never forwarded
    /// twice, so a stale hint cannot make them loop.
    pub(super) fn on_forwarded_proposal(
        &mut self,
        _now: Instant,
        from: PeerId,
        proposal: Proposal<M::Command>,
    ) {
        if self.role == Role::Leader {
            self.proposal_buffer.push((proposal, Some(from)));
        } else {
            let leader = self.leader.filter(|leader| *leader != self.id);
            self.send(
                from,
                Message::ProposeResponse {
                    id: proposal.id,
                    result: Err(ProposeError::NotLeader { leader }),
                },
            );
        }
    }

    /// The proposer's side of the leader's answer.
    pub(super) fn on_propose_response(
        &mut self,
        id: ProposalId,
        result: Result<Cursor, ProposeError>,
    ) {
        let Some(pending) = self.proposals.get_mut(&id) else {
            return;
        };
        match result {
            Ok(position) => {
                pending.accepted = true;
                self.held.push(Effect::ProposalAccepted { id, position });
            }
            // Once some copy was accepted, a refusal of another (duplicated) copy
            // says nothing: the outcome comes from applying or the timeout.
            Err(error) if !pending.accepted => {
                self.finish_proposal(id, ProposalOutcome::Rejected(error));
            }
            Err(_) => {}
        }
    }

    /// The leader's side of a follower's read-index request.
    pub(super) fn on_read_index(&mut self, _now: Instant, from: PeerId, read: ReadId) {
        if self.role == Role::Leader {
            self.start_read(ReadRequester::Remote(from, read));
        } else {
            let leader = self.leader.filter(|leader| *leader != self.id);
            self.send(
                from,
                Message::ReadIndexResponse {
                    read,
                    result: Err(QueryError::NotLeader { leader }),
                },
            );
        }
    }

    /// The follower's side of the leader's read index.
    pub(super) fn on_read_index_response(
        &mut self,
        read: ReadId,
        result: Result<Index, QueryError>,
    ) {
        let Some(query) = self.queries.get_mut(&read) else {
            return;
        };
        if query.stage != QueryStage::ReadIndex {
            return;
        }
        match result {
            Ok(index) => {
                query.stage = QueryStage::Apply(index);
                self.awaiting_apply.insert((index, read));
            }
            Err(error) => self.fail_query(read, error),
        }
    }

    /// Reports a proposal's final outcome and forgets it.
    pub(super) fn finish_proposal(&mut self, id: ProposalId, outcome: ProposalOutcome) {
        if let Some(pending) = self.proposals.remove(&id) {
            self.remove_deadline(pending.deadline, Expiring::Proposal(id));
            self.held.push(Effect::ProposalOutcome { id, outcome });
        }
    }

    /// Handles every deadline that has passed.
    pub(super) fn expire(&mut self, now: Instant) {
        while let Some(&(deadline, what)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            match what {
                Expiring::Proposal(id) => {
                    if self.proposals.contains_key(&id) {
                        self.finish_proposal(id, ProposalOutcome::Unknown);
                    }
                }
                Expiring::Query(id) => self.fail_query(id, QueryError::Timeout),
                Expiring::CatchUp => self.retry_catch_up(now),
            }
        }
    }
}

/// Followers that acknowledged `round` or a later one.
fn acked_at_least(state: &LeaderState, round: u64) -> usize {
    state
        .progress
        .values()
        .filter(|progress| progress.acked_round >= round)
        .count()
}
