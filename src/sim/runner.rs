//! Running many seeds: the environment variables madsim users know
//! (`QUORATE_SEED`, `QUORATE_SEEDS`, `QUORATE_CHECK_DETERMINISM`), the
//! determinism self-check, and the command that reproduces a failure.

use core::ops::Range;
use core::time::Duration;

use super::config::second_look_quiet_period;
use super::workload::SimMachine;
use super::{LIVENESS, RunReport, SimConfig, Simulation};

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
    let sessions = if config.sessions_max == crate::raft::SESSIONS_MAX_DEFAULT {
        String::new()
    } else {
        format!(" --sessions-max {}", config.sessions_max)
    };
    format!(
        "cargo run --release{features} -- replay --seed {} --nodes {} --clients {}{sessions} --workload {} --faults {} --duration {} --quiet {}{flaws}",
        config.seed,
        config.nodes,
        config.clients,
        workload,
        config.faults,
        config.duration.as_secs_f64(),
        config.quiet_period.as_secs_f64(),
    )
}

/// How a [`second_look`] verdict starts when the longer run passes.
pub const SLOW: &str = "slow, not stuck:";

/// How a [`second_look`] verdict starts when the longer run fails too.
pub const STUCK: &str = "stuck:";

/// Whether failed `report` failed the liveness checks and nothing else.
pub fn liveness_only(report: &RunReport) -> bool {
    !report.passed()
        && report
            .violations
            .iter()
            .all(|violation| violation.check == LIVENESS)
}

/// A second look at a run that failed liveness checks and nothing else:
/// `rerun` runs it again with the quiet period it is given
/// ([`second_look_quiet_period`] of the run's own). If that passes, the group
/// was only slow to converge (`reproduce` names what shows it); if it fails
/// too, the group is stuck, which is the bug to look at. `None` for a run
/// that passed or failed another check, or if `rerun` cannot run it.
pub fn second_look(
    report: &RunReport,
    rerun: impl FnOnce(Duration) -> Option<RunReport>,
    reproduce: impl FnOnce(&RunReport) -> String,
) -> Option<String> {
    if !liveness_only(report) {
        return None;
    }
    let quiet = second_look_quiet_period(report.config.quiet_period);
    let longer = rerun(quiet)?;
    let seconds = quiet.as_secs_f64();
    Some(match longer.violations.first() {
        None => format!(
            "{SLOW} with a quiet period of {seconds} s the same run passes ({})",
            reproduce(&longer)
        ),
        Some(violation) => {
            format!("{STUCK} with a quiet period of {seconds} s it still fails: {violation}")
        }
    })
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
            let second_look = second_look(
                &report,
                |quiet| Some(build(seed).with_quiet_period(quiet).run()),
                |longer| {
                    format!(
                        "as a test: QUORATE_SEED={seed} with the quiet period set to {} s",
                        longer.config.quiet_period.as_secs_f64()
                    )
                },
            )
            .map(|line| format!("  {line}\n"))
            .unwrap_or_default();
            panic!(
                "{}{second_look}\n  (as a test: QUORATE_SEED={seed} cargo test --test <this file>)",
                report.failure_text()
            );
        }
        reports.push(report);
    }
    reports
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples::KvStore;
    use crate::sim::FaultPreset;
    use crate::sim::workload::KvWorkload;

    /// Seed 0 of a 3-node group without faults or load, then `quiet` seconds
    /// of quiet: with none, it ends before any election.
    fn simulation(quiet: u64) -> Simulation<KvStore> {
        let mut config = SimConfig::new(0);
        config.nodes = 3;
        config.clients = 1;
        config.faults = FaultPreset::None;
        config.duration = Duration::ZERO;
        config.quiet_period = Duration::from_secs(quiet);
        Simulation::new(config, KvStore::default, KvWorkload::default())
    }

    #[test]
    fn a_second_look_tells_slow_from_stuck() {
        let unfinished = simulation(0).run();
        assert_eq!(unfinished.failed_check(), Some(LIVENESS));
        assert!(liveness_only(&unfinished));
        let rerun = |quiet| {
            assert_eq!(quiet, Duration::from_secs(20), "4x nothing, at least 20 s");
            Some(simulation(0).with_quiet_period(quiet).run())
        };
        assert_eq!(
            second_look(&unfinished, rerun, |_| "CMD".into()).as_deref(),
            Some("slow, not stuck: with a quiet period of 20 s the same run passes (CMD)")
        );
        assert_eq!(
            second_look(
                &unfinished,
                |_| Some(unfinished.clone()),
                |_| unreachable!()
            )
            .as_deref(),
            Some(
                "stuck: with a quiet period of 20 s it still fails: \
                 [liveness] no leader at the end of the quiet period: n1 n2 n3 follower in term 0"
            )
        );
        // No verdict for a run that passed, or when the rerun cannot be made.
        let passed = simulation(10).run();
        assert!(passed.passed(), "{}", passed.failure_text());
        assert!(!liveness_only(&passed));
        assert_eq!(
            second_look(&passed, |_| unreachable!(), |_| unreachable!()),
            None
        );
        assert_eq!(second_look(&unfinished, |_| None, |_| unreachable!()), None);
    }

    #[test]
    // (Up to the seed, which `QUORATE_SEED` may change.)
    #[should_panic(
        expected = "slow, not stuck: with a quiet period of 20 s the same run passes \
                    (as a test: QUORATE_SEED="
    )]
    fn a_test_campaign_gives_a_liveness_failure_a_second_look() {
        campaign_from_env(0..1, |_| simulation(0));
    }
}
