//! The simulated clients: each a closed loop of operations, sent to a node,
//! retried on time-outs and refusals, and recorded in the history.

use super::*;

/// How long a client waits before retrying after `NotLeader`: briefly with a
/// hint, longer without one (an election is under way).
fn not_leader_backoff(leader: Option<PeerId>) -> Duration {
    Duration::from_millis(if leader.is_some() { 5 } else { 25 })
}

/// What the trace text of a client request is made from, beside the
/// operation in the history.
#[derive(Debug, Clone, Copy)]
pub(super) struct RequestShown {
    history_index: usize,
    kind: RequestKind,
}

#[derive(Debug, Clone, Copy)]
enum RequestKind {
    Propose(ProposalId),
    Query(Consistency),
}

/// A fingerprint of a client request for the trace hash: the same on every
/// machine (the command's `Hash` writes through [`Fingerprint`]).
fn request_digest<M: SimMachine>(request: &Request<M>) -> u64 {
    let mut digest = Fingerprint::new(0);
    match request {
        Request::Propose(proposal) => {
            digest.word(1);
            digest.word(proposal.id.client.0);
            digest.word(proposal.id.sequence);
            proposal.command.hash(&mut digest);
        }
        Request::Query {
            query, consistency, ..
        } => {
            digest.word(2);
            consistency.hash(&mut digest);
            query.hash(&mut digest);
        }
    }
    digest.value()
}

impl<M: SimMachine> World<M> {
    fn schedule_wake(&mut self, client: usize, at: Instant) {
        let state = &mut self.clients[client];
        state.generation += 1;
        let generation = state.generation;
        self.queue
            .push(at.max(self.now), Event::ClientWake { client, generation });
    }

    // The three client events (a fifth of all events) are out of line:
    // inlined into the run loop, their code crowded the instruction cache
    // that every delivery's code needs (callgrind's cache model: 88 misses an
    // event inlined, 77 out of line). Out of line, the simulator's side of
    // `make bench-sim FIGURES=2` ran 2% faster (155 against 158 ms, four
    // rounds each, in turn) for 9 more instructions an event.
    #[inline(never)]
    pub(super) fn client_wake(&mut self, client: usize) {
        let Some(pending) = &self.clients[client].pending else {
            if !self.quiet {
                self.start_operation(client);
            }
            return;
        };
        if self.now >= pending.deadline {
            let index = pending.history_index;
            self.history
                .complete(index, OperationOutcome::Info { at: self.now });
            self.clients[client].pending = None;
            self.next_operation_later(client);
        } else if self.now >= pending.attempt_deadline {
            let next = self.next_node(client);
            self.clients[client].target = next;
            self.attempt(client);
        } else {
            let at = pending.attempt_deadline.min(pending.deadline);
            self.schedule_wake(client, at);
        }
    }

    /// Another node for `client` to try.
    fn next_node(&mut self, client: usize) -> PeerId {
        let count = self.config.nodes;
        let state = &mut self.clients[client];
        let step = uniform_u64(&mut state.rng, 1, count.max(2));
        PeerId((state.target.0 - 1 + step) % count + 1)
    }

    fn next_operation_later(&mut self, client: usize) {
        let think = uniform_duration(
            &mut self.clients[client].rng,
            Duration::ZERO,
            Duration::from_millis(10),
        );
        self.schedule_wake(client, self.now + think);
    }

    fn start_operation(&mut self, client: usize) {
        if let Some(scripts) = &mut self.scripts {
            // A scenario's next operation, at its time; none left: idle.
            let Some((at, _)) = scripts[client].last() else {
                return;
            };
            let at = Instant::ZERO + *at;
            if at > self.now {
                self.schedule_wake(client, at);
            } else if let Some((_, operation)) = scripts[client].pop() {
                self.issue(client, operation);
            }
            return;
        }
        let client_number = self.clients[client].id.0;
        let operation = match self
            .workload
            .operation(&mut self.workload_rng, client_number)
        {
            Some(operation) => operation,
            None => self.draw_operation(client_number),
        };
        self.issue(client, operation);
    }

