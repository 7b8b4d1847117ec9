//! [`Group`]: the user's handle on a running node.

use core::fmt;
use core::time::Duration;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant as TokioInstant;

use super::net::{BondFailure, BondLog};
use super::node::{QueryReply, Request};
use crate::codec::{self, EncodeError};
use crate::env::{Entropy, entropy_from_seed};
use crate::id::PeerId;
use crate::log::{Cursor, Index, Term};
use crate::machine::StateMachine;
use crate::raft::{
    ClientId, Consistency, Proposal, ProposalId, ProposalOutcome, ProposeError, QueryAnswer,
    QueryError, Role, Status,
};

/// The first pause before retrying a refused call; doubles up to
/// [`RETRY_BACKOFF_MAX`], and a leader change ends it early.
pub const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest pause between retries of one call.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(200);

/// Why a call on a [`Group`] did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupError {
    /// No leader was known for the whole call: the node cannot reach a quorum.
    /// Nothing was appended.
    Offline,
    /// No answer in time, and nothing was appended (queries, watchers).
    Timeout,
    /// Refused until the timeout because this node's leader hint kept failing.
    /// Nothing was appended.
    NotLeader {
        /// The last leader the node named.
        leader: Option<PeerId>,
    },
    /// The command may or may not have been committed: it reached the group but
    /// no outcome came back in time. Never reported as failed, because it may
    /// still be applied.
    Unknown,
    /// The outcome is unknown, as for [`Unknown`](Self::Unknown): the group
    /// had forgotten this client's session (more clients than
    /// [`NodeOptions::sessions_max`](crate::raft::NodeOptions::sessions_max)
    /// were active since it last proposed), so it refused to tell a retry from
    /// a new command. Later calls go in a new session.
    SessionExpired,
    /// Too many calls are pending at the node.
    Busy,
    /// The node task has stopped (every handle was dropped, `terminate` was
    /// called, or its storage failed).
    Terminated,
    /// The command could not be encoded; nothing was sent.
    Encoding(EncodeError),
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Offline => f.write_str("offline: no leader known"),
            Self::Timeout => f.write_str("timed out"),
            Self::NotLeader {
                leader: Some(leader),
            } => write!(f, "not the leader (last hint {leader})"),
            Self::NotLeader { leader: None } => f.write_str("not the leader"),
            Self::Unknown => f.write_str("outcome unknown: the command may still be applied"),
            Self::SessionExpired => f.write_str(
                "outcome unknown: the group forgot this client's session (too many clients); \
                 the next call opens a new one",
            ),
            Self::Busy => f.write_str("too many pending calls"),
            Self::Terminated => f.write_str("the node has stopped"),
            Self::Encoding(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for GroupError {}

/// A node's externally visible state, as the handle's watchers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupStatus {
    /// The node.
    pub id: PeerId,
    /// Its role.
    pub role: Role,
    /// Its term.
    pub term: Term,
    /// The leader it follows (itself when leading), if any.
    pub leader: Option<PeerId>,
    /// The highest index it knows committed.
    pub committed: Index,
    /// The last index it applied.
    pub applied: Index,
    /// False once the node task has stopped.
    pub running: bool,
}

impl GroupStatus {
    pub(crate) fn of(status: &Status, running: bool) -> Self {
        Self {
            id: status.id,
            role: status.role,
            term: status.term,
            leader: status.leader,
            committed: status.commit_index,
            applied: status.applied.index(),
            running,
        }
    }
}

/// [`ClientState::session`] before the client's first proposal.
const SESSION_UNSET: u64 = u64::MAX;

/// The client identity a handle and its clones share.
#[derive(Debug)]
pub(crate) struct ClientState {
    id: ClientId,
    next_sequence: AtomicU64,
    /// The stamp of the current session ([`Proposal::session`]): the node's
    /// commit index at the client's first proposal, then the index its last
    /// expired session was refused at. [`SESSION_UNSET`] before the first.
    session: AtomicU64,
    /// Sequences without an outcome yet; the lowest bounds `settled_below`.
    in_flight: Mutex<BTreeSet<u64>>,
    /// The stream of [`Group::request_tag`], derived from the same seed as the
    /// client id (so a simulated run replays) but independent of it.
    tags: Mutex<Entropy>,
}

