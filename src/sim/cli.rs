//! The `quorate explore` and `quorate replay` subcommands.
//!
//! ```text
//! quorate explore [--seeds A..B] [--nodes N] [--workload counter|register|kv]
//!                 [--faults none|network|partitions|crashes|pauses|mismatch|all|swarm]
//!                 [--duration SECS] [--quiet SECS]
//! quorate replay  --seed N [same options]
//! ```
//!
//! `explore` runs a campaign and prints a summary: seeds run, every failure with
//! the command that reproduces it, simulated events per wall second and
//! simulated time over wall time. Exit status 1 if any seed failed.
//!
//! `replay` runs one seed and prints its readable trace and trace hash; exit
//! status 1 if a check fails. `RUST_LOG=quorate=debug` also shows the trace
//! through `tracing`, with the virtual time as a field.
//!
//! This module reads no clock: the binary passes `clock`, the wall time since it
//! started, used only for the speed figures.

use core::ops::Range;
use core::str::FromStr;
use core::time::Duration;
use std::io::Write;

use clap::Args;

use super::workload::{
    CounterWorkload, KvWorkload, RegisterWorkload, SimMachine, Workload, WorkloadKind,
};
use super::{FaultPreset, RunReport, SimConfig, Simulation};
use crate::examples::{Counter, KvStore, Register};

/// A range of seeds, written `A..B` (B excluded) or a single `A`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRange(pub Range<u64>);

impl FromStr for SeedRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let number = |part: &str| {
            part.trim()
                .parse::<u64>()
                .map_err(|_| format!("{part:?} is not a seed (a whole number)"))
        };
        match text.split_once("..") {
            Some((start, end)) => {
                let (start, end) = (number(start)?, number(end)?);
                if end <= start {
                    return Err(format!("the seed range {text} is empty"));
                }
                Ok(Self(start..end))
            }
            None => {
                let seed = number(text)?;
                Ok(Self(seed..seed.saturating_add(1)))
            }
        }
    }
}

/// What a simulated cluster runs: shared by `explore` and `replay`.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Voters in the group.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=255))]
    pub nodes: u64,
    /// The built-in workload: counter, register or kv.
    #[arg(long, default_value = "kv")]
    pub workload: WorkloadKind,
    /// Fault preset: none, network, partitions, crashes, pauses, mismatch, all, swarm.
    #[arg(long, default_value = "swarm")]
    pub faults: FaultPreset,
    /// Simulated seconds of load and faults.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Simulated seconds of quiet at the end, before liveness is checked.
    #[arg(long, default_value_t = 10.0)]
    pub quiet: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 5)]
    pub clients: u64,
    /// Switch on a planted bug in every node (repeatable; feature `flaws`).
    #[cfg(feature = "flaws")]
    #[arg(long = "flaw")]
    pub flaws: Vec<crate::raft::flaws::Flaw>,
}

impl ClusterArgs {
    /// The simulation configuration for `seed`.
    ///
    /// # Errors
    ///
    /// If a duration is negative or not finite.
    pub fn config(&self, seed: u64) -> Result<SimConfig, String> {
        let seconds = |value: f64, name: &str| {
            Duration::try_from_secs_f64(value)
                .map_err(|_| format!("--{name} {value} is not a duration in seconds"))
        };
        let mut config = SimConfig::new(seed);
        config.nodes = self.nodes;
        config.clients = self.clients;
        config.faults = self.faults;
        config.duration = seconds(self.duration, "duration")?;
        config.quiet_period = seconds(self.quiet, "quiet")?;
        #[cfg(feature = "flaws")]
        for flaw in &self.flaws {
            config.flaws = config.flaws.with(*flaw);
        }
        Ok(config)
    }
}

/// `quorate explore`.
#[derive(Debug, Clone, Args)]
pub struct ExploreArgs {
    /// Seeds to run, `A..B` (B excluded).
    #[arg(long, default_value = "0..100")]
    pub seeds: SeedRange,
    /// The cluster, workload and faults.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `quorate replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The seed to run.
    #[arg(long)]
    pub seed: u64,
    /// The cluster, workload and faults (as the failing run had them).
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Print only the summary, not every trace event.
    #[arg(long)]
    pub brief: bool,
}

