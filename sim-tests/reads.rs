//! Weak and strong reads: strong reads are linearizable; weak reads answer
//! locally, never go back in log position for a client reading one node, and
//! agree with every other read at the same position (each reflects a committed
//! prefix).

mod common;

use quorate::examples::KvStore;
use quorate::sim::workload::KvWorkload;
use quorate::sim::{FaultPreset, Simulation, campaign_from_env};

#[test]
fn weak_and_strong_reads_hold_their_guarantees() {
    let reports = campaign_from_env(0..30, |seed| {
        let mut config = common::config(seed, 5, FaultPreset::Swarm);
        config.read_per_mille = 600;
        config.weak_read_per_mille = 500;
        Simulation::new(config, KvStore::default, KvWorkload::default())
    });
    // A campaign (not a one-seed replay) must have done real work.
    let operations: usize = reports.iter().map(|report| report.operations.1).sum();
    assert!(
        reports.len() < 10 || operations > 50 * reports.len(),
        "too few reads and writes: {operations}"
    );
}
