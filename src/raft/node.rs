//! [`Node`]: one member's engine. This file holds its state, its constructor, the
//! event entry points and [`Node::flush`]; the protocol lives in the sibling files
//! (`election`, `replication`, `apply`, `client`, `catch_up`).

use core::fmt;
use core::ops::RangeInclusive;
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::config::{ConfigError, GroupConfig, NodeOptions};
use super::entry::{LogEntry, Proposal, ProposalId};
use super::lent::AppendHeader;
use super::message::{Message, ReadId};
use super::outcome::{Effect, QueryId};
use crate::env::{Entropy, Instant, TimerKind};
use crate::id::PeerId;
use crate::log::{Cursor, HardState, Index, Storage, StorageError, Term};
use crate::machine::{LeadershipPreference, StateMachine, StateSync};

#[cfg(feature = "flaws")]
pub(super) use super::flaws::Flaw;

/// Stands in for [`flaws::Flaw`](super::flaws::Flaw) without the feature, so
/// call sites need no `cfg`.
#[cfg(not(feature = "flaws"))]
#[derive(Debug, Clone, Copy)]
pub(super) enum Flaw {
    CommitByCounting,
    VoteWithoutLogCheck,
    ReplyBeforeSync,
    ReadWithoutReadIndex,
    TruncateCommitted,
    QuorumOfReachable,
    ApplyDuplicates,
    ForgetExpiredSessions,
    ResendAtMatch,
    KeepNextOnConflict,
}

/// The log entry type of machine `M`.
pub type EntryOf<M> = LogEntry<<M as StateMachine>::Command>;

/// A node's role in its group (§5.1, plus the pre-vote phase of §9.6 of the thesis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Follows a leader, or waits for one.
    Follower,
    /// Asking whether it could win an election, without changing any term.
    PreCandidate,
    /// Campaigning in its current term.
    Candidate,
    /// Leads its current term.
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Follower => "follower",
            Self::PreCandidate => "pre-candidate",
            Self::Candidate => "candidate",
            Self::Leader => "leader",
        })
    }
}

/// A snapshot of a node's externally visible state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status {
    /// The node.
    pub id: PeerId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// The leader it follows (itself when leading), if known.
    pub leader: Option<PeerId>,
    /// The highest index it knows to be committed.
    pub commit_index: Index,
    /// The last entry it applied.
    pub applied: Cursor,
    /// The last entry in its log.
    pub last_log: Cursor,
}

/// How many log entries a node received in AppendEntries since it started, and
/// how many of those it already held: the share of replication traffic that
/// was resent in vain (lost answers, rewinds, messages held up by a pause or a
/// partition).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntriesReceived {
    /// Entries that arrived after a matching `prev`.
    pub total: u64,
    /// Those among them the node already held (same index and term), or knew
    /// to be committed: skipped, not written.
    pub already_held: u64,
}

impl EntriesReceived {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: Self) {
        self.total += other.total;
        self.already_held += other.already_held;
    }
}

