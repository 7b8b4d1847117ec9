//! A run's inputs to its engines, kept so that bare engines can be driven
//! through the very same steps outside the simulator.
//!
//! [`Simulation::run_recording_inputs`](super::Simulation::run_recording_inputs)
//! keeps, in order, everything each node was given: its disk and random
//! stream at every boot, every frame it accepted, every timer that fired,
//! every client request. [`NodeInputs::drive_engines`] then replays them
//! through plain [`Node`]s with no simulator around them: decode each frame,
//! step, flush, encode each message sent. That is the engine's share of the
//! run, which is what the simulator's overhead is measured against
//! (`benches/sim.rs`), and it shows that the simulator adds nothing to what an
//! engine does: the replayed engines end exactly where the simulated ones did.
//!
//! ```
//! use quorate::examples::KvStore;
//! use quorate::sim::{SimConfig, Simulation, workload::KvWorkload};
//! use std::time::Duration;
//!
//! let mut config = SimConfig::new(7);
//! config.duration = Duration::from_secs(2);
//! config.quiet_period = Duration::from_secs(2);
//! let (report, inputs) =
//!     Simulation::new(config, KvStore::default, KvWorkload::default()).run_recording_inputs();
//! assert!(report.passed(), "{}", report.failure_text());
//! let inputs = inputs.expect("the run did not panic");
//! let finals = inputs.finals().to_vec();
//! let replay = inputs.drive_engines(|_| KvStore::default()).expect("same machine, same build");
//! assert_eq!(replay.finals, finals);
//! assert_eq!(replay.messages_received, report.stats.messages_delivered);
//! ```

use core::fmt;
use core::ops::RangeInclusive;

use crate::bond::{LentFrame, WireFrame};
use crate::codec;
use crate::env::{Entropy, Instant, TimerKind};
use crate::id::PeerId;
use crate::log::{InMemoryLogStore, Index};
use crate::machine::StateMachine;
use crate::raft::{
    AppendHeader, Consistency, Effect, EntryOf, GroupConfig, LentAppendEntries, Node, NodeOptions,
    Proposal, QueryId, Status,
};

type Store<M> = InMemoryLogStore<EntryOf<M>>;

/// Every input a run gave its engines, in the order it gave them.
pub struct NodeInputs<M: StateMachine> {
    group: GroupConfig,
    options: NodeOptions,
    steps: Vec<Step<M>>,
    /// Messages each node emitted (before the network lost or copied any).
    sent: Vec<u64>,
    /// Each node's status when the run ended; `None` for a node that was down.
    finals: Vec<Option<Status>>,
}

/// One input to one node, at the node's local time.
struct Step<M: StateMachine> {
    node: PeerId,
    at: Instant,
    input: Input<M>,
}

/// What a node was given.
pub(crate) enum Input<M: StateMachine> {
    /// The node (re)started from this disk, drawing from this stream (boxed:
    /// rare, and ten times the size of the others).
    Boot(Box<(Store<M>, Entropy)>),
    /// A frame it accepted: a sealed [`WireFrame::Raft`].
    Message { from: PeerId, frame: Vec<u8> },
    /// A timer of this kind fired.
    Timer(TimerKind),
    /// A client's proposal.
    Propose(Proposal<M::Command>),
    /// A client's query.
    Query {
        id: QueryId,
        query: M::Query,
        consistency: Consistency,
    },
}

/// What [`NodeInputs::drive_engines`] did, to compare with the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineReplay {
    /// Inputs stepped.
    pub steps: u64,
    /// Frames decoded and handed to an engine.
    pub messages_received: u64,
    /// Messages each node emitted, each encoded as the simulator encodes it.
    pub sent: Vec<u64>,
    /// Each node's status at the end; `None` for a node that was down.
    pub finals: Vec<Option<Status>>,
}

/// Why the recorded inputs could not be replayed: the machine factory or the
/// build differs from the run's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayError {
    /// The step, counted from 0.
    pub step: usize,
    /// What went wrong there.
    pub reason: String,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "replaying input {}: {}", self.step, self.reason)
    }
}

impl std::error::Error for ReplayError {}

/// Seals an AppendEntries whose entries `storage` lends
/// ([`Effect::SendLent`]), byte for byte as the owned message would be: the
/// one encoding of lent entries, for the simulator and the replay alike.
pub(crate) fn seal_lent<M: StateMachine>(
    storage: &Store<M>,
    header: AppendHeader,
    entries: &RangeInclusive<Index>,
    frame: &mut Vec<u8>,
) -> Result<(), codec::EncodeError> {
    let held = storage.held(entries).ok_or_else(|| codec::EncodeError {
        reason: format!("lent entries {entries:?} are not in the log"),
    })?;
    codec::seal_into(
        &LentFrame(LentAppendEntries {
            header,
            entries: held,
        }),
        frame,
    )
}