    /// A read or a write, by the configured read ratio, from the workload. All
    /// from the workload's stream, so a scenario (which spells operations out)
    /// leaves the clients' stream as the seed had it.
    fn draw_operation(&mut self, client_number: u64) -> Operation<M> {
        let read =
            uniform_u64(&mut self.workload_rng, 0, 1000) < u64::from(self.config.read_per_mille);
        if read {
            let strong = uniform_u64(&mut self.workload_rng, 0, 1000)
                >= u64::from(self.config.weak_read_per_mille);
            Operation::Query {
                query: self.workload.query(&mut self.workload_rng, client_number),
                strong,
            }
        } else {
            Operation::Command(self.workload.command(&mut self.workload_rng, client_number))
        }
    }

    /// Records `operation` as invoked by `client` and sends its first attempt.
    fn issue(&mut self, client: usize, operation: Operation<M>) {
        let client_number = self.clients[client].id.0;
        let is_command = matches!(operation, Operation::Command(_));
        let history_index = self.history.invoke(client_number, operation, self.now);
        let mut session = Index::ZERO;
        let proposal = if is_command {
            if self.clients[client].session.is_none() {
                let target = Self::position(self.clients[client].target);
                let committed = self.hosts[target]
                    .node
                    .as_ref()
                    .map_or(Index::ZERO, |node| node.status().commit_index);
                self.clients[client].session = Some(committed);
            }
            let state = &mut self.clients[client];
            session = state.session.expect("opened above");
            state.next_sequence += 1;
            state.commands.push(history_index);
            Some(ProposalId {
                client: state.id,
                sequence: state.next_sequence,
            })
        } else {
            None
        };
        self.clients[client].pending = Some(Pending {
            history_index,
            proposal,
            session,
            query: None,
            deadline: self.now + self.config.operation_timeout,
            attempt_deadline: self.now,
        });
        self.attempt(client);
    }

    /// Sends the pending operation to the client's target node.
    fn attempt(&mut self, client: usize) {
        let now = self.now;
        let attempt_timeout = self.config.attempt_timeout;
        let state = &mut self.clients[client];
        let target = state.target;
        let Some(pending) = state.pending.as_mut() else {
            return;
        };
        pending.attempt_deadline = now + attempt_timeout;
        let request = match &self.history.operations[pending.history_index].operation {
            Operation::Command(command) => Request::Propose(Proposal {
                id: pending.proposal.expect("commands have a proposal id"),
                command: command.clone(),
                settled_below: pending
                    .proposal
                    .expect("commands have a proposal id")
                    .sequence,
                session: pending.session,
            }),
            Operation::Query { query, strong } => {
                state.next_query += 1;
                let id = ((client as u64) << QUERY_CLIENT_SHIFT) | state.next_query;
                pending.query = Some(id);
                Request::Query {
                    id,
                    query: query.clone(),
                    consistency: if *strong {
                        Consistency::Strong
                    } else {
                        Consistency::Weak
                    },
                }
            }
        };
        let wake = pending.attempt_deadline.min(pending.deadline);
        let history_index = pending.history_index;
        let latency = self.network.client_latency();
        self.queue.push(
            now + latency,
            Event::ClientRequest {
                client,
                node: target,
                request: Box::new(request),
                history_index,
            },
        );
        self.schedule_wake(client, wake);
    }

    // Out of line: see `client_wake`.
    #[inline(never)]
    pub(super) fn client_request(
        &mut self,
        client: usize,
        node: PeerId,
        request: Box<Request<M>>,
        history_index: usize,
    ) {
        let position = Self::position(node);
        if self.hosts[position].node.is_none() {
            return; // lost with the crashed node; the client will time out
        }
        if self.hosts[position].paused {
            self.hosts[position].deferred.push(Event::ClientRequest {
                client,
                node,
                request,
                history_index,
            });
            return;
        }
        let shown = RequestShown {
            history_index,
            kind: match &*request {
                Request::Propose(proposal) => RequestKind::Propose(proposal.id),
                Request::Query { consistency, .. } => RequestKind::Query(*consistency),
            },
        };
        let operation = if self.trace.wants_text() {
            self.describe(shown)
        } else {
            // Written only if the request is still in a report's tail.
            if self.recent_requests.len() == TRACE_TAIL_EVENTS {
                self.recent_requests.pop_front();
            }
            self.recent_requests.push_back(shown);
            String::new()
        };
        let what = What::Request {
            client: self.clients[client].id.0,
            operation,
            digest: request_digest(&request),
        };
        match *request {
            Request::Propose(proposal) => {
                self.record_input(position, || Input::Propose(proposal.clone()));
                self.step_node(position, Some(what), |node, now| {
                    node.propose(now, proposal)
                });
            }
            Request::Query {
                id,
                query,
                consistency,
            } => {
                self.record_input(position, || Input::Query {
                    id,
                    query: query.clone(),
                    consistency,
                });
                self.step_node(position, Some(what), |node, now| {
                    node.query(now, id, query, consistency)
                });
            }
        }
    }