impl ClientState {
    pub(crate) fn new(seed: [u8; 32]) -> Self {
        let mut id = [0u8; 8];
        id.copy_from_slice(&seed[..8]);
        Self {
            id: ClientId(u64::from_le_bytes(id)),
            next_sequence: AtomicU64::new(1),
            session: AtomicU64::new(SESSION_UNSET),
            in_flight: Mutex::new(BTreeSet::new()),
            tags: Mutex::new(entropy_from_seed(blake3::derive_key(
                "quorate 2026 group request tags v1",
                &seed,
            ))),
        }
    }

    fn next_tag(&self) -> u64 {
        let mut tags = self.tags.lock().unwrap_or_else(|e| e.into_inner());
        rand_core::Rng::next_u64(&mut *tags)
    }

    /// A new proposal id, registered as in flight; returns it with the
    /// `settled_below` and the session to send. The first proposal opens the
    /// session with `committed`, the node's commit index: a stamp that recent
    /// is above every session the group has forgotten, unless more clients
    /// than it remembers were active since.
    fn begin(&self, committed: Index) -> (ProposalId, u64, Index) {
        let _ = self.session.compare_exchange(
            SESSION_UNSET,
            committed.0,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        in_flight.insert(sequence);
        let settled_below = in_flight.first().copied().unwrap_or(sequence);
        let id = ProposalId {
            client: self.id,
            sequence,
        };
        (
            id,
            settled_below,
            Index(self.session.load(Ordering::Relaxed)),
        )
    }

    /// The group refused a proposal of this client's session at `index`:
    /// later proposals open a new session stamped with it.
    pub(crate) fn session_expired(&self, index: Index) {
        let _ = self
            .session
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |session| {
                Some(if session == SESSION_UNSET {
                    index.0
                } else {
                    session.max(index.0)
                })
            });
    }

    fn end(&self, sequence: u64) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        in_flight.remove(&sequence);
    }
}

/// A handle on a running node of a replicated state machine `M`.
///
/// Cheap to clone; clones share one client identity (a random [`ClientId`]),
/// so the group deduplicates retries across them. The node stops when the last
/// handle is dropped.
///
/// Every call has a timeout (set with [`with_timeout`](Group::with_timeout)).
/// Commands refused because leadership moved are retried with the same
/// [`ProposalId`] until it runs out; the group applies each id at most once, so a
/// retry never applies a command twice.
pub struct Group<M: StateMachine> {
    id: PeerId,
    requests: mpsc::Sender<Request<M>>,
    status: watch::Receiver<GroupStatus>,
    client: Arc<ClientState>,
    timeout: Duration,
    bond_log: Arc<BondLog>,
}

impl<M: StateMachine> Clone for Group<M> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            requests: self.requests.clone(),
            status: self.status.clone(),
            client: self.client.clone(),
            timeout: self.timeout,
            bond_log: self.bond_log.clone(),
        }
    }
}

impl<M: StateMachine> fmt::Debug for Group<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("status", &*self.status.borrow())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// How one proposal attempt ended.
enum Attempt {
    Accepted(Cursor),
    Outcome(ProposalOutcome),
    Stopped,
}

impl<M: StateMachine> Group<M> {
    pub(crate) fn new(
        id: PeerId,
        requests: mpsc::Sender<Request<M>>,
        status: watch::Receiver<GroupStatus>,
        client: Arc<ClientState>,
        timeout: Duration,
        bond_log: Arc<BondLog>,
    ) -> Self {
        Self {
            id,
            requests,
            status,
            client,
            timeout,
            bond_log,
        }
    }

    /// The id of the node this handle talks to.
    pub fn node_id(&self) -> PeerId {
        self.id
    }

    /// The client id this handle proposes under.
    pub fn client_id(&self) -> ClientId {
        self.client.id
    }

