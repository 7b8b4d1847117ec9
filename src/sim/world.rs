//! The world of one run: nodes, network, clients and the event loop that drives
//! them in virtual time.

use core::hash::Hash;
use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::LIVENESS;
use super::choices::{Choices, Component};
use super::config::{FaultPlan, SimConfig};
use super::faults::{FaultAction, Target};
use super::fingerprint::Fingerprint;
use super::history::{OperationOutcome, SimHistory};
use super::inputs::{Input, NodeInputs, seal_lent};
use super::invariants::Invariants;
use super::network::{Delivery, Network};
use super::queue::EventQueue;
use super::scenario::ClientScript;
use super::trace::{TRACE_TAIL_EVENTS, Trace, TraceEvent, What};
use super::workload::{Operation, SimMachine, Workload};
use crate::bond::{BondError, WireFrame};
use crate::codec;
use crate::env::{
    Entropy, Instant, TimerKind, chance, derive_entropy, uniform_duration, uniform_u64,
};
use crate::id::{GroupIdInput, GroupIdInputs, GroupKey, PeerId};
use crate::log::{CrashOutcome, InMemoryLogStore, Index, Storage, Term};
use crate::machine::{StateMachine, StateSync};
use crate::raft::{
    ClientId, Consistency, Effect, EntriesReceived, EntryOf, GroupConfig, Node, NodeOptions,
    Proposal, ProposalId, ProposalOutcome, QueryAnswer, QueryError, QueryId, Role, Seen, Sessions,
    Status,
};

type Store<M> = InMemoryLogStore<EntryOf<M>>;

/// Where a message to a client goes: proposals carry the client in their id,
/// queries in the high half of theirs.
const QUERY_CLIENT_SHIFT: u32 = 40;

/// Events at one virtual instant beyond which the run is stopped as a livelock
/// (something re-arms itself without letting time pass).
const EVENTS_PER_INSTANT_MAX: u64 = 1_000_000;

/// Spare frame buffers kept for reuse.
const FRAME_POOL_MAX: usize = 4096;
/// A new frame buffer's capacity: most Raft messages fit, so few frames grow
/// while encoding.
const FRAME_CAPACITY: usize = 256;

/// Events waiting, whatever the group's size, beyond which the run is stopped
/// as a message storm; see [`events_pending_max`].
const EVENTS_PENDING_BASE: u64 = 65_536;
/// Events waiting allowed for each node and each client on top of
/// [`EVENTS_PENDING_BASE`].
const EVENTS_PENDING_PER_PARTY: u64 = 1_024;

/// Events waiting beyond which a run is stopped as a message storm. An engine
/// that answers a message with more than one doubles its traffic every few
/// round trips (as the planted flaw resend-at-match does under swarm faults
/// with duplication), while a healthy group's
/// backlog is bounded by its links and clients: 5 nodes and 5 clients under
/// swarm faults stay under 8,192. A bound of 1,000,000 took 60 million events
/// (90 s of wall time) to reach; this one takes a few million.
fn events_pending_max(nodes: u64, clients: u64) -> usize {
    let parties = nodes.saturating_add(clients);
    let events =
        EVENTS_PENDING_BASE.saturating_add(EVENTS_PENDING_PER_PARTY.saturating_mul(parties));
    usize::try_from(events).unwrap_or(usize::MAX)
}

/// A request from a client, on its way to a node.
pub(crate) enum Request<M: StateMachine> {
    Propose(Proposal<M::Command>),
    Query {
        id: QueryId,
        query: M::Query,
        consistency: Consistency,
    },
}

/// A node's answer, on its way to a client.
pub(crate) enum Response<M: StateMachine> {
    Proposal {
        id: ProposalId,
        outcome: ProposalOutcome,
    },
    Query {
        id: QueryId,
        node: PeerId,
        incarnation: u64,
        outcome: Result<QueryAnswer<M::QueryResult>, QueryError>,
    },
}

/// Everything that can happen.
pub(crate) enum Event<M: StateMachine> {
    Deliver {
        from: PeerId,
        to: PeerId,
        sent: Instant,
        frame: Vec<u8>,
    },
    Timer {
        node: PeerId,
        kind: TimerKind,
        generation: u64,
    },
    Fault(FaultAction),
    EndOfFaults,
    ClientWake {
        client: usize,
        generation: u64,
    },
    // Boxed: client traffic is rare beside deliveries, and this keeps every
    // event as small as a delivery.
    ClientRequest {
        client: usize,
        node: PeerId,
        request: Box<Request<M>>,
        /// The operation's place in the history.
        history_index: usize,
    },
    ClientResponse {
        client: usize,
        response: Box<Response<M>>,
    },
}

/// How long a client waits before retrying after `NotLeader`: briefly with a
/// hint, longer without one (an election is under way).
fn not_leader_backoff(leader: Option<PeerId>) -> Duration {
    Duration::from_millis(if leader.is_some() { 5 } else { 25 })
}

/// A node's clock: piecewise linear in virtual time, never going back.
#[derive(Debug, Clone, Copy)]
struct Clock {
    base_global: u64,
    base_local: u64,
    drift_ppm: i64,
}

impl Clock {
    const EXACT: Self = Self {
        base_global: 0,
        base_local: 0,
        drift_ppm: 0,
    };

    #[inline]
    fn local(&self, global: Instant) -> Instant {
        if self.drift_ppm == 0 {
            // Most clocks never drift: skip the 128-bit division.
            let elapsed = global.as_nanos().saturating_sub(self.base_global);
            return Instant::from_nanos(self.base_local.saturating_add(elapsed));
        }
        let elapsed = i128::from(global.as_nanos().saturating_sub(self.base_global));
        let scaled = elapsed * (1_000_000 + i128::from(self.drift_ppm)) / 1_000_000;
        Instant::from_nanos(
            self.base_local
                .saturating_add(u64::try_from(scaled.max(0)).unwrap_or(u64::MAX)),
        )
    }

    fn global(&self, local: Instant) -> Instant {
        let ahead = i128::from(local.as_nanos()) - i128::from(self.base_local);
        if ahead <= 0 {
            return Instant::from_nanos(self.base_global);
        }
        if self.drift_ppm == 0 {
            let ahead = local.as_nanos() - self.base_local;
            return Instant::from_nanos(self.base_global.saturating_add(ahead));
        }
        // Round up, so the node's clock reads at least `local` at the result.
        let rate = (1_000_000 + i128::from(self.drift_ppm)).max(1);
        let scaled = (ahead * 1_000_000 + rate - 1) / rate;
        let mut global = Instant::from_nanos(
            self.base_global
                .saturating_add(u64::try_from(scaled).unwrap_or(u64::MAX)),
        );
        while self.local(global) < local {
            global = global + Duration::from_nanos(1);
        }
        global
    }
}

/// One simulated node.
struct Host<M: SimMachine> {
    id: PeerId,
    node: Option<Node<M, Store<M>>>,
    /// Storage of a crashed node, kept for its restart.
    disk: Option<Store<M>>,
    incarnation: u64,
    paused: bool,
    deferred: Vec<Event<M>>,
    down_since: Instant,
    paused_since: Instant,
    clock: Clock,
    /// Per timer kind: the generation of the armed timer.
    timer_generation: [u64; 3],
    last_status: Option<Status>,
    /// The GroupId input this node was started with a different value of.
    mismatch: Option<GroupIdInput>,
    /// The last vote it granted: (term, candidate). Checked against what its
    /// storage keeps when it crashes.
    granted: Option<(crate::log::Term, PeerId)>,
}

/// A client operation in progress.
struct Pending<M: StateMachine> {
    operation: Operation<M>,
    history_index: usize,
    proposal: Option<ProposalId>,
    /// The session its proposal belongs to (kept by every retry).
    session: Index,
    query: Option<QueryId>,
    deadline: Instant,
    attempt_deadline: Instant,
}

/// One simulated client: a closed loop of operations with retries.
struct Client<M: StateMachine> {
    id: ClientId,
    next_sequence: u64,
    /// The stamp of its session (see [`Proposal::session`]): the commit index
    /// of the node it first proposed to, as that node's answer would tell it,
    /// then the index its last session expired at. `None` before its first
    /// proposal.
    session: Option<Index>,
    /// Where each of its commands is in the history, by sequence number
    /// (from 1): how the log's entries are matched to the history.
    commands: Vec<usize>,
    next_query: u64,
    target: PeerId,
    pending: Option<Pending<M>>,
    generation: u64,
    /// Its start, think times and retry targets: a stream per client, so that
    /// removing one client's operation leaves the others' timing alone.
    rng: Choices,
}

