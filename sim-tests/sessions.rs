//! Client sessions past their bound: with more clients than each node keeps
//! sessions for, sessions are forgotten all the time, and a retry of a
//! command a forgotten session applied must be refused, not applied again.
//! The key-value workload appends, so a command applied twice shows in the
//! values the strong reads see, and the linearizability check fails.

mod common;

use quorate::examples::KvStore;
use quorate::sim::workload::KvWorkload;
use quorate::sim::{FaultPreset, SimConfig, Simulation, campaign_from_env};

/// Twenty clients, sessions for four: most clients' sessions are forgotten
/// between their operations.
fn config(seed: u64) -> SimConfig {
    let mut config = common::config(seed, 5, FaultPreset::Swarm);
    config.clients = 20;
    config.sessions_max = 4;
    config
}

fn simulation(config: SimConfig) -> Simulation<KvStore> {
    Simulation::new(config, KvStore::default, KvWorkload::default())
}

#[test]
fn forgotten_sessions_never_apply_a_retry_twice() {
    let reports = campaign_from_env(3000..3060, |seed| simulation(config(seed)));
    let expired: u64 = reports
        .iter()
        .map(|report| report.stats.sessions_expired)
        .sum();
    assert!(
        expired > 0,
        "no proposal was refused as of a forgotten session: the test exercised nothing"
    );
}

/// Without the refusal (the planted flaw takes a forgotten session's proposal
/// for a new one), the same campaign applies retries twice, and says so.
#[cfg(feature = "flaws")]
#[test]
fn taking_forgotten_sessions_for_new_ones_is_caught() {
    use quorate::raft::flaws::Flaw;

    let caught = (3000..3060).find(|&seed| {
        let mut config = config(seed);
        config.flaws = config.flaws.with(Flaw::ForgetExpiredSessions);
        let report = simulation(config).run();
        report
            .violations
            .iter()
            .any(|violation| violation.check == "linearizability")
    });
    assert!(
        caught.is_some(),
        "60 seeds applied forgotten sessions' retries again and no check failed"
    );
}
