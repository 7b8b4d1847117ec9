//! Configuration: [`GroupConfig`] (what every member must agree on, part of the
//! GroupId) and [`NodeOptions`] (per-node tunables and bounds).

use core::fmt;
use core::time::Duration;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::id::PeerId;
use crate::machine::LeadershipPreference;

/// The consensus parameters every member of a group must share. Their
/// [`digest`](GroupConfig::digest) is an input of the GroupId.
///
/// The voter set is static: quorums are majorities of `voters`, never of the
/// peers that happen to be reachable, so a minority partition can never commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupConfig {
    /// Every voting member. A quorum is a strict majority of this set.
    pub voters: BTreeSet<PeerId>,
    /// How often a leader sends heartbeats.
    pub heartbeat_interval: Duration,
    /// The shortest election timeout; timeouts are drawn from
    /// `[election_timeout_min, election_timeout_max)`.
    pub election_timeout_min: Duration,
    /// The bound (exclusive) of the election timeout range.
    pub election_timeout_max: Duration,
}

impl GroupConfig {
    /// A group of `voters` with the default timings (heartbeat 50 ms, election
    /// timeout 300 to 600 ms).
    pub fn new(voters: impl IntoIterator<Item = PeerId>) -> Self {
        Self {
            voters: voters.into_iter().collect(),
            heartbeat_interval: Duration::from_millis(50),
            election_timeout_min: Duration::from_millis(300),
            election_timeout_max: Duration::from_millis(600),
        }
    }

    /// A group of voters `1..=count`.
    pub fn with_voter_count(count: u64) -> Self {
        Self::new((1..=count).map(PeerId))
    }

    /// How many votes make a majority of the voters.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Checks that the timings and the voter set can work.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.voters.is_empty() {
            return Err(ConfigError::NoVoters);
        }
        if self.heartbeat_interval.is_zero() {
            return Err(ConfigError::Timing("heartbeat_interval must be positive"));
        }
        if self.election_timeout_min <= self.heartbeat_interval {
            return Err(ConfigError::Timing(
                "election_timeout_min must exceed heartbeat_interval",
            ));
        }
        if self.election_timeout_max <= self.election_timeout_min {
            return Err(ConfigError::Timing(
                "election_timeout_max must exceed election_timeout_min",
            ));
        }
        Ok(())
    }

    /// Checks that some voter may campaign: a group whose voters are all
    /// [`Observer`](LeadershipPreference::Observer)s could never elect a leader.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NoCandidate`] if every voter is an observer, and
    /// [`ConfigError::UnknownVoter`] if a preference names a non-voter.
    pub fn validate_preferences(
        &self,
        preferences: impl IntoIterator<Item = (PeerId, LeadershipPreference)>,
    ) -> Result<(), ConfigError> {
        let mut observers = BTreeSet::new();
        for (peer, preference) in preferences {
            if !self.voters.contains(&peer) {
                return Err(ConfigError::UnknownVoter(peer));
            }
            if !preference.may_campaign() {
                observers.insert(peer);
            }
        }
        if observers.len() == self.voters.len() {
            return Err(ConfigError::NoCandidate);
        }
        Ok(())
    }

    /// The digest of everything here, an input of the GroupId. Fixed-width
    /// little-endian fields in a fixed order, so it is the same on every machine.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_derive_key("quorate 2026 consensus parameters v1");
        hasher.update(&(self.voters.len() as u64).to_le_bytes());
        for voter in &self.voters {
            hasher.update(&voter.0.to_le_bytes());
        }
        for duration in [
            self.heartbeat_interval,
            self.election_timeout_min,
            self.election_timeout_max,
        ] {
            hasher.update(&duration.as_nanos().to_le_bytes());
        }
        *hasher.finalize().as_bytes()
    }
}

/// Per-node tunables: limits and timeouts that members need not share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeOptions {
    /// Most entries in one AppendEntries message.
    pub append_entries_max: usize,
    /// Most entries sent to one follower and not yet acknowledged.
    pub inflight_entries_max: usize,
    /// Most proposals a leader puts in one batch (one `apply_batch` call).
    pub batch_commands_max: usize,
    /// Most proposals this node waits on at once; more are refused as busy.
    pub pending_proposals_max: usize,
    /// Most queries this node waits on at once; more are refused as busy.
    pub pending_queries_max: usize,
    /// How long a proposal may stay pending before it is reported as timed out.
    pub proposal_timeout: Duration,
    /// How long a strong query may wait for confirmation before it times out.
    pub query_timeout: Duration,
    /// Client sessions kept for deduplicating retried proposals (each about
    /// 150 bytes). Past it, the least recently applied client's session is
    /// forgotten, and its later proposals are refused with
    /// [`ProposalOutcome::SessionExpired`](super::ProposalOutcome::SessionExpired)
    /// (outcome unknown; the client opens a new session) rather than risk
    /// applying a retry twice. Keep it above the number of clients active at
    /// once: with more, sessions are forgotten in turn and most proposals are
    /// refused so.
    pub sessions_max: usize,
    /// Emit [`Effect::SendLent`](super::Effect::SendLent) for AppendEntries
    /// that carry entries, so the driver encodes them straight from the log
    /// instead of each message holding clones (off by default: the driver must
    /// then encode before it calls the node again).
    #[serde(default)]
    pub lend_entries: bool,
    /// Planted bugs switched on for this node (feature `flaws`; none by default).
    #[cfg(feature = "flaws")]
    pub flaws: super::flaws::Flaws,
}