    /// A handle whose calls time out after `timeout`.
    #[must_use]
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            timeout,
            ..self.clone()
        }
    }

    /// A fresh random `u64` from this handle's entropy, one per request, for
    /// commands that record their result under a tag (such as
    /// [`KvCmd`](crate::examples::KvCmd)'s `Increment` and `Delete`). Clones
    /// share the stream, so two draws never repeat one another except by a
    /// 64-bit coincidence.
    pub fn request_tag(&self) -> u64 {
        self.client.next_tag()
    }

    /// The timeout of this handle's calls.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The node's current status.
    pub fn status(&self) -> GroupStatus {
        *self.status.borrow()
    }

    /// The leader the node follows, if known.
    pub fn leader(&self) -> Option<PeerId> {
        self.status().leader
    }

    /// Whether the node leads its group.
    pub fn is_leader(&self) -> bool {
        self.status().role == Role::Leader
    }

    /// The highest index the node knows committed.
    pub fn committed(&self) -> Index {
        self.status().committed
    }

    /// Watchers on the node's leader and commit index.
    pub fn when(&self) -> When {
        When {
            status: self.status.clone(),
            timeout: self.timeout,
        }
    }

    /// The last refused bond per peer or address (each logged once).
    pub fn bond_failures(&self) -> std::collections::BTreeMap<String, BondFailure> {
        self.bond_log.snapshot()
    }

    /// Proposes `command` and waits until it is committed and applied on this
    /// node; returns its log index.
    ///
    /// # Errors
    ///
    /// [`GroupError::Unknown`] when the command reached the group but no outcome
    /// came in time (it may still be applied); [`GroupError::SessionExpired`]
    /// when the group had forgotten this client's session (the outcome is
    /// unknown too); `Offline`, `NotLeader`, `Busy`
    /// when it was refused until the timeout (nothing applied); `Encoding`,
    /// `Terminated`.
    pub async fn execute(&self, command: M::Command) -> Result<Index, GroupError> {
        self.propose(command, false).await
    }

    /// Executes each command concurrently; the results are in the same order.
    ///
    /// # Errors
    ///
    /// Per command, as [`execute`](Group::execute).
    pub async fn execute_many(
        &self,
        commands: impl IntoIterator<Item = M::Command>,
    ) -> Vec<Result<Index, GroupError>> {
        let mut tasks = Vec::new();
        for command in commands {
            let group = self.clone();
            tasks.push(tokio::spawn(async move { group.execute(command).await }));
        }
        let mut results = Vec::with_capacity(tasks.len());
        for task in tasks {
            results.push(task.await.unwrap_or(Err(GroupError::Terminated)));
        }
        results
    }

    /// Proposes `command` and waits only until the leader assigned it an
    /// index (not until it is committed: a command with an index can still be
    /// lost to a leader change, or refused at commit as of an expired
    /// session, after which later calls open a new one).
    ///
    /// # Errors
    ///
    /// As [`execute`](Group::execute).
    pub async fn feed(&self, command: M::Command) -> Result<Index, GroupError> {
        self.propose(command, true).await
    }

    /// Asks `query`; returns the answer with the log position it reflects.
    ///
    /// # Errors
    ///
    /// `Timeout`, `Offline` or `NotLeader` when no answer came in time (a
    /// strong query needs the leader), `Busy`, `Terminated`.
    pub async fn query(
        &self,
        query: M::Query,
        consistency: Consistency,
    ) -> Result<QueryAnswer<M::QueryResult>, GroupError> {
        let deadline = TokioInstant::now() + self.timeout;
        let mut backoff = RETRY_BACKOFF_MIN;
        let mut last: Option<QueryError> = None;
        loop {
            let (reply_tx, reply_rx) = oneshot::channel();
            let request = Request::Query {
                query: query.clone(),
                consistency,
                reply: reply_tx,
            };
            let reply: Option<QueryReply<M>> = match timeout_at(deadline, async {
                self.requests.send(request).await.ok()?;
                reply_rx.await.ok()
            })
            .await
            {
                Err(_) => return Err(query_failure(last)),
                Ok(None) => return Err(GroupError::Terminated),
                Ok(Some(reply)) => Some(reply),
            };
            match reply {
                Some(Ok(answer)) => return Ok(answer),
                Some(Err(error)) => last = Some(error),
                None => {}
            }
            if !self.pause(&mut backoff, deadline).await {
                return Err(query_failure(last));
            }
        }
    }

    /// Stops the node now, whatever other handles exist, and waits until it has.
    pub async fn terminate(self) {
        let _ = self.requests.send(Request::Terminate).await;
        let mut status = self.status.clone();
        let _ = status.wait_for(|status| !status.running).await;
    }

    async fn propose(
        &self,
        command: M::Command,
        until_accepted: bool,
    ) -> Result<Index, GroupError> {
        codec::encode(&command).map_err(GroupError::Encoding)?;
        let committed = self.status.borrow().committed;
        let (id, settled_below, session) = self.client.begin(committed);
        let proposal = Proposal {
            id,
            command,
            settled_below,
            session,
        };
        let result = self.propose_until(proposal, until_accepted).await;
        self.client.end(id.sequence);
        result
    }

    /// Proposes, retrying with the same id while the proposal is refused.
    async fn propose_until(
        &self,
        proposal: Proposal<M::Command>,
        until_accepted: bool,
    ) -> Result<Index, GroupError> {
        let deadline = TokioInstant::now() + self.timeout;
        let mut backoff = RETRY_BACKOFF_MIN;
        // Whether some attempt may have been appended: then no later refusal
        // makes the outcome a failure.
        let mut maybe_appended = false;
        let mut last: Option<ProposeError> = None;
        loop {
            let (outcome_tx, outcome_rx) = oneshot::channel();
            let (accepted_tx, accepted_rx) = oneshot::channel();
            let request = Request::Propose {
                proposal: proposal.clone(),
                accepted: until_accepted.then_some(accepted_tx),
                outcome: outcome_tx,
                client: self.client.clone(),
            };
            let sent = match timeout_at(deadline, self.requests.send(request)).await {
                Err(_) => return Err(propose_failure(maybe_appended, last)),
                Ok(sent) => sent,
            };
            if sent.is_err() {
                return Err(if maybe_appended {
                    GroupError::Unknown
                } else {
                    GroupError::Terminated
                });
            }
            let attempt = timeout_at(deadline, async {
                let mut accepted_rx = accepted_rx;
                let mut outcome_rx = outcome_rx;
                tokio::select! {
                    biased;
                    accepted = &mut accepted_rx, if until_accepted => match accepted {
                        Ok(position) => Attempt::Accepted(position),
                        Err(_) => outcome_rx.await.map_or(Attempt::Stopped, Attempt::Outcome),
                    },
                    outcome = &mut outcome_rx => outcome.map_or(Attempt::Stopped, Attempt::Outcome),
                }
            })
            .await;
            match attempt {
                // The attempt is in the group's hands and unanswered.
                Err(_) | Ok(Attempt::Stopped) => return Err(GroupError::Unknown),
                Ok(Attempt::Accepted(position)) => return Ok(position.index()),
                Ok(Attempt::Outcome(ProposalOutcome::Committed { index })) => return Ok(index),
                Ok(Attempt::Outcome(ProposalOutcome::Unknown)) => {
                    maybe_appended = true;
                    continue;
                }
                Ok(Attempt::Outcome(ProposalOutcome::Rejected(error))) => last = Some(error),
                // The node task has opened the next session.
                Ok(Attempt::Outcome(ProposalOutcome::SessionExpired { .. })) => {
                    return Err(GroupError::SessionExpired);
                }
            }
            if !self.pause(&mut backoff, deadline).await {
                return Err(propose_failure(maybe_appended, last));
            }
        }
    }

    /// Waits before a retry: the backoff, cut short by a leader change. False
    /// if the deadline comes first.
    async fn pause(&self, backoff: &mut Duration, deadline: TokioInstant) -> bool {
        let until = (TokioInstant::now() + *backoff).min(deadline);
        // Under madsim, only the backoff: a watch waiter picks one of eight
        // slots with tokio's thread RNG, seeded from a process-wide counter,
        // so two runs of one seed in one process would wake clients in other
        // orders (MADSIM_TEST_CHECK_DETERMINISM). `When` has the same caveat.
        #[cfg(madsim)]
        tokio::time::sleep_until(until).await;
        #[cfg(not(madsim))]
        {
            let mut status = self.status.clone();
            let leader = status.borrow_and_update().leader;
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(until) => {}
                _ = status.wait_for(|status| status.leader != leader && status.leader.is_some()) => {}
            }
        }
        *backoff = (*backoff * 2).min(RETRY_BACKOFF_MAX);
        TokioInstant::now() < deadline
    }
}

