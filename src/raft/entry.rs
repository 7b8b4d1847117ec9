//! What the log holds: [`LogEntry`], and the identity of a proposal, [`ProposalId`].

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::log::Index;

/// A client of the group, for deduplicating retried proposals. Chosen by the
/// client (at random in production, from the seed in simulation).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ClientId(pub u64);

/// Names one proposal: a client and its sequence number. A client retrying a
/// proposal sends the same id again; the group applies each id at most once.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ProposalId {
    /// Who proposed.
    pub client: ClientId,
    /// The client's sequence number for this proposal, starting at 1.
    pub sequence: u64,
}

impl fmt::Display for ProposalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}#{}", self.client.0, self.sequence)
    }
}

/// A command on its way into the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal<C> {
    /// The proposal's identity; a retry carries the same id.
    pub id: ProposalId,
    /// The command.
    pub command: C,
    /// The client has an outcome for every sequence number below this one, so the
    /// group may forget their deduplication records.
    pub settled_below: u64,
    /// The client's session: a commit index the client learned before its
    /// session's first proposal ([`Index::ZERO`] for a client that knows
    /// none). Every proposal and retry of one session carries the same value;
    /// a session the group has forgotten is refused with
    /// [`ProposalOutcome::SessionExpired`](super::ProposalOutcome::SessionExpired),
    /// which names the index to open the next one with.
    pub session: Index,
}

/// A command entry: the user's command with what the engine needs to apply it
/// exactly once and in deterministic batches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CommandEntry<C> {
    /// The user's command.
    pub command: C,
    /// Who proposed it.
    pub proposal: ProposalId,
    /// See [`Proposal::settled_below`].
    pub settled_below: u64,
    /// See [`Proposal::session`].
    pub session: Index,
    /// The last entry of the leader's batch. Batches are what `apply_batch` sees,
    /// so they are fixed in the log rather than left to each node's timing.
    pub batch_end: bool,
}

/// One entry of the replicated log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LogEntry<C> {
    /// The entry a new leader appends at the start of its term, so that it can
    /// commit entries of earlier terms (§5.4.2) and serve reads (§6.4).
    Blank,
    /// A user command.
    Command(CommandEntry<C>),
}

impl<C> LogEntry<C> {
    /// The command entry, if this is one.
    pub fn as_command(&self) -> Option<&CommandEntry<C>> {
        match self {
            Self::Blank => None,
            Self::Command(entry) => Some(entry),
        }
    }
}
