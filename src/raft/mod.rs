//! The consensus engine: Raft, sans-IO and event-driven.
//!
//! A [`Node`] is a plain struct. Events go in through methods that take the
//! current time: [`Node::on_message`], [`Node::on_timer`], [`Node::propose`],
//! [`Node::query`]. They change the node's state and write to its storage, but
//! release nothing. [`Node::flush`] then syncs the storage and hands out the
//! [`Effect`]s (messages to send, timers to arm, outcomes to report), so nothing
//! leaves a node before the state it depends on is durable.
//!
//! ```text
//!   simulator / tokio runtime            engine (this module)
//!   ─────────────────────────            ────────────────────
//!   bytes from a peer ──decode──▶ on_message ─┐
//!   timer fired ─────────────────▶ on_timer   ├─▶ state + storage writes
//!   client call ─────────────────▶ propose    │
//!                                  query ─────┘
//!                                  flush ──▶ sync ──▶ commit ──▶ apply ──▶ Effects
//!   send / arm timer / resolve ◀───────────────────────────────────────────┘
//! ```
//!
//! What it implements, with the sections of the Raft paper (and of Ongaro's
//! thesis, "thesis") each part follows:
//!
//! * elections with randomized timeouts from the injected RNG (§5.2), pre-vote
//!   and the disruptive-server rule (thesis §9.6), check-quorum step-down
//!   (thesis §6.2), and [`LeadershipPreference`](crate::LeadershipPreference);
//! * replication with per-follower progress, pipelining within an in-flight
//!   window, fast conflict backtracking, and batching (§5.3);
//! * commitment by counting only for entries of the current term (§5.4.2), over a
//!   quorum of the configured voters, never of the reachable ones;
//! * exactly-once application through client sessions (thesis §6.3) in
//!   deterministic batches (`apply`);
//! * linearizable reads by read index (thesis §6.4), weak reads locally;
//! * catch-up through the machine's [`StateSync`](crate::StateSync) (`catch_up`).
//!
//! This module imports nothing from the simulator, the runtime, `std::time`,
//! sockets, threads or any randomness but the RNG handed in.

mod apply;
pub(crate) use apply::{Seen, Sessions};
mod catch_up;
mod client;
mod config;
mod election;
mod entry;
#[cfg(feature = "flaws")]
pub mod flaws;
mod lent;
mod message;
mod node;
mod outcome;
mod replication;

#[cfg(test)]
mod tests;

pub use config::{ConfigError, GroupConfig, NodeOptions, SESSIONS_MAX_DEFAULT};
pub use entry::{ClientId, CommandEntry, LogEntry, Proposal, ProposalId};
pub use lent::{AppendHeader, LentAppendEntries};
pub use message::{ConflictHint, Message, MessageKind, ReadId};
pub use node::{EntriesReceived, EntryOf, Node, Role, Status};
pub use outcome::{
    Consistency, Effect, ProposalOutcome, ProposeError, QueryAnswer, QueryError, QueryId,
};
