//! Leadership preferences: an Observer never leads (it still votes and
//! replicates), a Reluctant node leads rarely, and a group with both still
//! elects, commits and converges under partitions and crashes.

mod common;

use std::hash::{Hash, Hasher};

use quorate::examples::{Counter, CounterCmd, CounterQuery};
use quorate::sim::workload::{CounterWorkload, Workload};
use quorate::sim::{FaultPreset, Simulation, campaign_from_env};
use quorate::{ApplyContext, LeadershipPreference, LogReplaySync, PeerId, StateMachine, UniqueId};

/// The seed's counter with a per-node leadership preference. The preference is
/// not state: equality and hashing ignore it.
#[derive(Debug, Clone)]
struct Preferring {
    counter: Counter,
    preference: LeadershipPreference,
}

impl PartialEq for Preferring {
    fn eq(&self, other: &Self) -> bool {
        self.counter == other.counter
    }
}

impl Eq for Preferring {}

impl Hash for Preferring {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.counter.hash(state);
    }
}

impl StateMachine for Preferring {
    type Command = CounterCmd;
    type Query = CounterQuery;
    type QueryResult = i64;
    type StateSync = LogReplaySync<Self>;

    fn signature(&self) -> UniqueId {
        self.counter.signature()
    }

    fn apply(&mut self, command: CounterCmd, ctx: &dyn ApplyContext) {
        self.counter.apply(command, ctx);
    }

    fn query(&self, query: CounterQuery) -> i64 {
        self.counter.query(query)
    }

    fn state_sync(&self) -> LogReplaySync<Self> {
        LogReplaySync::default()
    }

    fn leadership_preference(&self) -> LeadershipPreference {
        self.preference
    }
}

struct Workload_;

impl Workload<Preferring> for Workload_ {
    fn name(&self) -> String {
        "counter".into()
    }

    fn command(&mut self, rng: &mut quorate::env::Entropy, client: u64) -> CounterCmd {
        Workload::<Counter>::command(&mut CounterWorkload, rng, client)
    }

    fn query(&mut self, rng: &mut quorate::env::Entropy, client: u64) -> CounterQuery {
        Workload::<Counter>::query(&mut CounterWorkload, rng, client)
    }
}

#[test]
fn an_observer_never_leads_and_a_reluctant_node_rarely_does() {
    let observer = PeerId(1);
    let reluctant = PeerId(2);
    let reports = campaign_from_env(0..30, |seed| {
        let config = common::config(
            seed,
            5,
            if seed % 2 == 0 {
                FaultPreset::Partitions
            } else {
                FaultPreset::Crashes
            },
        );
        let machine = move |id: PeerId| Preferring {
            counter: Counter::default(),
            preference: match id {
                id if id == observer => LeadershipPreference::Observer,
                id if id == reluctant => LeadershipPreference::Reluctant { factor: 10 },
                _ => LeadershipPreference::Normal,
            },
        };
        Simulation::per_node(config, machine, Workload_)
    });
    let mut terms = 0;
    let mut reluctant_terms = 0;
    for report in &reports {
        for (term, leader) in &report.leaders {
            assert_ne!(
                *leader, observer,
                "seed {}: the observer led term {term}",
                report.config.seed
            );
            terms += 1;
            reluctant_terms += usize::from(*leader == reluctant);
        }
    }
    if reports.len() < 10 {
        return; // a replay: the observer check above is what counts
    }
    assert!(terms > reports.len(), "too few elections to judge: {terms}");
    assert!(
        reluctant_terms * 4 < terms,
        "the reluctant node led {reluctant_terms} of {terms} terms, not rarely"
    );
}