/// `tokio::time::timeout_at`, which madsim's time module lacks; `Err` when the
/// deadline passed first.
async fn timeout_at<F: Future>(deadline: TokioInstant, future: F) -> Result<F::Output, ()> {
    let remaining = deadline.saturating_duration_since(TokioInstant::now());
    tokio::time::timeout(remaining, future)
        .await
        .map_err(|_| ())
}

fn propose_failure(maybe_appended: bool, last: Option<ProposeError>) -> GroupError {
    if maybe_appended {
        return GroupError::Unknown;
    }
    match last {
        Some(ProposeError::NotLeader { leader: None }) => GroupError::Offline,
        Some(ProposeError::NotLeader { leader }) => GroupError::NotLeader { leader },
        Some(ProposeError::Busy) => GroupError::Busy,
        None => GroupError::Timeout,
    }
}

fn query_failure(last: Option<QueryError>) -> GroupError {
    match last {
        Some(QueryError::NotLeader { leader: None }) => GroupError::Offline,
        Some(QueryError::NotLeader { leader }) => GroupError::NotLeader { leader },
        Some(QueryError::Busy) => GroupError::Busy,
        Some(QueryError::Timeout) | None => GroupError::Timeout,
    }
}

/// Watchers on a node's leader and commit index; each waits at most the
/// handle's timeout.
#[derive(Debug, Clone)]
pub struct When {
    status: watch::Receiver<GroupStatus>,
    timeout: Duration,
}