/// A follower's replication state, as its leader tracks it (§5.3).
#[derive(Debug, Clone)]
pub(super) struct Progress {
    /// The next index to send.
    pub next_index: Index,
    /// The highest index known to match the leader's log.
    pub match_index: Index,
    /// The highest read round this follower acknowledged in the current term.
    pub acked_round: u64,
    /// When this follower last answered in the current term.
    pub last_heard: Option<Instant>,
    /// Whether the follower must be sent something at the next flush (a heartbeat
    /// is due or a read round waits on it).
    pub contact_due: bool,
    /// The highest commit index sent to this follower.
    pub commit_sent: Index,
    /// `match_index` at the previous heartbeat tick: no progress over a whole tick
    /// with entries in flight means they or their answers were lost or held
    /// up, so the leader asks whether the follower holds the last entry sent,
    /// and then sends blind batches (see `silent_ticks`).
    pub match_at_tick: Index,
    /// Whether where the follower's log matches is unknown (a new term, a
    /// refusal, or a tick without progress): the leader then keeps at most one
    /// batch in flight to it, not a whole window.
    pub probing: bool,
    /// Heartbeat ticks since the follower last answered while entries to it
    /// were stalled (0: it answers). The first only checks the last entry
    /// sent (see `checking_tip`). Later ones send a blind batch on ticks 2, 4
    /// and then every 8th (see `blind_batch_due`): a follower that is down,
    /// paused or cut off costs a batch every 8 ticks instead of every tick.
    /// A blind batch carries what follows the last one sent, not what
    /// follows the match: a silent follower is far more often paused, cut
    /// off or behind a slow link (and then holds, or will, what was sent)
    /// than missing a lost message while its answers are lost too. Only
    /// every 64th tick (see [`Progress::rewinds_to_match`]) does it go back
    /// to the match, so one whose answers are lost, and some of what it was
    /// sent, still receives what it lacks.
    pub silent_ticks: u32,
    /// Whether this silent tick's blind batch is still to be sent (see
    /// `silent_ticks`).
    pub blind_batch_due: bool,
    /// While probing, the `prev` index of the latest probe sent (`None` until
    /// one is): only a refusal of that one moves `next_index` back.
    pub probe_prev: Option<Index>,
    /// Where `next_index` stood before a silent tick rewound it to the match
    /// (see `silent_ticks`): the follower's next answer moves it back there.
    /// What was sent before the stall is more often held up (behind a pause,
    /// a partition or a slow link) than lost, and resending it all made most
    /// of the entries followers received under faults ones they already held.
    pub resume_at: Option<Index>,
    /// Where the last resume moved `next_index`, until the follower matches
    /// up to it. Meanwhile heartbeats check the entry just before it, not the
    /// match: a follower that lacks what the resume skipped refuses at once
    /// (links keep their order, so what was sent before the heartbeat and
    /// not lost is there by then), and the refusal rewinds to what it lacks.
    pub resumed_to: Option<Index>,
    /// Whether the leader is asking, with an empty probe, whether the
    /// follower holds the entry before `next_index`, instead of resending
    /// what may still be on its way. Set on the first heartbeat tick of a
    /// stall (the entry is the last one sent), and when the pipeline meets a
    /// gap (the entry is the one the refused message followed: the messages
    /// before it were more likely overtaken than lost). Held: nothing is
    /// resent. Refused: the refusal rewinds to what the follower lacks,
    /// within a round trip. Unanswered: the follower is silent, and blind
    /// batches follow (see `silent_ticks`). Until an answer to it (or an
    /// acceptance that reaches the checked entry) comes, no entries go: an
    /// answer to an older message says nothing about that entry, and ending
    /// the check on one resent what was still on its way.
    pub checking_tip: bool,
}

impl Progress {
    /// How many entries may be sent now (at most one batch goes at a time),
    /// with `inflight` entries unanswered in a window of `window`: the rest
    /// of the window while the follower answers; a whole batch on the ticks
    /// that send a blind one while it is silent (see `silent_ticks`); none
    /// while checking the tip.
    pub fn room_for_entries(&self, inflight: u64, window: u64) -> u64 {
        if self.checking_tip {
            return 0;
        }
        match self.silent_ticks {
            0 | 1 => window.saturating_sub(inflight),
            _ if self.blind_batch_due => u64::MAX,
            _ => 0,
        }
    }

    /// Whether silent tick `ticks` sends its blind batch (see `silent_ticks`).
    pub fn sends_blind_batch(ticks: u32) -> bool {
        matches!(ticks, 2 | 4) || ticks.is_multiple_of(8)
    }

    /// Whether silent tick `ticks` goes back to the match: every 64th (3.2 s
    /// at the default 50 ms heartbeat). From there the blind batches walk
    /// the log again, each following the one before, and a follower that was
    /// silent all along (paused, say) receives again all it was sent since
    /// its match: the price of mending the rare follower whose answers are
    /// lost and which lost a batch too. Rewinding sooner made a fifth of the
    /// entries sent under pauses (of up to 4 s) ones already held.
    pub fn rewinds_to_match(ticks: u32) -> bool {
        ticks.is_multiple_of(64)
    }
}

