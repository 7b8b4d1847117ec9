//! Faults as they fire: partitions, crashes and restarts, pauses, clock
//! changes, and the end of faults when the quiet period begins.

use super::*;

impl<M: SimMachine> World<M> {
    /// The node a fault lands on: the one `target` names (a node, or the
    /// leader) if it is `eligible`, else one of the eligible drawn from the
    /// fault stream; `None` if no node is eligible.
    fn resolve(&mut self, target: Target, eligible: impl Fn(&Host<M>) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.hosts.len())
            .filter(|&position| eligible(&self.hosts[position]))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        match target {
            Target::Node(id) if candidates.contains(&Self::position(id)) => {
                Some(Self::position(id))
            }
            Target::Leader => self
                .leader()
                .filter(|position| candidates.contains(position))
                .or_else(|| {
                    Some(
                        candidates
                            [uniform_u64(&mut self.fault_rng, 0, candidates.len() as u64) as usize],
                    )
                }),
            Target::Node(_) => Some(
                candidates[uniform_u64(&mut self.fault_rng, 0, candidates.len() as u64) as usize],
            ),
        }
    }

    pub(super) fn apply_fault(&mut self, action: FaultAction) {
        if self.quiet {
            return;
        }
        self.stats.faults_injected += 1;
        match &action {
            FaultAction::Partition(kind) => {
                let nodes: Vec<PeerId> = self.hosts.iter().map(|host| host.id).collect();
                let leader = self.leader().map(|position| self.hosts[position].id);
                let description = self
                    .network
                    .partition(kind, &nodes, leader, &mut self.fault_rng);
                self.record(None, What::Fault(description));
            }
            FaultAction::Heal => {
                self.network.heal();
                self.record(None, What::Fault("heal".into()));
            }
            FaultAction::Crash(target) => {
                if let Some(position) = self.resolve(*target, |host| host.node.is_some()) {
                    self.crash(position);
                }
            }
            FaultAction::CrashNextVoter => {
                self.crash_next_voter = true;
                self.record(None, What::Fault(action.to_string()));
            }
            FaultAction::CrashNextLeader { messages } => {
                self.crash_next_leader = Some(*messages);
                self.record(None, What::Fault(action.to_string()));
            }
            FaultAction::LeaderChurn { rounds } => {
                self.churn_rounds = *rounds;
                self.record(None, What::Fault(action.to_string()));
                // The current leader is the first to go.
                if let Some(leader) = self.leader()
                    && self.doomed.is_none()
                    && self.churn_rounds > 0
                {
                    self.churn_rounds -= 1;
                    self.doomed = Some((leader, self.churn_doom()));
                }
            }
            FaultAction::Restart(node) => {
                let position = Self::position(*node);
                if self
                    .hosts
                    .get(position)
                    .is_some_and(|host| host.node.is_none())
                {
                    self.restart(position);
                }
            }
            FaultAction::RestartOldest => {
                let oldest = (0..self.hosts.len())
                    .filter(|&position| self.hosts[position].node.is_none())
                    .min_by_key(|&position| (self.hosts[position].down_since, position));
                if let Some(position) = oldest {
                    self.restart(position);
                }
            }
            FaultAction::Pause(target) => {
                if let Some(position) =
                    self.resolve(*target, |host| host.node.is_some() && !host.paused)
                {
                    self.hosts[position].paused = true;
                    self.hosts[position].paused_since = self.now;
                    self.record(Some(position), What::Fault("pause".into()));
                }
            }
            FaultAction::ResumeOldest => {
                let oldest = (0..self.hosts.len())
                    .filter(|&position| self.hosts[position].paused)
                    .min_by_key(|&position| (self.hosts[position].paused_since, position));
                if let Some(position) = oldest {
                    self.resume(position);
                }
            }
            FaultAction::Clock {
                node,
                offset_ms,
                drift_ppm,
            } => {
                let position = Self::position(*node);
                let host = &mut self.hosts[position];
                let local = host.clock.local(self.now);
                // Clocks are monotonic: an offset only ever jumps forward.
                let jump = u64::try_from((*offset_ms).max(0)).unwrap_or(0) * 1_000_000;
                host.clock = Clock {
                    base_global: self.now.as_nanos(),
                    base_local: local.as_nanos() + jump,
                    drift_ppm: *drift_ppm,
                };
                self.record(Some(position), What::Fault(action.to_string()));
            }
        }
    }

    pub(super) fn crash(&mut self, position: usize) {
        self.crash_losing(position, None);
    }

    /// How a leader under churn dies: after a few messages, or at its first
    /// commit.
    pub(super) fn churn_doom(&mut self) -> Doom {
        if chance(&mut self.fault_rng, 500_000) {
            Doom::FirstCommit
        } else {
            Doom::Messages(uniform_u64(&mut self.fault_rng, 0, 3) as u32)
        }
    }

    /// Restarts the node at `position` after a delay drawn from `low..high`.
    pub(super) fn restart_soon(&mut self, position: usize, low: Duration, high: Duration) {
        let delay = uniform_duration(&mut self.fault_rng, low, high);
        let node = self.hosts[position].id;
        self.queue
            .push(self.now + delay, Event::Fault(FaultAction::Restart(node)));
    }

    /// Crashes a node; what its storage loses is `outcome`, or drawn.
    pub(super) fn crash_losing(&mut self, position: usize, outcome: Option<CrashOutcome>) {
        if self.doomed.is_some_and(|(doomed, _)| doomed == position) {
            self.doomed = None;
        }
        let outcome = if let Some(outcome) = outcome {
            outcome
        } else if chance(&mut self.fault_rng, 500_000) {
            CrashOutcome::LoseUnsynced
        } else {
            let unsynced = self.hosts[position]
                .node
                .as_ref()
                .map_or(0, |node| node.storage().unsynced_writes());
            CrashOutcome::KeepPrefix {
                writes: uniform_u64(&mut self.fault_rng, 0, unsynced as u64 + 1) as usize,
            }
        };
        let host = &mut self.hosts[position];
        let node = host.node.take().expect("crashing a running node");
        self.stats.entries_received.add(node.entries_received());
        let mut disk = node.into_storage();
        let lost = disk.crash(outcome);
        // A granted vote must survive any crash: the candidate may already
        // count it, and a node that forgets it can vote twice in one term.
        let kept = disk.hard_state();
        if let Some((term, candidate)) = host.granted
            && (kept.current_term < term
                || (kept.current_term == term && kept.voted_for != Some(candidate)))
        {
            self.violations.push((
                self.now,
                "safety",
                format!(
                    "vote durability: {} granted its vote in term {term} to {candidate}, \
                     but after a crash its storage holds term {} and vote {}",
                    host.id,
                    kept.current_term,
                    kept.voted_for.map_or("none".to_owned(), |v| v.to_string())
                ),
            ));
        }
        host.disk = Some(disk);
        host.paused = false;
        host.deferred.clear();
        host.down_since = self.now;
        host.last_step = None;
        for generation in &mut host.timer_generation {
            *generation += 1;
        }
        self.record(
            Some(position),
            What::Fault(format!("crash ({lost} unsynced writes lost)")),
        );
    }

    pub(super) fn restart(&mut self, position: usize) {
        self.record(Some(position), What::Fault("restart".into()));
        self.boot(position);
    }

    fn resume(&mut self, position: usize) {
        let host = &mut self.hosts[position];
        host.paused = false;
        let deferred = core::mem::take(&mut host.deferred);
        self.record(Some(position), What::Fault("resume".into()));
        for event in deferred {
            self.queue.push(self.now, event);
        }
    }

    /// The faults stop: heal, restart and resume everything, perfect network.
    pub(super) fn end_faults(&mut self) {
        self.quiet = true;
        self.crash_next_leader = None;
        self.crash_next_voter = false;
        self.churn_rounds = 0;
        self.doomed = None;
        self.network.heal();
        self.network
            .set_faults(crate::sim::config::NetworkFaults::NONE);
        self.record(None, What::Fault("faults end; quiet period".into()));
        for position in 0..self.hosts.len() {
            if self.hosts[position].node.is_none() {
                self.restart(position);
            } else if self.hosts[position].paused {
                self.resume(position);
            }
        }
        // Clients finish what they started, with the whole quiet period to do it.
        let end = self.now + self.config.quiet_period;
        for client in &mut self.clients {
            if let Some(pending) = &mut client.pending {
                pending.deadline = end;
            }
        }
    }
}