/// Counters of a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunStats {
    /// Events processed (deliveries, timers, faults, client steps).
    pub events: u64,
    /// Messages sent by nodes.
    pub messages_sent: u64,
    /// Messages delivered and accepted.
    pub messages_delivered: u64,
    /// Messages the receiver's codec rejected (corrupted).
    pub messages_rejected: u64,
    /// Messages dropped between nodes that are not bonded.
    pub messages_unbonded: u64,
    /// Faults injected (partitions, crashes, pauses, clock changes).
    pub faults_injected: u64,
    /// Virtual time at the end.
    pub simulated: Duration,
    /// Log entries nodes received in AppendEntries, and how many of those they
    /// already held: replication traffic resent in vain.
    pub entries_received: EntriesReceived,
    /// Proposals refused because the group had forgotten their client's
    /// session (more clients than `sessions_max`).
    pub sessions_expired: u64,
}

impl RunStats {
    /// The share of entries received that were already held, in percent (0
    /// when none were received).
    pub fn entries_already_held_percent(&self) -> f64 {
        if self.entries_received.total == 0 {
            return 0.0;
        }
        100.0 * self.entries_received.already_held as f64 / self.entries_received.total as f64
    }
}

/// When a doomed leader crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Doom {
    /// After sending this many more messages.
    Messages(u32),
    /// The moment its commit index first moves, before it tells anyone: the
    /// window in which an entry of an older term counts as committed on the
    /// leader alone (Figure 8).
    FirstCommit,
}

/// Where a run's choices come from besides its seed.
pub(crate) struct Choosing<M: StateMachine> {
    /// Decisions taken as faults fire.
    pub fault_rng: Choices,
    /// A fuzzer's input steering network and client choices.
    pub tape: Option<Arc<[u8]>>,
    /// A scenario's operations per client, instead of the workload's.
    pub scripts: Option<Vec<ClientScript<M>>>,
}

/// The state of one run.
pub(crate) struct World<M: SimMachine> {
    pub config: SimConfig,
    pub plan: FaultPlan,
    group: GroupConfig,
    options: NodeOptions,
    make_machine: Box<dyn Fn(PeerId) -> M>,
    pub workload: Box<dyn Workload<M>>,
    workload_rng: Entropy,
    fault_rng: Choices,
    /// A scenario's operations per client, last first (the next one is
    /// popped); `None`: drawn from the workload as the run goes.
    scripts: Option<Vec<ClientScript<M>>>,
    now: Instant,
    queue: EventQueue<Event<M>>,
    hosts: Vec<Host<M>>,
    network: Network,
    clients: Vec<Client<M>>,
    /// Whether faults are over (the quiet period has begun).
    quiet: bool,
    /// Armed by [`FaultAction::CrashNextLeader`]: the messages the next leader
    /// may send before it crashes.
    crash_next_leader: Option<u32>,
    /// A leader doomed by that trigger or by churn, and when it crashes.
    doomed: Option<(usize, Doom)>,
    /// Armed by [`FaultAction::CrashNextVoter`].
    crash_next_voter: bool,
    /// Leaders still to crash under [`FaultAction::LeaderChurn`].
    churn_rounds: u32,
    /// `bonds[a * nodes + b]`: whether nodes `a + 1` and `b + 1` bonded; `None`
    /// until the first message between them (see [`World::bonded`]).
    bonds: Vec<Option<bool>>,
    /// Each node's id, key and GroupId inputs, for its handshakes.
    bond_inputs: Vec<(PeerId, GroupKey, GroupIdInputs)>,
    /// Nonces for the handshakes.
    bond_rng: Entropy,
    pub bond_errors: Vec<(PeerId, PeerId, BondError)>,
    pub trace: Trace,
    pub history: SimHistory<M>,
    /// For each weak read in the history: the node and incarnation that answered.
    pub weak_read_sources: BTreeMap<usize, (u64, u64)>,
    invariants: Invariants,
    /// Violations found during the run: when, which check (see
    /// [`Violation::check`](super::Violation::check)) and why.
    pub violations: Vec<(Instant, &'static str, String)>,
    pub stats: RunStats,
    effects: Vec<Effect<M>>,
    deliveries: Vec<Delivery>,
    /// Frame buffers of delivered messages, reused for the next sends.
    frames: Vec<Vec<u8>>,
    /// The last client requests traced without their text (see
    /// [`World::trace_tail`]).
    recent_requests: VecDeque<RequestShown>,
    /// Every input to the engines, if kept ([`World::record_inputs`]).
    inputs: Option<NodeInputs<M>>,
}

/// What the trace text of a client request is made from, beside the
/// operation in the history.
#[derive(Debug, Clone, Copy)]
struct RequestShown {
    history_index: usize,
    kind: RequestKind,
}

#[derive(Debug, Clone, Copy)]
enum RequestKind {
    Propose(ProposalId),
    Query(Consistency),
}

/// A fingerprint of a client request for the trace hash: the same on every
/// machine (the command's `Hash` writes through [`Fingerprint`]).
fn request_digest<M: SimMachine>(request: &Request<M>) -> u64 {
    let mut digest = Fingerprint::new(0);
    match request {
        Request::Propose(proposal) => {
            digest.word(1);
            digest.word(proposal.id.client.0);
            digest.word(proposal.id.sequence);
            proposal.command.hash(&mut digest);
        }
        Request::Query {
            query, consistency, ..
        } => {
            digest.word(2);
            consistency.hash(&mut digest);
            query.hash(&mut digest);
        }
    }
    digest.value()
}

impl<M: SimMachine> World<M> {
    pub(crate) fn new(
        config: SimConfig,
        plan: FaultPlan,
        make_machine: Box<dyn Fn(PeerId) -> M>,
        workload: Box<dyn Workload<M>>,
        checkpoints: bool,
        choosing: Choosing<M>,
    ) -> Self {
        let Choosing {
            fault_rng,
            tape,
            scripts,
        } = choosing;
        let seed = config.seed;
        let group = GroupConfig::with_voter_count(config.nodes);
        let options = NodeOptions {
            append_entries_max: plan.append_entries_max.max(1),
            // At most eight messages in flight per follower, whatever their size.
            inflight_entries_max: plan.append_entries_max.max(1) * 8,
            proposal_timeout: config.attempt_timeout * 2,
            query_timeout: config.attempt_timeout,
            // Frames are encoded as soon as a node is flushed.
            lend_entries: true,
            sessions_max: config.sessions_max.max(1),
            #[cfg(feature = "flaws")]
            flaws: config.flaws,
            ..NodeOptions::default()
        };
        let network = Network::new(
            seed,
            tape.clone(),
            config.nodes as usize,
            config.latency_min,
            config.latency_max,
        );
        let trace = Trace::new(config.record_trace, checkpoints);
        let clients = (0..config.clients)
            .map(|index| Client {
                id: ClientId(index + 1),
                next_sequence: 0,
                session: None,
                commands: Vec::new(),
                next_query: 0,
                target: PeerId(index % config.nodes.max(1) + 1),
                pending: None,
                generation: 0,
                rng: Choices::with_tape(
                    derive_entropy(seed, &format!("client-{}", index + 1)),
                    tape.clone(),
                    Component::Clients,
                ),
            })
            .collect();
        let nodes = config.nodes as usize;
        Self {
            plan,
            group,
            options,
            make_machine,
            workload,
            workload_rng: derive_entropy(seed, "workload"),
            fault_rng,
            scripts: scripts.map(|scripts| {
                scripts
                    .into_iter()
                    .map(|mut script| {
                        script.reverse();
                        script
                    })
                    .collect()
            }),
            now: Instant::ZERO,
            queue: EventQueue::new(),
            hosts: Vec::with_capacity(nodes),
            network,
            clients,
            quiet: false,
            crash_next_leader: None,
            doomed: None,
            crash_next_voter: false,
            churn_rounds: 0,
            bonds: vec![None; nodes * nodes],
            bond_inputs: Vec::new(),
            bond_rng: derive_entropy(seed, "bonds"),
            bond_errors: Vec::new(),
            trace,
            history: SimHistory::default(),
            weak_read_sources: BTreeMap::new(),
            invariants: Invariants::default(),
            violations: Vec::new(),
            stats: RunStats::default(),
            effects: Vec::new(),
            deliveries: Vec::new(),
            frames: Vec::new(),
            recent_requests: VecDeque::with_capacity(TRACE_TAIL_EVENTS),
            inputs: None,
            config,
        }
    }