/// The position of `id` in `ids` (increasing): by subtraction when the ids
/// are consecutive, as those of a group numbered from 1 are, else by binary
/// search. A leader of 101 nodes looks up every answer's sender, and the
/// search's seven unpredictable branches cost more than the rest of the
/// lookup.
pub(super) fn position_in(ids: &[PeerId], id: PeerId) -> Option<usize> {
    let (first, last) = (ids.first()?.0, ids.last()?.0);
    if last - first == ids.len() as u64 - 1 {
        return (first..=last)
            .contains(&id.0)
            .then(|| (id.0 - first) as usize);
    }
    ids.binary_search(&id).ok()
}

/// Every follower's [`Progress`], in the order of their ids: a leader's
/// lookups by id are a subtraction or a binary search (see [`position_in`]),
/// and walks go in id order, as they would over a `BTreeMap`.
#[derive(Debug, Clone, Default)]
pub(super) struct Followers {
    ids: Vec<PeerId>,
    progress: Vec<Progress>,
}

impl Followers {
    /// Followers `ids` (in increasing order), each starting at `progress`.
    pub fn new(ids: impl Iterator<Item = PeerId>, progress: &Progress) -> Self {
        let ids: Vec<PeerId> = ids.collect();
        debug_assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        let progress = vec![progress.clone(); ids.len()];
        Self { ids, progress }
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// The id of the follower at `position`.
    pub fn id(&self, position: usize) -> PeerId {
        self.ids[position]
    }

    /// The position of `peer`, if it is a follower.
    pub fn position(&self, peer: PeerId) -> Option<usize> {
        position_in(&self.ids, peer)
    }

    /// The progress of the follower at `position`.
    pub fn at_mut(&mut self, position: usize) -> &mut Progress {
        &mut self.progress[position]
    }

    /// The progress of `peer`, if it is a follower.
    #[cfg(test)]
    pub fn get(&self, peer: PeerId) -> Option<&Progress> {
        self.position(peer).map(|position| &self.progress[position])
    }

    /// Every follower's progress, in id order.
    pub fn values(&self) -> impl Iterator<Item = &Progress> {
        self.progress.iter()
    }

    /// Every follower's progress, mutable, in id order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Progress> {
        self.progress.iter_mut()
    }
}

/// Who is waiting for a read round to be confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadRequester {
    /// A query on the leader itself.
    Local(QueryId),
    /// A follower's [`Message::ReadIndex`].
    Remote(PeerId, ReadId),
}

/// A read waiting for the leader to confirm its leadership (§6.4).
#[derive(Debug, Clone)]
pub(super) struct LeaderRead {
    pub round: u64,
    pub read_index: Index,
    pub requester: ReadRequester,
}

/// What only a leader keeps.
#[derive(Debug, Clone)]
pub(super) struct LeaderState {
    pub progress: Followers,
    /// The index of this term's blank entry: reads wait until it is committed.
    pub term_start: Index,
    /// The latest read round started; rounds increase within a term.
    pub read_round: u64,
    /// Reads waiting for confirmation, oldest first. A deque: confirmed
    /// reads leave from the front, where a `Vec` moved every later one down
    /// (O(n) per round with thousands of reads waiting).
    pub reads: VecDeque<LeaderRead>,
    /// When this node became leader.
    pub since: Instant,
    /// Every follower may need a message at the next flush (new entries, a
    /// heartbeat, a read round, a new commit index).
    pub due_all: bool,
    /// Positions of the followers that may need a message at the next flush
    /// (they answered), in any order and possibly repeated.
    pub due_peers: Vec<usize>,
    /// A match index or the leader's own log moved: the commit index may too.
    pub commit_due: bool,
    /// The highest match index of any follower (for an O(1) invariant check).
    pub match_max: Index,
    /// Followers whose match index is above the commit index. Until these and
    /// the leader reach a quorum the commit index cannot move, so an ack costs
    /// O(1) instead of a count over every follower.
    pub matched_above_commit: usize,
    /// Reused buffer for the quorum selection.
    pub matched_scratch: Vec<Index>,
    /// Reused buffer for confirming reads: the followers' acknowledged rounds.
    pub rounds_scratch: Vec<u64>,
    /// Reused buffer for the reads a round confirmed.
    pub confirmed_scratch: Vec<LeaderRead>,
    /// Where this leader appended each proposal of its term not yet applied:
    /// a retry of one is told that place instead of being appended again.
    /// Without it, clients that retry faster than an overloaded group commits
    /// grow the log with copies faster than it drains (congestion collapse).
    pub appended: BTreeMap<ProposalId, Cursor>,
    /// The read round `read_acks` counts for (the oldest waiting read's), or
    /// `u64::MAX` before a count.
    pub read_acks_round: u64,
    /// Followers that acknowledged `read_acks_round` or a later round: until
    /// they and the leader make a quorum no read can be confirmed, so an ack
    /// costs O(1) instead of a sort of every follower's round.
    pub read_acks: usize,
}

