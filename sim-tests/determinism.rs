//! Determinism: the same seed gives the same trace, event for event, whatever
//! the faults (the property every replay depends on).

use std::time::Duration;

use quorate::examples::{Counter, KvStore};
use quorate::sim::runner::check_determinism;
use quorate::sim::trace::What;
use quorate::sim::workload::{CounterWorkload, KvWorkload};
use quorate::sim::{FaultPreset, SimConfig, Simulation};

fn kv(seed: u64) -> Simulation<KvStore> {
    let mut config = SimConfig::new(seed);
    config.duration = Duration::from_secs(5);
    config.quiet_period = Duration::from_secs(5);
    config.faults = FaultPreset::All;
    Simulation::new(config, KvStore::default, KvWorkload::default())
}

#[test]
fn the_same_seed_gives_the_same_trace_twice() {
    for seed in quorate::sim::runner::seeds_from_env(1..6) {
        let report = check_determinism(seed, &kv).unwrap_or_else(|message| panic!("{message}"));
        assert!(
            report.trace_events > 1000,
            "seed {seed}: a run this short proves little"
        );
    }
}

#[test]
fn different_seeds_give_different_traces() {
    let make = |seed| {
        let mut config = SimConfig::new(seed);
        config.duration = Duration::from_secs(2);
        config.quiet_period = Duration::from_secs(2);
        Simulation::new(config, Counter::default, CounterWorkload).run()
    };
    assert_ne!(make(1).trace_hash, make(2).trace_hash);
}

#[test]
fn recording_the_trace_changes_neither_its_hash_nor_its_tail() {
    // A run writes request texts only where they can be shown; the hash and the
    // report's last events must not depend on it.
    let make = |seed| {
        let mut config = SimConfig::new(seed);
        config.duration = Duration::from_secs(3);
        // Stopping under load puts client requests in the tail.
        config.quiet_period = Duration::ZERO;
        Simulation::new(config, KvStore::default, KvWorkload::default())
    };
    let mut seeds_with_requests = 0;
    for seed in 0..6 {
        let plain = make(seed).run();
        let recorded = make(seed).recording_trace(true).run();
        assert_eq!(plain.trace_hash, recorded.trace_hash, "seed {seed}");
        let all = recorded.trace.expect("recorded");
        assert_eq!(
            plain.trace_tail,
            all[all.len() - plain.trace_tail.len()..],
            "seed {seed}"
        );
        let requests = plain
            .trace_tail
            .iter()
            .filter(|event| matches!(&event.what, What::Request { operation, .. } if !operation.is_empty()))
            .count();
        seeds_with_requests += usize::from(requests > 0);
    }
    // The case the test is for: request texts in the tail.
    assert!(
        seeds_with_requests >= 2,
        "only {seeds_with_requests} of seeds 0..6 end with a client request in the last events"
    );
}

#[test]
fn bare_engines_fed_a_runs_inputs_end_where_the_simulated_ones_did() {
    // The simulator only carries inputs to the engines: replayed outside it,
    // in the same order and at the same local times, the same inputs make the
    // engines send as many messages and end in the same state. All faults are
    // on, so crashes (restarts from a torn disk), pauses and skewed clocks are
    // among the inputs.
    for seed in quorate::sim::runner::seeds_from_env(0..4) {
        let plain = kv(seed).run();
        let (report, inputs) = kv(seed).run_recording_inputs();
        assert_eq!(
            plain.trace_hash, report.trace_hash,
            "seed {seed}: keeping the inputs changed the run"
        );
        let inputs = inputs.expect("the run did not panic");
        assert!(
            inputs.len() as u64 > report.stats.messages_delivered,
            "seed {seed}: every delivered message is an input"
        );
        let (sent, finals) = (inputs.sent().to_vec(), inputs.finals().to_vec());
        assert_eq!(
            sent.iter().sum::<u64>(),
            report.stats.messages_sent,
            "seed {seed}"
        );
        let replay = inputs
            .drive_engines(|_| KvStore::default())
            .unwrap_or_else(|error| panic!("seed {seed}: {error}"));
        assert_eq!(
            replay.messages_received, report.stats.messages_delivered,
            "seed {seed}"
        );
        assert_eq!(replay.sent, sent, "seed {seed}: messages sent per node");
        assert_eq!(replay.finals, finals, "seed {seed}: final statuses");
        assert!(
            finals
                .iter()
                .flatten()
                .any(|status| !status.commit_index.is_zero()),
            "seed {seed}: a run that commits nothing proves little"
        );
    }
}