impl<M: StateMachine> NodeInputs<M> {
    pub(crate) fn new(group: GroupConfig, options: NodeOptions, nodes: usize) -> Self {
        Self {
            group,
            options,
            steps: Vec::new(),
            sent: vec![0; nodes],
            finals: vec![None; nodes],
        }
    }

    pub(crate) fn push(&mut self, node: PeerId, at: Instant, input: Input<M>) {
        self.steps.push(Step { node, at, input });
    }

    pub(crate) fn count_sent(&mut self, position: usize) {
        self.sent[position] += 1;
    }

    pub(crate) fn set_final(&mut self, position: usize, status: Option<Status>) {
        self.finals[position] = status;
    }

    /// How many inputs were recorded.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether no input was recorded.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Messages each node emitted during the run, node 1 first.
    pub fn sent(&self) -> &[u64] {
        &self.sent
    }

    /// Each node's status when the run ended, node 1 first; `None` for a node
    /// that was down.
    pub fn finals(&self) -> &[Option<Status>] {
        &self.finals
    }

    /// Drives bare engines, node `id` running `make_machine(id)`, through the
    /// recorded inputs: each frame decoded, each step flushed, each message
    /// sent encoded (and dropped, as the inputs already hold what arrived).
    /// Borrows the inputs, so that a caller timing it drops them (a free per
    /// frame, which the simulator recycles instead) outside what it times.
    /// Proposals and queries are cloned, as a simulated client clones them for
    /// each attempt.
    ///
    /// # Errors
    ///
    /// If `make_machine` or this build differs from the run's so much that a
    /// frame does not decode, a node cannot be built or a message cannot be
    /// encoded.
    pub fn drive_engines(
        &self,
        make_machine: impl Fn(PeerId) -> M,
    ) -> Result<EngineReplay, ReplayError> {
        let Self {
            group,
            options,
            steps,
            sent,
            ..
        } = self;
        let mut nodes: Vec<Option<Node<M, Store<M>>>> = sent.iter().map(|_| None).collect();
        let mut replay = EngineReplay {
            steps: 0,
            messages_received: 0,
            sent: vec![0; sent.len()],
            finals: Vec::new(),
        };
        let mut effects = Vec::new();
        let mut frame = Vec::new();
        for (
            number,
            Step {
                node: id,
                at,
                input,
            },
        ) in steps.iter().enumerate()
        {
            let error = |reason: String| ReplayError {
                step: number,
                reason,
            };
            let (id, at) = (*id, *at);
            let position = usize::try_from(id.0 - 1).expect("node ids fit memory");
            let slot = nodes
                .get_mut(position)
                .ok_or_else(|| error(format!("{id} is not in the group")))?;
            if let Input::Boot(boot) = input {
                let (storage, rng) = (**boot).clone();
                let node = Node::new(
                    id,
                    group.clone(),
                    options.clone(),
                    make_machine(id),
                    storage,
                    rng,
                    at,
                )
                .map_err(|reason| error(reason.to_string()))?;
                *slot = Some(node);
            } else {
                let node = slot
                    .as_mut()
                    .ok_or_else(|| error(format!("{id} is down")))?;
                match input {
                    Input::Boot(_) => unreachable!("handled above"),
                    Input::Message { from, frame } => {
                        match codec::unseal::<WireFrame<M::Command>>(frame) {
                            Ok(WireFrame::Raft(message)) => node.on_message(at, *from, message),
                            Ok(WireFrame::Handshake(_)) => {
                                return Err(error("a handshake among Raft frames".into()));
                            }
                            Err(reason) => return Err(error(reason.to_string())),
                        }
                        replay.messages_received += 1;
                    }
                    Input::Timer(kind) => node.on_timer(at, *kind),
                    Input::Propose(proposal) => node.propose(at, proposal.clone()),
                    Input::Query {
                        id,
                        query,
                        consistency,
                    } => node.query(at, *id, query.clone(), *consistency),
                }
            }
            let node = slot.as_mut().expect("stepped or booted above");
            node.flush(at, &mut effects)
                .map_err(|reason| error(reason.to_string()))?;
            for effect in effects.drain(..) {
                frame.clear();
                let encoded = match effect {
                    Effect::Send { message, .. } => {
                        codec::seal_into(&WireFrame::Raft(message), &mut frame)
                    }
                    Effect::SendLent {
                        header, entries, ..
                    } => seal_lent::<M>(node.storage(), header, &entries, &mut frame),
                    _ => continue,
                };
                encoded.map_err(|reason| error(reason.to_string()))?;
                replay.sent[position] += 1;
            }
            replay.steps += 1;
        }
        replay.finals = nodes
            .iter()
            .map(|node| node.as_ref().map(Node::status))
            .collect();
        Ok(replay)
    }
}