/// Where a query stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Each stage names what the query waits for.
pub(super) enum QueryStage {
    /// Waiting for the leader (this node) to confirm a read round.
    Confirmation,
    /// Waiting for the leader's [`Message::ReadIndexResponse`].
    ReadIndex,
    /// Waiting until `applied` reaches the read index.
    Apply(Index),
}

/// A strong query this node has not answered yet.
pub(super) struct PendingQuery<Q> {
    pub query: Q,
    pub deadline: Instant,
    pub stage: QueryStage,
}

/// A proposal this node owes an outcome for.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingProposal {
    pub deadline: Instant,
    /// Whether the leader has acknowledged appending it.
    pub accepted: bool,
}

/// What a deadline in [`Node::deadlines`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Expiring {
    Proposal(ProposalId),
    Query(QueryId),
    CatchUp,
}

/// A state sync in progress at a follower.
#[derive(Debug, Clone)]
pub(super) struct CatchUpState {
    /// The peer asked last; requests rotate through the voters.
    pub asked: Option<PeerId>,
    /// When the outstanding request is given up on.
    pub deadline: Instant,
}

/// One member's Raft engine: sans-IO and event-driven.
///
/// ```text
///             on_message(now, from, message)
///   events -> on_timer(now, kind)            -> state, storage writes (unsynced)
///             propose(now, proposal)
///             query(now, id, query, consistency)
///
///   flush(now, &mut effects):  sync storage, commit, apply, answer
///                              -> Send / SetTimer / outcomes
/// ```
///
/// The node owns its state machine and its storage. Events change state and write
/// to storage but release nothing; [`flush`](Node::flush) syncs storage first and
/// only then hands out messages and outcomes, so nothing leaves the node before
/// the state it depends on is durable. A driver may process several events before
/// one flush (one sync then covers them all).
pub struct Node<M, S>
where
    M: StateMachine,
    S: Storage<EntryOf<M>>,
{
    pub(super) id: PeerId,
    pub(super) config: GroupConfig,
    /// `config.voters` in order, for lookups (see [`position_in`]) on every message.
    pub(super) voters: Vec<PeerId>,
    pub(super) options: NodeOptions,
    pub(super) preference: LeadershipPreference,
    pub(super) machine: M,
    pub(super) state_sync: M::StateSync,
    pub(super) storage: S,
    pub(super) rng: Entropy,

    /// Mirrors the storage's hard state; written through to it on every change.
    pub(super) hard_state: HardState,
    /// Mirrors `storage.last()`.
    pub(super) last_log: Cursor,
    /// Storage was written since the last sync.
    pub(super) dirty: bool,
    /// The last index known durable (the log may since have grown past it).
    pub(super) synced_last: Index,

    pub(super) role: Role,
    pub(super) leader: Option<PeerId>,
    /// Invariant: `applied.index() <= commit_index <= last_log.index()`, except
    /// that a restarted node may learn a commit index before it holds the entries;
    /// `commit_index` is then capped at what it holds.
    pub(super) commit_index: Index,
    /// The last applied entry; batches are applied whole.
    pub(super) applied: Cursor,
    /// When a leader of the current term was last heard from (for pre-vote
    /// stickiness and the disruptive-server rule).
    pub(super) leader_heard_at: Option<Instant>,
    /// Votes (or pre-votes) received in the current campaign.
    pub(super) votes: BTreeSet<PeerId>,
    pub(super) leader_state: Option<LeaderState>,
    /// Proposals the leader appends at the next flush, with who forwarded each.
    pub(super) proposal_buffer: Vec<(Proposal<M::Command>, Option<PeerId>)>,

    pub(super) election_deadline: Instant,
    /// The election timeout drawn last: a heartbeat restarts the timer with
    /// it, as raft-rs does, and only a change of role or leader draws anew.
    pub(super) election_timeout: Duration,
    pub(super) heartbeat_deadline: Option<Instant>,
    /// The deadline the driver currently has armed, per timer kind.
    pub(super) armed: [Option<Instant>; 3],

    pub(super) proposals: BTreeMap<ProposalId, PendingProposal>,
    pub(super) queries: BTreeMap<QueryId, PendingQuery<M::Query>>,
    /// The queries in stage [`QueryStage::Apply`], by the index they wait
    /// for: those ready as `applied` moves are the first few, where a search
    /// of every pending query cost O(n) per apply (a sixth of a simulated
    /// event with 2,000 clients).
    pub(super) awaiting_apply: BTreeSet<(Index, QueryId)>,
    pub(super) deadlines: BTreeSet<(Instant, Expiring)>,
    pub(super) sessions: super::apply::Sessions,
    pub(super) apply_buffers: super::apply::ApplyBuffers<M::Command>,
    pub(super) catch_up: Option<CatchUpState>,
    /// Entries received since start, and how many were already held.
    pub(super) entries_received: EntriesReceived,

    /// Messages held until the next sync: [`Effect::Send`] and
    /// [`Effect::SendLent`] only, kept as effects so that a flush hands them
    /// over in one move.
    pub(super) outbox: Vec<Effect<M>>,
    /// The time of the latest event.
    pub(super) now: Instant,
    /// When each peer was last heard from (for the planted flaw that counts
    /// quorums of reachable peers).
    pub(super) heard_at: BTreeMap<PeerId, Instant>,
    /// Whether the hard state changed since the last sync.
    pub(super) hard_state_dirty: bool,
    /// Outcomes held until the next sync.
    pub(super) held: Vec<Effect<M>>,
}

