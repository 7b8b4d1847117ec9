//! Terms, pre-votes, votes and role changes (§5.2, §5.4.1; pre-vote and the
//! disruptive-server rule from §9.6 of Ongaro's thesis).

use super::message::{ConflictHint, Message};
use super::node::{EntryOf, Flaw, Followers, LeaderState, Node, Progress, Role};
use super::outcome::{Effect, ProposalOutcome, ProposeError, QueryError};
use crate::env::{Instant, uniform_duration};
use crate::id::PeerId;
use crate::log::{Cursor, Index, Storage, Term};
use crate::machine::StateMachine;

impl<M, S> Node<M, S>
where
    M: StateMachine,
    S: Storage<EntryOf<M>>,
{
    /// Applies the term rules to an incoming message. Returns whether the message
    /// should be handled further.
    pub(super) fn observe_term(
        &mut self,
        now: Instant,
        from: PeerId,
        term: Term,
        message: &Message<M::Command>,
    ) -> bool {
        let current = self.hard_state.current_term;
        if term > current {
            match message {
                // A pre-vote changes nothing at the receiver; a granted pre-vote
                // response carries the proposed term, not the voter's.
                Message::PreVote { .. } | Message::PreVoteResponse { granted: true, .. } => {
                    return true;
                }
                // Disruptive-server rule: while a leader is heard from, a vote
                // request does not even raise the term.
                Message::RequestVote { .. } if self.leader_recently_heard(now) => {
                    tracing::debug!(node = %self.id, %from, %term, "vote request ignored: leader is alive");
                    return false;
                }
                _ => {}
            }
            let leader = matches!(
                message,
                Message::AppendEntries { .. } | Message::CatchUp { .. }
            )
            .then_some(from);
            self.become_follower(now, term, leader);
            return true;
        }
        if term < current {
            // Tell a stale sender the current term so it steps down; ignore stale
            // responses.
            let reply = match message {
                Message::PreVote { .. } => Some(Message::PreVoteResponse {
                    term: current,
                    granted: false,
                }),
                Message::RequestVote { .. } => Some(Message::RequestVoteResponse {
                    term: current,
                    granted: false,
                }),
                Message::AppendEntries {
                    read_round, prev, ..
                } => Some(Message::AppendEntriesResponse {
                    term: current,
                    read_round: *read_round,
                    result: Err(ConflictHint {
                        next_index: self.last_log.index().next(),
                        conflict_term: None,
                        refused_prev: prev.index(),
                    }),
                }),
                Message::CatchUp { .. } => Some(Message::AppendEntriesResponse {
                    term: current,
                    read_round: 0,
                    result: Err(ConflictHint {
                        next_index: self.last_log.index().next(),
                        conflict_term: None,
                        refused_prev: Index::ZERO,
                    }),
                }),
                _ => None,
            };
            if let Some(reply) = reply {
                self.send(from, reply);
            }
            return false;
        }
        true
    }

    /// Whether a leader of the current term was heard from within the minimum
    /// election timeout.
    pub(super) fn leader_recently_heard(&self, now: Instant) -> bool {
        self.role == Role::Leader
            || self
                .leader_heard_at
                .is_some_and(|heard| now < heard + self.config.election_timeout_min)
    }

    /// Draws a new election deadline: uniform in the configured range, times the
    /// reluctance factor.
    pub(super) fn reset_election_deadline(&mut self, now: Instant) {
        let timeout = uniform_duration(
            &mut self.rng,
            self.config.election_timeout_min,
            self.config.election_timeout_max,
        );
        self.election_timeout = timeout * self.preference.timeout_factor();
        self.election_deadline = now + self.election_timeout;
    }

    /// Restarts the election timer with the timeout drawn last: a heartbeat
    /// from the leader being followed needs no new draw.
    pub(super) fn restart_election_deadline(&mut self, now: Instant) {
        self.election_deadline = now + self.election_timeout;
    }

    pub(super) fn on_election_timeout(&mut self, now: Instant) {
        self.reset_election_deadline(now);
        if self.role == Role::Leader {
            return;
        }
        if !self.preference.may_campaign() {
            // Observers never campaign, but they stop trusting a silent leader.
            self.leader = None;
            return;
        }
        self.leader = None;
        self.leader_heard_at = None;
        self.role = Role::PreCandidate;
        self.votes.clear();
        self.votes.insert(self.id);
        tracing::debug!(node = %self.id, term = %self.hard_state.current_term, "pre-vote started");
        if self.votes.len() >= self.quorum() {
            self.become_candidate(now);
            return;
        }
        let message = Message::PreVote {
            term: self.hard_state.current_term.next(),
            last_log: self.last_log,
        };
        for peer in self.peers().collect::<Vec<_>>() {
            self.send(peer, message.clone());
        }
    }

    pub(super) fn on_pre_vote(&mut self, now: Instant, from: PeerId, term: Term, last_log: Cursor) {
        let log_ok = last_log >= self.last_log || self.flaw(Flaw::VoteWithoutLogCheck);
        let granted =
            term > self.hard_state.current_term && log_ok && !self.leader_recently_heard(now);
        let term = if granted {
            term
        } else {
            self.hard_state.current_term
        };
        self.send(from, Message::PreVoteResponse { term, granted });
    }

    pub(super) fn on_pre_vote_response(
        &mut self,
        now: Instant,
        from: PeerId,
        term: Term,
        granted: bool,
    ) {
        if self.role != Role::PreCandidate
            || !granted
            || term != self.hard_state.current_term.next()
        {
            return;
        }
        self.votes.insert(from);
        if self.votes.len() >= self.quorum() {
            self.become_candidate(now);
        }
    }

    fn become_candidate(&mut self, now: Instant) {
        let term = self.hard_state.current_term.next();
        self.set_hard_state(term, Some(self.id));
        self.role = Role::Candidate;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.id);
        self.reset_election_deadline(now);
        tracing::debug!(node = %self.id, %term, "campaigning");
        if self.votes.len() >= self.quorum() {
            self.become_leader(now);
            return;
        }
        let message = Message::RequestVote {
            term,
            last_log: self.last_log,
        };
        for peer in self.peers().collect::<Vec<_>>() {
            self.send(peer, message.clone());
        }
    }

    pub(super) fn on_request_vote(
        &mut self,
        now: Instant,
        from: PeerId,
        term: Term,
        last_log: Cursor,
    ) {
        debug_assert_eq!(term, self.hard_state.current_term);
        let vote_free = self.hard_state.voted_for.is_none_or(|voted| voted == from);
        // §5.4.1: vote only for a candidate whose log is at least as up to date.
        let log_ok = last_log >= self.last_log || self.flaw(Flaw::VoteWithoutLogCheck);
        let granted = vote_free && log_ok;
        if granted {
            // Durable before the response leaves: flush syncs first.
            self.set_hard_state(term, Some(from));
            self.reset_election_deadline(now);
            if self.role == Role::PreCandidate {
                self.role = Role::Follower;
            }
        }
        self.send(
            from,
            Message::RequestVoteResponse {
                term: self.hard_state.current_term,
                granted,
            },
        );
    }

    pub(super) fn on_request_vote_response(
        &mut self,
        now: Instant,
        from: PeerId,
        term: Term,
        granted: bool,
    ) {
        if self.role != Role::Candidate || !granted || term != self.hard_state.current_term {
            return;
        }
        self.votes.insert(from);
        if self.votes.len() >= self.quorum() {
            self.become_leader(now);
        }
    }

    fn become_leader(&mut self, now: Instant) {
        debug_assert_eq!(self.role, Role::Candidate);
        debug_assert_eq!(self.hard_state.voted_for, Some(self.id));
        let next_index = self.last_log.index().next();
        let progress = Followers::new(
            self.peers(),
            &Progress {
                next_index,
                match_index: Index::ZERO,
                acked_round: 0,
                last_heard: None,
                contact_due: true,
                commit_sent: Index::ZERO,
                match_at_tick: Index::ZERO,
                probing: true,
                silent_ticks: 0,
                blind_batch_due: false,
                probe_prev: None,
                resume_at: None,
                resumed_to: None,
                checking_tip: false,
            },
        );
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.votes.clear();
        // §5.4.2 and §6.4: a blank entry of the new term lets earlier entries
        // commit and lets reads be served.
        let term = self.hard_state.current_term;
        let term_start = self.storage.append(super::entry::LogEntry::Blank, term);
        self.last_log = Cursor::new(term, term_start);
        self.mark_dirty();
        self.leader_state = Some(LeaderState {
            progress,
            term_start,
            read_round: 0,
            reads: std::collections::VecDeque::new(),
            since: now,
            due_all: true,
            due_peers: Vec::new(),
            commit_due: true,
            match_max: Index::ZERO,
            matched_above_commit: 0,
            matched_scratch: Vec::new(),
            rounds_scratch: Vec::new(),
            confirmed_scratch: Vec::new(),
            appended: std::collections::BTreeMap::new(),
            read_acks_round: u64::MAX,
            read_acks: 0,
        });
        self.heartbeat_deadline = Some(now + self.config.heartbeat_interval);
        tracing::debug!(node = %self.id, %term, "became leader");
    }

    /// Steps down to follower in `term` (or stays one), following `leader` if known.
    pub(super) fn become_follower(&mut self, now: Instant, term: Term, leader: Option<PeerId>) {
        if term > self.hard_state.current_term {
            self.set_hard_state(term, None);
        }
        let was_leader = self.role == Role::Leader;
        self.role = Role::Follower;
        // `on_message` takes a known leader for a member without looking it up.
        debug_assert!(leader.is_none_or(|leader| self.voters.binary_search(&leader).is_ok()));
        self.leader = leader;
        self.votes.clear();
        self.heartbeat_deadline = None;
        if leader.is_some() {
            self.leader_heard_at = Some(now);
        }
        self.reset_election_deadline(now);
        if was_leader {
            self.abandon_leadership(leader);
        }
    }

    /// Answers everything that waited on this node's leadership: buffered
    /// proposals were never appended, and unconfirmed reads cannot be confirmed.
    fn abandon_leadership(&mut self, leader: Option<PeerId>) {
        tracing::debug!(node = %self.id, term = %self.hard_state.current_term, "stepped down");
        let state = self.leader_state.take().expect("a leader has leader state");
        for (proposal, forwarded_by) in core::mem::take(&mut self.proposal_buffer) {
            let error = ProposeError::NotLeader { leader };
            match forwarded_by {
                Some(peer) => self.send(
                    peer,
                    Message::ProposeResponse {
                        id: proposal.id,
                        result: Err(error),
                    },
                ),
                None => self.finish_proposal(proposal.id, ProposalOutcome::Rejected(error)),
            }
        }
        for read in state.reads {
            let error = QueryError::NotLeader { leader };
            match read.requester {
                super::node::ReadRequester::Local(id) => self.fail_query(id, error),
                super::node::ReadRequester::Remote(peer, read) => self.send(
                    peer,
                    Message::ReadIndexResponse {
                        read,
                        result: Err(error),
                    },
                ),
            }
        }
    }

    /// A leader's heartbeat tick: check that a quorum still answers (§6.2 of the
    /// thesis, "check quorum"), then schedule heartbeats to every follower.
    pub(super) fn on_heartbeat_timeout(&mut self, now: Instant) {
        self.heartbeat_deadline = Some(now + self.config.heartbeat_interval);
        let window = self.config.election_timeout_max;
        let quorum = self.config.quorum();
        let state = self
            .leader_state
            .as_mut()
            .expect("a leader has leader state");
        let heard = 1 + state
            .progress
            .values()
            .filter(|progress| {
                progress
                    .last_heard
                    .is_some_and(|heard| now.saturating_since(heard) < window)
            })
            .count();
        if heard < quorum && now.saturating_since(state.since) >= window {
            tracing::debug!(node = %self.id, heard, "lost contact with a quorum");
            let term = self.hard_state.current_term;
            self.become_follower(now, term, None);
            return;
        }
        state.due_all = true;
        for progress in state.progress.values_mut() {
            progress.contact_due = true;
            let in_flight = progress.next_index > progress.match_index.next();
            let stalled = in_flight && progress.match_index == progress.match_at_tick;
            if stalled && progress.silent_ticks == 0 {
                // The first tick of a stall: ask before resending (see
                // `Progress::checking_tip`).
                progress.silent_ticks = 1;
                progress.checking_tip = true;
                progress.probing = true;
                progress.probe_prev = None;
            } else if stalled || progress.silent_ticks > 0 {
                progress.checking_tip = false;
                progress.resumed_to = None;
                let ticks = progress.silent_ticks.saturating_add(1);
                progress.silent_ticks = ticks;
                progress.blind_batch_due = Progress::sends_blind_batch(ticks);
                if Progress::rewinds_to_match(ticks) {
                    // What was sent before is likelier held up than lost: the
                    // next answer resumes there (see `resume_at`).
                    let next = progress.next_index;
                    progress.resume_at = Some(progress.resume_at.map_or(next, |at| at.max(next)));
                    progress.next_index = progress.match_index.next();
                }
                progress.probing = true;
                progress.probe_prev = None;
            }
            progress.match_at_tick = progress.match_index;
        }
    }

    /// Fails a pending local query.
    pub(super) fn fail_query(&mut self, id: super::outcome::QueryId, error: QueryError) {
        if let Some(query) = self.queries.remove(&id) {
            if let super::node::QueryStage::Apply(index) = query.stage {
                self.awaiting_apply.remove(&(index, id));
            }
            self.remove_deadline(query.deadline, super::node::Expiring::Query(id));
            self.held.push(Effect::QueryOutcome {
                id,
                outcome: Err(error),
            });
        }
    }
}
