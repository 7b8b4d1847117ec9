//! [`NoOp`]: a machine with no state, for groups that only elect a leader.

use super::{ApplyContext, LogReplaySync, StateMachine};
use crate::id::UniqueId;

/// A state machine that does nothing: a group running it only elects leaders.
///
/// # Examples
///
/// ```
/// use quorate::*;
///
/// assert_eq!(NoOp.signature(), UniqueId::from("quorate.noop.v1"));
/// assert_eq!(NoOp.query(()), ());
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NoOp;

impl StateMachine for NoOp {
    type Command = ();
    type Query = ();
    type QueryResult = ();
    type StateSync = LogReplaySync<Self>;

    fn signature(&self) -> UniqueId {
        UniqueId::from("quorate.noop.v1")
    }

    fn apply(&mut self, _command: (), _ctx: &dyn ApplyContext) {}

    fn query(&self, _query: ()) {}

    fn state_sync(&self) -> LogReplaySync<Self> {
        LogReplaySync::default()
    }
}
