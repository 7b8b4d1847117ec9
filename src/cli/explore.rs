//! The `quorate explore` and `quorate replay` subcommands.
//!
//! ```text
//! quorate explore [--seeds A..B] [--nodes N] [--workload counter|register|kv]
//!                 [--faults none|network|partitions|crashes|pauses|mismatch|all|swarm]
//!                 [--duration SECS] [--quiet SECS]
//!                 [--jobs N] [--shard I/N] [--summary FILE]
//! quorate replay  --seed N [same options] [--history FILE]
//! ```
//!
//! `explore` runs a campaign and prints a summary: seeds run, failures grouped
//! by the check that failed with the command that reproduces each, simulated
//! events per wall second and simulated time over wall time. Exit status 1 if
//! any seed failed. Threads, shards and summaries live in [`crate::campaign`].
//!
//! `replay` runs one seed and prints its readable trace and trace hash; exit
//! status 1 if a check fails. `--history FILE` writes its client history as
//! Jepsen EDN. `RUST_LOG=quorate=debug` also shows the trace
//! through `tracing`, with the virtual time as a field.
//!
//! This module reads no clock: the binary passes `clock`, the wall time since it
//! started, used only for the speed figures.

use core::ops::{ControlFlow, Range};
use core::str::FromStr;
use core::time::Duration;
use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::campaign::{
    self, CampaignKey, FailureRecord, Progress, SeedRun, Shard, Summary, Totals,
};
use crate::examples::{Counter, KvStore, Register};
use crate::sim::workload::{
    CounterWorkload, KvWorkload, RegisterWorkload, SimMachine, Workload, WorkloadKind,
};
use crate::sim::{FaultPreset, RunReport, SimConfig, Simulation, reproduce_command};

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
    /// Worker threads; each seed still runs on one thread, and results are
    /// reported in seed order, identical to `--jobs 1`. `0`: one per CPU.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Run only shard `i` of `n` (0-based): the seeds `s` with `s % n == i`.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Write a JSON summary of the campaign here (for `quorate merge`).
    #[arg(long)]
    pub summary: Option<PathBuf>,
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
    /// Write the run's client history as Jepsen EDN here (strong operations,
    /// as the linearizability check sees them).
    #[arg(long)]
    pub history: Option<PathBuf>,
}

/// Runs one seed of `cluster` with the built-in machine its workload names;
/// with `history_edn`, the report carries the client history as Jepsen EDN.
///
/// # Errors
///
/// If the cluster arguments are invalid.
pub fn run_builtin(
    cluster: &ClusterArgs,
    seed: u64,
    record_trace: bool,
    history_edn: bool,
) -> Result<RunReport, String> {
    let mut config = cluster.config(seed)?;
    config.record_trace = record_trace;
    Ok(match cluster.workload {
        WorkloadKind::Counter => simulate(config, history_edn, Counter::default, CounterWorkload),
        WorkloadKind::Register => {
            simulate(config, history_edn, Register::default, RegisterWorkload)
        }
        WorkloadKind::Kv => simulate(config, history_edn, KvStore::default, KvWorkload::default()),
    })
}

fn simulate<M: SimMachine>(
    config: SimConfig,
    history_edn: bool,
    make: fn() -> M,
    workload: impl Workload<M> + 'static,
) -> RunReport {
    let simulation = Simulation::new(config, make, workload);
    if history_edn {
        simulation.with_history_edn().run()
    } else {
        simulation.run()
    }
}

/// The summary's record of what `explore` ran: shards of one campaign have
/// equal keys.
pub fn campaign_key(args: &ExploreArgs) -> CampaignKey {
    #[allow(unused_mut)]
    let mut flaws = Vec::new();
    #[cfg(feature = "flaws")]
    for (name, flaw) in crate::raft::flaws::Flaw::ALL {
        if args.cluster.flaws.contains(&flaw) {
            flaws.push(name.to_owned());
        }
    }
    CampaignKey {
        seeds: format!("{}..{}", args.seeds.0.start, args.seeds.0.end),
        nodes: args.cluster.nodes,
        clients: args.cluster.clients,
        workload: args.cluster.workload.to_string(),
        faults: args.cluster.faults.to_string(),
        duration: args.cluster.duration,
        quiet: args.cluster.quiet,
        flaws,
    }
}

