//! The messages engines exchange. They cross the network encoded by `crate::codec`;
//! every field is checked on receipt, as a peer may be buggy or the bytes corrupt.

use serde::{Deserialize, Serialize};

use super::entry::{LogEntry, Proposal, ProposalId};
use super::outcome::{ProposeError, QueryError};
use crate::log::{Cursor, Index, Term};

/// Names a strong read that a follower asked the leader to confirm.
pub type ReadId = u64;

/// Why a follower refused an AppendEntries: where the leader should retry from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictHint {
    /// The first index the leader should send next.
    pub next_index: Index,
    /// The term of the follower's conflicting entry, if it had one: the leader
    /// skips the whole term in one step (fast backtracking, §5.3).
    pub conflict_term: Option<Term>,
    /// The `prev` index of the AppendEntries refused. A leader that has
    /// already rewound and sent a probe can tell the refusal of that probe
    /// from a stale one, sent for what was in flight before (a reordered or
    /// duplicated message), and need not rewind and resend again.
    pub refused_prev: Index,
}

/// A message between two members of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message<C> {
    /// Would you vote for me in `term`? Changes nothing at the receiver (§9.6 of
    /// Ongaro's thesis), so a node rejoining after a partition cannot disrupt a
    /// healthy leader.
    PreVote {
        /// The term the sender would campaign in.
        term: Term,
        /// The sender's last log position.
        last_log: Cursor,
    },
    /// The answer to [`Message::PreVote`].
    PreVoteResponse {
        /// The receiver's current term.
        term: Term,
        /// Whether it would vote.
        granted: bool,
    },
    /// Vote for me in `term` (§5.2).
    RequestVote {
        /// The candidate's term.
        term: Term,
        /// The candidate's last log position.
        last_log: Cursor,
    },
    /// The answer to [`Message::RequestVote`], sent once the vote is durable.
    RequestVoteResponse {
        /// The voter's current term.
        term: Term,
        /// Whether the vote was granted.
        granted: bool,
    },
    /// Replicate entries after `prev`; with no entries, a heartbeat (§5.3).
    AppendEntries {
        /// The leader's term.
        term: Term,
        /// The position just before the first entry.
        prev: Cursor,
        /// The entries, with their terms, at indexes `prev.index() + 1 ..`.
        entries: Vec<(Term, LogEntry<C>)>,
        /// The leader's commit index.
        leader_commit: Index,
        /// The leader's read round, echoed back to confirm leadership for reads.
        read_round: u64,
    },
    /// The answer to [`Message::AppendEntries`], sent once the entries are durable.
    AppendEntriesResponse {
        /// The follower's current term.
        term: Term,
        /// The read round of the request being answered.
        read_round: u64,
        /// `Ok(match_index)`: the log matches the leader's through this index.
        /// `Err(hint)`: the log did not match `prev`.
        result: Result<Index, ConflictHint>,
    },
    /// The leader no longer holds the entries this follower needs: catch up
    /// through the machine's state sync.
    CatchUp {
        /// The leader's term.
        term: Term,
        /// The leader's first held index minus one (its prune point).
        leader_log_start: Cursor,
        /// The leader's commit index.
        leader_commit: Index,
    },
    /// State sync: send me committed entries from `from` on.
    FetchEntries {
        /// The first index wanted.
        from: Index,
        /// The most entries wanted.
        count_max: u32,
    },
    /// State sync: committed entries at indexes `prev.index() + 1 ..`.
    FetchedEntries {
        /// The position just before the first entry.
        prev: Cursor,
        /// Committed entries with their terms.
        entries: Vec<(Term, LogEntry<C>)>,
        /// The sender's commit index.
        commit: Index,
    },
    /// A proposal forwarded by a follower to the leader.
    Propose {
        /// The proposal.
        proposal: Proposal<C>,
    },
    /// The leader's answer to a forwarded proposal.
    ProposeResponse {
        /// Which proposal.
        id: ProposalId,
        /// Where it was appended, or why it was not.
        result: Result<Cursor, ProposeError>,
    },
    /// A follower asks the leader for a read index (§6.4).
    ReadIndex {
        /// The follower's name for this read.
        read: ReadId,
    },
    /// The leader's answer to [`Message::ReadIndex`], once leadership is confirmed.
    ReadIndexResponse {
        /// Which read.
        read: ReadId,
        /// The index the read must wait for, or why there is none.
        result: Result<Index, QueryError>,
    },
}