impl When {
    async fn wait(
        &self,
        condition: impl FnMut(&GroupStatus) -> bool,
    ) -> Result<GroupStatus, GroupError> {
        let mut status = self.status.clone();
        match tokio::time::timeout(self.timeout, status.wait_for(condition)).await {
            Err(_) => Err(GroupError::Timeout),
            Ok(Err(_)) => Err(GroupError::Terminated),
            Ok(Ok(status)) if !status.running => Err(GroupError::Terminated),
            Ok(Ok(status)) => Ok(*status),
        }
    }

    /// Resolves when the node knows a leader (at once if it does).
    ///
    /// # Errors
    ///
    /// `Timeout`, `Terminated`.
    pub async fn leader_elected(&self) -> Result<PeerId, GroupError> {
        let status = self
            .wait(|status| status.leader.is_some() || !status.running)
            .await?;
        status.leader.ok_or(GroupError::Offline)
    }

    /// Resolves when the node's leader differs from the one it knows now.
    ///
    /// # Errors
    ///
    /// `Timeout`, `Terminated`.
    pub async fn leader_changed(&self) -> Result<Option<PeerId>, GroupError> {
        let now = self.status.borrow().leader;
        let status = self
            .wait(|status| status.leader != now || !status.running)
            .await?;
        Ok(status.leader)
    }

    /// Resolves when the node's commit index reaches `index`.
    ///
    /// # Errors
    ///
    /// `Timeout`, `Terminated`.
    pub async fn reaches(&self, index: Index) -> Result<Index, GroupError> {
        let status = self
            .wait(|status| status.committed >= index || !status.running)
            .await?;
        Ok(status.committed)
    }
}
