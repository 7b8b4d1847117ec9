//! The node task: one tokio task that owns a [`Node`], feeds it events and
//! executes its effects.

use core::fmt;
use core::time::Duration;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

use super::group::{ClientState, Group, GroupStatus};
use super::net::{self, Backoff, BondLog, NET_INBOX_CAPACITY, Net, NetContext};
use super::transport::{Listener, Transport};
use crate::env::{Entropy, Instant, TimerKind, derive_entropy, entropy_from_seed};
use crate::id::{GroupIdInputs, GroupKey, PeerId};
use crate::log::{Cursor, Storage};
use crate::machine::{StateMachine, StateSync};
use crate::raft::{
    ConfigError, Consistency, Effect, EntryOf, GroupConfig, Message, Node, NodeOptions, Proposal,
    ProposalId, ProposalOutcome, QueryAnswer, QueryError, QueryId,
};

/// Events the node task handles before one flush: bounds the latency a burst
/// of events can add to the ones at its end, while one fsync covers them all.
pub const EVENT_BATCH_MAX: usize = 1024;
/// Requests from handles waiting for the node task.
pub const REQUEST_QUEUE_CAPACITY: usize = 4096;

/// How to run one node.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// This node's id; must be one of `group.voters`.
    pub id: PeerId,
    /// The consensus parameters every member shares (part of the GroupId).
    pub group: GroupConfig,
    /// Per-node limits and timeouts of the engine.
    pub options: NodeOptions,
    /// The group key.
    pub key: GroupKey,
    /// Where each other voter listens for bonds.
    pub peers: BTreeMap<PeerId, SocketAddr>,
    /// Reconnect backoff of the bonds this node dials.
    pub backoff: Backoff,
    /// The default timeout of every call on the [`Group`] handle.
    pub call_timeout: Duration,
    /// Run `flush` (which fsyncs) with `tokio::task::block_in_place` on a
    /// multi-threaded runtime, so other tasks move off the blocked worker.
    /// Worth turning off only when the storage does not fsync.
    pub blocking_sync: bool,
    /// What [`start`] binds and every bond dials: tokio's TCP, or a
    /// simulator's (see [`Transport`]).
    pub transport: Transport,
    /// A bond that wrote and read nothing back for this long is closed and
    /// redialed (see [`super::transport`] on stalled streams).
    pub bond_stall_timeout: Duration,
    /// `None` in production: every random draw (engine, jitter, client id,
    /// handshake nonces) is seeded from the OS. `Some` under a deterministic
    /// simulator: every draw derives from this seed, so a run replays. Never
    /// set it in production: handshake nonces become predictable.
    pub seed: Option<u64>,
}

impl RuntimeConfig {
    /// A config for node `id` of `group`, with default options and timeouts.
    pub fn new(
        id: PeerId,
        group: GroupConfig,
        key: GroupKey,
        peers: BTreeMap<PeerId, SocketAddr>,
    ) -> Self {
        Self {
            id,
            group,
            options: NodeOptions::default(),
            key,
            peers,
            backoff: Backoff::default(),
            call_timeout: Duration::from_secs(10),
            blocking_sync: true,
            transport: Transport::Tcp,
            bond_stall_timeout: Duration::from_secs(2),
            seed: None,
        }
    }
}