/// Runs one seed of `cluster` with the built-in machine its workload names.
///
/// # Errors
///
/// If the cluster arguments are invalid.
pub fn run_builtin(
    cluster: &ClusterArgs,
    seed: u64,
    record_trace: bool,
) -> Result<RunReport, String> {
    let mut config = cluster.config(seed)?;
    config.record_trace = record_trace;
    Ok(match cluster.workload {
        WorkloadKind::Counter => simulate(config, Counter::default, CounterWorkload),
        WorkloadKind::Register => simulate(config, Register::default, RegisterWorkload),
        WorkloadKind::Kv => simulate(config, KvStore::default, KvWorkload::default()),
    })
}

fn simulate<M: SimMachine>(
    config: SimConfig,
    make: fn() -> M,
    workload: impl Workload<M> + 'static,
) -> RunReport {
    Simulation::new(config, make, workload).run()
}

/// Runs `quorate explore`; returns the exit status.
pub fn run_explore(args: &ExploreArgs, clock: &dyn Fn() -> Duration, out: &mut dyn Write) -> i32 {
    let started = clock();
    let mut failures: Vec<RunReport> = Vec::new();
    let mut events = 0u64;
    let mut simulated = Duration::ZERO;
    let mut runs = 0u64;
    let _ = writeln!(
        out,
        "exploring seeds {}..{}: {} nodes, workload {}, faults {}, {} s + {} s quiet",
        args.seeds.0.start,
        args.seeds.0.end,
        args.cluster.nodes,
        args.cluster.workload,
        args.cluster.faults,
        args.cluster.duration,
        args.cluster.quiet
    );
    let mut last_progress = started;
    for seed in args.seeds.0.clone() {
        let report = match run_builtin(&args.cluster, seed, false) {
            Ok(report) => report,
            Err(message) => {
                let _ = writeln!(out, "error: {message}");
                return 2;
            }
        };
        runs += 1;
        events += report.stats.events;
        simulated += report.stats.simulated;
        if !report.passed() {
            let _ = writeln!(
                out,
                "seed {seed}: FAILED [{}] {}",
                report.failed_check().unwrap_or("?"),
                report
                    .violations
                    .first()
                    .map(|violation| violation.message.as_str())
                    .unwrap_or("")
            );
            failures.push(report);
        }
        let now = clock();
        if now.saturating_sub(last_progress) >= Duration::from_secs(5) {
            last_progress = now;
            let _ = writeln!(
                out,
                "  ... {runs} seeds, {} failed, {:.1} s",
                failures.len(),
                (now - started).as_secs_f64()
            );
        }
    }
    let wall = clock()
        .saturating_sub(started)
        .max(Duration::from_micros(1));
    let _ = writeln!(out, "\nseeds run: {runs}, failed: {}", failures.len());
    for report in &failures {
        let _ = writeln!(out, "\n{}", report.failure_text());
    }
    let _ = writeln!(
        out,
        "speed: {:.0} simulated events per wall second; simulated time {:.0}x wall time ({:.1} s wall)",
        events as f64 / wall.as_secs_f64(),
        simulated.as_secs_f64() / wall.as_secs_f64(),
        wall.as_secs_f64()
    );
    i32::from(!failures.is_empty())
}

/// Runs `quorate replay`; returns the exit status.
pub fn run_replay(args: &ReplayArgs, out: &mut dyn Write) -> i32 {
    let report = match run_builtin(&args.cluster, args.seed, !args.brief) {
        Ok(report) => report,
        Err(message) => {
            let _ = writeln!(out, "error: {message}");
            return 2;
        }
    };
    if let Some(trace) = &report.trace {
        for event in trace {
            let _ = writeln!(out, "{event}");
        }
    }
    for refusal in &report.bond_refusals {
        let _ = writeln!(out, "bond refused: {refusal}");
    }
    let _ = writeln!(
        out,
        "\nseed {}: {} trace events, trace hash {}, {} operations ({} ok), faults: {}",
        args.seed,
        report.trace_events,
        report.trace_hash,
        report.operations.0,
        report.operations.1,
        report.faults
    );
    if report.passed() {
        let _ = writeln!(out, "all checks passed");
        0
    } else {
        let _ = writeln!(out, "{}", report.failure_text());
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_parse_and_refuse_nonsense() {
        assert_eq!("3..7".parse::<SeedRange>(), Ok(SeedRange(3..7)));
        assert_eq!("9".parse::<SeedRange>(), Ok(SeedRange(9..10)));
        assert!("7..3".parse::<SeedRange>().is_err());
        assert!("x..3".parse::<SeedRange>().is_err());
    }
}
