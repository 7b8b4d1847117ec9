//! The `quorate explore` and `quorate replay` subcommands.
//!
//! ```text
//! quorate explore [--seeds A..B] [--nodes N] [--workload counter|register|kv]
//!                 [--faults none|network|partitions|crashes|pauses|mismatch|all|swarm]
//!                 [--duration SECS] [--quiet SECS]
//!                 [--jobs N] [--shard I/N] [--summary FILE]
//!                 [--save-failures DIR]
//! quorate replay  --seed N [same options] [--history FILE]
//! quorate replay  --scenario FILE [--without-flaws] [--history FILE]
//! ```
//!
//! `explore` runs a campaign and prints a summary: seeds run, failures grouped
//! by the check that failed with the command that reproduces each, simulated
//! events per wall second (and per thread, the speed of one core, as `--jobs`
//! runs seeds side by side) and simulated time over wall time. Exit status 1 if
//! any seed failed. A seed that fails liveness checks only gets a second look
//! ([`slow_or_stuck`]): run again with a longer quiet period, it is slow if it
//! passes then and stuck if not. Threads, shards and summaries live in
//! [`crate::campaign`].
//!
//! `replay` runs one seed and prints its readable trace, trace hash and traffic
//! (messages sent, delivered and rejected, log entries resent in vain); exit
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
use std::path::{Path, PathBuf};

use clap::Args;

use crate::campaign::{
    self, CampaignKey, FailureRecord, Progress, SeedRun, Shard, Summary, Totals,
};
use crate::examples::{Counter, KvStore, Register};
use crate::sim::config::{CLIENTS_MAX, NODES_MAX};
use crate::sim::runner::second_look;
use crate::sim::scenario::Scenario;
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
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=NODES_MAX))]
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
    /// Concurrent clients (at most 100,000).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=CLIENTS_MAX))]
    pub clients: u64,
    /// Client sessions each node keeps; fewer than --clients exercises
    /// session expiry.
    #[arg(long, default_value_t = crate::raft::SESSIONS_MAX_DEFAULT, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub sessions_max: usize,
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
        config.sessions_max = self.sessions_max;
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
    /// Write the scenario of every failing seed here, as `seed-N.json`
    /// (replay with `quorate replay --scenario`, shrink with `quorate shrink`).
    #[arg(long, value_name = "DIR")]
    pub save_failures: Option<PathBuf>,
    /// Stop after this many failing seeds.
    #[arg(long, value_name = "N")]
    pub stop_after: Option<u64>,
}

/// Which run: a seed with the cluster options, or a scenario file.
#[derive(Debug, Clone, Args)]
pub struct RunSource {
    /// The seed to run.
    #[arg(long, conflicts_with = "scenario")]
    pub seed: Option<u64>,
    /// A scenario file to run instead of a seed (written by `explore
    /// --save-failures`, `shrink`, or by hand); its own settings replace the
    /// cluster options.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// The cluster, workload and faults of `--seed` (as the failing run had them).
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// A run to do: a seed of the cluster options, or a scenario.
#[derive(Debug, Clone)]
pub enum Subject {
    /// A seed.
    Seed(u64),
    /// A scenario, read from a file.
    Scenario(Box<Scenario>),
}

impl RunSource {
    /// The seed or the scenario file's contents.
    ///
    /// # Errors
    ///
    /// If neither (or both) is given, or the scenario file cannot be read.
    pub fn subject(&self) -> Result<Subject, String> {
        match (self.seed, &self.scenario) {
            (Some(seed), None) => Ok(Subject::Seed(seed)),
            (None, Some(path)) => Ok(Subject::Scenario(Box::new(load_scenario(path)?))),
            _ => Err("give a seed (--seed N) or a scenario file (--scenario FILE)".into()),
        }
    }
}

/// Reads a scenario file.
///
/// # Errors
///
/// If the file cannot be read or is not a valid scenario; the message names
/// the file and the problem.
pub fn load_scenario(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    Scenario::from_json(&text).map_err(|error| format!("{}: {error}", path.display()))
}

/// Writes a scenario file (creating its directory).
///
/// # Errors
///
/// If it cannot be written; the message names the file.
pub fn save_scenario(path: &Path, scenario: &Scenario) -> Result<(), String> {
    if let Some(directory) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(directory)
            .map_err(|error| format!("cannot create {}: {error}", directory.display()))?;
    }
    std::fs::write(path, scenario.to_json())
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// What to keep of a run besides its verdict.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep {
    /// Every trace event (for the readable replay and the timeline).
    pub trace: bool,
    /// The client history as Jepsen EDN.
    pub history_edn: bool,
    /// The scenario, even if the run passes.
    pub scenario: bool,
}

