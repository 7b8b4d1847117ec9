//! `quorate timeline`: one run as a self-contained HTML timeline.
//!
//! ```text
//! quorate timeline --seed N [cluster options] [--out run.html]
//! quorate timeline --scenario FILE [--out run.html]
//! ```

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::explore::{Keep, RunSource, Subject, run_subject};

/// `quorate timeline`.
#[derive(Debug, Clone, Args)]
pub struct TimelineArgs {
    /// The run: a seed with its cluster options, or a scenario file.
    #[command(flatten)]
    pub source: RunSource,
    /// The HTML file to write.
    #[arg(long, value_name = "FILE", default_value = "run.html")]
    pub out: PathBuf,
}

/// Runs `quorate timeline`; returns the exit status: 0 written (whatever the
/// run's verdict), 2 error.
pub fn run_timeline(args: &TimelineArgs, out: &mut dyn Write) -> i32 {
    let keep = Keep {
        trace: true,
        ..Keep::default()
    };
    let subject = match args.source.subject() {
        Ok(subject) => subject,
        Err(message) => {
            let _ = writeln!(out, "error: {message}");
            return 2;
        }
    };
    let report = match run_subject(&args.source.cluster, &subject, keep) {
        Ok(report) => report,
        Err(message) => {
            let _ = writeln!(out, "error: {message}");
            return 2;
        }
    };
    let title = match &subject {
        Subject::Seed(seed) => format!("quorate seed {seed}"),
        Subject::Scenario(_) => format!(
            "quorate scenario {}",
            args.source
                .scenario
                .as_ref()
                .map(|path| path.display().to_string())
                .unwrap_or_default()
        ),
    };
    let html = crate::sim::timeline::render(&report, &title);
    if let Err(error) = std::fs::write(&args.out, html) {
        let _ = writeln!(out, "error: cannot write {}: {error}", args.out.display());
        return 2;
    }
    let verdict = match (report.violations.first(), &report.linearizability_unknown) {
        (Some(violation), _) => format!("FAILED {violation}"),
        (None, Some(reason)) => {
            format!("all checks passed, but linearizability is undecided ({reason})")
        }
        (None, None) => "all checks passed".to_owned(),
    };
    let _ = writeln!(
        out,
        "wrote {} ({} trace events); {verdict}",
        args.out.display(),
        report.trace_events
    );
    0
}