    /// The text of a client request, as the trace shows it.
    fn describe(&self, shown: RequestShown) -> String {
        match (
            shown.kind,
            &self.history.operations[shown.history_index].operation,
        ) {
            (RequestKind::Propose(id), Operation::Command(command)) => {
                format!("propose {id} {command:?}")
            }
            (RequestKind::Query(consistency), Operation::Query { query, .. }) => {
                format!("{consistency:?} query {query:?}")
            }
            (kind, operation) => unreachable!("{kind:?} made from {operation:?}"),
        }
    }

    /// The last trace events, with the text of each client request written in.
    pub(crate) fn trace_tail(&self) -> Vec<TraceEvent> {
        let mut tail = self.trace.tail();
        // The requests left unwritten are the last ones recorded, in order.
        let mut recent = self.recent_requests.iter().rev();
        for event in tail.iter_mut().rev() {
            if let What::Request { operation, .. } = &mut event.what
                && operation.is_empty()
                && let Some(&shown) = recent.next()
            {
                *operation = self.describe(shown);
            }
        }
        tail
    }

    // Out of line: see `client_wake`.
    #[inline(never)]
    pub(super) fn client_response(&mut self, client: usize, response: Response<M>) {
        let Some(pending) = &self.clients[client].pending else {
            return;
        };
        let index = pending.history_index;
        let retry_at = |world: &mut Self, hint: Option<PeerId>, backoff: Duration| {
            let state = &mut world.clients[client];
            state.target = hint.unwrap_or(state.target);
            if hint.is_none() {
                let next = world.next_node(client);
                world.clients[client].target = next;
            }
            if let Some(pending) = world.clients[client].pending.as_mut() {
                pending.attempt_deadline = world.now + backoff;
            }
            world.schedule_wake(client, world.now + backoff);
        };
        match response {
            Response::Proposal { id, outcome } => {
                if pending.proposal != Some(id) {
                    return;
                }
                match outcome {
                    ProposalOutcome::Committed { .. } => {
                        self.history.complete(
                            index,
                            OperationOutcome::Ok {
                                at: self.now,
                                answer: None,
                            },
                        );
                        self.clients[client].pending = None;
                        self.next_operation_later(client);
                    }
                    ProposalOutcome::Rejected(crate::raft::ProposeError::NotLeader { leader }) => {
                        retry_at(self, leader, not_leader_backoff(leader));
                    }
                    ProposalOutcome::Rejected(crate::raft::ProposeError::Busy)
                    | ProposalOutcome::Unknown => {
                        retry_at(self, None, Duration::from_millis(20));
                    }
                    ProposalOutcome::SessionExpired { index: expired_at } => {
                        // Whether an earlier copy was applied cannot be told:
                        // the operation's outcome is unknown. The next ones
                        // go in a new session.
                        self.stats.sessions_expired += 1;
                        self.history
                            .complete(index, OperationOutcome::Info { at: self.now });
                        let state = &mut self.clients[client];
                        state.session = state.session.max(Some(expired_at));
                        state.pending = None;
                        self.next_operation_later(client);
                    }
                }
            }
            Response::Query {
                id,
                node,
                incarnation,
                outcome,
            } => {
                if pending.query != Some(id) {
                    return;
                }
                match outcome {
                    Ok(answer) => {
                        if matches!(
                            self.history.operations[index].operation,
                            Operation::Query { strong: false, .. }
                        ) {
                            self.weak_read_sources.insert(index, (node.0, incarnation));
                        }
                        let answer = Some((answer.result, answer.position));
                        self.history.complete(
                            index,
                            OperationOutcome::Ok {
                                at: self.now,
                                answer,
                            },
                        );
                        self.clients[client].pending = None;
                        self.next_operation_later(client);
                    }
                    Err(QueryError::NotLeader { leader }) => {
                        retry_at(self, leader, not_leader_backoff(leader));
                    }
                    Err(QueryError::Timeout | QueryError::Busy) => {
                        retry_at(self, None, Duration::from_millis(20))
                    }
                }
            }
        }
    }
}