/// Why a node could not start.
#[derive(Debug)]
pub enum StartError {
    /// The configuration was refused by the engine.
    Config(ConfigError),
    /// A peer is listed that is not a voter, or a voter has no address.
    Peers(String),
    /// Binding the listen address failed.
    Bind(io::Error),
    /// The operating system gave no entropy.
    Entropy(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(error) => write!(f, "configuration: {error}"),
            Self::Peers(problem) => write!(f, "peers: {problem}"),
            Self::Bind(error) => write!(f, "bind: {error}"),
            Self::Entropy(error) => write!(f, "OS entropy: {error}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A request from a [`Group`] handle to its node task.
pub(crate) enum Request<M: StateMachine> {
    Propose {
        proposal: Proposal<M::Command>,
        accepted: Option<oneshot::Sender<Cursor>>,
        outcome: oneshot::Sender<ProposalOutcome>,
        /// Told when the group refuses the proposal's session, even after
        /// the caller stopped waiting (a `feed` returns once accepted).
        client: Arc<ClientState>,
    },
    Query {
        query: M::Query,
        consistency: Consistency,
        reply: oneshot::Sender<QueryReply<M>>,
    },
    Terminate,
}

pub(crate) type QueryReply<M> = Result<QueryAnswer<<M as StateMachine>::QueryResult>, QueryError>;

/// Who waits for a proposal.
struct ProposalWaiter {
    accepted: Option<oneshot::Sender<Cursor>>,
    outcome: oneshot::Sender<ProposalOutcome>,
    client: Arc<ClientState>,
}

/// 32 bytes from the operating system.
pub(crate) fn os_seed() -> Result<[u8; 32], String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|error| error.to_string())?;
    Ok(seed)
}

/// Where a node's seeds come from: the OS, or one ChaCha stream derived from
/// [`RuntimeConfig::seed`].
struct Seeds(Option<Entropy>);

impl Seeds {
    fn new(seed: Option<u64>) -> Self {
        Self(seed.map(|seed| derive_entropy(seed, "runtime node")))
    }