    /// Starts every node, bonds them, schedules faults and clients.
    pub(crate) fn start(
        &mut self,
        schedule: Vec<super::faults::ScheduledFault>,
        mismatch: Option<(PeerId, GroupIdInput)>,
    ) {
        let key = GroupKey::from_secret("quorate simulation key");
        let machine = (self.make_machine)(PeerId(1));
        let inputs = GroupIdInputs::new(
            &key,
            self.group.digest(),
            machine.signature(),
            machine.state_sync().signature(),
        );
        let mut node_inputs = Vec::new();
        for id in self.group.voters.clone() {
            let mut these = inputs;
            let mut this_key = key.clone();
            let differs = mismatch
                .filter(|(node, _)| *node == id)
                .map(|(_, input)| input);
            match differs {
                Some(GroupIdInput::Key) => {
                    this_key = GroupKey::from_secret("a key from another deployment");
                    these.key_fingerprint = this_key.fingerprint();
                }
                Some(GroupIdInput::MachineSignature) => {
                    these.machine_signature =
                        these.machine_signature.derive(b"rolling upgrade to v2");
                }
                Some(GroupIdInput::SyncSignature) => {
                    these.sync_signature = these.sync_signature.derive(b"another sync strategy");
                }
                Some(GroupIdInput::ConsensusParameters) => these.consensus_digest[0] ^= 1,
                None => {}
            }
            node_inputs.push((id, this_key, these));
            self.hosts.push(Host {
                id,
                node: None,
                disk: Some(Store::<M>::default()),
                incarnation: 0,
                paused: false,
                deferred: Vec::new(),
                down_since: Instant::ZERO,
                paused_since: Instant::ZERO,
                clock: Clock::EXACT,
                timer_generation: [0; 3],
                last_status: None,
                mismatch: differs,
                granted: None,
            });
        }
        self.bond_inputs = node_inputs;
        for position in 0..self.hosts.len() {
            self.boot(position);
        }
        for fault in schedule {
            self.queue
                .push(Instant::ZERO + fault.at, Event::Fault(fault.action));
        }
        self.queue
            .push(Instant::ZERO + self.config.duration, Event::EndOfFaults);
        for client in 0..self.clients.len() {
            let start = uniform_duration(
                &mut self.clients[client].rng,
                Duration::ZERO,
                Duration::from_millis(50),
            );
            self.queue.push(
                Instant::ZERO + start,
                Event::ClientWake {
                    client,
                    generation: 0,
                },
            );
        }
        self.network.set_faults(self.plan.network);
    }

    /// Whether `a` and `b` bonded. The first time a pair has a message to
    /// pass, it runs the handshake, through the codec, as two nodes meeting on
    /// the network would; a pair that fails never exchanges a message. Only
    /// pairs that talk pay for a handshake: a group of 101 has 5,050 pairs,
    /// but a stable one uses the 100 around its leader.
    fn bonded(&mut self, a: PeerId, b: PeerId) -> bool {
        let nodes = self.config.nodes as usize;
        match self.bonds[Self::position(a) * nodes + Self::position(b)] {
            Some(bonded) => bonded,
            None => self.bond(a, b),
        }
    }

    /// The handshake of [`World::bonded`], once per pair.
    #[cold]
    #[inline(never)]
    fn bond(&mut self, a: PeerId, b: PeerId) -> bool {
        let (a_position, b_position) = (Self::position(a), Self::position(b));
        let nodes = self.config.nodes as usize;
        let mut nonce = || {
            let mut bytes = [0u8; 32];
            for chunk in bytes.chunks_mut(8) {
                chunk.copy_from_slice(&uniform_u64(&mut self.bond_rng, 0, u64::MAX).to_le_bytes());
            }
            bytes
        };
        let (nonce_a, nonce_b) = (nonce(), nonce());
        let side = |position: usize, nonce| {
            let (id, key, inputs) = &self.bond_inputs[position];
            (*id, key.clone(), *inputs, nonce)
        };
        let (result_a, result_b) =
            crate::bond::handshake_in_memory(side(a_position, nonce_a), side(b_position, nonce_b));
        let bonded = result_a.is_ok() && result_b.is_ok();
        self.bonds[a_position * nodes + b_position] = Some(bonded);
        self.bonds[b_position * nodes + a_position] = Some(bonded);
        if let Err(error) = result_a {
            self.bond_errors.push((a, b, error));
        }
        if let Err(error) = result_b {
            self.bond_errors.push((b, a, error));
        }
        bonded
    }

    /// The current virtual time.
    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// A machine in its initial state, as every node starts.
    pub(crate) fn fresh_machine(&self) -> M {
        (self.make_machine)(PeerId(1))
    }

    /// The run's counters, with those of the nodes still up (a crashed node's
    /// were added as it went down).
    pub(crate) fn stats(&self) -> RunStats {
        let mut stats = self.stats;
        for node in self.hosts.iter().filter_map(|host| host.node.as_ref()) {
            stats.entries_received.add(node.entries_received());
        }
        stats
    }

    /// The leader of each term seen.
    pub(crate) fn leaders(&self) -> Vec<(crate::log::Term, PeerId)> {
        self.invariants.leaders()
    }

    fn position(id: PeerId) -> usize {
        (id.0 - 1) as usize
    }

    /// Keeps every input to the engines from now on: call before [`World::start`].
    pub(crate) fn record_inputs(&mut self) {
        let nodes = self.group.voters.len();
        self.inputs = Some(NodeInputs::new(
            self.group.clone(),
            self.options.clone(),
            nodes,
        ));
    }

    /// The inputs kept since [`World::record_inputs`], with each node's status now.
    pub(crate) fn take_inputs(&mut self) -> Option<NodeInputs<M>> {
        let mut inputs = self.inputs.take()?;
        for (position, host) in self.hosts.iter().enumerate() {
            inputs.set_final(position, host.node.as_ref().map(Node::status));
        }
        Some(inputs)
    }

    /// Keeps `input` to the node at `position`, at its local time, if inputs
    /// are kept.
    fn record_input(&mut self, position: usize, input: impl FnOnce() -> Input<M>) {
        if let Some(inputs) = &mut self.inputs {
            let host = &self.hosts[position];
            inputs.push(host.id, host.clock.local(self.now), input());
        }
    }

    /// Starts (or restarts) a node from its disk.
    fn boot(&mut self, position: usize) {
        let host = &mut self.hosts[position];
        let storage = host.disk.take().expect("a stopped node has its disk");
        host.incarnation += 1;
        let rng = derive_entropy(
            self.config.seed,
            &format!("node-{}-{}", host.id.0, host.incarnation),
        );
        let local = host.clock.local(self.now);
        if let Some(inputs) = &mut self.inputs {
            let input = Input::Boot(Box::new((storage.clone(), rng.clone())));
            inputs.push(host.id, local, input);
        }
        let node = Node::new(
            host.id,
            self.group.clone(),
            self.options.clone(),
            (self.make_machine)(host.id),
            storage,
            rng,
            local,
        )
        .expect("the simulator builds valid nodes");
        host.node = Some(node);
        host.last_status = None;
        let id = host.id;
        self.invariants.forget(id);
        self.step_node(position, None, |_, _| {});
    }

