//! Engine tests: 3- and 5-node groups driven by hand, message by message, with no
//! simulator. Each test names the Raft property (and paper section) it guards.

use core::ops::RangeInclusive;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::*;
use crate::env::{Instant, TimerKind, derive_entropy};
use crate::id::{PeerId, UniqueId};
use crate::log::{CrashOutcome, Cursor, InMemoryLogStore, Index, Storage, Term};
use crate::machine::{ApplyContext, LeadershipPreference, LogReplaySync, NoOp, StateMachine};

/// What a [`Recorder`] saw in one `apply_batch` call.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AppliedBatch {
    committed: Cursor,
    log_position: Cursor,
    term: Term,
    commands: Vec<u64>,
}

/// A machine that records every batch it applies; its state is the sum.
#[derive(Debug, Clone, Default)]
struct Recorder {
    batches: Vec<AppliedBatch>,
    sum: u64,
    preference: LeadershipPreference,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Read {
    Sum,
}

impl StateMachine for Recorder {
    type Command = u64;
    type Query = Read;
    type QueryResult = u64;
    type StateSync = LogReplaySync<Self>;

    fn signature(&self) -> UniqueId {
        UniqueId::from("recorder_v1")
    }

    fn apply(&mut self, command: u64, _ctx: &dyn ApplyContext) {
        self.sum += command;
    }

    fn apply_batch(&mut self, commands: impl IntoIterator<Item = u64>, ctx: &dyn ApplyContext) {
        let commands: Vec<u64> = commands.into_iter().collect();
        self.sum += commands.iter().sum::<u64>();
        self.batches.push(AppliedBatch {
            committed: ctx.committed(),
            log_position: ctx.log_position(),
            term: ctx.current_term(),
            commands,
        });
    }

    fn query(&self, _query: Read) -> u64 {
        self.sum
    }

    fn state_sync(&self) -> LogReplaySync<Self> {
        LogReplaySync::default()
    }

    fn leadership_preference(&self) -> LeadershipPreference {
        self.preference
    }
}

type Store<M> = InMemoryLogStore<EntryOf<M>>;
type QueryResultOf<M> = Result<QueryAnswer<<M as StateMachine>::QueryResult>, QueryError>;

/// A group of engines and the messages between them, stepped by hand.
struct Cluster<M: StateMachine> {
    nodes: BTreeMap<PeerId, Node<M, Store<M>>>,
    /// Storage of crashed nodes, kept for their restart.
    crashed: BTreeMap<PeerId, Store<M>>,
    config: GroupConfig,
    options: NodeOptions,
    make_machine: Box<dyn Fn(PeerId) -> M>,
    now: Instant,
    in_flight: VecDeque<(PeerId, PeerId, Message<M::Command>)>,
    /// Links that drop messages, in both directions.
    cut: BTreeSet<(PeerId, PeerId)>,
    proposal_outcomes: Vec<(PeerId, ProposalId, ProposalOutcome)>,
    query_outcomes: Vec<(PeerId, QueryId, QueryResultOf<M>)>,
    next_sequence: u64,
    /// AppendEntries sent with their entries lent by the log.
    lent: usize,
}

impl Cluster<Recorder> {
    fn recorders(count: u64) -> Self {
        Self::with(count, NodeOptions::default(), |_| Recorder::default())
    }
}

impl<M: StateMachine> Cluster<M> {
    fn with(
        count: u64,
        options: NodeOptions,
        make_machine: impl Fn(PeerId) -> M + 'static,
    ) -> Self {
        let config = GroupConfig::with_voter_count(count);
        let mut cluster = Self {
            nodes: BTreeMap::new(),
            crashed: BTreeMap::new(),
            config,
            options,
            make_machine: Box::new(make_machine),
            now: Instant::ZERO,
            in_flight: VecDeque::new(),
            cut: BTreeSet::new(),
            proposal_outcomes: Vec::new(),
            query_outcomes: Vec::new(),
            next_sequence: 0,
            lent: 0,
        };
        for id in 1..=count {
            cluster.start(PeerId(id), Store::<M>::default());
        }
        cluster
    }

    fn start(&mut self, id: PeerId, storage: Store<M>) {
        let node = Node::new(
            id,
            self.config.clone(),
            self.options.clone(),
            (self.make_machine)(id),
            storage,
            derive_entropy(7, &format!("node-{}", id.0)),
            self.now,
        )
        .expect("valid test configuration");
        self.nodes.insert(id, node);
    }

    fn node(&self, id: u64) -> &Node<M, Store<M>> {
        &self.nodes[&PeerId(id)]
    }

    fn status(&self, id: u64) -> Status {
        self.node(id).status()
    }

    fn leaders(&self) -> Vec<PeerId> {
        self.nodes
            .values()
            .filter(|node| node.status().role == Role::Leader)
            .map(|node| node.id())
            .collect()
    }

    fn advance(&mut self, duration: Duration) {
        self.now = self.now + duration;
    }

    /// Flushes a node and routes its effects.
    fn flush(&mut self, id: PeerId) {
        let mut effects = Vec::new();
        let node = self.nodes.get_mut(&id).expect("a running node");
        node.flush(self.now, &mut effects)
            .expect("memory storage never fails");
        node.check_invariants()
            .expect("invariants hold after flush");
        for effect in effects {
            match effect {
                Effect::Send { to, message } => self.in_flight.push_back((id, to, message)),
                Effect::SendLent {
                    to,
                    header,
                    entries,
                } => {
                    self.lent += 1;
                    let message = node.lent_message(header, &entries);
                    self.in_flight.push_back((id, to, message));
                }
                Effect::ProposalOutcome {
                    id: proposal,
                    outcome,
                } => {
                    self.proposal_outcomes.push((id, proposal, outcome));
                }
                Effect::QueryOutcome { id: query, outcome } => {
                    self.query_outcomes.push((id, query, outcome));
                }
                Effect::SetTimer { .. } | Effect::ProposalAccepted { .. } => {}
            }
        }
    }

    fn blocked(&self, from: PeerId, to: PeerId) -> bool {
        !self.nodes.contains_key(&from)
            || !self.nodes.contains_key(&to)
            || self.cut.contains(&(from, to))
            || self.cut.contains(&(to, from))
    }

    /// Delivers messages (and everything they cause) until none is left.
    fn deliver_all(&mut self) {
        let mut delivered = 0;
        while let Some((from, to, message)) = self.in_flight.pop_front() {
            delivered += 1;
            assert!(delivered < 100_000, "messages never stop");
            if self.blocked(from, to) {
                continue;
            }
            self.nodes
                .get_mut(&to)
                .expect("checked")
                .on_message(self.now, from, message);
            self.flush(to);
        }
    }

    /// Delivers only the messages `keep` selects; the rest are dropped.
    fn deliver_only(&mut self, keep: impl Fn(PeerId, PeerId, &Message<M::Command>) -> bool) {
        let batch: Vec<_> = self.in_flight.drain(..).collect();
        for (from, to, message) in batch {
            if keep(from, to, &message) && !self.blocked(from, to) {
                self.nodes
                    .get_mut(&to)
                    .expect("checked")
                    .on_message(self.now, from, message);
                self.flush(to);
            }
        }
    }

    /// Makes `id`'s election timer fire now (without moving time, so other nodes'
    /// view of their leader's lease is unchanged) and delivers everything.
    fn campaign(&mut self, id: u64) {
        self.start_campaign(id);
        self.deliver_all();
    }

    /// Fires `id`'s election timer now; delivers nothing.
    fn start_campaign(&mut self, id: u64) {
        let id = PeerId(id);
        let node = self.nodes.get_mut(&id).expect("a running node");
        node.election_deadline = self.now;
        node.on_timer(self.now, TimerKind::Election);
        self.flush(id);
    }

    /// Campaigns until `id` leads (a campaign can first just raise its term).
    fn campaign_until_leader(&mut self, id: u64) {
        for _ in 0..4 {
            self.campaign(id);
            if self.status(id).role == Role::Leader {
                return;
            }
        }
        panic!("n{id} did not become leader: {:?}", self.status(id));
    }

