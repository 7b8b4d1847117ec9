//! Campaigns over many seeds: several threads, shards, JSON summaries and
//! their merge.
//!
//! The simulator (`crate::sim`) stays single-threaded and reads no clock; this
//! module sits outside it and runs whole seeds on worker threads
//! ([`run_ordered`]), hands the results back **in seed order** so a campaign
//! with `--jobs 4` prints exactly what `--jobs 1` prints, splits a seed range
//! into deterministic shards ([`Shard`]), and writes and merges the JSON
//! [`Summary`] of a campaign (`quorate explore --summary FILE`,
//! `quorate merge FILE...`).

use core::ops::{ControlFlow, Range};
use core::str::FromStr;
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::sim::runner;

/// One slice of a seed range: seed `s` belongs to shard `s % count`; this is
/// shard `index` (0-based). Written `i/n` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Shard {
    /// Which shard, `0..count`.
    pub index: u64,
    /// How many shards the campaign is split into.
    pub count: u64,
}

impl Shard {
    /// Whether `seed` belongs to this shard.
    pub fn contains(&self, seed: u64) -> bool {
        seed % self.count == self.index
    }

    /// The seeds of `range` in this shard, in order.
    pub fn seeds(&self, range: Range<u64>) -> Vec<u64> {
        range.filter(|seed| self.contains(*seed)).collect()
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("--shard {text:?} is not i/n with 0 <= i < n (e.g. 0/4)");
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index = index.trim().parse::<u64>().map_err(|_| bad())?;
        let count = count.trim().parse::<u64>().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl core::fmt::Display for Shard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The number of worker threads for `--jobs N`: `0` means one per CPU.
pub fn worker_count(jobs: usize) -> usize {
    if jobs == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        jobs
    }
}

/// Runs `run(seed)` for every seed of `seeds` on `jobs` threads (at least one),
/// and calls `on_result` on this thread with each result **in seed order**.
/// While waiting, `idle` is called about every `tick` (for a progress display).
/// `on_result` returning [`ControlFlow::Break`] stops the campaign: workers
/// finish the seed they are on and start no other.
///
/// Each seed runs entirely on one thread, so a deterministic `run` gives the
/// same results whatever `jobs` is.
pub fn run_ordered<R: Send>(
    seeds: &[u64],
    jobs: usize,
    run: &(dyn Fn(u64) -> R + Sync),
    tick: Duration,
    on_result: &mut dyn FnMut(u64, R) -> ControlFlow<()>,
    idle: &mut dyn FnMut(),
) {
    let jobs = jobs.clamp(1, seeds.len().max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::channel::<(usize, R)>();
        for _ in 0..jobs {
            let sender = sender.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let position = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&seed) = seeds.get(position) else {
                        break;
                    };
                    if sender.send((position, run(seed))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let mut pending: BTreeMap<usize, R> = BTreeMap::new();
        let mut reported = 0usize;
        while reported < seeds.len() {
            match receiver.recv_timeout(tick) {
                Ok((position, result)) => {
                    pending.insert(position, result);
                    while let Some(result) = pending.remove(&reported) {
                        let flow = on_result(seeds[reported], result);
                        reported += 1;
                        if flow.is_break() {
                            stop.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => idle(),
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    });
}

/// What makes two summaries parts of the same campaign: the seed range and
/// every cluster argument. Shards of one campaign have equal keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignKey {
    /// The seed range `A..B` of the whole campaign (before sharding).
    pub seeds: String,
    /// Voters.
    pub nodes: u64,
    /// Concurrent clients.
    pub clients: u64,
    /// Client sessions each node keeps.
    #[serde(default = "crate::sim::config::sessions_max_default")]
    pub sessions_max: usize,
    /// Workload name.
    pub workload: String,
    /// Fault preset.
    pub faults: String,
    /// Simulated seconds of load and faults.
    pub duration: f64,
    /// Simulated quiet seconds.
    pub quiet: f64,
    /// Planted flaws switched on (feature `flaws`), by name.
    #[serde(default)]
    pub flaws: Vec<String>,
}

impl core::fmt::Display for CampaignKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "seeds {}: {} nodes, {} clients, workload {}, faults {}, {} s + {} s quiet",
            self.seeds,
            self.nodes,
            self.clients,
            self.workload,
            self.faults,
            self.duration,
            self.quiet
        )?;
        if self.sessions_max != crate::raft::SESSIONS_MAX_DEFAULT {
            write!(f, ", {} sessions", self.sessions_max)?;
        }
        if !self.flaws.is_empty() {
            write!(f, ", flaws {}", self.flaws.join(","))?;
        }
        Ok(())
    }
}

/// One seed's outcome, as recorded in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRun {
    /// The seed.
    pub seed: u64,
    /// Its trace hash (empty if the run panicked).
    pub trace_hash: String,
    /// Simulated events.
    pub events: u64,
    /// Why the linearizability search gave up, if it did: the run found no
    /// violation, but its history is not known to be linearizable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linearizability_undecided: Option<String>,
}

/// Seeds listed by name in a summary line before the rest are counted.
const SEEDS_LISTED_MAX: usize = 5;

/// A failed seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// The seed.
    pub seed: u64,
    /// The first check that failed (`safety`, `linearizability`, ...).
    pub check: String,
    /// Why (the first violation's explanation).
    pub message: String,
    /// The command line that reruns it with the readable trace.
    pub reproduce: String,
    /// Its trace hash.
    pub trace_hash: String,
    /// The scenario file written for it (`explore --save-failures DIR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    /// For a failure of liveness checks only: whether the same run passes
    /// with a longer quiet period (slow) or not (stuck); see
    /// [`second_look`](crate::sim::runner::second_look).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_look: Option<String>,
}

