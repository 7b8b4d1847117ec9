//! GroupId mismatch: a node started with another machine signature (a rolling
//! upgrade gone wrong) or another key never bonds, never has a Raft message
//! accepted, never applies anything of the group, and the run names what differs.

mod common;

use quorate::examples::KvStore;
use quorate::sim::workload::KvWorkload;
use quorate::sim::{FaultPreset, Simulation, campaign_from_env};

#[test]
fn a_node_of_another_group_never_bonds_and_the_difference_is_named() {
    let reports = campaign_from_env(0..20, |seed| {
        Simulation::new(
            common::config(seed, 5, FaultPreset::Mismatch),
            KvStore::default,
            KvWorkload::default(),
        )
    });
    for report in &reports {
        let seed = report.config.seed;
        assert!(
            !report.bond_refusals.is_empty(),
            "seed {seed}: nothing was refused"
        );
        let named = report.bond_refusals.iter().all(|refusal| {
            refusal.contains("state machine signature")
                || refusal.contains("does not hold the group key")
        });
        assert!(
            named,
            "seed {seed}: a refusal does not name the difference: {:?}",
            report.bond_refusals
        );
        assert!(
            report.stats.messages_unbonded > 0,
            "seed {seed}: the mismatched node never tried to talk"
        );
    }
    let signature = reports.iter().any(|report| {
        report
            .bond_refusals
            .iter()
            .any(|refusal| refusal.contains("signature"))
    });
    let key = reports.iter().any(|report| {
        report
            .bond_refusals
            .iter()
            .any(|refusal| refusal.contains("key"))
    });
    assert!(
        signature && key,
        "both kinds of mismatch should occur in 20 seeds"
    );
}