/// A message's kind, without its fields: what a trace names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum MessageKind {
    /// [`Message::PreVote`].
    PreVote = 1,
    /// [`Message::PreVoteResponse`].
    PreVoteResponse,
    /// [`Message::RequestVote`].
    RequestVote,
    /// [`Message::RequestVoteResponse`].
    RequestVoteResponse,
    /// [`Message::AppendEntries`].
    AppendEntries,
    /// [`Message::AppendEntriesResponse`].
    AppendEntriesResponse,
    /// [`Message::CatchUp`].
    CatchUp,
    /// [`Message::FetchEntries`].
    FetchEntries,
    /// [`Message::FetchedEntries`].
    FetchedEntries,
    /// [`Message::Propose`].
    Propose,
    /// [`Message::ProposeResponse`].
    ProposeResponse,
    /// [`Message::ReadIndex`].
    ReadIndex,
    /// [`Message::ReadIndexResponse`].
    ReadIndexResponse,
}

impl MessageKind {
    /// Every kind, in the order of [`Message`]'s variants.
    pub const ALL: [Self; 13] = [
        Self::PreVote,
        Self::PreVoteResponse,
        Self::RequestVote,
        Self::RequestVoteResponse,
        Self::AppendEntries,
        Self::AppendEntriesResponse,
        Self::CatchUp,
        Self::FetchEntries,
        Self::FetchedEntries,
        Self::Propose,
        Self::ProposeResponse,
        Self::ReadIndex,
        Self::ReadIndexResponse,
    ];

    /// The kind's name, as the variant of [`Message`] is spelled.
    pub fn name(self) -> &'static str {
        match self {
            Self::PreVote => "PreVote",
            Self::PreVoteResponse => "PreVoteResponse",
            Self::RequestVote => "RequestVote",
            Self::RequestVoteResponse => "RequestVoteResponse",
            Self::AppendEntries => "AppendEntries",
            Self::AppendEntriesResponse => "AppendEntriesResponse",
            Self::CatchUp => "CatchUp",
            Self::FetchEntries => "FetchEntries",
            Self::FetchedEntries => "FetchedEntries",
            Self::Propose => "Propose",
            Self::ProposeResponse => "ProposeResponse",
            Self::ReadIndex => "ReadIndex",
            Self::ReadIndexResponse => "ReadIndexResponse",
        }
    }
}

impl core::fmt::Display for MessageKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl<C> Message<C> {
    /// The message's kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::PreVote { .. } => MessageKind::PreVote,
            Self::PreVoteResponse { .. } => MessageKind::PreVoteResponse,
            Self::RequestVote { .. } => MessageKind::RequestVote,
            Self::RequestVoteResponse { .. } => MessageKind::RequestVoteResponse,
            Self::AppendEntries { .. } => MessageKind::AppendEntries,
            Self::AppendEntriesResponse { .. } => MessageKind::AppendEntriesResponse,
            Self::CatchUp { .. } => MessageKind::CatchUp,
            Self::FetchEntries { .. } => MessageKind::FetchEntries,
            Self::FetchedEntries { .. } => MessageKind::FetchedEntries,
            Self::Propose { .. } => MessageKind::Propose,
            Self::ProposeResponse { .. } => MessageKind::ProposeResponse,
            Self::ReadIndex { .. } => MessageKind::ReadIndex,
            Self::ReadIndexResponse { .. } => MessageKind::ReadIndexResponse,
        }
    }

    /// The message's name, for traces.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// The term the message carries, for messages that are part of the term
    /// protocol.
    pub fn term(&self) -> Option<Term> {
        match self {
            Self::PreVote { term, .. }
            | Self::PreVoteResponse { term, .. }
            | Self::RequestVote { term, .. }
            | Self::RequestVoteResponse { term, .. }
            | Self::AppendEntries { term, .. }
            | Self::AppendEntriesResponse { term, .. }
            | Self::CatchUp { term, .. } => Some(*term),
            _ => None,
        }
    }
}