/// Campaign totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Seeds run.
    pub seeds: u64,
    /// Seeds failed.
    pub failed: u64,
    /// Simulated events.
    pub events: u64,
    /// Simulated seconds.
    pub simulated_seconds: f64,
    /// Wall seconds (for a merge: the sum over the shards).
    pub wall_seconds: f64,
    /// Seconds the worker threads spent running seeds, summed over threads:
    /// events over these are the speed of one core, whatever `--jobs` was
    /// (absent from summaries written before it was measured).
    #[serde(default)]
    pub busy_seconds: f64,
    /// Log entries nodes received in AppendEntries (absent from summaries
    /// written before it was counted).
    #[serde(default)]
    pub entries_received: u64,
    /// Those among them already held: replication traffic resent in vain.
    #[serde(default)]
    pub entries_already_held: u64,
    /// Proposals refused because their client's session was forgotten
    /// (more clients than `sessions_max`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sessions_expired: u64,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

/// The JSON summary of a campaign or of one shard (`--summary FILE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// What ran.
    pub campaign: CampaignKey,
    /// The shards this summary covers: none for an unsharded run, one for a
    /// shard, all of them after a merge.
    #[serde(default)]
    pub shards: Vec<Shard>,
    /// Every seed run, in seed order.
    pub runs: Vec<SeedRun>,
    /// Every failed seed, in seed order.
    pub failures: Vec<FailureRecord>,
    /// Totals.
    pub totals: Totals,
}

