//! `quorate shrink`: a failing seed, scenario or fuzzer input reduced to a
//! minimal scenario that still fails the same check.
//!
//! ```text
//! quorate shrink --seed N [cluster options] [--out FILE] [--runs N]
//! quorate shrink --scenario FILE [--out FILE]
//! quorate shrink --fuzz-input FILE [--flaw NAME] [--out FILE]
//! ```
//!
//! It prints each reduction as it is accepted, the sizes before and after
//! (for a liveness failure, whether it is stuck or only slow: see
//! [`crate::sim::shrink`]), and writes the minimal scenario (default
//! `shrunk-seed-N.json`), ready for `quorate replay --scenario` or for
//! `corpus/regressions/`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::explore::{Keep, RunSource, run_scenario, run_subject, save_scenario};
use crate::sim::config::second_look_quiet_period;
use crate::sim::scenario::Scenario;
use crate::sim::shrink::{Failure, shrink};

/// `quorate shrink`.
#[derive(Debug, Clone, Args)]
pub struct ShrinkArgs {
    /// The failing run: a seed with its cluster options, or a scenario file.
    #[command(flatten)]
    pub source: RunSource,
    /// A `schedule` fuzzer input (from `make fuzz TARGET=schedule`) to shrink
    /// instead; its planted flaws come from `--flaw`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["seed", "scenario"])]
    pub fuzz_input: Option<PathBuf>,
    /// Where to write the minimal scenario (default `shrunk-seed-N.json`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Most simulation runs to spend.
    #[arg(long, default_value_t = 3_000)]
    pub runs: usize,
    /// A one-line comment for the scenario (what bug it shows).
    #[arg(long, default_value = "")]
    pub comment: String,
}

/// The failing run's scenario, and the check it fails.
///
/// # Errors
///
/// If the run cannot be made, or passes (there is nothing to shrink).
pub fn failing_scenario(args: &ShrinkArgs) -> Result<(Scenario, String), String> {
    let keep = Keep {
        scenario: true,
        ..Keep::default()
    };
    let report = match &args.fuzz_input {
        Some(path) => {
            let input = std::fs::read(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
            let flaws = args.source.cluster.clone();
            crate::fuzz_targets::schedule_simulation(&input, |config| {
                #[cfg(feature = "flaws")]
                for flaw in &flaws.flaws {
                    config.flaws = config.flaws.with(*flaw);
                }
                let _ = (config, flaws);
            })
            .with_scenario()
            .run()
        }
        None => run_subject(&args.source.cluster, &args.source.subject()?, keep)?,
    };
    let Some(check) = report.failed_check() else {
        return Err(format!(
            "seed {} passes every check: there is nothing to shrink",
            report.config.seed
        ));
    };
    let scenario = report
        .scenario
        .clone()
        .ok_or("the failing run's operations have no JSON form, so it has no scenario")?;
    Ok((scenario, check.to_owned()))
}

/// Runs `quorate shrink`; returns the exit status (0 shrunk, 2 error).
pub fn run_shrink(args: &ShrinkArgs, out: &mut dyn Write) -> i32 {
    let (failing, check) = match failing_scenario(args) {
        Ok(found) => found,
        Err(message) => {
            let _ = writeln!(out, "error: {message}");
            return 2;
        }
    };
    let _ = writeln!(
        out,
        "shrinking seed {} ({}), which fails [{check}]",
        failing.seed,
        failing.size()
    );
    let mut error = None;
    let mut run = |candidate: &Scenario| match run_scenario(candidate, Keep::default()) {
        Ok(report) => report.violations.first().map(|violation| Failure {
            check: violation.check.clone(),
            at: violation
                .at
                .map(|at| at.saturating_since(crate::env::Instant::ZERO)),
        }),
        Err(message) => {
            error.get_or_insert(message);
            None
        }
    };
    let shrunk = shrink(failing.clone(), &check, args.runs, &mut run);
    if let Some(message) = error {
        let _ = writeln!(out, "error: {message}");
        return 2;
    }
    for step in &shrunk.steps {
        let _ = writeln!(out, "  {step}");
    }
    let longer = second_look_quiet_period(failing.quiet_period).as_secs_f64();
    match shrunk.stuck {
        Some(true) => {
            let _ = writeln!(
                out,
                "stuck: it fails with a quiet period of {longer} s too, and so does every reduction kept"
            );
        }
        Some(false) => {
            let _ = writeln!(
                out,
                "slow, not stuck: with a quiet period of {longer} s it passes, so the shrunk \
                 scenario shows a group slow to converge, not one that never does"
            );
        }
        None => {}
    }
    let mut scenario = shrunk.scenario;
    scenario.comment = if args.comment.is_empty() {
        format!("seed {} fails [{check}]", failing.seed)
    } else {
        args.comment.clone()
    };
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("shrunk-seed-{}.json", failing.seed)));
    if let Err(message) = save_scenario(&path, &scenario) {
        let _ = writeln!(out, "error: {message}");
        return 2;
    }
    let _ = writeln!(
        out,
        "\nbefore: {}\nafter:  {}\n{} runs{}\nwrote {}\nreplay: quorate replay --scenario {}",
        failing.size(),
        scenario.size(),
        shrunk.runs,
        if shrunk.budget_exhausted {
            " (the budget ran out: --runs N for more)"
        } else {
            ""
        },
        path.display(),
        path.display()
    );
    0
}