    /// Fires every leader's heartbeat timer, then delivers only what `keep`
    /// selects until nothing is left.
    fn heartbeat_only(&mut self, keep: impl Fn(PeerId, PeerId, &Message<M::Command>) -> bool) {
        self.advance(self.config.heartbeat_interval);
        for id in self.leaders() {
            let node = self.nodes.get_mut(&id).expect("a leader runs");
            node.on_timer(self.now, TimerKind::Heartbeat);
            self.flush(id);
        }
        while !self.in_flight.is_empty() {
            self.deliver_only(&keep);
        }
    }

    /// Fires the heartbeat timer of every leader and delivers.
    fn heartbeat(&mut self) {
        self.advance(self.config.heartbeat_interval);
        for id in self.leaders() {
            self.nodes
                .get_mut(&id)
                .expect("a leader runs")
                .on_timer(self.now, TimerKind::Heartbeat);
            self.flush(id);
        }
        self.deliver_all();
    }

    /// Lets long enough pass that no follower still trusts an old leader.
    fn wait_out_leases(&mut self) {
        self.advance(self.config.election_timeout_max * 4);
    }

    fn propose(&mut self, id: u64, command: M::Command) -> ProposalId {
        self.next_sequence += 1;
        let proposal_id = ProposalId {
            client: ClientId(1),
            sequence: self.next_sequence,
        };
        self.propose_with_id(id, proposal_id, command);
        proposal_id
    }

    fn propose_with_id(&mut self, id: u64, proposal_id: ProposalId, command: M::Command) {
        let node = self.nodes.get_mut(&PeerId(id)).expect("a running node");
        node.propose(
            self.now,
            Proposal {
                id: proposal_id,
                command,
                settled_below: 1,
                session: Index::ZERO,
            },
        );
        self.flush(PeerId(id));
    }

    fn query(&mut self, id: u64, query_id: QueryId, query: M::Query, consistency: Consistency) {
        let node = self.nodes.get_mut(&PeerId(id)).expect("a running node");
        node.query(self.now, query_id, query, consistency);
        self.flush(PeerId(id));
    }

    fn outcomes_of(&self, proposal: ProposalId) -> Vec<&ProposalOutcome> {
        self.proposal_outcomes
            .iter()
            .filter(|(_, id, _)| *id == proposal)
            .map(|(_, _, outcome)| outcome)
            .collect()
    }

    /// Stops a node; its storage keeps only what was synced.
    fn crash(&mut self, id: u64) {
        let node = self.nodes.remove(&PeerId(id)).expect("a running node");
        let mut storage = node.into_storage();
        storage.crash(CrashOutcome::LoseUnsynced);
        self.crashed.insert(PeerId(id), storage);
    }

    fn restart(&mut self, id: u64) {
        let storage = self.crashed.remove(&PeerId(id)).expect("a crashed node");
        self.start(PeerId(id), storage);
    }