impl Summary {
    /// Writes the end-of-campaign report: seeds run, failures grouped by the
    /// check that failed with the command reproducing each, and the speed.
    pub fn render(&self, out: &mut dyn Write) {
        let totals = &self.totals;
        let _ = writeln!(
            out,
            "\nseeds run: {}, failed: {}",
            totals.seeds, totals.failed
        );
        let mut groups: BTreeMap<&str, Vec<&FailureRecord>> = BTreeMap::new();
        for failure in &self.failures {
            groups.entry(&failure.check).or_default().push(failure);
        }
        for (check, failures) in &groups {
            let looked = |verdict: &str| {
                failures
                    .iter()
                    .filter(|failure| {
                        failure
                            .second_look
                            .as_deref()
                            .is_some_and(|line| line.starts_with(verdict))
                    })
                    .count()
            };
            let (slow, stuck) = (looked(runner::SLOW), looked(runner::STUCK));
            let verdicts = if slow + stuck > 0 {
                format!(" ({stuck} stuck, {slow} only slow)")
            } else {
                String::new()
            };
            let _ = writeln!(out, "\n[{check}] {} seed(s){verdicts}:", failures.len());
            for failure in failures {
                let _ = writeln!(out, "  seed {}: {}", failure.seed, failure.message);
                let _ = writeln!(out, "    reproduce: {}", failure.reproduce);
                if let Some(line) = &failure.second_look {
                    let _ = writeln!(out, "    {line}");
                }
                if let Some(scenario) = &failure.scenario {
                    let _ = writeln!(
                        out,
                        "    scenario:  {scenario} (quorate replay --scenario {scenario})"
                    );
                }
            }
        }
        let undecided: Vec<&SeedRun> = self
            .runs
            .iter()
            .filter(|run| run.linearizability_undecided.is_some())
            .collect();
        if let Some(first) = undecided.first() {
            let mut seeds: Vec<String> = undecided
                .iter()
                .take(SEEDS_LISTED_MAX)
                .map(|run| run.seed.to_string())
                .collect();
            if undecided.len() > SEEDS_LISTED_MAX {
                seeds.push(format!("and {} more", undecided.len() - SEEDS_LISTED_MAX));
            }
            let _ = writeln!(
                out,
                "\nlinearizability undecided in {} seed(s), the search gave up ({}): {}",
                undecided.len(),
                first
                    .linearizability_undecided
                    .as_deref()
                    .unwrap_or_default(),
                seeds.join(", ")
            );
        }
        let wall = totals.wall_seconds.max(1e-6);
        let ratio = totals.simulated_seconds / wall;
        // Two significant digits when slower than real time (100,000
        // clients, say), where a whole number would read 0x.
        let ratio = if ratio < 10.0 {
            format!("{ratio:.2}")
        } else {
            format!("{ratio:.0}")
        };
        // Per busy thread: what one core does, where the wall figure is all
        // threads together.
        let per_thread = if totals.busy_seconds > 0.0 {
            format!(
                " ({:.0} per thread running seeds)",
                totals.events as f64 / totals.busy_seconds
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "\nspeed: {:.0} simulated events per wall second{per_thread}; simulated time {ratio}x wall time ({:.1} s wall)",
            totals.events as f64 / wall,
            totals.wall_seconds
        );
        if totals.entries_received > 0 {
            let _ = writeln!(
                out,
                "replication: {:.0}% of the {} log entries received were already held (resent in vain)",
                100.0 * totals.entries_already_held as f64 / totals.entries_received as f64,
                totals.entries_received
            );
        }
        if totals.sessions_expired > 0 {
            let _ = writeln!(
                out,
                "sessions: {} proposals refused as of a forgotten session (their outcome recorded as unknown)",
                totals.sessions_expired
            );
        }
    }

    /// Combines shard summaries into one, as an unsharded run would have
    /// written it (wall seconds are summed).
    ///
    /// # Errors
    ///
    /// If there are no summaries, if they belong to different campaigns, if a
    /// shard appears twice, or if shards are missing.
    pub fn merge(parts: Vec<(String, Summary)>) -> Result<Summary, String> {
        let Some((first_name, first)) = parts.first() else {
            return Err("nothing to merge".into());
        };
        let campaign = first.campaign.clone();
        let mut shards: BTreeSet<Shard> = BTreeSet::new();
        let mut count: Option<u64> = None;
        let mut runs = Vec::new();
        let mut failures = Vec::new();
        let mut totals = Totals::default();
        for (name, part) in &parts {
            if part.campaign != campaign {
                return Err(format!(
                    "{name} is a different campaign from {first_name}:\n  {name}: {}\n  {first_name}: {campaign}",
                    part.campaign
                ));
            }
            if part.shards.is_empty() {
                return Err(format!(
                    "{name} is an unsharded campaign: there is nothing to merge it with"
                ));
            }
            for shard in &part.shards {
                if *count.get_or_insert(shard.count) != shard.count {
                    return Err(format!(
                        "{name} has shard {shard}, but other summaries split the campaign into {} shards",
                        count.unwrap_or_default()
                    ));
                }
                if !shards.insert(*shard) {
                    return Err(format!("shard {shard} appears twice (again in {name})"));
                }
            }
            runs.extend(part.runs.iter().cloned());
            failures.extend(part.failures.iter().cloned());
            totals.seeds += part.totals.seeds;
            totals.failed += part.totals.failed;
            totals.events += part.totals.events;
            totals.simulated_seconds += part.totals.simulated_seconds;
            totals.wall_seconds += part.totals.wall_seconds;
            totals.busy_seconds += part.totals.busy_seconds;
            totals.entries_received += part.totals.entries_received;
            totals.entries_already_held += part.totals.entries_already_held;
            totals.sessions_expired += part.totals.sessions_expired;
        }
        let count = count.unwrap_or(1);
        let missing: Vec<String> = (0..count)
            .map(|index| Shard { index, count })
            .filter(|shard| !shards.contains(shard))
            .map(|shard| shard.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(format!("shards missing: {}", missing.join(", ")));
        }
        runs.sort_by_key(|run| run.seed);
        failures.sort_by_key(|failure| failure.seed);
        Ok(Summary {
            campaign,
            shards: shards.into_iter().collect(),
            runs,
            failures,
            totals,
        })
    }
}

/// `quorate merge`.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// Shard summaries written by `quorate explore --shard i/n --summary FILE`.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Also write the merged summary as JSON.
    #[arg(long)]
    pub summary: Option<PathBuf>,
}

