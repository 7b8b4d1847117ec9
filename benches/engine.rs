//! Engine-only throughput: 3 and 5 engines in one thread, messages handed from
//! one to the next by a plain loop (no simulator, no clock, no network model).
//! Prints committed commands per second with and without batching, and with the
//! codec in the loop (every message encoded and decoded, as the simulator does).
//!
//! Run: `make bench-engine` (or `cargo bench --bench engine`).

use std::collections::VecDeque;
use std::time::{Duration, Instant as WallClock};

use quorate::env::{Instant, TimerKind, derive_entropy};
use quorate::log::Index;
use quorate::raft::{
    ClientId, Effect, EntryOf, Message, Node, NodeOptions, Proposal, ProposalId, ProposalOutcome,
};
use quorate::{
    ApplyContext, GroupConfig, InMemoryLogStore, LogReplaySync, PeerId, StateMachine, UniqueId,
    codec,
};

/// A counter: the seed's example, reduced to one command.
#[derive(Default)]
struct Counter {
    value: i64,
}

impl StateMachine for Counter {
    type Command = i64;
    type Query = ();
    type QueryResult = i64;
    type StateSync = LogReplaySync<Self>;

    fn signature(&self) -> UniqueId {
        UniqueId::from("bench_counter_v1")
    }

    fn apply(&mut self, command: i64, _ctx: &dyn ApplyContext) {
        self.value += command;
    }

    fn query(&self, _query: ()) -> i64 {
        self.value
    }

    fn state_sync(&self) -> LogReplaySync<Self> {
        LogReplaySync::default()
    }
}

type BenchNode = Node<Counter, InMemoryLogStore<EntryOf<Counter>>>;

struct Loop {
    nodes: Vec<BenchNode>,
    queue: VecDeque<(PeerId, PeerId, Message<i64>)>,
    effects: Vec<Effect<Counter>>,
    committed: u64,
    messages: u64,
    through_codec: bool,
    now: Instant,
}

impl Loop {
    fn new(count: u64, through_codec: bool) -> Self {
        let config = GroupConfig::with_voter_count(count);
        let options = NodeOptions {
            batch_commands_max: 1024,
            append_entries_max: 1024,
            ..NodeOptions::default()
        };
        let nodes = (1..=count)
            .map(|id| {
                Node::new(
                    PeerId(id),
                    config.clone(),
                    options.clone(),
                    Counter::default(),
                    InMemoryLogStore::default(),
                    derive_entropy(1, &format!("node-{id}")),
                    Instant::ZERO,
                )
                .expect("valid configuration")
            })
            .collect();
        let mut bench = Self {
            nodes,
            queue: VecDeque::new(),
            effects: Vec::new(),
            committed: 0,
            messages: 0,
            through_codec,
            now: Instant::ZERO,
        };
        bench.now = Instant::ZERO + Duration::from_secs(1);
        bench.nodes[0].on_timer(bench.now, TimerKind::Election);
        bench.flush(0);
        bench.drain();
        bench
    }

    fn flush(&mut self, position: usize) {
        let from = self.nodes[position].id();
        self.nodes[position]
            .flush(self.now, &mut self.effects)
            .expect("memory storage never fails");
        for effect in self.effects.drain(..) {
            match effect {
                Effect::Send { to, message } => self.queue.push_back((from, to, message)),
                Effect::ProposalOutcome {
                    outcome: ProposalOutcome::Committed { .. },
                    ..
                } => self.committed += 1,
                _ => {}
            }
        }
    }

    fn drain(&mut self) {
        while let Some((from, to, message)) = self.queue.pop_front() {
            self.messages += 1;
            let message = if self.through_codec {
                let bytes = codec::encode(&message).expect("encodable");
                codec::decode(&bytes).expect("decodable")
            } else {
                message
            };
            let position = (to.0 - 1) as usize;
            self.nodes[position].on_message(self.now, from, message);
            self.flush(position);
        }
    }

    /// Proposes `per_round` commands at the leader per round until `total` commit.
    fn run(&mut self, total: u64, per_round: u64) -> Duration {
        let start = WallClock::now();
        let mut sequence = 0;
        while self.committed < total {
            for _ in 0..per_round {
                sequence += 1;
                self.nodes[0].propose(
                    self.now,
                    Proposal {
                        id: ProposalId {
                            client: ClientId(1),
                            sequence,
                        },
                        command: 1,
                        settled_below: sequence,
                        session: Index::ZERO,
                    },
                );
            }
            self.flush(0);
            self.drain();
        }
        start.elapsed()
    }
}

fn main() {
    println!("engine-only loop: committed commands per second (one thread)");
    println!(
        "{:<7} {:<10} {:<7} {:>14} {:>16}",
        "nodes", "batch", "codec", "commits/s", "messages/s"
    );
    for nodes in [3, 5] {
        for (per_round, total) in [(1, 100_000), (256, 1_000_000)] {
            for through_codec in [false, true] {
                let mut bench = Loop::new(nodes, through_codec);
                let elapsed = bench.run(total, per_round);
                let seconds = elapsed.as_secs_f64();
                println!(
                    "{:<7} {:<10} {:<7} {:>14.0} {:>16.0}",
                    nodes,
                    per_round,
                    if through_codec { "yes" } else { "no" },
                    bench.committed as f64 / seconds,
                    bench.messages as f64 / seconds,
                );
                assert!(
                    bench
                        .nodes
                        .iter()
                        .all(|node| node.machine().value as u64 >= total)
                );
            }
        }
    }
}