/// Runs `subject`: a seed of `cluster`, or a scenario.
///
/// # Errors
///
/// If the cluster options are invalid or the scenario cannot run here.
pub fn run_subject(
    cluster: &ClusterArgs,
    subject: &Subject,
    keep: Keep,
) -> Result<RunReport, String> {
    match subject {
        Subject::Seed(seed) => run_builtin_kept(cluster, *seed, keep),
        Subject::Scenario(scenario) => run_scenario(scenario, keep),
    }
}

/// Runs a scenario of a built-in workload (`counter`, `register`, `kv`).
///
/// # Errors
///
/// If the workload is not built in, or the scenario does not fit it.
pub fn run_scenario(scenario: &Scenario, keep: Keep) -> Result<RunReport, String> {
    fn with<M: SimMachine>(
        scenario: &Scenario,
        keep: Keep,
        make: fn() -> M,
        workload: impl Workload<M> + 'static,
    ) -> Result<RunReport, String> {
        let simulation = Simulation::from_scenario(scenario, move |_| make(), workload)
            .map_err(|error| error.to_string())?;
        Ok(finish(simulation, keep))
    }
    match scenario.workload.parse::<WorkloadKind>() {
        Ok(WorkloadKind::Counter) => with(scenario, keep, Counter::default, CounterWorkload),
        Ok(WorkloadKind::Register) => with(scenario, keep, Register::default, RegisterWorkload),
        Ok(WorkloadKind::Kv) => with(scenario, keep, KvStore::default, KvWorkload::default()),
        Err(_) => Err(format!(
            "the scenario's workload {:?} is not built in (counter, register, kv); run it \
             from your own test with Simulation::from_scenario",
            scenario.workload
        )),
    }
}

fn finish<M: SimMachine>(simulation: Simulation<M>, keep: Keep) -> RunReport {
    let mut simulation = simulation.recording_trace(keep.trace);
    if keep.history_edn {
        simulation = simulation.with_history_edn();
    }
    if keep.scenario {
        simulation = simulation.with_scenario();
    }
    simulation.run()
}

/// `quorate replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// A seed and its cluster options, or a scenario file.
    #[command(flatten)]
    pub source: RunSource,
    /// Run a scenario with its planted flaws switched off (to see it pass once
    /// the bug is gone).
    #[arg(long)]
    pub without_flaws: bool,
    /// Print only the summary, not every trace event.
    #[arg(long)]
    pub brief: bool,
    /// Write the run's client history as Jepsen EDN here (strong operations,
    /// as the linearizability check sees them).
    #[arg(long)]
    pub history: Option<PathBuf>,
}

/// [`second_look`] for `explore` and `replay`: the seed of `cluster`, or the
/// scenario, run again with a longer quiet period.
pub fn slow_or_stuck(
    cluster: &ClusterArgs,
    subject: &Subject,
    report: &RunReport,
) -> Option<String> {
    second_look(
        report,
        |quiet| match subject {
            Subject::Seed(seed) => {
                let cluster = ClusterArgs {
                    quiet: quiet.as_secs_f64(),
                    ..cluster.clone()
                };
                run_builtin_kept(&cluster, *seed, Keep::default()).ok()
            }
            Subject::Scenario(scenario) => {
                let scenario = Scenario {
                    quiet_period: quiet,
                    ..(**scenario).clone()
                };
                run_scenario(&scenario, Keep::default()).ok()
            }
        },
        |longer| match subject {
            Subject::Seed(_) => reproduce_command(&longer.config, &longer.workload),
            Subject::Scenario(_) => format!(
                "the scenario with \"quiet_period\": \"{}s\"",
                longer.config.quiet_period.as_secs_f64()
            ),
        },
    )
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
    let keep = Keep {
        trace: record_trace,
        history_edn,
        scenario: false,
    };
    run_builtin_kept(cluster, seed, keep)
}

fn run_builtin_kept(cluster: &ClusterArgs, seed: u64, keep: Keep) -> Result<RunReport, String> {
    let config = cluster.config(seed)?;
    Ok(match cluster.workload {
        WorkloadKind::Counter => simulate(config, keep, Counter::default, CounterWorkload),
        WorkloadKind::Register => simulate(config, keep, Register::default, RegisterWorkload),
        WorkloadKind::Kv => simulate(config, keep, KvStore::default, KvWorkload::default()),
    })
}

