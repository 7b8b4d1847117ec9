//! The readable trace of a fixed seed's first events, as a golden file: any
//! change in the engine's or the simulator's behaviour shows up in review
//! (`cargo insta review`), not only as a changed hash.

use std::time::Duration;

use quorate::examples::{Counter, KvStore, Register};
use quorate::sim::trace::What;
use quorate::sim::workload::{CounterWorkload, KvWorkload, RegisterWorkload};
use quorate::sim::{FaultPreset, SimConfig, Simulation};

#[test]
fn the_first_events_of_seed_7() {
    let mut config = SimConfig::new(7);
    config.nodes = 3;
    config.clients = 2;
    config.faults = FaultPreset::Crashes;
    config.duration = Duration::from_secs(2);
    config.quiet_period = Duration::from_secs(2);
    config.record_trace = true;
    let report = Simulation::new(config, Counter::default, CounterWorkload).run();
    assert!(report.passed(), "{}", report.failure_text());
    let trace = report.trace.expect("recorded");
    // Client requests before the first election are retries; keep the protocol.
    let first: Vec<String> = trace
        .iter()
        .filter(|event| !matches!(event.what, What::Request { .. }))
        .take(60)
        .map(ToString::to_string)
        .collect();
    insta::assert_snapshot!(first.join("\n"));
}

/// The whole-run trace hashes of a few fixed seeds, one per workload and a
/// spread of fault presets: the same seed must give the same hash on every
/// machine, so a build whose runs differ anywhere (another platform, another
/// toolchain, a change in the engine or the simulator) fails here and shows,
/// in review, which runs moved. `quorate replay --seed 2 --duration 5
/// --quiet 5 --faults swarm` prints the second line's hash.
#[test]
fn the_trace_hashes_of_fixed_seeds() {
    let runs: [(u64, &str, FaultPreset); 6] = [
        (1, "kv", FaultPreset::None),
        (2, "kv", FaultPreset::Swarm),
        (3, "kv", FaultPreset::All),
        (4, "counter", FaultPreset::Crashes),
        (5, "register", FaultPreset::Partitions),
        (6, "register", FaultPreset::Network),
    ];
    let mut lines = Vec::new();
    for (seed, workload, faults) in runs {
        let mut config = SimConfig::new(seed);
        config.faults = faults;
        config.duration = Duration::from_secs(5);
        config.quiet_period = Duration::from_secs(5);
        let report = match workload {
            "kv" => Simulation::new(config, KvStore::default, KvWorkload::default()).run(),
            "counter" => Simulation::new(config, Counter::default, CounterWorkload).run(),
            _ => Simulation::new(config, Register::default, RegisterWorkload).run(),
        };
        assert!(report.passed(), "seed {seed}: {}", report.failure_text());
        lines.push(format!(
            "seed {seed:>2} {workload:<8} {:<10} events {:>6}  hash {}",
            faults.to_string(),
            report.stats.events,
            report.trace_hash
        ));
    }
    insta::assert_snapshot!(lines.join("\n"));
}
