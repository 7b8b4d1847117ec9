//! Running many seeds: the environment variables madsim users know
//! (`QUORATE_SEED`, `QUORATE_SEEDS`, `QUORATE_CHECK_DETERMINISM`), the
//! determinism self-check, and the command that reproduces a failure.

use core::ops::Range;

use super::workload::SimMachine;
use super::{RunReport, SimConfig, Simulation};

/// The seed range a test runs: `QUORATE_SEED=n` runs seed `n` (and with
/// `QUORATE_SEEDS=k`, `k` seeds from `n`); `QUORATE_SEEDS=k` alone runs `k`
/// seeds from the default start; otherwise `default`.
///
/// # Panics
///
/// If a variable is set but not a number (a typo should not silently run the
/// default campaign).
pub fn seeds_from_env(default: Range<u64>) -> Range<u64> {
    let read = |name: &str| {
        std::env::var(name).ok().map(|value| {
            value
                .trim()
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{name}={value:?} is not a number"))
        })
    };
    match (read("QUORATE_SEED"), read("QUORATE_SEEDS")) {
        (Some(seed), count) => seed..seed.saturating_add(count.unwrap_or(1)),
        (None, Some(count)) => default.start..default.start.saturating_add(count),
        (None, None) => default,
    }
}

/// Whether `QUORATE_CHECK_DETERMINISM` asks for every seed to run twice.
pub fn determinism_check_requested() -> bool {
    std::env::var("QUORATE_CHECK_DETERMINISM").is_ok_and(|value| !value.is_empty() && value != "0")
}

/// The command line that reruns `config` exactly, with the readable trace.
pub fn reproduce_command(config: &SimConfig, workload: &str) -> String {
    #[allow(unused_mut)]
    let mut features = String::new();
    #[allow(unused_mut)]
    let mut flaws = String::new();
    #[cfg(feature = "flaws")]
    for (name, flaw) in crate::raft::flaws::Flaw::ALL {
        if config.flaws.contains(flaw) {
            features = " --features flaws".to_owned();
            flaws.push_str(&format!(" --flaw {name}"));
        }
    }
    format!(
        "cargo run --release{features} -- replay --seed {} --nodes {} --clients {} --workload {} --faults {} --duration {} --quiet {}{flaws}",
        config.seed,
        config.nodes,
        config.clients,
        workload,
        config.faults,
        config.duration.as_secs_f64(),
        config.quiet_period.as_secs_f64(),
    )
}

/// Runs `build(seed)` twice with per-event checkpoints and compares the traces.
///
/// # Errors
///
/// The first differing event, with both versions, if the runs differ.
pub fn check_determinism<M: SimMachine>(
    seed: u64,
    build: &dyn Fn(u64) -> Simulation<M>,
) -> Result<RunReport, String> {
    let first = build(seed).with_checkpoints().run();
    let second = build(seed).with_checkpoints().run();
    if first.trace_hash == second.trace_hash && first.checkpoints == second.checkpoints {
        return Ok(first);
    }
    let a = first.checkpoints.unwrap_or_default();
    let b = second.checkpoints.unwrap_or_default();
    let differ = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let record = |seed| {
        let mut simulation = build(seed);
        simulation.config.record_trace = true;
        simulation.run().trace.unwrap_or_default()
    };
    let (trace_a, trace_b) = (record(seed), record(seed));
    let show = |trace: &[super::trace::TraceEvent]| {
        trace.get(differ).map_or_else(
            || "(no event: the run ended)".to_owned(),
            ToString::to_string,
        )
    };
    Err(format!(
        "seed {seed} is not deterministic: traces {} and {} first differ at event {differ}:\n  first run:  {}\n  second run: {}",
        first.trace_hash,
        second.trace_hash,
        show(&trace_a),
        show(&trace_b)
    ))
}

/// Runs a campaign for a test: the seeds of [`seeds_from_env`] (default
/// `default`), each twice when [`determinism_check_requested`]. Returns the
/// reports; panics with the failure report (seed, explanation, last trace events,
/// reproduce command) at the first seed that fails.
///
/// # Panics
///
/// At the first failing seed, as a test should.
pub fn campaign_from_env<M: SimMachine>(
    default: Range<u64>,
    build: impl Fn(u64) -> Simulation<M>,
) -> Vec<RunReport> {
    let twice = determinism_check_requested();
    let mut reports = Vec::new();
    for seed in seeds_from_env(default) {
        let report = if twice {
            match check_determinism(seed, &build) {
                Ok(report) => report,
                Err(message) => panic!("{message}"),
            }
        } else {
            build(seed).run()
        };
        if !report.passed() {
            panic!(
                "{}\n  (as a test: QUORATE_SEED={seed} cargo test --test <this file>)",
                report.failure_text()
            );
        }
        reports.push(report);
    }
    reports
}
