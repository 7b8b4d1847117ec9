//! Linearizability under swarm faults: the strong operations of the counter,
//! register and key-value workloads are linearizable against the machine itself,
//! whatever mix of faults each seed draws. CI runs a few hundred seeds;
//! `make sim` runs thousands.

mod common;

use quorate::examples::{Counter, KvStore, Register};
use quorate::sim::workload::{CounterWorkload, KvWorkload, RegisterWorkload};
use quorate::sim::{FaultPreset, Simulation, campaign_from_env};

#[test]
fn counter_is_linearizable_under_swarm_faults() {
    campaign_from_env(0..100, |seed| {
        Simulation::new(
            common::config(seed, 5, FaultPreset::Swarm),
            Counter::default,
            CounterWorkload,
        )
    });
}

#[test]
fn register_is_linearizable_under_swarm_faults() {
    campaign_from_env(1000..1100, |seed| {
        Simulation::new(
            common::config(seed, 3, FaultPreset::Swarm),
            Register::default,
            RegisterWorkload,
        )
    });
}

#[test]
fn kv_is_linearizable_under_swarm_faults() {
    let reports = campaign_from_env(2000..2100, |seed| {
        Simulation::new(
            common::config(seed, 5, FaultPreset::Swarm),
            KvStore::default,
            KvWorkload::default(),
        )
    });
    let undecided = reports
        .iter()
        .filter(|report| report.linearizability_unknown.is_some())
        .count();
    assert_eq!(undecided, 0, "the checker gave up on {undecided} histories");
}
