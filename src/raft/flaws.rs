//! Planted bugs, for measuring how fast the simulator finds real Raft mistakes.
//!
//! Compiled only with the cargo feature `flaws`; even then every switch is off
//! unless a run turns it on (`NodeOptions::flaws`). Each re-introduces a known
//! bug:
//!
//! | flaw | the rule it breaks |
//! |---|---|
//! | `commit-by-counting` | §5.4.2: commit an earlier term's entry once a majority stores it (Figure 8) |
//! | `vote-without-log-check` | §5.4.1: grant votes (and pre-votes) without the log up-to-date check |
//! | `reply-before-sync` | answer a vote before the new term and vote are durable |
//! | `read-without-read-index` | thesis §6.4: serve strong reads without confirming leadership |
//! | `truncate-committed` | §5.3: on a conflict, truncate back through committed entries |
//! | `quorum-of-reachable` | count majorities of the peers heard from lately, not of the configured voters (mosaik's rule) |
//! | `apply-duplicates` | thesis §6.3: apply a retried proposal again |
//! | `forget-expired-sessions` | thesis §6.3: take a proposal of a session the bounded session table forgot for a new one, so a retry of what it applied is applied again |
//! | `keep-next-on-conflict` | §5.3: on a refusal for a conflicting term, keep sending from where the leader was, never backing up to repair the follower's log: a liveness bug (the follower is stuck), found by the end-of-run checks |
//! | `resend-at-match` | answer a refusal at or below a follower's match index, or an answer that does not move it, with a resend at once: each such answer begets another, an endless ping-pong, and each duplicated message starts one more, a message storm |

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// One planted bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Flaw {
    /// Commit an earlier term's entry by counting replicas (Figure 8).
    CommitByCounting,
    /// Grant votes without the log up-to-date check.
    VoteWithoutLogCheck,
    /// Answer a vote before the term and vote are synced.
    ReplyBeforeSync,
    /// Serve strong reads without read index.
    ReadWithoutReadIndex,
    /// Truncate committed entries on a conflict.
    TruncateCommitted,
    /// Quorums of currently reachable peers instead of configured voters.
    QuorumOfReachable,
    /// Apply retried proposals again (no deduplication).
    ApplyDuplicates,
    /// Take proposals of forgotten sessions for new ones.
    ForgetExpiredSessions,
    /// Answer a refusal at or below the match index, or an answer that does
    /// not move it, with a resend at once.
    ResendAtMatch,
    /// On a refusal for a conflicting term, keep `next_index` where it was.
    KeepNextOnConflict,
}

impl Flaw {
    /// Every flaw with its name.
    pub const ALL: [(&'static str, Self); 10] = [
        ("commit-by-counting", Self::CommitByCounting),
        ("vote-without-log-check", Self::VoteWithoutLogCheck),
        ("reply-before-sync", Self::ReplyBeforeSync),
        ("read-without-read-index", Self::ReadWithoutReadIndex),
        ("truncate-committed", Self::TruncateCommitted),
        ("quorum-of-reachable", Self::QuorumOfReachable),
        ("apply-duplicates", Self::ApplyDuplicates),
        ("forget-expired-sessions", Self::ForgetExpiredSessions),
        ("resend-at-match", Self::ResendAtMatch),
        ("keep-next-on-conflict", Self::KeepNextOnConflict),
    ];

    const fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Flaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Self::ALL
            .iter()
            .find(|(_, flaw)| flaw == self)
            .map_or("?", |(name, _)| name);
        f.write_str(name)
    }
}

impl FromStr for Flaw {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, flaw)| *flaw)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(name, _)| *name).collect();
                format!("unknown flaw {name:?}; one of {}", names.join(", "))
            })
    }
}

/// A set of switched-on flaws (empty by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flaws(u32);

impl Flaws {
    /// No flaw.
    pub const NONE: Self = Self(0);

    /// The set with `flaw` added.
    #[must_use]
    pub const fn with(self, flaw: Flaw) -> Self {
        Self(self.0 | flaw.bit())
    }

    /// Whether `flaw` is on.
    pub const fn contains(self, flaw: Flaw) -> bool {
        self.0 & flaw.bit() != 0
    }
}
