//! Crash and restart: a crashed node keeps only what it synced (or a torn prefix
//! of the rest), restarts from its log, and no committed entry is ever lost;
//! leaders are crashed too, including right after their election.

mod common;

use quorate::examples::Register;
use quorate::sim::workload::RegisterWorkload;
use quorate::sim::{FaultPreset, Simulation, campaign_from_env};

#[test]
fn committed_entries_survive_crashes_and_restarts() {
    let reports = campaign_from_env(0..60, |seed| {
        Simulation::new(
            common::config(seed, 5, FaultPreset::Crashes),
            Register::default,
            RegisterWorkload,
        )
    });
    if reports.len() < 10 {
        return; // a replay of a few seeds: their own checks are what counts
    }
    let faults: u64 = reports
        .iter()
        .map(|report| report.stats.faults_injected)
        .sum();
    assert!(
        faults >= reports.len() as u64,
        "too few crashes to mean anything: {faults}"
    );
    let completed: usize = reports.iter().map(|report| report.operations.1).sum();
    assert!(
        completed > 20 * reports.len(),
        "the clients got little done: {completed} operations"
    );
}
