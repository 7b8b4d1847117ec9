//! Elections under partitions: whatever the cut (halves, an isolated node or
//! leader, a majority ring, a bridge, one-way links), at most one leader per
//! term, committed entries are never lost, and once the partitions heal a leader
//! is elected and every replica converges.

mod common;

use quorate::examples::Counter;
use quorate::sim::workload::CounterWorkload;
use quorate::sim::{FaultPreset, Simulation, campaign_from_env};

#[test]
fn partitions_never_elect_two_leaders_in_a_term_and_heal_to_one() {
    for nodes in [3, 5] {
        let reports = campaign_from_env(0..40, |seed| {
            Simulation::new(
                common::config(seed, nodes, FaultPreset::Partitions),
                Counter::default,
                CounterWorkload,
            )
        });
        if reports.len() < 10 {
            continue; // a replay of a few seeds: their own checks are what counts
        }
        let elections: usize = reports.iter().map(|report| report.leaders.len()).sum();
        let faults: u64 = reports
            .iter()
            .map(|report| report.stats.faults_injected)
            .sum();
        assert!(faults > 0, "{nodes} nodes: no partition was ever injected");
        assert!(
            elections > reports.len(),
            "{nodes} nodes: partitions never forced a new election"
        );
    }
}