    /// Runs until the quiet period ends.
    pub(crate) fn run(&mut self) {
        let end = Instant::ZERO + self.config.duration + self.config.quiet_period;
        let mut events_at_this_instant = 0u64;
        let pending_max = events_pending_max(self.config.nodes, self.config.clients);
        while let Some((time, event)) = self.queue.pop() {
            if time > end {
                break;
            }
            if time == self.now {
                events_at_this_instant += 1;
                if events_at_this_instant > EVENTS_PER_INSTANT_MAX {
                    self.violations.push((
                        time,
                        "livelock",
                        format!("over {EVENTS_PER_INSTANT_MAX} events without time advancing"),
                    ));
                    break;
                }
            } else {
                events_at_this_instant = 0;
            }
            self.now = time;
            self.stats.events += 1;
            self.handle(event);
            if self.queue.len() > pending_max {
                let busiest = self
                    .busiest_link()
                    .map(|((from, to), count)| format!(", {count} of them on {from} -> {to}"))
                    .unwrap_or_default();
                self.violations.push((
                    time,
                    "message storm",
                    format!("over {pending_max} events in flight{busiest}"),
                ));
            }
            if !self.violations.is_empty() {
                // A broken invariant poisons all that follows (diverged logs
                // grow without bound): stop at the first, as it is the finding.
                self.stats.simulated = self.now.saturating_since(Instant::ZERO);
                return;
            }
        }
        self.now = end;
        self.stats.simulated = end.saturating_since(Instant::ZERO);
    }

