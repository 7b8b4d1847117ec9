//! Checks of the run as a whole: a commit that could be lost the moment it
//! happens, and liveness, convergence and isolation at the end.

use super::*;

impl<M: SimMachine> World<M> {
    /// Whether the entry a leader just committed could still be lost: a node
    /// that lacks it, with a log at least as up to date as a quorum of voters'
    /// logs, could win a later election and overwrite it. In correct Raft this
    /// never holds (every node of the quorum that acknowledged the entry refuses
    /// such a candidate), so it catches an unsafe commit (Figure 8) the moment
    /// it happens, without waiting for a schedule that realises the loss.
    pub(super) fn commit_can_be_lost(&self, leader: usize, commit: Index) -> Option<String> {
        let term = self.hosts[leader]
            .node
            .as_ref()?
            .storage()
            .term_at(commit)?;
        // Every matched voter's log, up or down.
        let logs = || {
            self.hosts
                .iter()
                .filter(|host| host.mismatch.is_none())
                .filter_map(|host| match (&host.node, &host.disk) {
                    (Some(node), _) => Some((host.id, node.storage())),
                    (None, Some(disk)) => Some((host.id, disk)),
                    (None, None) => None,
                })
        };
        // A node that compacted past the entry has applied it, so holds it.
        let holds = |storage: &Store<M>| {
            commit < *storage.available().start() || storage.term_at(commit) == Some(term)
        };
        // The most up to date node lacking it: if no quorum would vote for it,
        // none would vote for any other node lacking it. O(nodes) per commit.
        let (candidate, last) = logs()
            .filter(|(_, storage)| !holds(storage))
            .map(|(id, storage)| (id, storage.last()))
            .max_by_key(|(_, last)| *last)?;
        let voters = || logs().filter(|(_, storage)| storage.last() <= last);
        if voters().count() < self.group.quorum() {
            return None;
        }
        let names: Vec<String> = voters().map(|(id, _)| id.to_string()).collect();
        Some(format!(
            "committed entry can be lost: {} committed {commit} of term {term}, \
             but {candidate} lacks it and could be elected by {}",
            self.hosts[leader].id,
            names.join(", ")
        ))
    }

    /// Every client command the committed log applied, in log order: its
    /// index and its place in the history. A copy the engine's sessions skip
    /// (a retry of one applied, or one its client has since settled past) is
    /// left out, by the same sessions. `None` where the log cannot tell:
    /// no node up, a prefix compacted away, an entry no client of this run
    /// proposed.
    pub(crate) fn commands_in_log_order(&self) -> Option<Vec<(Index, usize)>> {
        let node = self
            .hosts
            .iter()
            .filter(|host| host.mismatch.is_none())
            .filter_map(|host| host.node.as_ref())
            .max_by_key(|node| node.status().commit_index)?;
        let storage = node.storage();
        if !storage.available().start().is_zero() {
            return None;
        }
        let committed = usize::try_from(node.status().commit_index.0).ok()?;
        // The engine's own sessions, fed the log as the engine feeds them,
        // skip what the engine skipped.
        let mut sessions = Sessions::new(self.options.sessions_max);
        let mut commands = Vec::new();
        for (position, (_, entry)) in storage.entries_from(Index(1)).take(committed).enumerate() {
            let Some(entry) = entry.as_command() else {
                continue;
            };
            let (id, index) = (entry.proposal, Index(position as u64 + 1));
            if sessions.seen(id, entry.session) != Seen::New {
                continue;
            }
            sessions.record(id, entry.settled_below, entry.session, index);
            let client = self
                .clients
                .get(usize::try_from(id.client.0).ok()?.checked_sub(1)?)?;
            let sequence = usize::try_from(id.sequence).ok()?.checked_sub(1)?;
            commands.push((index, *client.commands.get(sequence)?));
        }
        Some(commands)
    }

