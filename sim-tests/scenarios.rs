//! Scenarios: a seed's scenario, written to JSON and read back, replays to the
//! seed's exact trace; a scenario is a run of its own (edits change the run);
//! bad scenario files are refused with the problem named.

use std::time::Duration;

use quorate::PeerId;
use quorate::examples::{Counter, KvStore, Register};
use quorate::sim::scenario::Scenario;
use quorate::sim::workload::{CounterWorkload, KvWorkload, RegisterWorkload, SimMachine, Workload};
use quorate::sim::{FaultPreset, RunReport, SimConfig, Simulation};

fn config(seed: u64, faults: FaultPreset) -> SimConfig {
    let mut config = SimConfig::new(seed);
    config.duration = Duration::from_secs(6);
    config.quiet_period = Duration::from_secs(5);
    config.faults = faults;
    config
}

/// Runs `config` recording its scenario, replays the scenario (through its
/// JSON text) and requires the same trace hash and verdict.
fn replays_exactly<M: SimMachine, W: Workload<M> + Clone + 'static>(
    config: SimConfig,
    machine: fn() -> M,
    workload: W,
) -> (RunReport, Scenario) {
    let seed = config.seed;
    let original = Simulation::new(config, machine, workload.clone())
        .with_scenario()
        .run();
    let scenario = original.scenario.clone().expect("asked for the scenario");
    let text = scenario.to_json();
    let read = Scenario::from_json(&text).unwrap_or_else(|error| panic!("seed {seed}: {error}"));
    assert_eq!(read, scenario, "seed {seed}: the JSON does not round-trip");
    let replay = Simulation::from_scenario(&read, move |_| machine(), workload)
        .unwrap_or_else(|error| panic!("seed {seed}: {error}"))
        .run();
    assert_eq!(
        replay.trace_hash, original.trace_hash,
        "seed {seed}: the scenario does not replay the seed's trace \
         (reproduce: QUORATE_SEED={seed} cargo test --test scenarios)"
    );
    assert_eq!(replay.violations, original.violations, "seed {seed}");
    assert_eq!(replay.trace_events, original.trace_events, "seed {seed}");
    (original, scenario)
}

#[test]
fn a_seeds_scenario_replays_its_exact_trace() {
    for seed in quorate::sim::runner::seeds_from_env(0..8) {
        let preset = [FaultPreset::Swarm, FaultPreset::All][seed as usize % 2];
        let (report, scenario) = replays_exactly(
            config(seed, preset),
            KvStore::default,
            KvWorkload::default(),
        );
        assert!(report.operations.0 > 0, "seed {seed}: no client operations");
        assert_eq!(
            scenario.operations.len(),
            report.operations.0,
            "seed {seed}"
        );
    }
    for seed in quorate::sim::runner::seeds_from_env(0..3) {
        replays_exactly(
            config(seed, FaultPreset::All),
            Counter::default,
            CounterWorkload,
        );
        replays_exactly(
            config(seed, FaultPreset::All),
            Register::default,
            RegisterWorkload,
        );
    }
}

#[test]
fn editing_a_scenario_changes_the_run_and_it_still_checks() {
    let (original, mut scenario) = replays_exactly(
        config(4, FaultPreset::All),
        KvStore::default,
        KvWorkload::default(),
    );
    assert!(
        !scenario.faults.is_empty(),
        "seed 4 under `all` draws faults"
    );
    scenario.faults.clear();
    scenario.operations.truncate(10);
    let edited =
        Simulation::from_scenario(&scenario, |_| KvStore::default(), KvWorkload::default())
            .expect("a valid scenario")
            .run();
    assert_ne!(edited.trace_hash, original.trace_hash);
    assert!(edited.passed(), "{}", edited.failure_text());
    assert_eq!(
        edited.operations.0, 10,
        "exactly the scripted operations run"
    );
    assert_eq!(edited.stats.faults_injected, 0);
}

#[test]
fn a_scenario_of_another_machine_is_refused_with_the_operation_named() {
    let (_, scenario) = replays_exactly(
        config(1, FaultPreset::None),
        KvStore::default,
        KvWorkload::default(),
    );
    let error = Simulation::from_scenario(&scenario, |_| Counter::default(), CounterWorkload)
        .err()
        .expect("kv operations are not counter commands");
    assert!(error.0.contains("operations[0]"), "{error}");
    let mut wrong_node = scenario.clone();
    wrong_node.mismatch = Some(quorate::sim::scenario::Mismatch {
        node: PeerId(9),
        input: quorate::GroupIdInput::Key,
    });
    let error =
        Simulation::from_scenario(&wrong_node, |_| KvStore::default(), KvWorkload::default())
            .err()
            .expect("node 9 of 5");
    assert!(error.0.contains("mismatch names n9"), "{error}");
}