    /// The link with the most messages in flight, and how many: where a
    /// message storm report points first. Ties go to the lowest link.
    fn busiest_link(&self) -> Option<((PeerId, PeerId), usize)> {
        let mut counts: BTreeMap<(PeerId, PeerId), usize> = BTreeMap::new();
        for event in self.queue.events() {
            if let Event::Deliver { from, to, .. } = event {
                *counts.entry((*from, *to)).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .max_by_key(|&(link, count)| (count, core::cmp::Reverse(link)))
    }

    fn handle(&mut self, event: Event<M>) {
        match event {
            Event::Deliver {
                from,
                to,
                sent,
                frame,
            } => self.deliver(from, to, sent, frame),
            Event::Timer {
                node,
                kind,
                generation,
            } => {
                let position = Self::position(node);
                if self.hosts[position].timer_generation[kind.slot()] != generation {
                    return; // replaced by a later arming
                }
                if self.defer_if_paused(
                    position,
                    Event::Timer {
                        node,
                        kind,
                        generation,
                    },
                ) {
                    return;
                }
                if self.hosts[position].node.is_some() {
                    self.record_input(position, || Input::Timer(kind));
                    self.step_node(position, Some(What::Timer(kind)), |node, now| {
                        node.on_timer(now, kind)
                    });
                }
            }
            Event::Fault(action) => {
                // Each fault's decisions (and those of what it arms) come from
                // a stream of its own.
                let stream = format!("fault-{}", self.now.as_nanos());
                self.fault_rng
                    .reseed(derive_entropy(self.config.seed, &stream));
                self.apply_fault(action);
            }
            Event::EndOfFaults => self.end_faults(),
            Event::ClientWake { client, generation } => {
                if self.clients[client].generation == generation {
                    self.client_wake(client);
                }
            }
            Event::ClientRequest {
                client,
                node,
                request,
                history_index,
            } => self.client_request(client, node, request, history_index),
            Event::ClientResponse { client, response } => self.client_response(client, *response),
        }
    }

    /// Holds an event for a paused node until it resumes. Returns whether it did.
    fn defer_if_paused(&mut self, position: usize, event: Event<M>) -> bool {
        let host = &mut self.hosts[position];
        if host.paused {
            host.deferred.push(event);
            true
        } else {
            false
        }
    }

    fn deliver(&mut self, from: PeerId, to: PeerId, sent: Instant, frame: Vec<u8>) {
        let position = Self::position(to);
        if self.hosts[position].node.is_none() {
            return;
        }
        if self.hosts[position].paused {
            self.hosts[position].deferred.push(Event::Deliver {
                from,
                to,
                sent,
                frame,
            });
            return;
        }
        match codec::unseal::<WireFrame<M::Command>>(&frame) {
            Ok(WireFrame::Raft(message)) => {
                self.stats.messages_delivered += 1;
                self.record_input(position, || Input::Message {
                    from,
                    frame: frame.clone(),
                });
                let what = What::Received {
                    from,
                    message: message.name(),
                    sent,
                };
                self.step_node(position, Some(what), |node, now| {
                    node.on_message(now, from, message)
                });
            }
            Ok(WireFrame::Handshake(_)) => {}
            Err(error) => {
                self.stats.messages_rejected += 1;
                let reason = match error {
                    codec::DecodeError::Checksum => "checksum",
                    codec::DecodeError::Truncated => "truncated",
                    codec::DecodeError::TooLarge { .. } => "too large",
                    codec::DecodeError::TrailingBytes { .. } => "trailing bytes",
                    codec::DecodeError::Malformed { .. } => "malformed",
                };
                self.record(Some(position), What::Rejected { from, reason });
            }
        }
        self.recycle(frame);
    }

    /// Steps one node with `event`, flushes it, routes its effects, records the
    /// trace and checks the invariants.
    fn step_node(
        &mut self,
        position: usize,
        what: Option<What>,
        event: impl FnOnce(&mut Node<M, Store<M>>, Instant),
    ) {
        let host = &mut self.hosts[position];
        let local = host.clock.local(self.now);
        let Some(node) = host.node.as_mut() else {
            return;
        };
        let vote_before = node.hard_state();
        event(node, local);
        let vote_after = node.hard_state();
        let granted_vote = vote_after
            .voted_for
            .is_some_and(|candidate| candidate != host.id)
            && vote_after != vote_before;
        if granted_vote && let Some(candidate) = vote_after.voted_for {
            host.granted = Some((vote_after.current_term, candidate));
        }
        if let Err(error) = node.flush(local, &mut self.effects) {
            self.violations.push((
                self.now,
                "engine",
                format!("{}: storage failed: {error}", host.id),
            ));
        }
        if let Err(violation) = node.check_invariants() {
            self.violations
                .push((self.now, "engine", format!("{}: {violation}", host.id)));
        }
        let status = node.status();
        let previous = host.last_status.replace(status);
        let became_leader = status.role == Role::Leader
            && previous.is_none_or(|previous| {
                previous.role != Role::Leader || previous.term != status.term
            });
        let found = self
            .invariants
            .observe(host.id, &status, became_leader, node.storage());
        for violation in found {
            self.violations.push((self.now, "safety", violation));
        }
        if became_leader && self.doomed.is_none() {
            if let Some(messages) = self.crash_next_leader.take() {
                self.doomed = Some((position, Doom::Messages(messages)));
            } else if self.churn_rounds > 0 {
                self.churn_rounds -= 1;
                self.doomed = Some((position, self.churn_doom()));
            }
        }
        // While a node is up its commit index only grows (it restarts from 0).
        if let Some(previous) = previous
            && previous.commit_index > status.commit_index
        {
            let node = self.hosts[position].id;
            self.violations.push((
                self.now,
                "safety",
                format!(
                    "{node}: commit index went back from {} to {}",
                    previous.commit_index, status.commit_index
                ),
            ));
        }
        let committed =
            previous.is_some_and(|previous| previous.commit_index < status.commit_index);
        if committed
            && status.role == Role::Leader
            && let Some(violation) = self.commit_can_be_lost(position, status.commit_index)
        {
            self.violations.push((self.now, "safety", violation));
        }
        if committed && self.doomed == Some((position, Doom::FirstCommit)) {
            self.doomed = Some((position, Doom::Messages(0)));
        }
        if let Some(what) = what {
            self.record_at(&status, what);
        }
        let changed_role = previous.is_none_or(|previous| {
            previous.role != status.role
                || previous.term != status.term
                || previous.leader != status.leader
        });
        if changed_role {
            self.record_at(
                &status,
                What::Role {
                    leader: status.leader,
                },
            );
        }
        if previous.is_some_and(|previous| previous.commit_index != status.commit_index) {
            self.record_at(&status, What::Commit(status.commit_index));
        }
        self.route_effects(position);
        if granted_vote && core::mem::take(&mut self.crash_next_voter) {
            self.crash_losing(position, Some(CrashOutcome::LoseUnsynced));
            self.restart_soon(position, Duration::ZERO, Duration::from_millis(30));
            return;
        }
        if self.doomed == Some((position, Doom::Messages(0))) {
            self.doomed = None;
            self.crash(position);
            // A crashed leader comes back soon, with entries of its term that
            // the next leaders may write over (Figure 8).
            self.restart_soon(
                position,
                Duration::from_millis(20),
                Duration::from_millis(600),
            );
        }
    }

    fn route_effects(&mut self, position: usize) {
        let from = self.hosts[position].id;
        let mut effects = core::mem::take(&mut self.effects);
        for effect in effects.drain(..) {
            if let Some(inputs) = &mut self.inputs
                && matches!(effect, Effect::Send { .. } | Effect::SendLent { .. })
            {
                inputs.count_sent(position);
            }
            match effect {
                Effect::Send { to, message } => self.send(from, to, |_, frame| {
                    codec::seal_into(&WireFrame::Raft(message), frame)
                }),
                Effect::SendLent {
                    to,
                    header,
                    entries,
                } => {
                    self.send(from, to, |world, frame| {
                        let node = world.hosts[position].node.as_ref().ok_or_else(|| {
                            codec::EncodeError {
                                reason: format!("{from} lent entries {entries:?} while down"),
                            }
                        })?;
                        seal_lent::<M>(node.storage(), header, &entries, frame)
                    })
                }
                Effect::SetTimer { timer, deadline } => {
                    let host = &mut self.hosts[position];
                    host.timer_generation[timer.slot()] += 1;
                    let generation = host.timer_generation[timer.slot()];
                    let at = host.clock.global(deadline).max(self.now);
                    self.queue.push(
                        at,
                        Event::Timer {
                            node: from,
                            kind: timer,
                            generation,
                        },
                    );
                }
                Effect::ProposalOutcome { id, outcome } => {
                    let client = (id.client.0 - 1) as usize;
                    let latency = self.network.client_latency();
                    let response = Response::Proposal { id, outcome };
                    self.queue.push(
                        self.now + latency,
                        Event::ClientResponse {
                            client,
                            response: Box::new(response),
                        },
                    );
                }
                Effect::QueryOutcome { id, outcome } => {
                    let client = (id >> QUERY_CLIENT_SHIFT) as usize;
                    let latency = self.network.client_latency();
                    let response = Response::Query {
                        id,
                        node: from,
                        incarnation: self.hosts[position].incarnation,
                        outcome,
                    };
                    self.queue.push(
                        self.now + latency,
                        Event::ClientResponse {
                            client,
                            response: Box::new(response),
                        },
                    );
                }
                Effect::ProposalAccepted { .. } => {}
            }
        }
        self.effects = effects;
    }

    /// Sends a message `from -> to`, which `encode` writes into a frame once
    /// the network has decided to carry it.
    fn send(
        &mut self,
        from: PeerId,
        to: PeerId,
        encode: impl FnOnce(&Self, &mut Vec<u8>) -> Result<(), codec::EncodeError>,
    ) {
        self.stats.messages_sent += 1;
        if let Some((doomed, Doom::Messages(left))) = &mut self.doomed
            && self.hosts[*doomed].id == from
        {
            if *left == 0 {
                return; // it crashes before this one leaves
            }
            *left -= 1;
        }
        if !self.bonded(from, to) {
            // Nodes of different groups never bonded: nothing passes between them.
            self.stats.messages_unbonded += 1;
            return;
        }
        let mut deliveries = core::mem::take(&mut self.deliveries);
        self.network.route(from, to, self.now, &mut deliveries);
        if !deliveries.is_empty() {
            let mut frame = self
                .frames
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(FRAME_CAPACITY));
            frame.clear();
            match encode(self, &mut frame) {
                Ok(()) => {
                    let last = deliveries.len() - 1;
                    for (number, delivery) in deliveries.iter().enumerate() {
                        // The last copy takes the buffer itself.
                        let mut copy = if number == last {
                            core::mem::take(&mut frame)
                        } else {
                            frame.clone()
                        };
                        if delivery.corrupt {
                            self.network.corrupt(from, to, &mut copy);
                        }
                        self.queue.push(
                            delivery.arrival,
                            Event::Deliver {
                                from,
                                to,
                                sent: self.now,
                                frame: copy,
                            },
                        );
                    }
                }
                Err(error) => self.violations.push((
                    self.now,
                    "engine",
                    format!("{from}: a message does not encode: {error}"),
                )),
            }
        }
        self.deliveries = deliveries;
    }

    /// Keeps a delivered frame's buffer for a later send.
    fn recycle(&mut self, frame: Vec<u8>) {
        if self.frames.len() < FRAME_POOL_MAX {
            self.frames.push(frame);
        }
    }

    /// Whether the entry a leader just committed could still be lost: a node
    /// that lacks it, with a log at least as up to date as a quorum of voters'
    /// logs, could win a later election and overwrite it. In correct Raft this
    /// never holds (every node of the quorum that acknowledged the entry refuses
    /// such a candidate), so it catches an unsafe commit (Figure 8) the moment
    /// it happens, without waiting for a schedule that realises the loss.
    fn commit_can_be_lost(&self, leader: usize, commit: Index) -> Option<String> {
        let term = self.hosts[leader]
            .node
            .as_ref()?
            .storage()
            .term_at(commit)?;
        // Every matched voter's log, up or down.
        let logs = || {
            self.hosts
                .iter()
                .filter(|host| host.mismatch.is_none())
                .filter_map(|host| match (&host.node, &host.disk) {
                    (Some(node), _) => Some((host.id, node.storage())),
                    (None, Some(disk)) => Some((host.id, disk)),
                    (None, None) => None,
                })
        };
        // A node that compacted past the entry has applied it, so holds it.
        let holds = |storage: &Store<M>| {
            commit < *storage.available().start() || storage.term_at(commit) == Some(term)
        };
        // The most up to date node lacking it: if no quorum would vote for it,
        // none would vote for any other node lacking it. O(nodes) per commit.
        let (candidate, last) = logs()
            .filter(|(_, storage)| !holds(storage))
            .map(|(id, storage)| (id, storage.last()))
            .max_by_key(|(_, last)| *last)?;
        let voters = || logs().filter(|(_, storage)| storage.last() <= last);
        if voters().count() < self.group.quorum() {
            return None;
        }
        let names: Vec<String> = voters().map(|(id, _)| id.to_string()).collect();
        Some(format!(
            "committed entry can be lost: {} committed {commit} of term {term}, \
             but {candidate} lacks it and could be elected by {}",
            self.hosts[leader].id,
            names.join(", ")
        ))
    }

    pub(crate) fn record(&mut self, position: Option<usize>, what: What) {
        let (node, term, role) = match position {
            Some(position) => {
                let host = &self.hosts[position];
                match &host.node {
                    Some(node) => {
                        let status = node.status();
                        (Some(host.id), status.term, Some(status.role))
                    }
                    None => (Some(host.id), crate::log::Term::ZERO, None),
                }
            }
            None => (None, crate::log::Term::ZERO, None),
        };
        self.trace.record(TraceEvent {
            time: self.now,
            node,
            term,
            role,
            what,
        });
    }

    /// Records what happened at a node whose `status` the caller has at hand.
    fn record_at(&mut self, status: &Status, what: What) {
        self.trace.record(TraceEvent {
            time: self.now,
            node: Some(status.id),
            term: status.term,
            role: Some(status.role),
            what,
        });
    }

    fn leader(&self) -> Option<usize> {
        self.hosts
            .iter()
            .enumerate()
            .filter_map(|(position, host)| host.node.as_ref().map(|node| (position, node.status())))
            .filter(|(_, status)| status.role == Role::Leader)
            .max_by_key(|(_, status)| status.term)
            .map(|(position, _)| position)
    }

    fn resolve(&mut self, target: Target, eligible: impl Fn(&Host<M>) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.hosts.len())
            .filter(|&position| eligible(&self.hosts[position]))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        match target {
            Target::Node(id) if candidates.contains(&Self::position(id)) => {
                Some(Self::position(id))
            }
            Target::Leader => self
                .leader()
                .filter(|position| candidates.contains(position))
                .or_else(|| {
                    Some(
                        candidates
                            [uniform_u64(&mut self.fault_rng, 0, candidates.len() as u64) as usize],
                    )
                }),
            Target::Node(_) => Some(
                candidates[uniform_u64(&mut self.fault_rng, 0, candidates.len() as u64) as usize],
            ),
        }
    }