fn simulate<M: SimMachine>(
    config: SimConfig,
    keep: Keep,
    make: fn() -> M,
    workload: impl Workload<M> + 'static,
) -> RunReport {
    finish(Simulation::new(config, make, workload), keep)
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
        sessions_max: args.cluster.sessions_max,
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
    clock: &(dyn Fn() -> Duration + Sync),
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
            &|seed| {
                let started = clock();
                let report = run_builtin(&args.cluster, seed, false, false)?;
                let busy = clock().saturating_sub(started);
                let second_look = slow_or_stuck(&args.cluster, &Subject::Seed(seed), &report);
                Ok((report, second_look, busy))
            },
            Duration::from_millis(200),
            &mut |seed, report| {
                let (report, second_look, busy) = match report {
                    Ok(outcome) => outcome,
                    Err(message) => {
                        error = Some(message);
                        return ControlFlow::Break(());
                    }
                };
                summary.totals.seeds += 1;
                summary.totals.events += report.stats.events;
                summary.totals.entries_received += report.stats.entries_received.total;
                summary.totals.entries_already_held += report.stats.entries_received.already_held;
                summary.totals.sessions_expired += report.stats.sessions_expired;
                simulated += report.stats.simulated;
                summary.totals.busy_seconds += busy.as_secs_f64();
                summary.runs.push(SeedRun {
                    seed,
                    trace_hash: report.trace_hash.clone(),
                    events: report.stats.events,
                    linearizability_undecided: report.linearizability_unknown.clone(),
                });
                if !report.passed() {
                    display.borrow_mut().clear();
                    let _ = write!(out, "\n{}", report.failure_text());
                    if let Some(line) = &second_look {
                        let _ = writeln!(out, "  {line}");
                    }
                    let _ = writeln!(out);
                    let scenario = match (&args.save_failures, &report.scenario) {
                        (Some(directory), Some(scenario)) => {
                            let path = directory.join(format!("seed-{seed}.json"));
                            match save_scenario(&path, scenario) {
                                Ok(()) => {
                                    let _ = writeln!(out, "  scenario: {}", path.display());
                                    Some(path.display().to_string())
                                }
                                Err(message) => {
                                    error = Some(message);
                                    return ControlFlow::Break(());
                                }
                            }
                        }
                        _ => None,
                    };
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
                        scenario,
                        second_look,
                    });
                }
                counts.set((summary.totals.seeds, summary.totals.failed));
                if args
                    .stop_after
                    .is_some_and(|failures| summary.totals.failed >= failures)
                {
                    return ControlFlow::Break(());
                }
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
    let keep = Keep {
        trace: !args.brief,
        history_edn: args.history.is_some(),
        scenario: false,
    };
    let subject = args.source.subject().map(|subject| match subject {
        Subject::Scenario(mut scenario) if args.without_flaws => {
            scenario.flaws.clear();
            Subject::Scenario(scenario)
        }
        subject => subject,
    });
    let (subject, report) = match subject.and_then(|subject| {
        let report = run_subject(&args.source.cluster, &subject, keep)?;
        Ok((subject, report))
    }) {
        Ok(outcome) => outcome,
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
        report.config.seed,
        report.trace_events,
        report.trace_hash,
        report.operations.0,
        report.operations.1,
        report.faults
    );
    let stats = &report.stats;
    let _ = writeln!(
        out,
        "traffic: {} messages sent, {} delivered, {} rejected by the codec; {} log entries received, {:.1}% of them already held (resent in vain)",
        stats.messages_sent,
        stats.messages_delivered,
        stats.messages_rejected,
        stats.entries_received.total,
        stats.entries_already_held_percent()
    );
    if report.passed() {
        match &report.linearizability_unknown {
            Some(reason) => {
                let _ = writeln!(
                    out,
                    "all checks passed, but linearizability is undecided: the search gave up ({reason})"
                );
            }
            None => {
                let _ = writeln!(out, "all checks passed");
            }
        }
        0
    } else {
        let _ = write!(out, "{}", report.failure_text());
        if let Some(line) = slow_or_stuck(&args.source.cluster, &subject, &report) {
            let _ = writeln!(out, "  {line}");
        }
        let _ = writeln!(out);
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
