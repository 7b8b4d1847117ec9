//! How a lagging follower catches up: the [`StateSync`] trait and [`LogReplaySync`].

use core::fmt;
use core::marker::PhantomData;

use super::StateMachine;
use crate::id::UniqueId;

/// A catch-up strategy for followers that fall behind further than the leader's
/// log reaches (the leader pruned the entries they need).
///
/// Its [`signature`](StateSync::signature) is part of the GroupId: every member
/// must catch up the same way.
pub trait StateSync: Send + Sync + 'static {
    /// The machine this strategy serves.
    type Machine: StateMachine;

    /// Identifies the strategy and the settings every member must share.
    fn signature(&self) -> UniqueId;

    /// The most committed entries one catch-up request may return.
    fn fetch_entries_max(&self) -> usize;
}

/// Catch-up by replaying committed log entries: a follower that needs entries the
/// leader no longer holds fetches them from any peer that still holds them and has
/// them committed, appends them and applies them in order.
///
/// Only committed entries are ever replayed, and a replayed entry never replaces a
/// committed one, so catch-up cannot fork the log. The log is the state: a node
/// using `LogReplaySync` never prunes its log on its own.
pub struct LogReplaySync<M> {
    fetch_entries_max: usize,
    machine: PhantomData<fn() -> M>,
}

impl<M> LogReplaySync<M> {
    /// Entries per catch-up request unless set otherwise.
    pub const FETCH_ENTRIES_MAX_DEFAULT: usize = 256;

    /// Log replay with at most `fetch_entries_max` entries per request (at least 1).
    pub fn with_fetch_entries_max(fetch_entries_max: usize) -> Self {
        Self {
            fetch_entries_max: fetch_entries_max.max(1),
            machine: PhantomData,
        }
    }
}

impl<M> Default for LogReplaySync<M> {
    fn default() -> Self {
        Self::with_fetch_entries_max(Self::FETCH_ENTRIES_MAX_DEFAULT)
    }
}

impl<M> Clone for LogReplaySync<M> {
    fn clone(&self) -> Self {
        Self::with_fetch_entries_max(self.fetch_entries_max)
    }
}

impl<M> fmt::Debug for LogReplaySync<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogReplaySync")
            .field("fetch_entries_max", &self.fetch_entries_max)
            .finish()
    }
}

impl<M: StateMachine> StateSync for LogReplaySync<M> {
    type Machine = M;

    fn signature(&self) -> UniqueId {
        // The batch size does not change what a node ends up with, so members may
        // differ in it; only the strategy itself is part of the identity.
        UniqueId::from("quorate.log_replay_sync.v1")
    }

    fn fetch_entries_max(&self) -> usize {
        self.fetch_entries_max
    }
}