    fn next(&mut self) -> Result<[u8; 32], StartError> {
        match &mut self.0 {
            Some(rng) => {
                let mut seed = [0u8; 32];
                rand_core::Rng::fill_bytes(rng, &mut seed);
                Ok(seed)
            }
            None => os_seed().map_err(StartError::Entropy),
        }
    }
}

/// Starts a node that listens on `listen` over
/// [`config.transport`](RuntimeConfig::transport).
///
/// # Errors
///
/// [`StartError`] if the address cannot be bound or the configuration is refused.
pub async fn start<M, S>(
    config: RuntimeConfig,
    listen: SocketAddr,
    machine: M,
    storage: S,
) -> Result<Group<M>, StartError>
where
    M: StateMachine,
    S: Storage<EntryOf<M>>,
{
    let listener = config
        .transport
        .bind(listen)
        .await
        .map_err(StartError::Bind)?;
    start_with_listener(config, listener, machine, storage)
}

/// Starts a node on an already bound listener (tests bind port 0 first to
/// learn every address). Must be called within a tokio runtime. The listener's
/// transport must be [`config.transport`](RuntimeConfig::transport), which the
/// node dials with.
///
/// # Errors
///
/// [`StartError`] if the configuration is refused or the OS gives no entropy.
pub fn start_with_listener<M, S>(
    config: RuntimeConfig,
    listener: impl Into<Listener>,
    machine: M,
    storage: S,
) -> Result<Group<M>, StartError>
where
    M: StateMachine,
    S: Storage<EntryOf<M>>,
{
    for peer in config.peers.keys() {
        if !config.group.voters.contains(peer) || *peer == config.id {
            return Err(StartError::Peers(format!("{peer} is not another voter")));
        }
    }
    for voter in &config.group.voters {
        if *voter != config.id && !config.peers.contains_key(voter) {
            return Err(StartError::Peers(format!("no address for voter {voter}")));
        }
    }
    let inputs = GroupIdInputs::new(
        &config.key,
        config.group.digest(),
        machine.signature(),
        machine.state_sync().signature(),
    );
    let listener = listener.into();
    if listener.transport() != config.transport {
        return Err(StartError::Peers(format!(
            "the listener is {:?} but the config dials {:?}",
            listener.transport(),
            config.transport
        )));
    }
    let mut seeds = Seeds::new(config.seed);
    let mut rng: Entropy = entropy_from_seed(seeds.next()?);
    let started = tokio::time::Instant::now();
    let node = Node::new(
        config.id,
        config.group.clone(),
        config.options.clone(),
        machine,
        storage,
        entropy_from_seed(seeds.next()?),
        Instant::ZERO,
    )
    .map_err(StartError::Config)?;
    let bond_log = Arc::new(BondLog::default());
    let context = Arc::new(NetContext {
        local: config.id,
        key: config.key.clone(),
        inputs,
        backoff: config.backoff,
        bond_log: bond_log.clone(),
        transport: config.transport,
        stall_timeout: config.bond_stall_timeout,
        nonces: match config.seed {
            Some(_) => Some(Mutex::new(entropy_from_seed(seeds.next()?))),
            None => None,
        },
    });
    let (inbox_tx, inbox_rx) = mpsc::channel(NET_INBOX_CAPACITY);
    let net = net::start(context, listener, &config.peers, inbox_tx, &mut rng);
    let (requests_tx, requests_rx) = mpsc::channel(REQUEST_QUEUE_CAPACITY);
    let (status_tx, status_rx) = watch::channel(GroupStatus::of(&node.status(), true));
    let task = NodeTask {
        node,
        started,
        timers: [None; 3],
        net,
        requests: requests_rx,
        inbox: inbox_rx,
        proposals: BTreeMap::new(),
        queries: BTreeMap::new(),
        next_query: 1,
        status: status_tx,
        effects: Vec::new(),
        blocking_sync: config.blocking_sync,
    };
    tokio::spawn(task.run());
    let client = ClientState::new(seeds.next()?);
    Ok(Group::new(
        config.id,
        requests_tx,
        status_rx,
        Arc::new(client),
        config.call_timeout,
        bond_log,
    ))
}

/// The task that owns the engine.
struct NodeTask<M, S>
where
    M: StateMachine,
    S: Storage<EntryOf<M>>,
{
    node: Node<M, S>,
    started: tokio::time::Instant,
    /// The armed deadline per timer kind.
    timers: [Option<Instant>; 3],
    net: Net<M::Command>,
    requests: mpsc::Receiver<Request<M>>,
    inbox: mpsc::Receiver<(PeerId, Message<M::Command>)>,
    proposals: BTreeMap<ProposalId, ProposalWaiter>,
    queries: BTreeMap<QueryId, oneshot::Sender<QueryReply<M>>>,
    next_query: QueryId,
    status: watch::Sender<GroupStatus>,
    effects: Vec<Effect<M>>,
    // madsim has no `block_in_place`: flushes always run inline there.
    #[cfg_attr(madsim, allow(dead_code))]
    blocking_sync: bool,
}

/// What woke the node task.
enum Wake<M: StateMachine> {
    Request(Option<Request<M>>),
    Message(PeerId, Message<M::Command>),
    Timer,
}

impl<M, S> NodeTask<M, S>
where
    M: StateMachine,
    S: Storage<EntryOf<M>>,
{
    fn now(&self) -> Instant {
        let nanos = self.started.elapsed().as_nanos();
        Instant::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn deadline_of(&self, instant: Instant) -> tokio::time::Instant {
        self.started + Duration::from_nanos(instant.as_nanos())
    }

    async fn run(mut self) {
        let id = self.node.id();
        // The first flush arms the election timer.
        let mut healthy = self.flush().is_ok();
        while healthy {
            let wake = self.wait().await;
            let keep_going = match wake {
                Wake::Request(None) | Wake::Request(Some(Request::Terminate)) => false,
                Wake::Request(Some(request)) => {
                    self.on_request(request);
                    true
                }
                Wake::Message(peer, message) => {
                    let now = self.now();
                    self.node.on_message(now, peer, message);
                    true
                }
                Wake::Timer => true,
            };
            // Group commit: everything already waiting joins this flush.
            if !keep_going || !self.drain_ready() {
                break;
            }
            self.fire_due_timers();
            if let Err(error) = self.flush() {
                tracing::error!(node = %id, "stopping: {error}");
                healthy = false;
            }
        }
        tracing::debug!(node = %id, "node task stopped");
        self.status.send_modify(|status| status.running = false);
    }

    async fn wait(&mut self) -> Wake<M> {
        let next = self.timers.iter().flatten().min().copied();
        let deadline = next.map(|deadline| self.deadline_of(deadline));
        let sleep = async move {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => core::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            request = self.requests.recv() => Wake::Request(request),
            Some((peer, message)) = self.inbox.recv() => Wake::Message(peer, message),
            () = sleep => Wake::Timer,
        }
    }

    /// Handles events that are already waiting, up to [`EVENT_BATCH_MAX`];
    /// false when the node must stop.
    fn drain_ready(&mut self) -> bool {
        for _ in 0..EVENT_BATCH_MAX {
            if let Ok((peer, message)) = self.inbox.try_recv() {
                let now = self.now();
                self.node.on_message(now, peer, message);
                continue;
            }
            match self.requests.try_recv() {
                Ok(Request::Terminate) => return false,
                Ok(request) => self.on_request(request),
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
                Err(mpsc::error::TryRecvError::Empty) => break,
            }
        }
        true
    }

    fn on_request(&mut self, request: Request<M>) {
        let now = self.now();
        match request {
            Request::Propose {
                proposal,
                accepted,
                outcome,
                client,
            } => {
                let id = proposal.id;
                if self.proposals.contains_key(&id) {
                    let _ =
                        outcome.send(ProposalOutcome::Rejected(crate::raft::ProposeError::Busy));
                    return;
                }
                self.proposals.insert(
                    id,
                    ProposalWaiter {
                        accepted,
                        outcome,
                        client,
                    },
                );
                self.node.propose(now, proposal);
            }
            Request::Query {
                query,
                consistency,
                reply,
            } => {
                let id = self.next_query;
                self.next_query += 1;
                self.queries.insert(id, reply);
                self.node.query(now, id, query, consistency);
            }
            Request::Terminate => {}
        }
    }

    fn fire_due_timers(&mut self) {
        let now = self.now();
        for kind in TimerKind::ALL {
            let slot = kind.slot();
            if self.timers[slot].is_some_and(|deadline| deadline <= now) {
                self.timers[slot] = None;
                self.node.on_timer(now, kind);
            }
        }
    }

    fn flush(&mut self) -> Result<(), crate::log::StorageError> {
        let now = self.now();
        let mut effects = core::mem::take(&mut self.effects);
        // madsim runs one thread and has no `block_in_place`.
        #[cfg(not(madsim))]
        let result = if self.blocking_sync
            && tokio::runtime::Handle::current().runtime_flavor()
                == tokio::runtime::RuntimeFlavor::MultiThread
        {
            tokio::task::block_in_place(|| self.node.flush(now, &mut effects))
        } else {
            self.node.flush(now, &mut effects)
        };
        #[cfg(madsim)]
        let result = self.node.flush(now, &mut effects);
        for effect in effects.drain(..) {
            self.execute(effect);
        }
        self.effects = effects;
        let status = GroupStatus::of(&self.node.status(), true);
        self.status.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
        result
    }

    fn execute(&mut self, effect: Effect<M>) {
        match effect {
            Effect::Send { to, message } => self.net.send(to, message),
            // Right after the flush, so the log still holds them.
            Effect::SendLent {
                to,
                header,
                entries,
            } => {
                let message = self.node.lent_message(header, &entries);
                self.net.send(to, message);
            }
            Effect::SetTimer { timer, deadline } => self.timers[timer.slot()] = Some(deadline),
            Effect::ProposalAccepted { id, position } => {
                if let Some(waiter) = self.proposals.get_mut(&id)
                    && let Some(accepted) = waiter.accepted.take()
                {
                    let _ = accepted.send(position);
                }
            }
            Effect::ProposalOutcome { id, outcome } => {
                if let Some(waiter) = self.proposals.remove(&id) {
                    if let ProposalOutcome::SessionExpired { index } = outcome {
                        waiter.client.session_expired(index);
                    }
                    let _ = waiter.outcome.send(outcome);
                }
            }
            Effect::QueryOutcome { id, outcome } => {
                if let Some(reply) = self.queries.remove(&id) {
                    let _ = reply.send(outcome);
                }
            }
        }
    }
}