    /// Cuts every link between `id` and the others.
    fn isolate(&mut self, id: u64) {
        for other in self.config.voters.clone() {
            if other != PeerId(id) {
                self.cut.insert((PeerId(id), other));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    /// Heals every link and lets a few heartbeats bring lagging nodes up.
    fn heal_and_catch_up(&mut self) {
        self.heal();
        for _ in 0..4 {
            self.heartbeat();
        }
    }

    fn log_terms(&self, id: u64) -> Vec<u64> {
        let storage = self.node(id).storage();
        storage
            .get_range(&(Index(1)..=storage.last().index()))
            .into_iter()
            .map(|(term, _, _)| term.0)
            .collect()
    }
}

/// Elects node `id` in a fresh cluster and checks it is the only leader.
fn elected(count: u64, id: u64) -> Cluster<Recorder> {
    let mut cluster = Cluster::recorders(count);
    cluster.campaign(id);
    assert_eq!(cluster.leaders(), vec![PeerId(id)]);
    cluster
}

#[test]
fn election_three_nodes_elects_exactly_one_leader() {
    // §5.2: a candidate with votes from a majority becomes leader.
    let cluster = elected(3, 1);
    for id in 1..=3 {
        assert_eq!(cluster.status(id).term, Term(1));
        assert_eq!(cluster.status(id).leader, Some(PeerId(1)));
    }
    assert_eq!(
        cluster.status(1).commit_index,
        Index(1),
        "the blank entry commits"
    );
}

#[test]
fn election_five_nodes_elects_exactly_one_leader() {
    let mut cluster = elected(5, 3);
    cluster.heartbeat();
    assert_eq!(cluster.leaders(), vec![PeerId(3)]);
    for id in 1..=5 {
        assert_eq!(cluster.status(id).applied.index(), Index(1));
    }
}

#[test]
fn minority_partition_cannot_elect_or_commit() {
    // Quorums are majorities of the configured voters: two of five never suffice.
    let mut cluster = elected(5, 1);
    for (a, b) in [(1, 3), (1, 4), (1, 5), (2, 3), (2, 4), (2, 5)] {
        cluster.cut.insert((PeerId(a), PeerId(b)));
    }
    let proposal = cluster.propose(1, 7);
    cluster.deliver_all();
    cluster.heartbeat();
    assert!(cluster.outcomes_of(proposal).is_empty());
    assert_eq!(cluster.status(1).commit_index, Index(1));
    cluster.wait_out_leases();
    cluster.campaign(2);
    assert_ne!(cluster.status(2).role, Role::Leader);
}

#[test]
fn reelection_after_the_leader_stops() {
    let mut cluster = elected(3, 1);
    cluster.crash(1);
    // While the old leader's lease is fresh, pre-votes are refused.
    cluster.campaign(2);
    assert_ne!(cluster.status(2).role, Role::Leader);
    cluster.wait_out_leases();
    cluster.campaign(2);
    assert_eq!(cluster.leaders(), vec![PeerId(2)]);
    assert!(cluster.status(2).term > Term(1));
    // The old leader comes back as a follower of the new term.
    cluster.restart(1);
    cluster.heartbeat();
    assert_eq!(cluster.status(1).role, Role::Follower);
    assert_eq!(cluster.status(1).leader, Some(PeerId(2)));
}

#[test]
fn a_rejoining_node_does_not_depose_a_healthy_leader() {
    // Pre-vote (thesis §9.6): the isolated node's campaigns raise no term.
    let mut cluster = elected(3, 1);
    cluster.isolate(3);
    for _ in 0..5 {
        for _ in 0..20 {
            cluster.heartbeat();
        }
        cluster.campaign(3);
    }
    assert_eq!(cluster.status(3).term, Term(1), "pre-votes change no term");
    cluster.heal();
    cluster.campaign(3);
    cluster.heartbeat();
    assert_eq!(cluster.leaders(), vec![PeerId(1)]);
    assert_eq!(cluster.status(1).term, Term(1));
}

#[test]
fn a_divergent_uncommitted_tail_is_repaired() {
    // §5.3: the leader forces a follower's conflicting entries out.
    let mut cluster = elected(3, 1);
    cluster.isolate(1);
    for value in [10, 11, 12] {
        cluster.propose(1, value);
    }
    cluster.deliver_all();
    assert_eq!(cluster.log_terms(1), vec![1, 1, 1, 1]);
    cluster.wait_out_leases();
    cluster.campaign(2);
    assert_eq!(cluster.status(2).role, Role::Leader);
    let committed = cluster.propose(2, 20);
    cluster.deliver_all();
    assert_eq!(
        cluster.outcomes_of(committed),
        vec![&ProposalOutcome::Committed { index: Index(3) }]
    );
    cluster.heal();
    cluster.heartbeat();
    cluster.heartbeat();
    assert_eq!(cluster.status(1).role, Role::Follower);
    assert_eq!(cluster.log_terms(1), cluster.log_terms(2));
    assert_eq!(cluster.log_terms(1), vec![1, 2, 2]);
    assert_eq!(
        cluster.node(1).machine().sum,
        20,
        "10, 11, 12 never applied"
    );
}

#[test]
fn figure_8_an_earlier_terms_entry_is_not_committed_by_counting() {
    // §5.4.2, Figure 8: an entry of an earlier term stored on a majority may still
    // be overwritten, so a leader must not commit it by counting replicas.
    let options = NodeOptions {
        append_entries_max: 1,
        ..NodeOptions::default()
    };
    let mut cluster = Cluster::with(5, options, |_| Recorder::default());
    // (a) S1 leads term 1 and gets its entry (index 2) to S2 only.
    cluster.campaign(1);
    cluster.heartbeat();
    cluster.cut.extend([
        (PeerId(1), PeerId(3)),
        (PeerId(1), PeerId(4)),
        (PeerId(1), PeerId(5)),
    ]);
    cluster.propose(1, 100);
    cluster.deliver_all();
    assert_eq!(cluster.log_terms(2), vec![1, 1]);
    assert_eq!(cluster.status(1).commit_index, Index(1));
    // (b) S1 crashes; S5 wins term 2 with S3 and S4; its entries (the blank at
    // index 2 and a command at 3) stay on S5 alone.
    cluster.crash(1);
    cluster.heal();
    cluster.isolate(2);
    cluster.wait_out_leases();
    cluster.start_campaign(5);
    let not_from_5 = |from: PeerId, _: PeerId, message: &Message<u64>| {
        from != PeerId(5) || !matches!(message, Message::AppendEntries { .. })
    };
    while !cluster.in_flight.is_empty() {
        cluster.deliver_only(not_from_5);
    }
    assert_eq!(cluster.status(5).role, Role::Leader);
    assert_eq!(cluster.status(5).term, Term(2));
    cluster.isolate(5);
    cluster.propose(5, 500);
    cluster.deliver_all();
    assert_eq!(cluster.log_terms(5), vec![1, 2, 2]);
    assert_eq!(cluster.log_terms(3), vec![1]);
    // (c) S5 crashes; S1 restarts and wins term 3 with S2 and S3, then gets its
    // term-1 entry at index 2 onto S3: a majority (S1, S2, S3) holds it.
    cluster.crash(5);
    cluster.restart(1);
    cluster.heal();
    cluster.isolate(4);
    cluster.wait_out_leases();
    // Deliver AppendEntries only up to index 2 (append_entries_max is 1), so
    // S1's own blank of term 3 (index 3) reaches no one.
    let up_to_index_2 = |_: PeerId, _: PeerId, message: &Message<u64>| match message {
        Message::AppendEntries { prev, entries, .. } => {
            entries.is_empty() || prev.index() < Index(2)
        }
        _ => true,
    };
    while cluster.status(1).role != Role::Leader {
        cluster.start_campaign(1);
        while !cluster.in_flight.is_empty() {
            cluster.deliver_only(up_to_index_2);
        }
    }
    assert_eq!(cluster.status(1).term, Term(3));
    for _ in 0..6 {
        cluster.heartbeat_only(up_to_index_2);
    }
    assert_eq!(cluster.log_terms(3), vec![1, 1]);
    assert_eq!(cluster.log_terms(2), vec![1, 1]);
    let leader_state = cluster.node(1).leader_state.as_ref().unwrap();
    assert_eq!(
        leader_state.progress.get(PeerId(2)).unwrap().match_index,
        Index(2)
    );
    assert_eq!(
        leader_state.progress.get(PeerId(3)).unwrap().match_index,
        Index(2)
    );
    assert!(
        cluster.status(1).commit_index < Index(2),
        "index 2 (term 1) sits on a majority but must not be committed by counting"
    );
    // (d) S1 crashes; S5 restarts and, with the most up-to-date log (last term 2),
    // wins with S2, S3 and S4, overwriting index 2 everywhere. Had index 2 been
    // committed, a committed entry would now be lost.
    cluster.crash(1);
    cluster.restart(5);
    cluster.heal();
    cluster.wait_out_leases();
    cluster.campaign_until_leader(5);
    cluster.heartbeat();
    cluster.heartbeat();
    for id in [2, 3, 4, 5] {
        assert_eq!(
            cluster.node(id).machine().sum,
            500,
            "node {id} applied term 2's entry"
        );
    }
}

#[test]
fn a_candidate_with_a_stale_log_gets_no_vote() {
    // §5.4.1: votes go only to candidates at least as up to date.
    let mut cluster = elected(3, 1);
    cluster.isolate(3);
    cluster.propose(1, 5);
    cluster.deliver_all();
    assert_eq!(cluster.status(2).last_log.index(), Index(2));
    assert_eq!(cluster.status(3).last_log.index(), Index(1));
    cluster.crash(1);
    cluster.heal();
    cluster.wait_out_leases();
    cluster.campaign(3);
    assert_ne!(cluster.status(3).role, Role::Leader);
    // Even without pre-vote, a direct RequestVote from the stale node is refused.
    let term = cluster.status(2).term.next();
    let node2 = cluster.nodes.get_mut(&PeerId(2)).unwrap();
    node2.on_message(
        cluster.now,
        PeerId(3),
        Message::RequestVote {
            term,
            last_log: Cursor::new(Term(1), Index(1)),
        },
    );
    cluster.flush(PeerId(2));
    let reply = cluster.in_flight.pop_back().expect("a reply");
    assert_eq!(
        reply,
        (
            PeerId(2),
            PeerId(3),
            Message::RequestVoteResponse {
                term,
                granted: false
            }
        )
    );
}

#[test]
fn a_restarted_node_keeps_its_term_and_vote() {
    // Hard state is synced before the vote leaves, so a crash cannot undo it.
    let mut cluster = elected(3, 1);
    let voted = cluster.node(2).hard_state();
    assert_eq!(voted.voted_for, Some(PeerId(1)));
    cluster.crash(2);
    cluster.restart(2);
    assert_eq!(cluster.node(2).hard_state(), voted);
    // A second candidate in the same term is refused.
    let node2 = cluster.nodes.get_mut(&PeerId(2)).unwrap();
    node2.on_message(
        cluster.now,
        PeerId(3),
        Message::RequestVote {
            term: voted.current_term,
            last_log: Cursor::new(Term(9), Index(9)),
        },
    );
    cluster.flush(PeerId(2));
    let (_, _, reply) = cluster.in_flight.pop_back().expect("a reply");
    assert_eq!(
        reply,
        Message::RequestVoteResponse {
            term: voted.current_term,
            granted: false
        }
    );
}

#[test]
fn strong_read_on_a_deposed_leader_is_not_answered() {
    // Thesis §6.4: a leader confirms its leadership before serving a read.
    let mut cluster = elected(3, 1);
    cluster.propose(1, 1);
    cluster.deliver_all();
    cluster.isolate(1);
    cluster.wait_out_leases();
    cluster.campaign(2);
    cluster.propose(2, 41);
    cluster.deliver_all();
    assert_eq!(cluster.node(2).machine().sum, 42);
    // Node 1 may still believe it leads; its strong read must not return 1.
    cluster.query(1, 7, Read::Sum, Consistency::Strong);
    cluster.deliver_all();
    cluster.advance(cluster.options.query_timeout);
    let node1 = cluster.nodes.get_mut(&PeerId(1)).unwrap();
    node1.on_timer(cluster.now, TimerKind::Expiry);
    cluster.flush(PeerId(1));
    let answers: Vec<_> = cluster
        .query_outcomes
        .iter()
        .filter(|(node, id, _)| *node == PeerId(1) && *id == 7)
        .collect();
    assert_eq!(answers.len(), 1, "reported exactly once");
    assert!(
        answers[0].2.is_err(),
        "stale read served: {:?}",
        answers[0].2
    );
}

#[test]
fn strong_reads_on_leader_and_follower_see_committed_writes() {
    let mut cluster = elected(3, 1);
    cluster.propose(2, 5);
    cluster.deliver_all();
    cluster.query(1, 1, Read::Sum, Consistency::Strong);
    cluster.query(3, 2, Read::Sum, Consistency::Strong);
    cluster.deliver_all();
    cluster.heartbeat();
    let results: Vec<u64> = cluster
        .query_outcomes
        .iter()
        .map(|(_, _, outcome)| outcome.as_ref().expect("answered").result)
        .collect();
    assert_eq!(results, vec![5, 5]);
}

#[test]
fn weak_read_answers_locally_with_its_position() {
    let mut cluster = elected(3, 1);
    cluster.heartbeat();
    cluster.isolate(3);
    cluster.propose(1, 9);
    cluster.deliver_all();
    cluster.query(3, 1, Read::Sum, Consistency::Weak);
    let (_, _, outcome) = cluster.query_outcomes.last().unwrap();
    let answer = outcome.as_ref().unwrap();
    assert_eq!(answer.result, 0);
    assert_eq!(
        answer.position.index(),
        Index(1),
        "reflects only the blank entry"
    );
}

#[test]
fn an_observer_never_becomes_candidate() {
    let mut cluster = Cluster::with(3, NodeOptions::default(), |id| Recorder {
        preference: if id == PeerId(3) {
            LeadershipPreference::Observer
        } else {
            LeadershipPreference::Normal
        },
        ..Recorder::default()
    });
    for _ in 0..10 {
        cluster.wait_out_leases();
        cluster.campaign(3);
        assert_eq!(cluster.status(3).role, Role::Follower);
        assert_eq!(cluster.status(3).term, Term(0));
    }
    // It still votes and replicates.
    cluster.campaign(1);
    assert_eq!(cluster.leaders(), vec![PeerId(1)]);
    cluster.propose(3, 4);
    cluster.deliver_all();
    cluster.heartbeat();
    assert_eq!(cluster.node(3).machine().sum, 4);
}

#[test]
fn a_reluctant_node_waits_longer() {
    let make = |preference| Recorder {
        preference,
        ..Recorder::default()
    };
    let normal = Cluster::with(3, NodeOptions::default(), move |_| {
        make(LeadershipPreference::Normal)
    });
    let reluctant = Cluster::with(3, NodeOptions::default(), move |_| {
        make(LeadershipPreference::Reluctant { factor: 5 })
    });
    let max = normal.config.election_timeout_max;
    for id in 1..=3 {
        assert!(normal.node(id).election_deadline < Instant::ZERO + max);
        assert!(reluctant.node(id).election_deadline >= Instant::ZERO + max * 2);
    }
}

#[test]
fn an_all_observer_group_is_refused() {
    let config = GroupConfig::with_voter_count(1);
    let machine = Recorder {
        preference: LeadershipPreference::Observer,
        ..Recorder::default()
    };
    let refused = Node::new(
        PeerId(1),
        config,
        NodeOptions::default(),
        machine,
        Store::<Recorder>::default(),
        derive_entropy(1, "node"),
        Instant::ZERO,
    );
    assert_eq!(refused.err(), Some(ConfigError::NoCandidate));
}

#[test]
fn a_noop_group_elects_a_leader() {
    let mut cluster = Cluster::with(3, NodeOptions::default(), |_| NoOp);
    cluster.campaign(2);
    assert_eq!(cluster.leaders(), vec![PeerId(2)]);
    cluster.heartbeat();
    for id in 1..=3 {
        assert_eq!(cluster.status(id).leader, Some(PeerId(2)));
    }
}

#[test]
fn a_single_voter_group_leads_and_commits_alone() {
    let mut cluster = elected(1, 1);
    let proposal = cluster.propose(1, 3);
    assert_eq!(
        cluster.outcomes_of(proposal),
        vec![&ProposalOutcome::Committed { index: Index(2) }]
    );
}

#[test]
fn apply_batch_sees_correct_apply_context() {
    let mut cluster = elected(3, 1);
    // Three proposals before one flush form one batch at indexes 2..=4.
    let node1 = cluster.nodes.get_mut(&PeerId(1)).unwrap();
    for sequence in 1..=3 {
        node1.propose(
            cluster.now,
            Proposal {
                id: ProposalId {
                    client: ClientId(9),
                    sequence,
                },
                command: sequence * 10,
                settled_below: 1,
                session: Index::ZERO,
            },
        );
    }
    cluster.flush(PeerId(1));
    cluster.deliver_all();
    cluster.propose(2, 7);
    cluster.deliver_all();
    cluster.heartbeat();
    let expected = vec![
        AppliedBatch {
            committed: Cursor::new(Term(1), Index(1)),
            log_position: Cursor::new(Term(1), Index(4)),
            term: Term(1),
            commands: vec![10, 20, 30],
        },
        AppliedBatch {
            committed: Cursor::new(Term(1), Index(4)),
            log_position: Cursor::new(Term(1), Index(5)),
            term: Term(1),
            commands: vec![7],
        },
    ];
    for id in 1..=3 {
        assert_eq!(cluster.node(id).machine().batches, expected, "node {id}");
    }
}

#[test]
fn a_follower_forwards_proposals_and_reports_once() {
    let mut cluster = elected(3, 1);
    let proposal = cluster.propose(3, 8);
    cluster.deliver_all();
    cluster.heartbeat();
    assert_eq!(
        cluster.outcomes_of(proposal),
        vec![&ProposalOutcome::Committed { index: Index(2) }]
    );
    assert_eq!(cluster.proposal_outcomes.len(), 1);
}

#[test]
fn a_node_without_a_leader_rejects_with_not_leader() {
    let mut cluster = Cluster::recorders(3);
    let proposal = cluster.propose(2, 1);
    assert_eq!(
        cluster.outcomes_of(proposal),
        vec![&ProposalOutcome::Rejected(ProposeError::NotLeader {
            leader: None
        })]
    );
}

#[test]
fn a_retried_proposal_is_applied_once() {
    // Thesis §6.3: a retry with the same id is deduplicated.
    let mut cluster = elected(3, 1);
    let id = ProposalId {
        client: ClientId(4),
        sequence: 1,
    };
    cluster.propose_with_id(1, id, 6);
    cluster.deliver_all();
    cluster.propose_with_id(2, id, 6);
    cluster.deliver_all();
    cluster.heartbeat();
    for node in 1..=3 {
        assert_eq!(cluster.node(node).machine().sum, 6);
    }
    let outcomes = cluster.outcomes_of(id);
    assert_eq!(outcomes.len(), 2, "one outcome per propose call");
    assert!(
        outcomes
            .iter()
            .all(|outcome| **outcome == ProposalOutcome::Committed { index: Index(2) })
    );
}

#[test]
fn a_retry_the_leader_holds_uncommitted_is_not_appended_again() {
    // Clients that retry faster than the group commits must not grow the log
    // with copies: the leader tells a retry where its first copy is.
    let mut cluster = elected(3, 1);
    let id = ProposalId {
        client: ClientId(4),
        sequence: 1,
    };
    cluster.propose_with_id(1, id, 6);
    cluster.flush(PeerId(1));
    // Before anything commits, a follower forwards a retry, and the leader's
    // AppendEntries are lost.
    cluster.propose_with_id(2, id, 6);
    cluster.deliver_only(|_, _, message| matches!(message, Message::Propose { .. }));
    assert_eq!(
        cluster.status(1).last_log.index(),
        Index(2),
        "the retry was appended again"
    );
    // Two rounds: the first resends what was lost, the second carries the
    // commit index.
    cluster.heartbeat();
    cluster.heartbeat();
    for node in 1..=3 {
        assert_eq!(cluster.log_terms(node), [1, 1], "node {node}'s log");
        assert_eq!(cluster.node(node).machine().sum, 6);
    }
    assert_eq!(
        cluster.outcomes_of(id),
        vec![&ProposalOutcome::Committed { index: Index(2) }; 2]
    );
}

#[test]
fn an_unanswered_proposal_times_out_as_unknown() {
    let mut cluster = elected(3, 1);
    cluster.isolate(1);
    let proposal = cluster.propose(1, 2);
    cluster.deliver_all();
    cluster.advance(cluster.options.proposal_timeout);
    let node = cluster.nodes.get_mut(&PeerId(1)).unwrap();
    node.on_timer(cluster.now, TimerKind::Expiry);
    cluster.flush(PeerId(1));
    assert_eq!(
        cluster.outcomes_of(proposal),
        vec![&ProposalOutcome::Unknown]
    );
}

#[test]
fn a_follower_catches_up_through_log_replay_when_the_leader_pruned() {
    let mut cluster = elected(3, 1);
    cluster.isolate(3);
    for value in 1..=20 {
        cluster.propose(1, value);
        cluster.deliver_all();
    }
    cluster.heartbeat();
    // The leader prunes what node 3 needs; node 2 still holds it.
    cluster
        .nodes
        .get_mut(&PeerId(1))
        .unwrap()
        .compact(Index(15));
    cluster.flush(PeerId(1));
    assert_eq!(*cluster.node(1).storage().available().start(), Index(15));
    cluster.heal_and_catch_up();
    assert_eq!(cluster.node(3).machine().sum, (1..=20).sum::<u64>());
    assert_eq!(cluster.log_terms(3), cluster.log_terms(2));
}

#[test]
fn messages_from_non_members_are_ignored() {
    let mut cluster = elected(3, 1);
    let before = cluster.status(2);
    let node2 = cluster.nodes.get_mut(&PeerId(2)).unwrap();
    node2.on_message(
        cluster.now,
        PeerId(99),
        Message::AppendEntries {
            term: Term(50),
            prev: Cursor::ZERO,
            entries: Vec::new(),
            leader_commit: Index(0),
            read_round: 0,
        },
    );
    cluster.flush(PeerId(2));
    assert_eq!(cluster.status(2), before);
}

/// Entries the leader has queued for `to`, over every AppendEntries in flight.
fn entries_in_flight_to<M: StateMachine>(cluster: &Cluster<M>, to: u64) -> usize {
    cluster
        .in_flight
        .iter()
        .filter(|(_, destination, _)| *destination == PeerId(to))
        .map(|(_, _, message)| match message {
            Message::AppendEntries { entries, .. } => entries.len(),
            _ => 0,
        })
        .sum()
}

#[test]
fn a_follower_back_with_a_long_run_of_an_old_term_is_not_sent_it_again() {
    // Node 5 restarts (commit index 0) holding 200 committed entries of term
    // 1 and ten uncommitted ones past them, where the leader of term 3 has
    // entries of term 2. Refused at one of those, with term 1 and the
    // follower's first entry of it as the hint, the leader resumes past its
    // own last entry of term 1, however far that is (Log Matching), and so
    // sends nothing node 5 already holds. It used to look only one window
    // (16 entries) past the hint, and resent the 184 beyond it.
    let options = NodeOptions {
        append_entries_max: 4,
        inflight_entries_max: 16,
        ..NodeOptions::default()
    };
    let mut cluster = Cluster::with(5, options, |_| Recorder::default());
    cluster.campaign(1);
    for value in 0..200 {
        cluster.propose(1, value);
    }
    cluster.deliver_all();
    cluster.heartbeat();
    assert_eq!(cluster.status(5).commit_index, Index(201));
    // Node 1's next entries reach node 5 alone, and stay uncommitted.
    for other in 2..=4 {
        cluster.cut.insert((PeerId(1), PeerId(other)));
    }
    for value in 1_000..1_010 {
        cluster.propose(1, value);
    }
    cluster.deliver_all();
    assert_eq!(cluster.log_terms(5).len(), 211);
    cluster.crash(1);
    cluster.crash(5);
    cluster.heal();
    cluster.isolate(5);
    // Term 2 writes over those ten entries without node 5; then node 2
    // restarts (a follower now, its vote free) and node 3 leads term 3.
    cluster.wait_out_leases();
    cluster.campaign(2);
    assert_eq!(cluster.status(2).role, Role::Leader);
    for value in 2_000..2_010 {
        cluster.propose(2, value);
    }
    cluster.deliver_all();
    cluster.heartbeat();
    cluster.crash(2);
    cluster.restart(2);
    cluster.wait_out_leases();
    cluster.campaign(3);
    assert_eq!(cluster.status(3).role, Role::Leader);
    cluster.heartbeat();
    assert_eq!(cluster.log_terms(3)[201..212], [2; 11]);
    cluster.restart(5);
    assert_eq!(cluster.status(5).commit_index, Index(0));
    cluster.heal();
    for _ in 0..5 {
        cluster.heartbeat();
    }
    assert_eq!(cluster.log_terms(5), cluster.log_terms(3));
    let received = cluster.node(5).entries_received();
    assert_eq!(
        received.already_held, 0,
        "entries node 5 held were sent again: {received:?}"
    );
}

/// A 3-node cluster led by node 1, which sends batches of 4 entries in a
/// window of 64.
fn elected_with_small_batches() -> Cluster<Recorder> {
    let options = NodeOptions {
        append_entries_max: 4,
        inflight_entries_max: 64,
        ..NodeOptions::default()
    };
    let mut cluster = Cluster::with(3, options, |_| Recorder::default());
    cluster.campaign(1);
    cluster
}

#[test]
fn an_unreachable_follower_is_probed_with_one_batch_per_tick() {
    let mut cluster = elected_with_small_batches();
    cluster.isolate(3);
    for value in 1..=40 {
        cluster.propose(1, value);
        cluster.deliver_all();
    }
    // Node 3 answered nothing for a whole tick: where its log matches is
    // unknown, so each later tick sends it one batch, not the whole window.
    for tick in 0..4 {
        cluster.advance(cluster.config.heartbeat_interval);
        let leader = cluster.nodes.get_mut(&PeerId(1)).expect("a leader runs");
        leader.on_timer(cluster.now, TimerKind::Heartbeat);
        cluster.flush(PeerId(1));
        let entries = entries_in_flight_to(&cluster, 3);
        if tick >= 1 {
            assert!(
                entries <= 4,
                "tick {tick}: {entries} entries sent to node 3"
            );
        }
        cluster.deliver_all();
    }
    // Once it answers, the pipeline opens again and it catches up.
    cluster.heal_and_catch_up();
    assert_eq!(cluster.node(3).machine().sum, (1..=40).sum::<u64>());
    assert_eq!(cluster.log_terms(3), cluster.log_terms(1));
}

/// Runs `ticks` heartbeat ticks on leader 1, delivering only what `keep`
/// selects, and returns the ticks (from 1) on which entries went to `to`.
fn ticks_sending_entries(
    cluster: &mut Cluster<Recorder>,
    to: u64,
    ticks: u32,
    keep: impl Fn(PeerId, PeerId, &Message<u64>) -> bool + Copy,
) -> Vec<u32> {
    let mut sending = Vec::new();
    for tick in 1..=ticks {
        cluster.advance(cluster.config.heartbeat_interval);
        let leader = cluster.nodes.get_mut(&PeerId(1)).expect("a leader runs");
        leader.on_timer(cluster.now, TimerKind::Heartbeat);
        cluster.flush(PeerId(1));
        if entries_in_flight_to(cluster, to) > 0 {
            sending.push(tick);
        }
        cluster.deliver_only(keep);
    }
    sending
}

/// Runs `ticks` heartbeat ticks on leader 1, proposing one more entry before
/// each and delivering all but what goes to node 3, and returns, per tick
/// (from 1) that sent node 3 entries, the tick and the range they span.
fn blind_batches_to_node_3(
    cluster: &mut Cluster<Recorder>,
    ticks: u32,
) -> Vec<(u32, RangeInclusive<Index>)> {
    let mut batches = Vec::new();
    for tick in 1..=ticks {
        cluster.propose(1, u64::from(tick));
        cluster.advance(cluster.config.heartbeat_interval);
        let leader = cluster.nodes.get_mut(&PeerId(1)).expect("a leader runs");
        leader.on_timer(cluster.now, TimerKind::Heartbeat);
        cluster.flush(PeerId(1));
        for (_, to, message) in &cluster.in_flight {
            if let Message::AppendEntries { prev, entries, .. } = message
                && *to == PeerId(3)
                && !entries.is_empty()
            {
                let last = Index(prev.index().0 + entries.len() as u64);
                batches.push((tick, prev.index().next()..=last));
            }
        }
        cluster.deliver_only(|_, to, _| to != PeerId(3));
    }
    batches
}

#[test]
fn a_silent_follower_gets_entries_ever_more_rarely_until_it_answers() {
    let mut cluster = elected(3, 1);
    cluster.isolate(3);
    for value in 1..=10 {
        cluster.propose(1, value);
        cluster.deliver_all();
    }
    let matched = cluster.node(3).storage().last().index();
    let last = cluster.node(1).storage().last().index();
    // On tick 1 a probe is still in flight to node 3, so nothing more goes.
    // Tick 2 finds it stalled: from then on it is silent. Tick 2 only asks
    // whether it holds the last entry sent; entries go on the 2nd and 4th
    // tick of its silence and every 8th after. Heartbeats go every tick, but a
    // node that is down or cut off costs a batch every 8 ticks, not every tick.
    // Each batch carries what the leader appended since the one before; only
    // the 64th tick of silence goes back to what node 3 is known to hold.
    // (Until then, on ticks 1 and 2, the pipeline sends each new entry at once.)
    let batches = blind_batches_to_node_3(&mut cluster, 74);
    let ticks: Vec<u32> = batches.iter().map(|(tick, _)| *tick).collect();
    let expected: Vec<u32> = [1, 2, 3, 5]
        .into_iter()
        .chain((9..=73).step_by(8))
        .collect();
    assert_eq!(ticks, expected, "ticks sending entries");
    let mut next = last.next();
    for (tick, range) in &batches {
        if *tick == 65 {
            assert_eq!(
                *range.start(),
                matched.next(),
                "tick 65 rewinds: {batches:?}"
            );
        } else {
            assert_eq!(*range.start(), next, "tick {tick} resends: {batches:?}");
        }
        next = range.end().next();
    }
    // Its first answer ends the silence and it catches up.
    cluster.heal_and_catch_up();
    assert_eq!(cluster.log_terms(3), cluster.log_terms(1));
    let applied = (1..=10).chain(1..=74).sum::<u64>();
    assert_eq!(cluster.node(3).machine().sum, applied);
    let sending = ticks_sending_entries(&mut cluster, 3, 4, |_, _, _| true);
    assert!(sending.is_empty(), "nothing left to send: {sending:?}");
}

#[test]
fn a_paused_follower_receives_each_entry_once() {
    // Node 3 is paused: everything sent to it waits, and it answers nothing.
    // Its blind batches carry each entry once, so when it resumes and takes
    // in what waited, in order, it holds everything and was sent nothing
    // twice (unless the pause outlasted 64 ticks).
    let mut cluster = elected(3, 1);
    for value in 1..=10 {
        cluster.propose(1, value);
    }
    let mut waiting: Vec<InFlight> = Vec::new();
    let deliver_all_but_to_node_3 = |cluster: &mut Cluster<Recorder>, waiting: &mut Vec<_>| {
        while !cluster.in_flight.is_empty() {
            let (to_3, rest): (Vec<_>, Vec<_>) = cluster
                .in_flight
                .drain(..)
                .partition(|(_, to, _)| *to == PeerId(3));
            waiting.extend(to_3);
            cluster.in_flight.extend(rest);
            cluster.deliver_only(|_, _, _| true);
        }
    };
    deliver_all_but_to_node_3(&mut cluster, &mut waiting);
    for tick in 1..=12 {
        cluster.propose(1, 100 + tick);
        cluster.advance(cluster.config.heartbeat_interval);
        let leader = cluster.nodes.get_mut(&PeerId(1)).expect("a leader runs");
        leader.on_timer(cluster.now, TimerKind::Heartbeat);
        cluster.flush(PeerId(1));
        deliver_all_but_to_node_3(&mut cluster, &mut waiting);
    }
    assert!(entries_to_node_3(&waiting) > 10, "blind batches were sent");
    cluster.in_flight.extend(waiting);
    catches_up_receiving_nothing_twice(&mut cluster, 3);
}

#[test]
fn a_follower_whose_answers_are_lost_still_receives_what_it_lacks() {
    let mut cluster = elected(3, 1);
    for value in 1..=10 {
        cluster.propose(1, value);
    }
    // The entries to node 3 are lost, and from then on nothing node 3 says
    // reaches the leader: only the leader's resends, ever rarer, can bring
    // it what it lacks, and they must.
    cluster.deliver_only(|from, to, _| from != PeerId(3) && to != PeerId(3));
    assert_ne!(cluster.log_terms(3), cluster.log_terms(1));
    let from_three = |from: PeerId, _: PeerId, _: &Message<u64>| from != PeerId(3);
    let sending = ticks_sending_entries(&mut cluster, 3, 66, from_three);
    assert!(!sending.is_empty(), "the leader gave up on node 3");
    assert_eq!(cluster.log_terms(3), cluster.log_terms(1));
}

#[test]
fn a_refusal_at_the_match_is_not_answered_at_once_however_often_it_comes() {
    // Node 2 acknowledged everything, then refuses at its match index: it
    // lost entries it had acknowledged (storage that lied about a sync), or
    // the refusal is an old one. Nothing below the match is ever resent, so
    // an answer could only be the same refused probe again: a ping-pong
    // without end, and with duplicated refusals, a storm. The heartbeat tick
    // retries instead.
    let mut cluster = elected(3, 1);
    for value in 1..=5 {
        cluster.propose(1, value);
        cluster.deliver_all();
    }
    let matched = cluster.node(2).storage().last().index();
    // More entries are on their way to node 2 (and lost), so the leader has
    // something past the match it could resend.
    for value in 6..=8 {
        cluster.propose(1, value);
        cluster.deliver_only(|_, to, message| {
            to != PeerId(2) || !matches!(message, Message::AppendEntries { .. })
        });
    }
    assert!(cluster.node(1).storage().last().index() > matched);
    let term = cluster.node(1).status().term;
    let refusal = Message::AppendEntriesResponse {
        term,
        read_round: 0,
        result: Err(ConflictHint {
            next_index: matched,
            conflict_term: None,
            refused_prev: matched,
        }),
    };
    for _ in 0..3 {
        let leader = cluster.nodes.get_mut(&PeerId(1)).expect("a leader runs");
        leader.on_message(cluster.now, PeerId(2), refusal.clone());
        cluster.flush(PeerId(1));
    }
    // At most the new commit index goes to node 2, with no entries.
    assert_eq!(
        entries_in_flight_to(&cluster, 2),
        0,
        "answered at once: {:?}",
        cluster.in_flight
    );
}

/// Delivers everything in flight and one heartbeat round, and checks that
/// node `id` then holds the leader's log without having received any entry
/// twice.
#[track_caller]
fn catches_up_receiving_nothing_twice(cluster: &mut Cluster<Recorder>, id: u64) {
    cluster.deliver_all();
    cluster.heartbeat();
    assert_eq!(cluster.log_terms(id), cluster.log_terms(1));
    let received = cluster.node(id).entries_received();
    assert_eq!(received.already_held, 0, "{received:?}");
}

/// Takes everything in flight and keeps the AppendEntries with entries that
/// go to node 2, in the order they were sent.
fn appends_with_entries_to_node_2(cluster: &mut Cluster<Recorder>) -> Vec<Message<u64>> {
    cluster
        .in_flight
        .drain(..)
        .filter(|(_, to, message)| {
            *to == PeerId(2)
                && matches!(message, Message::AppendEntries { entries, .. } if !entries.is_empty())
        })
        .map(|(_, _, message)| message)
        .collect()
}

#[test]
fn a_refusal_of_what_was_sent_before_the_latest_probe_sends_nothing_again() {
    // Three AppendEntries are in flight to node 2 and the first is lost, so
    // node 2 refuses the other two. The first refusal makes the leader check
    // whether node 2 holds what the refused message followed (it might only
    // have been overtaken); the second refuses what was sent before that
    // check, and must send nothing. Node 2 refuses the check too, and only
    // then does the leader resend from the gap.
    let mut cluster = elected(3, 1);
    for value in [10, 11, 12] {
        cluster.propose(1, value);
    }
    let appends = appends_with_entries_to_node_2(&mut cluster);
    assert_eq!(appends.len(), 3, "pipelined: {appends:?}");
    for message in appends.into_iter().skip(1) {
        let follower = cluster.nodes.get_mut(&PeerId(2)).expect("running");
        follower.on_message(cluster.now, PeerId(1), message);
        cluster.flush(PeerId(2));
    }
    let refusals: Vec<Message<u64>> = cluster
        .in_flight
        .drain(..)
        .map(|(_, _, message)| message)
        .collect();
    assert!(
        refusals.len() == 2
            && refusals.iter().all(|message| matches!(
                message,
                Message::AppendEntriesResponse { result: Err(_), .. }
            )),
        "{refusals:?}"
    );
    let mut refusals = refusals.into_iter();
    let answer = |cluster: &mut Cluster<Recorder>, message| {
        let leader = cluster.nodes.get_mut(&PeerId(1)).expect("running");
        leader.on_message(cluster.now, PeerId(2), message);
        cluster.flush(PeerId(1));
        entries_in_flight_to(cluster, 2)
    };
    let first = refusals.next().expect("two");
    assert_eq!(
        answer(&mut cluster, first),
        0,
        "a gap is checked before a resend"
    );
    let check = cluster.in_flight.drain(..).collect::<Vec<_>>();
    assert!(
        matches!(&check[..], [(_, to, Message::AppendEntries { prev, entries, .. })]
            if *to == PeerId(2) && entries.is_empty() && prev.index() > Index(1)),
        "one check of what the refused message followed: {check:?}"
    );
    let second = refusals.next().expect("two");
    assert_eq!(
        answer(&mut cluster, second),
        0,
        "a stale refusal resends nothing"
    );
    // Node 2 lacks what the check asks about: its refusal rewinds the leader
    // to the gap, and what is resent fills it.
    cluster.in_flight.extend(check);
    cluster.deliver_all();
    assert_eq!(cluster.log_terms(2), cluster.log_terms(1));
    assert_eq!(
        cluster.node(2).storage().last(),
        cluster.node(1).storage().last()
    );
    assert_eq!(cluster.node(2).entries_received().already_held, 0);
}

#[test]
fn a_follower_whose_entries_were_overtaken_is_not_sent_them_again() {
    // Two AppendEntries go to node 2 and the second overtakes the first:
    // node 2 refuses it (a gap), then takes the first. The refusal makes the
    // leader check what the refused message followed, which node 2 now holds,
    // so only the refused entry is sent again, and nothing node 2 holds.
    let mut cluster = elected(3, 1);
    for value in [10, 11] {
        cluster.propose(1, value);
    }
    let mut appends: Vec<InFlight> = cluster
        .in_flight
        .drain(..)
        .filter(|(_, to, message)| {
            *to == PeerId(2)
                && matches!(message, Message::AppendEntries { entries, .. } if !entries.is_empty())
        })
        .collect();
    assert_eq!(appends.len(), 2, "pipelined: {appends:?}");
    appends.reverse();
    cluster.in_flight.extend(appends);
    cluster.deliver_all();
    assert_eq!(cluster.log_terms(2), cluster.log_terms(1));
    let received = cluster.node(2).entries_received();
    assert_eq!(received.already_held, 0, "{received:?}");
}

#[test]
fn a_leader_lending_its_entries_sends_the_same_messages() {
    let run = |lend_entries| {
        let options = NodeOptions {
            append_entries_max: 4,
            inflight_entries_max: 16,
            lend_entries,
            ..NodeOptions::default()
        };
        let mut cluster = Cluster::with(3, options, |_| Recorder::default());
        cluster.campaign(1);
        cluster.isolate(3);
        let mut sent = Vec::new();
        for value in 1..=30 {
            cluster.propose(1, value);
            sent.extend(cluster.in_flight.iter().cloned());
            cluster.deliver_all();
        }
        cluster.heal();
        for _ in 0..6 {
            cluster.heartbeat();
        }
        assert_eq!(cluster.node(3).machine().sum, (1..=30).sum::<u64>());
        (sent, cluster.lent)
    };
    let (owned, none_lent) = run(false);
    let (lent, some_lent) = run(true);
    assert_eq!(none_lent, 0);
    assert!(some_lent > 30, "only {some_lent} messages lent");
    assert_eq!(owned, lent);
}

#[test]
fn heartbeats_restart_the_election_timer_with_the_timeout_drawn_last() {
    let mut cluster = elected(3, 1);
    let mut timeouts = Vec::new();
    for _ in 0..4 {
        cluster.heartbeat();
        let follower = cluster.node(2);
        timeouts.push(follower.election_deadline.saturating_since(cluster.now));
    }
    assert!(
        timeouts.iter().all(|timeout| *timeout == timeouts[0]),
        "{timeouts:?}"
    );
    let drawn_from = cluster.config.election_timeout_min..cluster.config.election_timeout_max;
    assert!(drawn_from.contains(&timeouts[0]), "{timeouts:?}");
    // A new leader means a new draw, from the same range.
    cluster.wait_out_leases();
    cluster.campaign_until_leader(3);
    cluster.heartbeat();
    let redrawn = cluster
        .node(2)
        .election_deadline
        .saturating_since(cluster.now);
    assert!(drawn_from.contains(&redrawn), "{redrawn:?}");
}

#[test]
fn a_follower_counts_the_entries_it_receives_and_those_it_already_held() {
    let mut cluster = elected(3, 1);
    let before = cluster.node(2).entries_received();
    for value in 1..=5 {
        cluster.propose(1, value);
    }
    cluster.flush(PeerId(1));
    let to_node_2: Vec<Message<u64>> = cluster
        .in_flight
        .iter()
        .filter(|(_, to, _)| *to == PeerId(2))
        .map(|(_, _, message)| message.clone())
        .collect();
    let sent = entries_in_flight_to(&cluster, 2) as u64;
    assert!(sent >= 5, "the leader sent node 2 its new entries ({sent})");
    cluster.deliver_all();
    let fresh = cluster.node(2).entries_received();
    assert_eq!(fresh.total - before.total, sent);
    assert_eq!(fresh.already_held, before.already_held, "all were new");

    // The same messages again (a duplicate or a resend): nothing new in them.
    for message in to_node_2 {
        let node = cluster.nodes.get_mut(&PeerId(2)).expect("running");
        node.on_message(cluster.now, PeerId(1), message);
        cluster.flush(PeerId(2));
    }
    let again = cluster.node(2).entries_received();
    assert_eq!(again.total - fresh.total, sent);
    assert_eq!(again.already_held - fresh.already_held, sent);
}

/// A message in flight: from, to, what.
type InFlight = (PeerId, PeerId, Message<u64>);

/// A leader with batches of 4 entries in a window of 64, node 3 a follower
/// whose traffic (both ways) `held` keeps back, in order, while 20 entries
/// and `ticks` heartbeat ticks go by: the second tick finds node 3 stalled and
/// asks whether it holds the last entry sent; the 65th, the 64th of its
/// silence, rewinds to its match and sends a probe batch from there.
fn stalled_behind_a_slow_link(ticks: usize) -> (Cluster<Recorder>, Vec<InFlight>) {
    let mut cluster = elected_with_small_batches();
    let mut held = Vec::new();
    let mut hold_node_3 = |cluster: &mut Cluster<Recorder>| {
        let (to_3, rest): (Vec<_>, Vec<_>) = cluster
            .in_flight
            .drain(..)
            .partition(|(from, to, _)| *to == PeerId(3) || *from == PeerId(3));
        held.extend(to_3);
        cluster.in_flight.extend(rest);
        cluster.deliver_all();
    };
    for value in 1..=20 {
        cluster.propose(1, value);
        hold_node_3(&mut cluster);
    }
    for _ in 0..ticks {
        cluster.advance(cluster.config.heartbeat_interval);
        let leader = cluster.nodes.get_mut(&PeerId(1)).expect("a leader runs");
        leader.on_timer(cluster.now, TimerKind::Heartbeat);
        cluster.flush(PeerId(1));
        hold_node_3(&mut cluster);
    }
    (cluster, held)
}

/// How many entries the messages in `held` carry to node 3.
fn entries_to_node_3(held: &[InFlight]) -> usize {
    held.iter()
        .filter(|(_, to, _)| *to == PeerId(3))
        .map(|(_, _, message)| match message {
            Message::AppendEntries { entries, .. } => entries.len(),
            _ => 0,
        })
        .sum()
}

/// The last message in `held` to node 3 that `wanted` picks.
fn last_to_node_3(held: Vec<InFlight>, wanted: impl Fn(&Message<u64>) -> bool) -> Option<InFlight> {
    held.into_iter()
        .rev()
        .find(|(_, to, message)| *to == PeerId(3) && wanted(message))
}

#[test]
fn a_stall_first_asks_whether_the_follower_holds_what_was_sent() {
    // Node 3's link was only slow. The tick that finds it stalled resends
    // nothing: it checks the last entry sent, which arrives after the window,
    // so node 3 answers that it holds it all and receives every entry once.
    let (mut cluster, held) = stalled_behind_a_slow_link(2);
    assert_eq!(entries_to_node_3(&held), 20, "the window alone was sent");
    cluster.in_flight.extend(held);
    cluster.deliver_all();
    assert_eq!(cluster.log_terms(3), cluster.log_terms(1));
    let received = cluster.node(3).entries_received();
    assert_eq!(received.already_held, 0, "{received:?}");
    // And the leader knows it: nothing goes again at the next tick.
    let sending = ticks_sending_entries(&mut cluster, 3, 2, |_, _, _| true);
    assert!(sending.is_empty(), "nothing left to send: {sending:?}");
}

#[test]
fn a_follower_that_lacks_the_tip_checked_is_sent_what_it_lacks() {
    // This time the window to node 3 was lost; only the check of its last
    // entry arrives. Node 3 refuses it, and the refusal rewinds the leader to
    // what node 3 lacks, at once, not a tick later.
    let (mut cluster, held) = stalled_behind_a_slow_link(2);
    let check = last_to_node_3(
        held,
        |message| matches!(message, Message::AppendEntries { entries, .. } if entries.is_empty()),
    )
    .expect("the check of the tip");
    cluster.in_flight.push_back(check);
    cluster.deliver_all();
    assert_eq!(cluster.log_terms(3), cluster.log_terms(1));
    assert_eq!(cluster.node(3).entries_received().already_held, 0);
}

#[test]
fn after_a_stall_a_follower_that_answers_is_not_sent_again_what_is_on_its_way() {
    // Node 3's link was only slow, and slower than 65 ticks: the check of
    // the tip went unanswered too, and the 65th tick rewound and sent one
    // probe batch again. Everything held arrives, in order; the first answer
    // after the stall moves the leader back past what it had sent, so node 3
    // receives the window once, not twice.
    let (mut cluster, held) = stalled_behind_a_slow_link(65);
    let sent = entries_to_node_3(&held);
    assert!(
        sent >= 21,
        "the window and a probe batch were sent ({sent})"
    );
    cluster.in_flight.extend(held);
    cluster.deliver_all();
    cluster.heartbeat();
    assert_eq!(cluster.log_terms(3), cluster.log_terms(1));
    let received = cluster.node(3).entries_received();
    assert!(
        received.already_held <= 4,
        "node 3 was resent what it held: {received:?}"
    );
}

#[test]
fn a_resume_that_skipped_lost_entries_is_mended_by_the_next_heartbeat() {
    // This time the window to node 3 was lost; only the probe batch sent at
    // the stall arrives. Its answer resumes the leader past the lost window,
    // and the next heartbeat checks the last entry it skipped: node 3 lacks
    // it, refuses, and is sent what it lacks.
    let (mut cluster, held) = stalled_behind_a_slow_link(65);
    let probe = last_to_node_3(held, |message| {
        matches!(message, Message::AppendEntries { prev, entries, .. }
            if prev.index() <= Index(1) && !entries.is_empty())
    })
    .expect("a probe batch from the match");
    cluster.in_flight.push_back(probe);
    cluster.deliver_all();
    assert!(
        cluster.node(3).storage().last().index() < cluster.node(1).storage().last().index(),
        "node 3 still lacks the lost window"
    );
    cluster.heartbeat();
    assert_eq!(cluster.log_terms(3), cluster.log_terms(1));
}

#[test]
fn a_peer_is_found_among_consecutive_and_scattered_ids_alike() {
    use super::node::position_in;
    let ids = |list: &[u64]| list.iter().copied().map(PeerId).collect::<Vec<_>>();
    for list in [
        &[][..],
        &[1],
        &[1, 2, 3, 4, 5],
        &[7, 8, 9],
        &[1, 2, 4, 5],
        &[3, 10, 11, 200],
        &[u64::MAX - 1, u64::MAX],
    ] {
        let ids = ids(list);
        for probe in (0..13).chain([199, 200, 201, u64::MAX - 2, u64::MAX - 1, u64::MAX]) {
            assert_eq!(
                position_in(&ids, PeerId(probe)),
                ids.binary_search(&PeerId(probe)).ok(),
                "{probe} in {list:?}"
            );
        }
    }
}

#[test]
fn an_answer_older_than_a_check_of_the_tip_does_not_end_it() {
    // Four AppendEntries go to node 2, one entry each; the third overtakes the
    // second and is refused as a gap, so the leader checks whether node 2
    // holds what the refused one followed. The answer to the first comes
    // next: it says nothing about that entry, so the leader still sends no
    // entries (it used to end the check and resend from the gap what was
    // still on its way). The second and fourth arrive, the check is
    // answered, and node 2 ends with every entry, none received twice.
    let mut cluster = elected(3, 1);
    for value in [10, 11, 12, 13] {
        cluster.propose(1, value);
    }
    let appends = appends_with_entries_to_node_2(&mut cluster);
    assert_eq!(appends.len(), 4, "pipelined: {appends:?}");
    let to_follower = |cluster: &mut Cluster<Recorder>, message: &Message<u64>| {
        let follower = cluster.nodes.get_mut(&PeerId(2)).expect("running");
        follower.on_message(cluster.now, PeerId(1), message.clone());
        cluster.flush(PeerId(2));
        let answers: Vec<InFlight> = cluster.in_flight.drain(..).collect();
        assert_eq!(answers.len(), 1, "{answers:?}");
        answers.into_iter().next().expect("one").2
    };
    let to_leader = |cluster: &mut Cluster<Recorder>, message: Message<u64>| {
        let leader = cluster.nodes.get_mut(&PeerId(1)).expect("running");
        leader.on_message(cluster.now, PeerId(2), message);
        cluster.flush(PeerId(1));
        entries_in_flight_to(cluster, 2)
    };
    let first = to_follower(&mut cluster, &appends[0]);
    let gap = to_follower(&mut cluster, &appends[2]);
    assert!(
        matches!(gap, Message::AppendEntriesResponse { result: Err(_), .. }),
        "{gap:?}"
    );
    assert_eq!(to_leader(&mut cluster, gap), 0, "a gap is checked first");
    let check: Vec<InFlight> = cluster.in_flight.drain(..).collect();
    assert_eq!(
        to_leader(&mut cluster, first),
        0,
        "an older answer ended the check"
    );
    cluster.in_flight.clear();
    let answers: Vec<InFlight> = [&appends[1], &appends[3]]
        .into_iter()
        .map(|message| (PeerId(2), PeerId(1), to_follower(&mut cluster, message)))
        .collect();
    cluster.in_flight.extend(answers);
    cluster.in_flight.extend(check);
    catches_up_receiving_nothing_twice(&mut cluster, 2);
}