/// Runs `quorate merge`: prints the merged report; exit status 1 if any seed
/// failed, 2 if the summaries cannot be merged.
pub fn run_merge(args: &MergeArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut parts = Vec::new();
    for file in &args.files {
        let name = file.display().to_string();
        let read = std::fs::read_to_string(file)
            .map_err(|error| format!("cannot read {name}: {error}"))
            .and_then(|text| {
                serde_json::from_str::<Summary>(&text)
                    .map_err(|error| format!("{name} is not a campaign summary: {error}"))
            });
        match read {
            Ok(summary) => parts.push((name, summary)),
            Err(message) => {
                let _ = writeln!(err, "error: {message}");
                return 2;
            }
        }
    }
    let merged = match Summary::merge(parts) {
        Ok(merged) => merged,
        Err(message) => {
            let _ = writeln!(err, "error: cannot merge: {message}");
            return 2;
        }
    };
    let _ = writeln!(
        out,
        "merged {} shards of campaign {}",
        merged.shards.len(),
        merged.campaign
    );
    merged.render(out);
    if let Some(path) = &args.summary
        && let Err(message) = write_summary(&merged, path)
    {
        let _ = writeln!(err, "error: {message}");
        return 2;
    }
    i32::from(!merged.failures.is_empty())
}

/// Writes `summary` as pretty JSON to `path`.
///
/// # Errors
///
/// If the file cannot be written.
pub fn write_summary(summary: &Summary, path: &std::path::Path) -> Result<(), String> {
    let text = serde_json::to_string_pretty(summary)
        .map_err(|error| format!("cannot encode the summary: {error}"))?;
    std::fs::write(path, text + "\n")
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}

/// A campaign's progress display on stderr: one line rewritten in place on a
/// terminal, plain lines every five seconds otherwise (CI logs).
pub struct Progress<'a> {
    out: &'a mut dyn Write,
    terminal: bool,
    total: u64,
    started: Duration,
    last: Duration,
    drawn: bool,
}

