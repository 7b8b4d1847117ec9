//! The production runtime (cargo feature `tokio`): the engine of [`crate::raft`]
//! driven by tokio, with TCP bonds, a durable file log and the [`Group`] handle.
//!
//! ```text
//!   Group handles ──requests──▶ ┌────────────── node task ───────────────┐
//!                               │ drain ready events (≤ EVENT_BATCH_MAX) │
//!   bond readers ──messages───▶ │   on_message / propose / query /       │
//!   tokio timers ──────────────▶│   on_timer                             │
//!                               │ flush (one fsync: group commit)        │
//!   bond writers ◀──Send─────── │ execute effects, publish status        │
//!                               └────────────────────────────────────────┘
//! ```
//!
//! A node is one tokio task that owns its [`Node`](crate::raft::Node); nothing in
//! the engine knows it runs on tokio. Time is tokio's monotonic clock, mapped to
//! [`Instant`](crate::env::Instant) nanoseconds since the node started; entropy is
//! a ChaCha8 stream seeded from the operating system, or from
//! [`RuntimeConfig::seed`] under a simulator. Bonds run over a [`Transport`]
//! chosen per node: tokio's TCP, or turmoil's (feature `turmoil`); under
//! `--cfg madsim` tokio's TCP is madsim's.

mod file_log;
pub mod frame;
mod group;
mod net;
mod node;
pub mod node_cli;
pub mod resp;
mod shared_log;
pub mod transport;

pub use file_log::{
    FileLogError, FileLogOptions, FileLogStore, RECORD_HEADER_BYTES, SEGMENT_BYTES_DEFAULT,
};
pub use group::{Group, GroupError, GroupStatus, RETRY_BACKOFF_MAX, RETRY_BACKOFF_MIN, When};
pub use net::{
    Backoff, BondFailure, BondLog, HANDSHAKE_TIMEOUT, LinkError, NET_INBOX_CAPACITY,
    PEER_OUTBOX_CAPACITY, WRITE_BATCH_MAX,
};
pub use node::{
    EVENT_BATCH_MAX, REQUEST_QUEUE_CAPACITY, RuntimeConfig, StartError, start, start_with_listener,
};
pub use shared_log::SharedLogStore;
pub use transport::{Listener, Transport};