impl<M, S> Node<M, S>
where
    M: StateMachine,
    S: Storage<EntryOf<M>>,
{
    /// A node `id` of the group `config`, starting from what `storage` holds.
    ///
    /// The machine must be in its initial state: committed entries are re-applied
    /// from the log as they are learnt to be committed.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if the configuration is invalid, `id` is not a voter, the
    /// node is the only voter and an observer, or the storage was pruned (a
    /// [`LogReplaySync`](crate::LogReplaySync) machine needs its whole log).
    pub fn new(
        id: PeerId,
        config: GroupConfig,
        options: NodeOptions,
        machine: M,
        storage: S,
        rng: Entropy,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        options.validate()?;
        if !config.voters.contains(&id) {
            return Err(ConfigError::NotAVoter(id));
        }
        let preference = machine.leadership_preference();
        if config.voters.len() == 1 && !preference.may_campaign() {
            return Err(ConfigError::NoCandidate);
        }
        let log_start = *storage.available().start();
        if !log_start.is_zero() {
            return Err(ConfigError::Storage(format!(
                "the log was pruned through index {log_start}; log replay needs it whole"
            )));
        }
        let hard_state = storage.hard_state();
        let last_log = storage.last();
        let state_sync = machine.state_sync();
        let sessions = super::apply::Sessions::new(options.sessions_max);
        let mut node = Self {
            id,
            voters: config.voters.iter().copied().collect(),
            config,
            options,
            preference,
            machine,
            state_sync,
            storage,
            rng,
            hard_state,
            last_log,
            dirty: false,
            synced_last: last_log.index(),
            role: Role::Follower,
            leader: None,
            commit_index: Index::ZERO,
            applied: Cursor::ZERO,
            leader_heard_at: None,
            votes: BTreeSet::new(),
            leader_state: None,
            proposal_buffer: Vec::new(),
            election_deadline: now,
            election_timeout: Duration::ZERO,
            heartbeat_deadline: None,
            armed: [None; 3],
            proposals: BTreeMap::new(),
            queries: BTreeMap::new(),
            awaiting_apply: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            sessions,
            apply_buffers: super::apply::ApplyBuffers::default(),
            catch_up: None,
            entries_received: EntriesReceived::default(),
            outbox: Vec::new(),
            held: Vec::new(),
            now,
            heard_at: BTreeMap::new(),
            hard_state_dirty: false,
        };
        node.reset_election_deadline(now);
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The group configuration.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The node's role, term, leader and log positions.
    pub fn status(&self) -> Status {
        Status {
            id: self.id,
            role: self.role,
            term: self.hard_state.current_term,
            leader: self.leader,
            commit_index: self.commit_index,
            applied: self.applied,
            last_log: self.last_log,
        }
    }

    /// Entries received in AppendEntries since this node started, and how many
    /// of them it already held.
    pub fn entries_received(&self) -> EntriesReceived {
        self.entries_received
    }

    /// The durable term and vote.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The state machine, as of the last applied entry.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Consumes the node, returning its storage (as a crash would leave it,
    /// before the caller decides what of the unsynced writes survives).
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// The leadership preference this node runs with.
    pub fn leadership_preference(&self) -> LeadershipPreference {
        self.preference
    }

    /// Handles a message from `from`. Messages from non-voters are ignored.
    pub fn on_message(&mut self, now: Instant, from: PeerId, message: Message<M::Command>) {
        // Most messages come from the known leader, a member: at 101 nodes the
        // search over every follower's own copy of the voters missed the cache.
        let member = self.leader == Some(from) || position_in(&self.voters, from).is_some();
        if from == self.id || !member {
            tracing::debug!(node = %self.id, %from, "message from a non-member dropped");
            return;
        }
        self.now = now;
        // Only the planted quorum-of-reachable flaw reads this.
        if self.flaw(Flaw::QuorumOfReachable) {
            self.heard_at.insert(from, now);
        }
        if let Some(term) = message.term()
            && !self.observe_term(now, from, term, &message)
        {
            return;
        }
        match message {
            Message::PreVote { term, last_log } => self.on_pre_vote(now, from, term, last_log),
            Message::PreVoteResponse { term, granted } => {
                self.on_pre_vote_response(now, from, term, granted)
            }
            Message::RequestVote { term, last_log } => {
                self.on_request_vote(now, from, term, last_log)
            }
            Message::RequestVoteResponse { term, granted } => {
                self.on_request_vote_response(now, from, term, granted)
            }
            Message::AppendEntries {
                term,
                prev,
                entries,
                leader_commit,
                read_round,
            } => self.on_append_entries(now, from, term, prev, entries, leader_commit, read_round),
            Message::AppendEntriesResponse {
                term,
                read_round,
                result,
            } => self.on_append_entries_response(now, from, term, read_round, result),
            Message::CatchUp {
                term,
                leader_log_start,
                leader_commit,
            } => self.on_catch_up(now, from, term, leader_log_start, leader_commit),
            Message::FetchEntries {
                from: start,
                count_max,
            } => self.on_fetch_entries(from, start, count_max),
            Message::FetchedEntries {
                prev,
                entries,
                commit,
            } => self.on_fetched_entries(now, from, prev, entries, commit),
            Message::Propose { proposal } => self.on_forwarded_proposal(now, from, proposal),
            Message::ProposeResponse { id, result } => self.on_propose_response(id, result),
            Message::ReadIndex { read } => self.on_read_index(now, from, read),
            Message::ReadIndexResponse { read, result } => {
                self.on_read_index_response(read, result)
            }
        }
    }

    /// Handles the firing of the timer of `kind`. A timer that fires before the
    /// node's current deadline for it (a stale timer) only re-arms it.
    pub fn on_timer(&mut self, now: Instant, kind: TimerKind) {
        self.now = now;
        self.armed[kind.slot()] = None;
        match kind {
            TimerKind::Election => {
                if now >= self.election_deadline {
                    self.on_election_timeout(now);
                }
            }
            TimerKind::Heartbeat => {
                if self
                    .heartbeat_deadline
                    .is_some_and(|deadline| now >= deadline)
                {
                    self.on_heartbeat_timeout(now);
                }
            }
            TimerKind::Expiry => self.expire(now),
        }
    }

    /// Makes every write durable, then commits, applies, answers and hands out the
    /// effects of everything since the last flush, appending them to `effects`.
    ///
    /// # Errors
    ///
    /// A [`StorageError`] from sync. Nothing that depends on the failed writes is
    /// released; the node must be stopped.
    pub fn flush(
        &mut self,
        now: Instant,
        effects: &mut Vec<Effect<M>>,
    ) -> Result<(), StorageError> {
        if self.role == Role::Leader {
            self.append_buffered_proposals(now);
            // Commit what followers acknowledged before telling them about it.
            self.advance_commit();
            self.replicate(now);
        }
        // Planted flaw: a term or vote change alone is answered unsynced.
        let skip_sync = self.flaw(Flaw::ReplyBeforeSync)
            && self.hard_state_dirty
            && self.synced_last == self.last_log.index();
        if self.dirty && !skip_sync {
            self.storage.sync()?;
            self.dirty = false;
        }
        self.hard_state_dirty = false;
        self.synced_last = self.last_log.index();
        if self.role == Role::Leader {
            // Counts this node's own just-synced entries (all a single voter needs).
            if let Some(state) = self.leader_state.as_mut() {
                state.commit_due = true;
            }
            self.advance_commit();
            self.confirm_reads();
        }
        self.apply_committed();
        self.answer_ready_queries();
        if effects.is_empty() && self.held.is_empty() {
            // The usual case: hand the outbox over whole, not effect by effect
            // (a leader of 101 nodes sends 100 at a time).
            core::mem::swap(effects, &mut self.outbox);
        } else {
            effects.append(&mut self.held);
            effects.append(&mut self.outbox);
        }
        self.arm_timers(effects);
        #[cfg(debug_assertions)]
        if let Err(violation) = self.check_invariants() {
            panic!("node {} broke an invariant: {violation}", self.id);
        }
        Ok(())
    }

    /// Checks the node's local invariants: applied ≤ commit ≤ last log entry, a
    /// vote only in the current term, and a leader's state consistent with its
    /// log. The simulator calls this after every event.
    ///
    /// # Errors
    ///
    /// A description of the first invariant that does not hold.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.applied.index() > self.commit_index {
            return Err(format!(
                "applied {} is past commit {}",
                self.applied, self.commit_index
            ));
        }
        if self.commit_index > self.last_log.index() {
            return Err(format!(
                "commit {} is past the last entry {}",
                self.commit_index, self.last_log
            ));
        }
        if self.last_log != self.storage.last() {
            return Err(format!(
                "cached last entry {} differs from storage {}",
                self.last_log,
                self.storage.last()
            ));
        }
        if self.hard_state != self.storage.hard_state() {
            return Err("cached hard state differs from storage".into());
        }
        if self.role == Role::Leader {
            if self.leader != Some(self.id) {
                return Err("a leader that does not name itself leader".into());
            }
            if self.hard_state.voted_for != Some(self.id) {
                return Err("a leader that did not vote for itself".into());
            }
            let Some(state) = &self.leader_state else {
                return Err("a leader without leader state".into());
            };
            if state.match_max > self.last_log.index() {
                return Err(format!(
                    "a match index ({}) is past the leader's log",
                    state.match_max
                ));
            }
        } else if self.leader_state.is_some() {
            return Err("leader state on a non-leader".into());
        }
        Ok(())
    }

    /// Records a storage write; the next flush syncs.
    pub(super) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Persists a new term and vote (synced at the next flush, before any message
    /// leaves).
    pub(super) fn set_hard_state(&mut self, current_term: Term, voted_for: Option<PeerId>) {
        let hard_state = HardState {
            current_term,
            voted_for,
        };
        if hard_state != self.hard_state {
            self.hard_state = hard_state;
            self.storage.save_hard_state(hard_state);
            self.hard_state_dirty = true;
            self.mark_dirty();
        }
    }

    /// Queues a message, released after the next sync.
    pub(super) fn send(&mut self, to: PeerId, message: Message<M::Command>) {
        debug_assert_ne!(to, self.id, "a node never sends to itself");
        self.outbox.push(Effect::Send { to, message });
    }

    /// The AppendEntries of an [`Effect::SendLent`], with its entries cloned
    /// from the log: for a driver that does not encode them from the log
    /// itself. Call it before calling the node again.
    ///
    /// # Panics
    ///
    /// If the log no longer holds `entries` (the node was called since).
    pub fn lent_message(
        &self,
        header: AppendHeader,
        entries: &RangeInclusive<Index>,
    ) -> Message<M::Command> {
        let mut owned = Vec::new();
        self.storage.extend_with_range(entries, &mut owned);
        assert_eq!(
            owned.len() as u64,
            entries.end().0 + 1 - entries.start().0,
            "{}: lent entries {entries:?} are no longer held",
            self.id
        );
        header.with_entries(owned)
    }

    /// The other voters, in id order.
    pub(super) fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.voters
            .iter()
            .copied()
            .filter(move |&peer| peer != self.id)
    }

    /// The term of the entry at `index`, if known.
    pub(super) fn term_at(&self, index: Index) -> Option<Term> {
        if index.is_zero() {
            return Some(Term::ZERO);
        }
        if index == self.last_log.index() {
            return Some(self.last_log.term());
        }
        self.storage.term_at(index)
    }

    /// Registers a deadline for the expiry timer.
    pub(super) fn add_deadline(&mut self, deadline: Instant, what: Expiring) {
        self.deadlines.insert((deadline, what));
    }

    /// Removes a deadline from the expiry timer.
    pub(super) fn remove_deadline(&mut self, deadline: Instant, what: Expiring) {
        self.deadlines.remove(&(deadline, what));
    }

    /// Emits `SetTimer` for each kind whose wanted deadline is earlier than the one
    /// armed. A later deadline needs no new timer: when the armed one fires early,
    /// `on_timer` re-arms it.
    fn arm_timers(&mut self, effects: &mut Vec<Effect<M>>) {
        let wanted = [
            (self.role != Role::Leader).then_some(self.election_deadline),
            self.heartbeat_deadline
                .filter(|_| self.role == Role::Leader),
            self.deadlines.first().map(|(deadline, _)| *deadline),
        ];
        for kind in TimerKind::ALL {
            let slot = kind.slot();
            if let Some(deadline) = wanted[slot]
                && self.armed[slot].is_none_or(|armed| deadline < armed)
            {
                self.armed[slot] = Some(deadline);
                effects.push(Effect::SetTimer {
                    timer: kind,
                    deadline,
                });
            }
        }
    }

    /// Whether a planted bug is switched on; always false without the feature
    /// `flaws`, so the checks compile away.
    #[cfg(feature = "flaws")]
    pub(super) fn flaw(&self, flaw: super::flaws::Flaw) -> bool {
        self.options.flaws.contains(flaw)
    }

    /// Whether a planted bug is switched on: never, without the feature `flaws`.
    #[cfg(not(feature = "flaws"))]
    #[inline(always)]
    pub(super) fn flaw(&self, _flaw: Flaw) -> bool {
        false
    }

    /// The quorum for a decision at `now`: a majority of the configured voters
    /// (or, with the planted flaw, of the peers heard from lately).
    pub(super) fn quorum(&self) -> usize {
        if self.flaw(Flaw::QuorumOfReachable) {
            let window = self.config.election_timeout_max;
            let reachable = self
                .heard_at
                .values()
                .filter(|heard| self.now.saturating_since(**heard) < window)
                .count();
            let voters_reachable = reachable + 1;
            return voters_reachable / 2 + 1;
        }
        self.config.quorum()
    }

    /// Whether the sync strategy's batch size, for catch-up requests.
    pub(super) fn fetch_entries_max(&self) -> usize {
        self.state_sync.fetch_entries_max()
    }
}

impl<M, S> fmt::Debug for Node<M, S>
where
    M: StateMachine,
    S: Storage<EntryOf<M>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("status", &self.status())
            .finish()
    }
}