    /// Liveness after the quiet period: a leader, no pending operation, every
    /// matched replica at the same applied index with equal state. Also checks
    /// that nodes of another GroupId were never influenced.
    pub(crate) fn final_checks(&mut self) -> Vec<(&'static str, String)> {
        let mut failures = Vec::new();
        let matched: Vec<usize> = (0..self.hosts.len())
            .filter(|&position| self.hosts[position].mismatch.is_none())
            .collect();
        for host in &self.hosts {
            if let (Some(input), Some(node)) = (host.mismatch, &host.node) {
                let status = node.status();
                if status.applied.index() > Index::ZERO || status.commit_index > Index::ZERO {
                    failures.push((
                        "group isolation",
                        format!("{} (different {input}) applied or committed entries of another group: {status:?}", host.id),
                    ));
                }
            }
        }
        if self
            .leader()
            .is_none_or(|position| self.hosts[position].mismatch.is_some())
        {
            // The nodes by role and term: a group stuck in elections shows
            // as candidates of ever higher terms. A node of another GroupId
            // (which never bonds) is named apart.
            let mut groups: BTreeMap<Option<(Term, Role)>, Vec<String>> = BTreeMap::new();
            for host in &self.hosts {
                let state = host.node.as_ref().map(|node| {
                    let status = node.status();
                    (status.term, status.role)
                });
                let name = match host.mismatch {
                    Some(input) => format!("{} (different {input})", host.id),
                    None => host.id.to_string(),
                };
                groups.entry(state).or_default().push(name);
            }
            let groups: Vec<String> = groups
                .into_iter()
                .map(|(state, nodes)| match state {
                    Some((term, role)) => format!("{} {role} in term {term}", nodes.join(" ")),
                    None => format!("{} down", nodes.join(" ")),
                })
                .collect();
            failures.push((
                LIVENESS,
                format!(
                    "no leader at the end of the quiet period: {}",
                    groups.join("; ")
                ),
            ));
        }
        let pending: Vec<(&Client, &Pending)> = self
            .clients
            .iter()
            .filter_map(|client| client.pending.as_ref().map(|pending| (client, pending)))
            .collect();
        let oldest = pending
            .iter()
            .min_by_key(|(_, pending)| pending.history_index);
        if let Some((client, first)) = oldest {
            // The oldest is where to start looking: name it, and the node its
            // client turns to.
            let operation = &self.history.operations[first.history_index];
            let invoked = operation.invoked;
            let what = match &operation.operation {
                Operation::Command(command) => format!("command {command:?}"),
                Operation::Query { query, strong } => {
                    format!(
                        "{} query {query:?}",
                        if *strong { "strong" } else { "weak" }
                    )
                }
            };
            failures.push((
                LIVENESS,
                format!(
                    "{} still pending after the quiet period; the oldest, client {}'s {what}, \
                     was invoked at {invoked}, and its client turns to {}",
                    match pending.len() {
                        1 => "1 client operation".to_owned(),
                        count => format!("{count} client operations"),
                    },
                    client.id.0,
                    client.target
                ),
            ));
        }
        let states: Vec<(PeerId, Status, &M)> = matched
            .iter()
            .filter_map(|&position| {
                let host = &self.hosts[position];
                host.node
                    .as_ref()
                    .map(|node| (host.id, node.status(), node.machine()))
            })
            .collect();
        if let Some((first_id, first_status, first_machine)) = states.first() {
            for (id, status, machine) in &states[1..] {
                if status.applied.index() != first_status.applied.index() {
                    failures.push((
                        LIVENESS,
                        format!(
                            "replicas did not converge: {first_id} applied {} but {id} applied {}",
                            first_status.applied, status.applied
                        ),
                    ));
                    break;
                }
                if machine != first_machine {
                    failures.push((
                        "state machine safety",
                        format!(
                            "{first_id} and {id} applied through {} but their states differ",
                            status.applied
                        ),
                    ));
                    break;
                }
            }
            // Not a safety check: a node that commits or applies another
            // entry is caught as it does so. One that lags (it crashed and
            // is still catching up, or holds an old term's entries the
            // leader has yet to overwrite) did not converge in time.
            let committed = self.invariants.committed_index();
            for (id, _, _) in &states {
                let held = self.invariants.committed_held_through(*id);
                if held < committed {
                    failures.push((
                        LIVENESS,
                        format!(
                            "{id} holds the committed log only through {held} of {committed} at the end"
                        ),
                    ));
                }
            }
        }
        failures
    }
}