    fn apply_fault(&mut self, action: FaultAction) {
        if self.quiet {
            return;
        }
        self.stats.faults_injected += 1;
        match &action {
            FaultAction::Partition(kind) => {
                let nodes: Vec<PeerId> = self.hosts.iter().map(|host| host.id).collect();
                let leader = self.leader().map(|position| self.hosts[position].id);
                let description = self
                    .network
                    .partition(kind, &nodes, leader, &mut self.fault_rng);
                self.record(None, What::Fault(description));
            }
            FaultAction::Heal => {
                self.network.heal();
                self.record(None, What::Fault("heal".into()));
            }
            FaultAction::Crash(target) => {
                if let Some(position) = self.resolve(*target, |host| host.node.is_some()) {
                    self.crash(position);
                }
            }
            FaultAction::CrashNextVoter => {
                self.crash_next_voter = true;
                self.record(None, What::Fault(action.to_string()));
            }
            FaultAction::CrashNextLeader { messages } => {
                self.crash_next_leader = Some(*messages);
                self.record(None, What::Fault(action.to_string()));
            }
            FaultAction::LeaderChurn { rounds } => {
                self.churn_rounds = *rounds;
                self.record(None, What::Fault(action.to_string()));
                // The current leader is the first to go.
                if let Some(leader) = self.leader()
                    && self.doomed.is_none()
                    && self.churn_rounds > 0
                {
                    self.churn_rounds -= 1;
                    self.doomed = Some((leader, self.churn_doom()));
                }
            }
            FaultAction::Restart(node) => {
                let position = Self::position(*node);
                if self
                    .hosts
                    .get(position)
                    .is_some_and(|host| host.node.is_none())
                {
                    self.restart(position);
                }
            }
            FaultAction::RestartOldest => {
                let oldest = (0..self.hosts.len())
                    .filter(|&position| self.hosts[position].node.is_none())
                    .min_by_key(|&position| (self.hosts[position].down_since, position));
                if let Some(position) = oldest {
                    self.restart(position);
                }
            }
            FaultAction::Pause(target) => {
                if let Some(position) =
                    self.resolve(*target, |host| host.node.is_some() && !host.paused)
                {
                    self.hosts[position].paused = true;
                    self.hosts[position].paused_since = self.now;
                    self.record(Some(position), What::Fault("pause".into()));
                }
            }
            FaultAction::ResumeOldest => {
                let oldest = (0..self.hosts.len())
                    .filter(|&position| self.hosts[position].paused)
                    .min_by_key(|&position| (self.hosts[position].paused_since, position));
                if let Some(position) = oldest {
                    self.resume(position);
                }
            }
            FaultAction::Clock {
                node,
                offset_ms,
                drift_ppm,
            } => {
                let position = Self::position(*node);
                let host = &mut self.hosts[position];
                let local = host.clock.local(self.now);
                // Clocks are monotonic: an offset only ever jumps forward.
                let jump = u64::try_from((*offset_ms).max(0)).unwrap_or(0) * 1_000_000;
                host.clock = Clock {
                    base_global: self.now.as_nanos(),
                    base_local: local.as_nanos() + jump,
                    drift_ppm: *drift_ppm,
                };
                self.record(Some(position), What::Fault(action.to_string()));
            }
        }
    }

    fn crash(&mut self, position: usize) {
        self.crash_losing(position, None);
    }

    /// How a leader under churn dies: after a few messages, or at its first
    /// commit.
    fn churn_doom(&mut self) -> Doom {
        if chance(&mut self.fault_rng, 500_000) {
            Doom::FirstCommit
        } else {
            Doom::Messages(uniform_u64(&mut self.fault_rng, 0, 3) as u32)
        }
    }

    /// Restarts the node at `position` after a delay drawn from `low..high`.
    fn restart_soon(&mut self, position: usize, low: Duration, high: Duration) {
        let delay = uniform_duration(&mut self.fault_rng, low, high);
        let node = self.hosts[position].id;
        self.queue
            .push(self.now + delay, Event::Fault(FaultAction::Restart(node)));
    }

    /// Crashes a node; what its storage loses is `outcome`, or drawn.
    fn crash_losing(&mut self, position: usize, outcome: Option<CrashOutcome>) {
        if self.doomed.is_some_and(|(doomed, _)| doomed == position) {
            self.doomed = None;
        }
        let outcome = if let Some(outcome) = outcome {
            outcome
        } else if chance(&mut self.fault_rng, 500_000) {
            CrashOutcome::LoseUnsynced
        } else {
            let unsynced = self.hosts[position]
                .node
                .as_ref()
                .map_or(0, |node| node.storage().unsynced_writes());
            CrashOutcome::KeepPrefix {
                writes: uniform_u64(&mut self.fault_rng, 0, unsynced as u64 + 1) as usize,
            }
        };
        let host = &mut self.hosts[position];
        let node = host.node.take().expect("crashing a running node");
        self.stats.entries_received.add(node.entries_received());
        let mut disk = node.into_storage();
        let lost = disk.crash(outcome);
        // A granted vote must survive any crash: the candidate may already
        // count it, and a node that forgets it can vote twice in one term.
        let kept = disk.hard_state();
        if let Some((term, candidate)) = host.granted
            && (kept.current_term < term
                || (kept.current_term == term && kept.voted_for != Some(candidate)))
        {
            self.violations.push((
                self.now,
                "safety",
                format!(
                    "vote durability: {} granted its vote in term {term} to {candidate}, \
                     but after a crash its storage holds term {} and vote {}",
                    host.id,
                    kept.current_term,
                    kept.voted_for.map_or("none".to_owned(), |v| v.to_string())
                ),
            ));
        }
        host.disk = Some(disk);
        host.paused = false;
        host.deferred.clear();
        host.down_since = self.now;
        host.last_status = None;
        for generation in &mut host.timer_generation {
            *generation += 1;
        }
        self.record(
            Some(position),
            What::Fault(format!("crash ({lost} unsynced writes lost)")),
        );
    }

    fn restart(&mut self, position: usize) {
        self.record(Some(position), What::Fault("restart".into()));
        self.boot(position);
    }

    fn resume(&mut self, position: usize) {
        let host = &mut self.hosts[position];
        host.paused = false;
        let deferred = core::mem::take(&mut host.deferred);
        self.record(Some(position), What::Fault("resume".into()));
        for event in deferred {
            self.queue.push(self.now, event);
        }
    }

    /// The faults stop: heal, restart and resume everything, perfect network.
    fn end_faults(&mut self) {
        self.quiet = true;
        self.crash_next_leader = None;
        self.crash_next_voter = false;
        self.churn_rounds = 0;
        self.doomed = None;
        self.network.heal();
        self.network.set_faults(super::config::NetworkFaults::NONE);
        self.record(None, What::Fault("faults end; quiet period".into()));
        for position in 0..self.hosts.len() {
            if self.hosts[position].node.is_none() {
                self.restart(position);
            } else if self.hosts[position].paused {
                self.resume(position);
            }
        }
        // Clients finish what they started, with the whole quiet period to do it.
        let end = self.now + self.config.quiet_period;
        for client in &mut self.clients {
            if let Some(pending) = &mut client.pending {
                pending.deadline = end;
            }
        }
    }

    // --- Clients -------------------------------------------------------------

    fn schedule_wake(&mut self, client: usize, at: Instant) {
        let state = &mut self.clients[client];
        state.generation += 1;
        let generation = state.generation;
        self.queue
            .push(at.max(self.now), Event::ClientWake { client, generation });
    }

    fn client_wake(&mut self, client: usize) {
        let Some(pending) = &self.clients[client].pending else {
            if !self.quiet {
                self.start_operation(client);
            }
            return;
        };
        if self.now >= pending.deadline {
            let index = pending.history_index;
            self.history
                .complete(index, OperationOutcome::Info { at: self.now });
            self.clients[client].pending = None;
            self.next_operation_later(client);
        } else if self.now >= pending.attempt_deadline {
            let next = self.next_node(client);
            self.clients[client].target = next;
            self.attempt(client);
        } else {
            let at = pending.attempt_deadline.min(pending.deadline);
            self.schedule_wake(client, at);
        }
    }

    /// Another node for `client` to try.
    fn next_node(&mut self, client: usize) -> PeerId {
        let count = self.config.nodes;
        let state = &mut self.clients[client];
        let step = uniform_u64(&mut state.rng, 1, count.max(2));
        PeerId((state.target.0 - 1 + step) % count + 1)
    }

    fn next_operation_later(&mut self, client: usize) {
        let think = uniform_duration(
            &mut self.clients[client].rng,
            Duration::ZERO,
            Duration::from_millis(10),
        );
        self.schedule_wake(client, self.now + think);
    }