/// Runs `quorate explore`; returns the exit status.
///
/// The report goes to `out`; the progress display to `progress`, rewritten in
/// place when `terminal` (stderr is a terminal), plain lines every five seconds
/// otherwise. Seeds run on `--jobs` threads (see [`crate::campaign`]), and are
/// reported in seed order whatever the thread count.
pub fn run_explore(
    args: &ExploreArgs,
    clock: &dyn Fn() -> Duration,
    out: &mut dyn Write,
    progress: &mut dyn Write,
    terminal: bool,
) -> i32 {
    let started = clock();
    let key = campaign_key(args);
    if let Err(message) = args.cluster.config(args.seeds.0.start) {
        let _ = writeln!(out, "error: {message}");
        return 2;
    }
    let seeds = match args.shard {
        Some(shard) => shard.seeds(args.seeds.0.clone()),
        None => args.seeds.0.clone().collect(),
    };
    let jobs = campaign::worker_count(args.jobs);
    let _ = writeln!(
        out,
        "exploring {key}{}",
        args.shard
            .map(|shard| format!(", shard {shard} ({} seeds)", seeds.len()))
            .unwrap_or_default()
    );
    let mut summary = Summary {
        campaign: key,
        shards: args.shard.into_iter().collect(),
        runs: Vec::with_capacity(seeds.len()),
        failures: Vec::new(),
        totals: Totals::default(),
    };
    let mut simulated = Duration::ZERO;
    let mut error = None;
    let mut display = Progress::new(progress, terminal, seeds.len() as u64, started);
    {
        let summary = &mut summary;
        let display = core::cell::RefCell::new(&mut display);
        // (seeds done, failed), read by the idle tick while `summary` is borrowed.
        let counts = core::cell::Cell::new((0u64, 0u64));
        campaign::run_ordered(
            &seeds,
            jobs,
            &|seed| run_builtin(&args.cluster, seed, false, false),
            Duration::from_millis(200),
            &mut |seed, report| {
                let report = match report {
                    Ok(report) => report,
                    Err(message) => {
                        error = Some(message);
                        return ControlFlow::Break(());
                    }
                };
                summary.totals.seeds += 1;
                summary.totals.events += report.stats.events;
                simulated += report.stats.simulated;
                summary.runs.push(SeedRun {
                    seed,
                    trace_hash: report.trace_hash.clone(),
                    events: report.stats.events,
                });
                if !report.passed() {
                    display.borrow_mut().clear();
                    let _ = writeln!(out, "\n{}", report.failure_text());
                    summary.totals.failed += 1;
                    summary.failures.push(FailureRecord {
                        seed,
                        check: report.failed_check().unwrap_or("?").to_owned(),
                        message: report
                            .violations
                            .first()
                            .map(|violation| violation.message.clone())
                            .unwrap_or_default(),
                        reproduce: reproduce_command(&report.config, &report.workload),
                        trace_hash: report.trace_hash.clone(),
                    });
                }
                counts.set((summary.totals.seeds, summary.totals.failed));
                display
                    .borrow_mut()
                    .update(clock(), summary.totals.seeds, summary.totals.failed);
                ControlFlow::Continue(())
            },
            &mut || {
                let (done, failed) = counts.get();
                display.borrow_mut().update(clock(), done, failed);
            },
        );
    }
    display.clear();
    if let Some(message) = error {
        let _ = writeln!(out, "error: {message}");
        return 2;
    }
    summary.totals.simulated_seconds = simulated.as_secs_f64();
    summary.totals.wall_seconds = clock().saturating_sub(started).as_secs_f64();
    summary.render(out);
    if let Some(path) = &args.summary
        && let Err(message) = campaign::write_summary(&summary, path)
    {
        let _ = writeln!(out, "error: {message}");
        return 2;
    }
    i32::from(!summary.failures.is_empty())
}

/// Runs `quorate replay`; returns the exit status.
pub fn run_replay(args: &ReplayArgs, out: &mut dyn Write) -> i32 {
    let report = match run_builtin(
        &args.cluster,
        args.seed,
        !args.brief,
        args.history.is_some(),
    ) {
        Ok(report) => report,
        Err(message) => {
            let _ = writeln!(out, "error: {message}");
            return 2;
        }
    };
    if let Some(path) = &args.history {
        let edn = report.history_edn.as_deref().unwrap_or("[]\n");
        if let Err(error) = std::fs::write(path, edn) {
            let _ = writeln!(out, "error: cannot write {}: {error}", path.display());
            return 2;
        }
    }
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
