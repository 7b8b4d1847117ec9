//! # quorate
//!
//! Replicated state machines that are tested the way the best distributed
//! systems are tested: by deterministic simulation. You write a
//! [`StateMachine`]; the same Raft engine ([`raft`]) runs it under a seeded
//! simulator and in production, and only the driver around the engine differs.
//!
//! ```
//! use quorate::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Default)]
//! struct Counter {
//!     value: i64,
//! }
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! enum CounterCmd {
//!     Increment(i64),
//! }
//!
//! impl StateMachine for Counter {
//!     type Command = CounterCmd;
//!     type Query = ();
//!     type QueryResult = i64;
//!     type StateSync = LogReplaySync<Self>;
//!
//!     fn signature(&self) -> UniqueId {
//!         UniqueId::from("counter_v1")
//!     }
//!
//!     fn apply(&mut self, command: CounterCmd, _ctx: &dyn ApplyContext) {
//!         match command {
//!             CounterCmd::Increment(n) => self.value += n,
//!         }
//!     }
//!
//!     fn query(&self, _query: ()) -> i64 {
//!         self.value
//!     }
//!
//!     fn state_sync(&self) -> LogReplaySync<Self> {
//!         LogReplaySync::default()
//!     }
//! }
//!
//! // Members of a group agree on a key, the consensus parameters and the
//! // machine's signatures; the GroupId is derived from all of them.
//! let config = GroupConfig::with_voter_count(3);
//! let machine = Counter::default();
//! let inputs = GroupIdInputs::new(
//!     &GroupKey::from_secret("s3cret"),
//!     config.digest(),
//!     machine.signature(),
//!     machine.state_sync().signature(),
//! );
//! println!("group {}", inputs.group_id());
//! ```
//!
//! The layout follows the rooms of the design: [`machine`] (what users
//! implement), [`log`] (storage), [`raft`] (the engine), [`env`](mod@env) (the seam
//! between the engine and the world), [`codec`] (the wire and disk encoding)
//! and [`id`] (identities); [`check`] judges recorded histories (linearizability).

#![warn(missing_docs)]

pub mod bond;
pub mod campaign;
pub mod check;
pub mod cli;
pub mod codec;
pub mod env;
pub mod examples;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod id;
pub mod log;
pub mod machine;
pub mod raft;
#[cfg(feature = "tokio")]
pub mod runtime;
pub mod sim;

pub use id::{GroupId, GroupIdInput, GroupIdInputs, GroupKey, PeerId, UniqueId};
pub use log::{Cursor, HardState, InMemoryLogStore, Index, Storage, StorageError, Term};
pub use machine::{
    ApplyContext, Command, LeadershipPreference, LogReplaySync, NoOp, Query, QueryResult,
    StateMachine, StateMachineMessage, StateSync,
};
pub use raft::{Consistency, GroupConfig, NodeOptions};

/// Everything a state machine author needs, for `use quorate::prelude::*;`.
pub mod prelude {
    pub use crate::id::{GroupId, GroupIdInputs, GroupKey, PeerId, UniqueId};
    pub use crate::log::{Cursor, InMemoryLogStore, Index, Storage, Term};
    pub use crate::machine::{
        ApplyContext, Command, LeadershipPreference, LogReplaySync, NoOp, Query, QueryResult,
        StateMachine, StateMachineMessage, StateSync,
    };
    pub use crate::raft::{Consistency, GroupConfig};
}
