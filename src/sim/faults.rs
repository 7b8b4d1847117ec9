//! The nemesis: turns a [`FaultPlan`] into a concrete schedule of faults, drawn
//! from the run's fault stream before the run starts.

use core::fmt;
use core::time::Duration;

use super::config::FaultPlan;
use super::network::PartitionKind;
use rand_core::Rng;
use serde::{Deserialize, Serialize};

use crate::env::{chance, uniform_duration, uniform_u64};
use crate::id::PeerId;

/// Which node a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A given node.
    Node(PeerId),
    /// Whichever node leads when the fault fires (a random node if none does).
    Leader,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Node(node) => write!(f, "{node}"),
            Self::Leader => f.write_str("the leader"),
        }
    }
}

/// One scheduled fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// Install a partition (replacing any other).
    Partition(PartitionKind),
    /// Remove every partition.
    Heal,
    /// Crash a node: volatile state is lost; storage keeps what was synced and
    /// maybe a prefix of what was not.
    Crash(Target),
    /// Restart the node that has been down longest.
    RestartOldest,
    /// The next node to become leader crashes after sending `messages` more
    /// messages: elected, it may get its first entries to a few followers and
    /// then die (the shape of the Figure 8 scenarios).
    CrashNextLeader {
        /// Messages it sends before crashing.
        messages: u32,
    },
    /// The next node to grant a vote crashes right after its answer leaves,
    /// losing what it had not synced, and restarts at once: a vote that was
    /// not durable is forgotten while its candidate's election is still on.
    CrashNextVoter,
    /// Leader churn, the generator of the Figure 8 scenarios: each of the next
    /// `rounds` leaders crashes after sending a few messages (its first
    /// entries reach some followers, not all) and restarts shortly after, so
    /// old leaders come back with entries of old terms while new ones write
    /// over them.
    LeaderChurn {
        /// How many leaders in a row.
        rounds: u32,
    },
    /// Restart a given node, if it is down.
    Restart(PeerId),
    /// Pause a node: it processes nothing until resumed.
    Pause(Target),
    /// Resume the node that has been paused longest.
    ResumeOldest,
    /// Set a node's clock: a fixed offset and a drift in parts per million.
    Clock {
        /// The node.
        node: PeerId,
        /// Offset of its clock, in milliseconds (may be negative).
        offset_ms: i64,
        /// Drift, in parts per million (may be negative).
        drift_ppm: i64,
    },
}

impl fmt::Display for FaultAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Partition(kind) => write!(f, "partition: {kind}"),
            Self::Heal => f.write_str("heal partitions"),
            Self::Crash(target) => write!(f, "crash {target}"),
            Self::RestartOldest => f.write_str("restart"),
            Self::CrashNextLeader { messages } => {
                write!(f, "crash the next leader after {messages} messages")
            }
            Self::CrashNextVoter => f.write_str("crash the next node to grant a vote"),
            Self::LeaderChurn { rounds } => {
                write!(f, "leader churn: crash the next {rounds} leaders")
            }
            Self::Restart(node) => write!(f, "restart {node}"),
            Self::Pause(target) => write!(f, "pause {target}"),
            Self::ResumeOldest => f.write_str("resume"),
            Self::Clock {
                node,
                offset_ms,
                drift_ppm,
            } => write!(
                f,
                "clock {node}: offset {offset_ms} ms, drift {drift_ppm} ppm"
            ),
        }
    }
}

/// A fault at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledFault {
    /// When, from the start of the run.
    #[serde(with = "super::seconds")]
    pub at: Duration,
    /// What.
    pub action: FaultAction,
}

/// Draws the schedule of `plan` for `nodes` over `duration`.
pub fn schedule(
    plan: &FaultPlan,
    nodes: &[PeerId],
    duration: Duration,
    rng: &mut (impl Rng + ?Sized),
) -> Vec<ScheduledFault> {
    let mut kinds: Vec<u8> = Vec::new();
    if plan.partitions {
        kinds.push(0);
    }
    if plan.crashes {
        kinds.push(1);
    }
    if plan.pauses {
        kinds.push(2);
    }
    if plan.clocks {
        kinds.push(3);
    }
    let mut faults = Vec::new();
    if kinds.is_empty() || nodes.is_empty() {
        return faults;
    }
    let mean = plan.mean_interval.max(Duration::from_millis(10));
    let mut partition_until = Duration::ZERO;
    let mut at = Duration::ZERO;
    loop {
        at += uniform_duration(rng, mean / 2, mean * 3 / 2);
        if at >= duration {
            break;
        }
        let kind = kinds[uniform_u64(rng, 0, kinds.len() as u64) as usize];
        let node = nodes[uniform_u64(rng, 0, nodes.len() as u64) as usize];
        let target = if chance(rng, 400_000) {
            Target::Leader
        } else {
            Target::Node(node)
        };
        let lasting = uniform_duration(rng, Duration::from_millis(100), Duration::from_secs(4));
        match kind {
            0 if at >= partition_until => {
                let partition = match uniform_u64(rng, 0, 6) {
                    0 => PartitionKind::Halves,
                    1 => PartitionKind::Isolate { leader: true },
                    2 => PartitionKind::Isolate { leader: false },
                    3 => PartitionKind::Ring,
                    4 => PartitionKind::Bridge,
                    _ => PartitionKind::OneWay,
                };
                faults.push(ScheduledFault {
                    at,
                    action: FaultAction::Partition(partition),
                });
                partition_until = at + lasting;
                faults.push(ScheduledFault {
                    at: partition_until,
                    action: FaultAction::Heal,
                });
            }
            1 => {
                let crash = match uniform_u64(rng, 0, 4) {
                    0 => FaultAction::Crash(target),
                    1 => FaultAction::CrashNextLeader {
                        messages: uniform_u64(rng, 0, 12) as u32,
                    },
                    2 => FaultAction::LeaderChurn {
                        rounds: uniform_u64(rng, 3, 10) as u32,
                    },
                    _ => FaultAction::CrashNextVoter,
                };
                faults.push(ScheduledFault { at, action: crash });
                faults.push(ScheduledFault {
                    at: at + lasting,
                    action: FaultAction::RestartOldest,
                });
            }
            2 => {
                faults.push(ScheduledFault {
                    at,
                    action: FaultAction::Pause(target),
                });
                faults.push(ScheduledFault {
                    at: at + lasting,
                    action: FaultAction::ResumeOldest,
                });
            }
            3 => faults.push(ScheduledFault {
                at,
                action: FaultAction::Clock {
                    node,
                    offset_ms: uniform_u64(rng, 0, 2001) as i64 - 1000,
                    drift_ppm: uniform_u64(rng, 0, 20_001) as i64 - 10_000,
                },
            }),
            _ => {}
        }
    }
    // Stable by time; equal times keep their drawing order.
    faults.sort_by_key(|fault| fault.at);
    faults
}
