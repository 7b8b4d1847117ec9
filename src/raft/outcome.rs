//! What the engine reports back: [`Effect`]s, and the outcomes of proposals and
//! queries.

use core::fmt;
use core::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use super::entry::ProposalId;
use super::lent::AppendHeader;
use super::message::Message;
use crate::env::{Instant, TimerKind};
use crate::id::PeerId;
use crate::log::{Cursor, Index};
use crate::machine::StateMachine;

/// A caller's name for a query, echoed in its outcome.
pub type QueryId = u64;

/// How fresh a query's answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Consistency {
    /// Answered at once from this node's state, which may lag the leader. The
    /// answer says which log position it reflects.
    Weak,
    /// Linearizable: the leader confirms with a quorum that it still leads, and
    /// the answer reflects every command committed before the query arrived.
    Strong,
}

/// Why a proposal was not accepted by the node it reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposeError {
    /// This node does not lead and could not forward the proposal; `leader` is
    /// the leader it knows of, if any. Retrying with the same [`ProposalId`] is
    /// always safe: the group applies each id at most once.
    NotLeader {
        /// The leader to retry with, if known.
        leader: Option<PeerId>,
    },
    /// Too many proposals are pending here; nothing was sent or appended.
    Busy,
}

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLeader {
                leader: Some(leader),
            } => write!(f, "not the leader (try {leader})"),
            Self::NotLeader { leader: None } => f.write_str("not the leader (no leader known)"),
            Self::Busy => f.write_str("too many pending proposals"),
        }
    }
}

impl std::error::Error for ProposeError {}

/// The final outcome of a proposal, reported exactly once per
/// [`propose`](super::Node::propose) call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposalOutcome {
    /// Committed and applied at `index` (for a retried id, where the first copy was
    /// applied).
    Committed {
        /// The log index of the command.
        index: Index,
    },
    /// Refused; see [`ProposeError`].
    Rejected(ProposeError),
    /// No outcome within the proposal timeout: the command may or may not be
    /// committed later. Retry with the same id to find out safely.
    Unknown,
    /// The group no longer remembers the proposal's session (more clients
    /// than [`NodeOptions::sessions_max`](super::NodeOptions::sessions_max)
    /// were active since it last applied a command), so it cannot tell a retry
    /// from a new proposal. This copy, committed at `index`, was not applied;
    /// an earlier copy may have been, so the command's fate is unknown.
    /// Proposals of the session are all refused so: open a new session by
    /// setting [`Proposal::session`](super::Proposal::session) to `index`
    /// (or to a later commit index).
    SessionExpired {
        /// Where this copy was committed: a commit index to stamp the next
        /// session with.
        index: Index,
    },
}

/// Why a query got no answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryError {
    /// A strong query needs the leader, and this node could not reach it.
    NotLeader {
        /// The leader to retry with, if known.
        leader: Option<PeerId>,
    },
    /// Leadership could not be confirmed within the query timeout.
    Timeout,
    /// Too many queries are pending here.
    Busy,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLeader {
                leader: Some(leader),
            } => write!(f, "not the leader (try {leader})"),
            Self::NotLeader { leader: None } => f.write_str("not the leader (no leader known)"),
            Self::Timeout => f.write_str("leadership not confirmed in time"),
            Self::Busy => f.write_str("too many pending queries"),
        }
    }
}

impl std::error::Error for QueryError {}

/// A query's answer and the log position it reflects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryAnswer<R> {
    /// What the machine answered.
    pub result: R,
    /// The last applied log position when it answered.
    pub position: Cursor,
}

/// What an engine asks its driver to do. Effects come only out of
/// [`Node::flush`](super::Node::flush), after every storage write they depend on
/// is synced, so a driver may execute them at once and in order.
pub enum Effect<M: StateMachine> {
    /// Send `message` to `to`.
    Send {
        /// The receiver.
        to: PeerId,
        /// The message.
        message: Message<M::Command>,
    },
    /// Send `to` an AppendEntries whose entries are the node's log entries
    /// `entries` (only with [`NodeOptions::lend_entries`](super::NodeOptions::lend_entries)).
    /// Encode [`LentAppendEntries`](super::LentAppendEntries) from the log, or
    /// make the owned message with [`Node::lent_message`](super::Node::lent_message),
    /// before calling the node again: its log may change then.
    SendLent {
        /// The receiver.
        to: PeerId,
        /// The message but its entries.
        header: AppendHeader,
        /// The indexes of its entries, all held by the log.
        entries: RangeInclusive<Index>,
    },
    /// Arm the timer of `timer` at `deadline`, replacing any earlier one of that
    /// kind; when it fires, call [`Node::on_timer`](super::Node::on_timer).
    SetTimer {
        /// Which timer.
        timer: TimerKind,
        /// When it fires.
        deadline: Instant,
    },
    /// A proposal was appended by the leader at `position` (not yet committed).
    ProposalAccepted {
        /// Which proposal.
        id: ProposalId,
        /// Where the leader appended it.
        position: Cursor,
    },
    /// A proposal's final outcome.
    ProposalOutcome {
        /// Which proposal.
        id: ProposalId,
        /// What happened to it.
        outcome: ProposalOutcome,
    },
    /// A query's outcome.
    QueryOutcome {
        /// The caller's id for the query.
        id: QueryId,
        /// The answer, or why there is none.
        outcome: Result<QueryAnswer<M::QueryResult>, QueryError>,
    },
}

impl<M: StateMachine> fmt::Debug for Effect<M>
where
    M::Command: fmt::Debug,
    M::QueryResult: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Send { to, message } => write!(f, "Send({to}, {message:?})"),
            Self::SendLent {
                to,
                header,
                entries,
            } => write!(f, "SendLent({to}, {header:?}, {entries:?})"),
            Self::SetTimer { timer, deadline } => write!(f, "SetTimer({timer:?}, {deadline})"),
            Self::ProposalAccepted { id, position } => {
                write!(f, "ProposalAccepted({id}, {position})")
            }
            Self::ProposalOutcome { id, outcome } => {
                write!(f, "ProposalOutcome({id}, {outcome:?})")
            }
            Self::QueryOutcome { id, outcome } => write!(f, "QueryOutcome({id}, {outcome:?})"),
        }
    }
}