impl<'a> Progress<'a> {
    /// A display of `total` seeds starting at wall time `started`.
    pub fn new(out: &'a mut dyn Write, terminal: bool, total: u64, started: Duration) -> Self {
        Self {
            out,
            terminal,
            total,
            started,
            last: started,
            drawn: false,
        }
    }

    /// Updates the display at wall time `now` after `done` seeds, `failed` of
    /// them failed.
    pub fn update(&mut self, now: Duration, done: u64, failed: u64) {
        let every = if self.terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        if now.saturating_sub(self.last) < every {
            return;
        }
        self.last = now;
        let elapsed = now.saturating_sub(self.started).as_secs_f64();
        let rate = done as f64 / elapsed.max(1e-6);
        let eta = if done == 0 {
            "?".to_owned()
        } else {
            format_seconds(self.total.saturating_sub(done) as f64 / rate)
        };
        let line = format!(
            "{done}/{} seeds ({:.0}%), {rate:.1} seeds/s, {failed} failed, {} elapsed, ETA {eta}",
            self.total,
            100.0 * done as f64 / (self.total.max(1) as f64),
            format_seconds(elapsed),
        );
        if self.terminal {
            let _ = write!(self.out, "\r\x1b[2K{line}");
            self.drawn = true;
        } else {
            let _ = writeln!(self.out, "  ... {line}");
        }
        let _ = self.out.flush();
    }

    /// Clears the in-place line (before other output, and at the end).
    pub fn clear(&mut self) {
        if self.drawn {
            let _ = write!(self.out, "\r\x1b[2K");
            let _ = self.out.flush();
            self.drawn = false;
        }
    }
}

fn format_seconds(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "?".into();
    }
    let seconds = seconds.round() as u64;
    if seconds >= 3600 {
        format!("{}h{:02}m", seconds / 3600, (seconds % 3600) / 60)
    } else if seconds >= 60 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A merge sums the seconds its shards wrote: they must read back as the
    /// very floats written (serde_json's default parser can miss by one unit
    /// in the last place, so a merged total differed from the shards' sum).
    #[test]
    fn totals_read_back_exactly_as_written() {
        for step in 1..2_000u64 {
            // Sums of two nanosecond-rounded durations, as busy time is.
            let seconds = (step * 7_919) as f64 / 1e9 + (step * 104_729) as f64 / 1e9;
            let totals = Totals {
                busy_seconds: seconds,
                wall_seconds: seconds * 3.0,
                simulated_seconds: seconds / 7.0,
                ..Totals::default()
            };
            let text = serde_json::to_string(&totals).unwrap();
            let back: Totals = serde_json::from_str(&text).unwrap();
            assert_eq!(back, totals, "{text}");
        }
    }

    #[test]
    fn shards_parse_and_partition_a_range() {
        assert_eq!("1/4".parse::<Shard>(), Ok(Shard { index: 1, count: 4 }));
        assert!("4/4".parse::<Shard>().is_err());
        assert!("0/0".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
        let mut all: Vec<u64> = (0..3)
            .flat_map(|index| Shard { index, count: 3 }.seeds(5..17))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (5..17).collect::<Vec<_>>());
    }

    #[test]
    fn results_come_back_in_seed_order_whatever_the_threads() {
        let seeds: Vec<u64> = (0..40).collect();
        for jobs in [1, 3] {
            let mut seen = Vec::new();
            run_ordered(
                &seeds,
                jobs,
                // Later seeds finish first.
                &|seed| {
                    std::thread::sleep(Duration::from_micros(40 - seed));
                    seed * 2
                },
                Duration::from_millis(10),
                &mut |seed, doubled| {
                    seen.push((seed, doubled));
                    ControlFlow::Continue(())
                },
                &mut || {},
            );
            assert_eq!(
                seen,
                seeds
                    .iter()
                    .map(|seed| (*seed, seed * 2))
                    .collect::<Vec<_>>()
            );
        }
    }
}