    fn start_operation(&mut self, client: usize) {
        if let Some(scripts) = &mut self.scripts {
            // A scenario's next operation, at its time; none left: idle.
            let Some((at, _)) = scripts[client].last() else {
                return;
            };
            let at = Instant::ZERO + *at;
            if at > self.now {
                self.schedule_wake(client, at);
            } else if let Some((_, operation)) = scripts[client].pop() {
                self.issue(client, operation);
            }
            return;
        }
        let client_number = self.clients[client].id.0;
        let operation = match self
            .workload
            .operation(&mut self.workload_rng, client_number)
        {
            Some(operation) => operation,
            None => self.draw_operation(client_number),
        };
        self.issue(client, operation);
    }

    /// A read or a write, by the configured read ratio, from the workload. All
    /// from the workload's stream, so a scenario (which spells operations out)
    /// leaves the clients' stream as the seed had it.
    fn draw_operation(&mut self, client_number: u64) -> Operation<M> {
        let read =
            uniform_u64(&mut self.workload_rng, 0, 1000) < u64::from(self.config.read_per_mille);
        if read {
            let strong = uniform_u64(&mut self.workload_rng, 0, 1000)
                >= u64::from(self.config.weak_read_per_mille);
            Operation::Query {
                query: self.workload.query(&mut self.workload_rng, client_number),
                strong,
            }
        } else {
            Operation::Command(self.workload.command(&mut self.workload_rng, client_number))
        }
    }

    /// Records `operation` as invoked by `client` and sends its first attempt.
    fn issue(&mut self, client: usize, operation: Operation<M>) {
        let client_number = self.clients[client].id.0;
        let history_index = self
            .history
            .invoke(client_number, operation.clone(), self.now);
        let mut session = Index::ZERO;
        let proposal = match operation {
            Operation::Command(_) => {
                if self.clients[client].session.is_none() {
                    let target = Self::position(self.clients[client].target);
                    let committed = self.hosts[target]
                        .node
                        .as_ref()
                        .map_or(Index::ZERO, |node| node.status().commit_index);
                    self.clients[client].session = Some(committed);
                }
                let state = &mut self.clients[client];
                session = state.session.expect("opened above");
                state.next_sequence += 1;
                state.commands.push(history_index);
                Some(ProposalId {
                    client: state.id,
                    sequence: state.next_sequence,
                })
            }
            Operation::Query { .. } => None,
        };
        self.clients[client].pending = Some(Pending {
            operation,
            history_index,
            proposal,
            session,
            query: None,
            deadline: self.now + self.config.operation_timeout,
            attempt_deadline: self.now,
        });
        self.attempt(client);
    }

    /// Sends the pending operation to the client's target node.
    fn attempt(&mut self, client: usize) {
        let now = self.now;
        let attempt_timeout = self.config.attempt_timeout;
        let state = &mut self.clients[client];
        let target = state.target;
        let Some(pending) = state.pending.as_mut() else {
            return;
        };
        pending.attempt_deadline = now + attempt_timeout;
        let request = match &pending.operation {
            Operation::Command(command) => Request::Propose(Proposal {
                id: pending.proposal.expect("commands have a proposal id"),
                command: command.clone(),
                settled_below: pending
                    .proposal
                    .expect("commands have a proposal id")
                    .sequence,
                session: pending.session,
            }),
            Operation::Query { query, strong } => {
                state.next_query += 1;
                let id = ((client as u64) << QUERY_CLIENT_SHIFT) | state.next_query;
                pending.query = Some(id);
                Request::Query {
                    id,
                    query: query.clone(),
                    consistency: if *strong {
                        Consistency::Strong
                    } else {
                        Consistency::Weak
                    },
                }
            }
        };
        let wake = pending.attempt_deadline.min(pending.deadline);
        let history_index = pending.history_index;
        let latency = self.network.client_latency();
        self.queue.push(
            now + latency,
            Event::ClientRequest {
                client,
                node: target,
                request: Box::new(request),
                history_index,
            },
        );
        self.schedule_wake(client, wake);
    }

    fn client_request(
        &mut self,
        client: usize,
        node: PeerId,
        request: Box<Request<M>>,
        history_index: usize,
    ) {
        let position = Self::position(node);
        if self.hosts[position].node.is_none() {
            return; // lost with the crashed node; the client will time out
        }
        if self.hosts[position].paused {
            self.hosts[position].deferred.push(Event::ClientRequest {
                client,
                node,
                request,
                history_index,
            });
            return;
        }
        let shown = RequestShown {
            history_index,
            kind: match &*request {
                Request::Propose(proposal) => RequestKind::Propose(proposal.id),
                Request::Query { consistency, .. } => RequestKind::Query(*consistency),
            },
        };
        let operation = if self.trace.wants_text() {
            self.describe(shown)
        } else {
            // Written only if the request is still in a report's tail.
            if self.recent_requests.len() == TRACE_TAIL_EVENTS {
                self.recent_requests.pop_front();
            }
            self.recent_requests.push_back(shown);
            String::new()
        };
        let what = What::Request {
            client: self.clients[client].id.0,
            operation,
            digest: request_digest(&request),
        };
        match *request {
            Request::Propose(proposal) => {
                self.record_input(position, || Input::Propose(proposal.clone()));
                self.step_node(position, Some(what), |node, now| {
                    node.propose(now, proposal)
                });
            }
            Request::Query {
                id,
                query,
                consistency,
            } => {
                self.record_input(position, || Input::Query {
                    id,
                    query: query.clone(),
                    consistency,
                });
                self.step_node(position, Some(what), |node, now| {
                    node.query(now, id, query, consistency)
                });
            }
        }
    }

    /// The text of a client request, as the trace shows it.
    fn describe(&self, shown: RequestShown) -> String {
        match (
            shown.kind,
            &self.history.operations[shown.history_index].operation,
        ) {
            (RequestKind::Propose(id), Operation::Command(command)) => {
                format!("propose {id} {command:?}")
            }
            (RequestKind::Query(consistency), Operation::Query { query, .. }) => {
                format!("{consistency:?} query {query:?}")
            }
            (kind, operation) => unreachable!("{kind:?} made from {operation:?}"),
        }
    }

    /// The last trace events, with the text of each client request written in.
    pub(crate) fn trace_tail(&self) -> Vec<TraceEvent> {
        let mut tail = self.trace.tail();
        // The requests left unwritten are the last ones recorded, in order.
        let mut recent = self.recent_requests.iter().rev();
        for event in tail.iter_mut().rev() {
            if let What::Request { operation, .. } = &mut event.what
                && operation.is_empty()
                && let Some(&shown) = recent.next()
            {
                *operation = self.describe(shown);
            }
        }
        tail
    }

    fn client_response(&mut self, client: usize, response: Response<M>) {
        let Some(pending) = &self.clients[client].pending else {
            return;
        };
        let index = pending.history_index;
        let retry_at = |world: &mut Self, hint: Option<PeerId>, backoff: Duration| {
            let state = &mut world.clients[client];
            state.target = hint.unwrap_or(state.target);
            if hint.is_none() {
                let next = world.next_node(client);
                world.clients[client].target = next;
            }
            if let Some(pending) = world.clients[client].pending.as_mut() {
                pending.attempt_deadline = world.now + backoff;
            }
            world.schedule_wake(client, world.now + backoff);
        };
        match response {
            Response::Proposal { id, outcome } => {
                if pending.proposal != Some(id) {
                    return;
                }
                match outcome {
                    ProposalOutcome::Committed { .. } => {
                        self.history.complete(
                            index,
                            OperationOutcome::Ok {
                                at: self.now,
                                answer: None,
                            },
                        );
                        self.clients[client].pending = None;
                        self.next_operation_later(client);
                    }
                    ProposalOutcome::Rejected(crate::raft::ProposeError::NotLeader { leader }) => {
                        retry_at(self, leader, not_leader_backoff(leader));
                    }
                    ProposalOutcome::Rejected(crate::raft::ProposeError::Busy)
                    | ProposalOutcome::Unknown => {
                        retry_at(self, None, Duration::from_millis(20));
                    }
                    ProposalOutcome::SessionExpired { index: expired_at } => {
                        // Whether an earlier copy was applied cannot be told:
                        // the operation's outcome is unknown. The next ones
                        // go in a new session.
                        self.stats.sessions_expired += 1;
                        self.history
                            .complete(index, OperationOutcome::Info { at: self.now });
                        let state = &mut self.clients[client];
                        state.session = state.session.max(Some(expired_at));
                        state.pending = None;
                        self.next_operation_later(client);
                    }
                }
            }
            Response::Query {
                id,
                node,
                incarnation,
                outcome,
            } => {
                if pending.query != Some(id) {
                    return;
                }
                match outcome {
                    Ok(answer) => {
                        if matches!(pending.operation, Operation::Query { strong: false, .. }) {
                            self.weak_read_sources.insert(index, (node.0, incarnation));
                        }
                        let answer = Some((answer.result, answer.position));
                        self.history.complete(
                            index,
                            OperationOutcome::Ok {
                                at: self.now,
                                answer,
                            },
                        );
                        self.clients[client].pending = None;
                        self.next_operation_later(client);
                    }
                    Err(QueryError::NotLeader { leader }) => {
                        retry_at(self, leader, not_leader_backoff(leader));
                    }
                    Err(QueryError::Timeout | QueryError::Busy) => {
                        retry_at(self, None, Duration::from_millis(20))
                    }
                }
            }
        }
    }