/// The default [`NodeOptions::sessions_max`].
pub const SESSIONS_MAX_DEFAULT: usize = 65_536;

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            append_entries_max: 256,
            inflight_entries_max: 4096,
            batch_commands_max: 256,
            pending_proposals_max: 65_536,
            pending_queries_max: 65_536,
            proposal_timeout: Duration::from_secs(5),
            query_timeout: Duration::from_secs(5),
            sessions_max: SESSIONS_MAX_DEFAULT,
            lend_entries: false,
            #[cfg(feature = "flaws")]
            flaws: super::flaws::Flaws::NONE,
        }
    }
}

impl NodeOptions {
    /// Checks that every bound is positive.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Limit`] naming the first zero bound.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bounds = [
            ("append_entries_max", self.append_entries_max),
            ("inflight_entries_max", self.inflight_entries_max),
            ("batch_commands_max", self.batch_commands_max),
            ("pending_proposals_max", self.pending_proposals_max),
            ("pending_queries_max", self.pending_queries_max),
            ("sessions_max", self.sessions_max),
        ];
        for (name, value) in bounds {
            if value == 0 {
                return Err(ConfigError::Limit(name));
            }
        }
        if self.inflight_entries_max < self.append_entries_max {
            return Err(ConfigError::Limit(
                "inflight_entries_max must be at least append_entries_max",
            ));
        }
        Ok(())
    }
}

/// Why a group or node configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The voter set is empty.
    NoVoters,
    /// The node is not one of the voters.
    NotAVoter(PeerId),
    /// A preference was given for a peer that is not a voter.
    UnknownVoter(PeerId),
    /// Every voter is an observer, so no leader could ever be elected.
    NoCandidate,
    /// The timings cannot work.
    Timing(&'static str),
    /// A bound is zero or inconsistent.
    Limit(&'static str),
    /// The storage holds a log this machine's state sync cannot start from.
    Storage(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoVoters => f.write_str("the group has no voters"),
            Self::NotAVoter(peer) => write!(f, "node {peer} is not a voter of the group"),
            Self::UnknownVoter(peer) => write!(f, "{peer} is not a voter of the group"),
            Self::NoCandidate => f.write_str(
                "every voter is an Observer: no leader could ever be elected; \
                 give at least one node the Normal or Reluctant preference",
            ),
            Self::Timing(problem) | Self::Limit(problem) => f.write_str(problem),
            Self::Storage(problem) => write!(f, "storage: {problem}"),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_is_a_majority_of_configured_voters() {
        assert_eq!(GroupConfig::with_voter_count(1).quorum(), 1);
        assert_eq!(GroupConfig::with_voter_count(3).quorum(), 2);
        assert_eq!(GroupConfig::with_voter_count(4).quorum(), 3);
        assert_eq!(GroupConfig::with_voter_count(5).quorum(), 3);
    }

    #[test]
    fn all_observer_groups_are_refused() {
        let config = GroupConfig::with_voter_count(3);
        let observers = (1..=3).map(|id| (PeerId(id), LeadershipPreference::Observer));
        assert_eq!(
            config.validate_preferences(observers),
            Err(ConfigError::NoCandidate)
        );
        let one_reluctant = (1..=3).map(|id| {
            let preference = if id == 2 {
                LeadershipPreference::reluctant()
            } else {
                LeadershipPreference::Observer
            };
            (PeerId(id), preference)
        });
        assert_eq!(config.validate_preferences(one_reluctant), Ok(()));
    }

    #[test]
    fn digest_covers_voters_and_timings() {
        let base = GroupConfig::with_voter_count(3);
        assert_eq!(base.digest(), GroupConfig::with_voter_count(3).digest());
        assert_ne!(base.digest(), GroupConfig::with_voter_count(5).digest());
        let slower = GroupConfig {
            heartbeat_interval: Duration::from_millis(51),
            ..base.clone()
        };
        assert_ne!(base.digest(), slower.digest());
    }
}
