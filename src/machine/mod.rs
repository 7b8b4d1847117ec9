//! The replicated state machine: what a user implements.
//!
//! The contract follows the seed chapter (`seed-state-machines.md`): a
//! [`StateMachine`] applies [`Command`]s in log order and answers [`Query`]s; its
//! [`signature`](StateMachine::signature) is part of the group's identity, so nodes
//! running different versions of a machine never bond.

mod noop;
mod sync;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize as SerializeDerive};

pub use noop::NoOp;
pub use sync::{LogReplaySync, StateSync};

use crate::id::UniqueId;
use crate::log::{Cursor, Term};

/// The bounds every message type of a state machine meets: it is cloned, sent
/// between threads and serialized onto the wire and disk.
///
/// Every `Clone + Send + Serialize + DeserializeOwned + 'static` type implements it.
pub trait StateMachineMessage: Clone + Send + Serialize + DeserializeOwned + 'static {}

impl<T> StateMachineMessage for T where T: Clone + Send + Serialize + DeserializeOwned + 'static {}

/// A state-mutating operation, replicated through the Raft log.
pub trait Command: StateMachineMessage {}

impl<T: StateMachineMessage> Command for T {}

/// A read-only operation, answered by one node and never replicated.
pub trait Query: StateMachineMessage {}

impl<T: StateMachineMessage> Query for T {}

/// The answer to a [`Query`].
pub trait QueryResult: StateMachineMessage {}

impl<T: StateMachineMessage> QueryResult for T {}

/// Deterministic facts about the commands being applied.
///
/// Every node applies the same commands in the same batches and sees the same
/// values here, so a machine may use them (for example as a logical clock)
/// without diverging from its replicas.
pub trait ApplyContext {
    /// The last log position applied before this batch: every entry up to it is
    /// committed and already applied.
    fn committed(&self) -> Cursor;
    /// The log position of the last entry in this batch.
    fn log_position(&self) -> Cursor;
    /// The term in which the commands of this batch were proposed.
    fn current_term(&self) -> Term;
}

/// How eager a node is to lead its group. A per-node setting: members of one group
/// may differ, and it is not part of the GroupId.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, SerializeDerive, Deserialize)]
pub enum LeadershipPreference {
    /// Standard Raft: campaigns when the leader goes quiet.
    #[default]
    Normal,
    /// Campaigns only after `factor` times the usual election timeout, so another
    /// node usually wins first; can still be elected.
    Reluctant {
        /// The multiplier on the election timeout (1 behaves like `Normal`).
        factor: u32,
    },
    /// Never campaigns; still votes and replicates the log.
    Observer,
}

impl LeadershipPreference {
    /// The default reluctance factor of [`LeadershipPreference::reluctant`].
    pub const RELUCTANT_FACTOR_DEFAULT: u32 = 3;

    /// `Reluctant` with the default factor of 3.
    pub const fn reluctant() -> Self {
        Self::Reluctant {
            factor: Self::RELUCTANT_FACTOR_DEFAULT,
        }
    }

    /// Whether a node with this preference ever starts an election.
    pub const fn may_campaign(&self) -> bool {
        !matches!(self, Self::Observer)
    }

    /// The factor applied to the election timeout (1 for `Normal`).
    pub const fn timeout_factor(&self) -> u32 {
        match self {
            Self::Normal | Self::Observer => 1,
            Self::Reluctant { factor } => {
                if *factor == 0 {
                    1
                } else {
                    *factor
                }
            }
        }
    }
}

/// A replicated state machine.
///
/// Commands are applied on every node in the same order; queries are answered by
/// one node from its local copy. `apply` must be deterministic: it may depend only
/// on the machine's state, the command and the [`ApplyContext`].
///
/// # Examples
///
/// The seed's counter, unchanged apart from its `use` line:
///
/// ```
/// use quorate::*;
/// use serde::{Serialize, Deserialize};
///
/// #[derive(Default)]
/// struct Counter {
///     value: i64,
/// }
///
/// #[derive(Clone, Serialize, Deserialize)]
/// enum CounterCmd {
///     Increment(i64),
///     Decrement(i64),
///     Reset,
/// }
///
/// #[derive(Clone, Serialize, Deserialize)]
/// enum CounterQuery {
///     Value,
/// }
///
/// impl StateMachine for Counter {
///     type Command = CounterCmd;
///     type Query = CounterQuery;
///     type QueryResult = i64;
///     type StateSync = LogReplaySync<Self>;
///
///     fn signature(&self) -> UniqueId {
///         UniqueId::from("counter_v1")
///     }
///
///     fn apply(&mut self, command: CounterCmd, _ctx: &dyn ApplyContext) {
///         match command {
///             CounterCmd::Increment(n) => self.value += n,
///             CounterCmd::Decrement(n) => self.value -= n,
///             CounterCmd::Reset => self.value = 0,
///         }
///     }
///
///     fn query(&self, query: CounterQuery) -> i64 {
///         match query {
///             CounterQuery::Value => self.value,
///         }
///     }
///
///     fn state_sync(&self) -> LogReplaySync<Self> {
///         LogReplaySync::default()
///     }
/// }
/// # let mut counter = Counter::default();
/// # struct Ctx;
/// # impl ApplyContext for Ctx {
/// #     fn committed(&self) -> Cursor { Cursor::default() }
/// #     fn log_position(&self) -> Cursor { Cursor::default() }
/// #     fn current_term(&self) -> Term { Term::default() }
/// # }
/// # counter.apply_batch([CounterCmd::Increment(5), CounterCmd::Decrement(2)], &Ctx);
/// # assert_eq!(counter.query(CounterQuery::Value), 3);
/// # assert_eq!(counter.leadership_preference(), LeadershipPreference::Normal);
/// ```
pub trait StateMachine: Sized + Send + Sync + 'static {
    /// State-mutating operations, replicated through the log.
    type Command: Command;
    /// Read-only operations.
    type Query: Query;
    /// Answers to queries.
    type QueryResult: QueryResult;
    /// How a lagging follower catches up.
    type StateSync: StateSync<Machine = Self>;

    /// Identifies this machine and its version. Part of the GroupId: every member
    /// must return the same value, or the nodes cannot bond.
    fn signature(&self) -> UniqueId;

    /// Applies one committed command.
    fn apply(&mut self, command: Self::Command, ctx: &dyn ApplyContext);

    /// Answers a read-only query from the current state.
    fn query(&self, query: Self::Query) -> Self::QueryResult;

    /// The catch-up strategy for lagging followers.
    fn state_sync(&self) -> Self::StateSync;

    /// Applies a batch of committed commands, in order. Override to amortize work
    /// across a batch (one database transaction, say); the default calls
    /// [`apply`](StateMachine::apply) for each command.
    fn apply_batch(
        &mut self,
        commands: impl IntoIterator<Item = Self::Command>,
        ctx: &dyn ApplyContext,
    ) {
        for command in commands {
            self.apply(command, ctx);
        }
    }

    /// This node's eagerness to lead. Per node; not part of the GroupId.
    fn leadership_preference(&self) -> LeadershipPreference {
        LeadershipPreference::Normal
    }
}
