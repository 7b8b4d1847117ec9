//! The readable trace of a fixed seed's first events, as a golden file: any
//! change in the engine's or the simulator's behaviour shows up in review
//! (`cargo insta review`), not only as a changed hash.

use std::time::Duration;

use quorate::examples::Counter;
use quorate::sim::trace::What;
use quorate::sim::workload::CounterWorkload;
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