    // --- End of run ----------------------------------------------------------

    /// Liveness after the quiet period: a leader, no pending operation, every
    /// matched replica at the same applied index with equal state. Also checks
    /// that nodes of another GroupId were never influenced.
    /// Every client command the committed log applied, in log order: its
    /// index and its place in the history. A copy the engine's sessions skip
    /// (a retry of one applied, or one its client has since settled past) is
    /// left out, by the same sessions. `None` where the log cannot tell:
    /// no node up, a prefix compacted away, an entry no client of this run
    /// proposed.
    pub(crate) fn commands_in_log_order(&self) -> Option<Vec<(Index, usize)>> {
        let node = self
            .hosts
            .iter()
            .filter(|host| host.mismatch.is_none())
            .filter_map(|host| host.node.as_ref())
            .max_by_key(|node| node.status().commit_index)?;
        let storage = node.storage();
        if !storage.available().start().is_zero() {
            return None;
        }
        let committed = usize::try_from(node.status().commit_index.0).ok()?;
        // The engine's own sessions, fed the log as the engine feeds them,
        // skip what the engine skipped.
        let mut sessions = Sessions::new(self.options.sessions_max);
        let mut commands = Vec::new();
        for (position, (_, entry)) in storage.entries_from(Index(1)).take(committed).enumerate() {
            let Some(entry) = entry.as_command() else {
                continue;
            };
            let (id, index) = (entry.proposal, Index(position as u64 + 1));
            if sessions.seen(id, entry.session) != Seen::New {
                continue;
            }
            sessions.record(id, entry.settled_below, entry.session, index);
            let client = self
                .clients
                .get(usize::try_from(id.client.0).ok()?.checked_sub(1)?)?;
            let sequence = usize::try_from(id.sequence).ok()?.checked_sub(1)?;
            commands.push((index, *client.commands.get(sequence)?));
        }
        Some(commands)
    }

    pub(crate) fn final_checks(&mut self) -> Vec<(&'static str, String)> {
        let mut failures = Vec::new();
        let matched: Vec<usize> = (0..self.hosts.len())
            .filter(|&position| self.hosts[position].mismatch.is_none())
            .collect();
        for host in &self.hosts {
            if let (Some(input), Some(node)) = (host.mismatch, &host.node) {
                let status = node.status();
                if status.applied.index() > Index::ZERO || status.commit_index > Index::ZERO {
                    failures.push((
                        "group isolation",
                        format!("{} (different {input}) applied or committed entries of another group: {status:?}", host.id),
                    ));
                }
            }
        }
        if self
            .leader()
            .is_none_or(|position| self.hosts[position].mismatch.is_some())
        {
            // The nodes by role and term: a group stuck in elections shows
            // as candidates of ever higher terms. A node of another GroupId
            // (which never bonds) is named apart.
            let mut groups: BTreeMap<Option<(Term, Role)>, Vec<String>> = BTreeMap::new();
            for host in &self.hosts {
                let state = host.node.as_ref().map(|node| {
                    let status = node.status();
                    (status.term, status.role)
                });
                let name = match host.mismatch {
                    Some(input) => format!("{} (different {input})", host.id),
                    None => host.id.to_string(),
                };
                groups.entry(state).or_default().push(name);
            }
            let groups: Vec<String> = groups
                .into_iter()
                .map(|(state, nodes)| match state {
                    Some((term, role)) => format!("{} {role} in term {term}", nodes.join(" ")),
                    None => format!("{} down", nodes.join(" ")),
                })
                .collect();
            failures.push((
                LIVENESS,
                format!(
                    "no leader at the end of the quiet period: {}",
                    groups.join("; ")
                ),
            ));
        }
        let pending: Vec<(&Client<M>, &Pending<M>)> = self
            .clients
            .iter()
            .filter_map(|client| client.pending.as_ref().map(|pending| (client, pending)))
            .collect();
        let oldest = pending
            .iter()
            .min_by_key(|(_, pending)| pending.history_index);
        if let Some((client, first)) = oldest {
            // The oldest is where to start looking: name it, and the node its
            // client turns to.
            let invoked = self.history.operations[first.history_index].invoked;
            let what = match &first.operation {
                Operation::Command(command) => format!("command {command:?}"),
                Operation::Query { query, strong } => {
                    format!(
                        "{} query {query:?}",
                        if *strong { "strong" } else { "weak" }
                    )
                }
            };
            failures.push((
                LIVENESS,
                format!(
                    "{} still pending after the quiet period; the oldest, client {}'s {what}, \
                     was invoked at {invoked}, and its client turns to {}",
                    match pending.len() {
                        1 => "1 client operation".to_owned(),
                        count => format!("{count} client operations"),
                    },
                    client.id.0,
                    client.target
                ),
            ));
        }
        let states: Vec<(PeerId, Status, &M)> = matched
            .iter()
            .filter_map(|&position| {
                let host = &self.hosts[position];
                host.node
                    .as_ref()
                    .map(|node| (host.id, node.status(), node.machine()))
            })
            .collect();
        if let Some((first_id, first_status, first_machine)) = states.first() {
            for (id, status, machine) in &states[1..] {
                if status.applied.index() != first_status.applied.index() {
                    failures.push((
                        LIVENESS,
                        format!(
                            "replicas did not converge: {first_id} applied {} but {id} applied {}",
                            first_status.applied, status.applied
                        ),
                    ));
                    break;
                }
                if machine != first_machine {
                    failures.push((
                        "state machine safety",
                        format!(
                            "{first_id} and {id} applied through {} but their states differ",
                            status.applied
                        ),
                    ));
                    break;
                }
            }
            // Not a safety check: a node that commits or applies another
            // entry is caught as it does so. One that lags (it crashed and
            // is still catching up, or holds an old term's entries the
            // leader has yet to overwrite) did not converge in time.
            let committed = self.invariants.committed_index();
            for (id, _, _) in &states {
                let held = self.invariants.committed_held_through(*id);
                if held < committed {
                    failures.push((
                        LIVENESS,
                        format!(
                            "{id} holds the committed log only through {held} of {committed} at the end"
                        ),
                    ));
                }
            }
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_map_both_ways_with_and_without_drift() {
        for drift_ppm in [0, 250, -400] {
            let clock = Clock {
                base_global: 1_000,
                base_local: 5_000,
                drift_ppm,
            };
            for global in [1_000, 1_001, 7_777_777, 3_000_000_123] {
                let local = clock.local(Instant::from_nanos(global));
                let back = clock.global(local);
                // The first global instant at which the clock reads `local`.
                assert!(clock.local(back) >= local, "drift {drift_ppm}: {global}");
                assert!(
                    back <= Instant::from_nanos(global),
                    "drift {drift_ppm}: {global}"
                );
                if drift_ppm == 0 {
                    assert_eq!(local, Instant::from_nanos(global + 4_000));
                    assert_eq!(back, Instant::from_nanos(global));
                }
            }
            // Before its base the clock reads its base.
            assert_eq!(
                clock.local(Instant::from_nanos(10)),
                Instant::from_nanos(5_000)
            );
        }
    }
}
