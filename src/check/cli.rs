//! The `quorate check` subcommand.
//!
//! ```text
//! quorate check --model {cas-register,kv,counter} [--format {jepsen-log,edn,jsonl}]
//!               [--no-partition] [--timeout SECS] [--html OUT.html] FILE...
//! ```
//!
//! Prints one line per file, `FILE: linearizable|not linearizable|unknown (N ops, T ms)`
//! (`N` counts operations, `T` is the time to check, parsing excluded), with
//! details of a failure on stderr. Unreadable files print `FILE: error: ...`.
//!
//! Exit status: 0 if every file is linearizable; 1 if any file is not
//! linearizable (a finding outranks everything else); otherwise 2 if any file
//! was unreadable or undecided (`unknown`: the timeout passed or the search's
//! cache filled).
//!
//! `--timeout SECS` applies to each file separately. `--html OUT.html` writes
//! one HTML view per history: with one FILE, to `OUT.html` itself; with
//! several, to `OUT-<stem>.html` next to `OUT.html`, where `<stem>` is the
//! FILE's name without directory and extension (a name already taken by an
//! earlier FILE gets `-<position>` appended, position counting FILEs from 1).
//!
//! This module reads no clock itself: the binary passes `clock`, the time
//! since it started.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::history::History;
use super::models::{BuiltinModel, CasRegister, Counter, Kv};
use super::parse::{self, Format};
use super::{CheckOptions, Report, SearchOptions, Verdict, check_parallel, html};

/// The built-in model to check against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelName {
    /// A compare-and-set register starting at nil (read, write, cas).
    CasRegister,
    /// A key-value map (get, put, append), partitioned by key.
    Kv,
    /// A counter starting at 0 (add, read).
    Counter,
}

/// A history file format (see [`crate::check::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatName {
    /// Jepsen's text log.
    JepsenLog,
    /// EDN event maps (one per line, or a Knossos vector).
    Edn,
    /// quorate's JSON lines.
    Jsonl,
}

impl From<FormatName> for Format {
    fn from(name: FormatName) -> Self {
        match name {
            FormatName::JepsenLog => Format::JepsenLog,
            FormatName::Edn => Format::Edn,
            FormatName::Jsonl => Format::Jsonl,
        }
    }
}

/// Arguments of `quorate check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The model histories are checked against.
    #[arg(long, value_enum)]
    pub model: ModelName,
    /// The file format; detected from the content if absent.
    #[arg(long, value_enum)]
    pub format: Option<FormatName>,
    /// Check each history whole instead of partitioned (for example by key).
    #[arg(long)]
    pub no_partition: bool,
    /// Give up on a file after this many seconds (verdict `unknown`).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Write an HTML view of each history (see the naming rule above).
    #[arg(long, value_name = "OUT.html")]
    pub html: Option<PathBuf>,
    /// The most cached (linearized set, state) pairs per partition; a search
    /// that needs more ends `unknown`.
    #[arg(long, default_value_t = super::search::CACHE_ENTRIES_MAX_DEFAULT)]
    pub cache_entries_max: usize,
    /// The most bytes of distinct states cached per partition (a kv model's
    /// states own their values); a search that needs more ends `unknown`.
    #[arg(long, default_value_t = super::search::STATE_BYTES_MAX_DEFAULT)]
    pub state_bytes_max: usize,
    /// The most bytes of cached pairs per partition besides their states
    /// (each pair's set of linearized operations grows with the partition);
    /// a search that needs more ends `unknown`.
    #[arg(long, default_value_t = super::search::CACHE_BYTES_MAX_DEFAULT)]
    pub cache_bytes_max: usize,
    /// History files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// How one file fared.
enum FileResult {
    Checked {
        verdict: Verdict,
        operations: usize,
        elapsed: Duration,
    },
    Error(String),
}

/// Runs `quorate check`; returns the exit status. `clock` is the time since
/// some fixed instant (the binary's start).
pub fn run_check(
    args: &CheckArgs,
    clock: &(dyn Fn() -> Duration + Sync),
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let html_paths = html_paths(args.html.as_deref(), &args.files);
    let mut any_failed = false;
    let mut any_undecided = false;
    for (position, file) in args.files.iter().enumerate() {
        let html_path = html_paths.get(position).and_then(Option::as_deref);
        let result = check_file(args, file, html_path, clock, err);
        let name = file.display();
        let _ = match result {
            FileResult::Checked {
                verdict,
                operations,
                elapsed,
            } => {
                let word = match verdict {
                    Verdict::Linearizable => "linearizable",
                    Verdict::NotLinearizable { .. } => {
                        any_failed = true;
                        "not linearizable"
                    }
                    Verdict::Unknown { .. } => {
                        any_undecided = true;
                        "unknown"
                    }
                };
                writeln!(
                    out,
                    "{name}: {word} ({operations} ops, {} ms)",
                    elapsed.as_millis()
                )
            }
            FileResult::Error(message) => {
                any_undecided = true;
                writeln!(out, "{name}: error: {message}")
            }
        };
    }
    if any_failed {
        1
    } else if any_undecided {
        2
    } else {
        0
    }
}

/// The HTML path for each file (see the module docs).
fn html_paths(html: Option<&Path>, files: &[PathBuf]) -> Vec<Option<PathBuf>> {
    let Some(html) = html else {
        return files.iter().map(|_| None).collect();
    };
    if files.len() == 1 {
        return vec![Some(html.to_path_buf())];
    }
    let base = html.with_extension("");
    let base = base.to_string_lossy();
    let mut taken = BTreeSet::new();
    files
        .iter()
        .enumerate()
        .map(|(position, file)| {
            let stem = file
                .file_stem()
                .map_or_else(|| "history".into(), |stem| stem.to_string_lossy());
            let mut path = PathBuf::from(format!("{base}-{stem}.html"));
            if !taken.insert(path.clone()) {
                path = PathBuf::from(format!("{base}-{stem}-{}.html", position + 1));
                taken.insert(path.clone());
            }
            Some(path)
        })
        .collect()
}

fn check_file(
    args: &CheckArgs,
    file: &Path,
    html_path: Option<&Path>,
    clock: &(dyn Fn() -> Duration + Sync),
    err: &mut dyn Write,
) -> FileResult {
    let text = match std::fs::read(file) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => return FileResult::Error("not UTF-8 text".to_string()),
        },
        Err(error) => return FileResult::Error(error.to_string()),
    };
    let source = file.display().to_string();
    let raw = match parse::parse(&text, args.format.map(Format::from), &source) {
        Ok(raw) => raw,
        Err(error) => return FileResult::Error(error.to_string()),
    };
    let result = match args.model {
        ModelName::CasRegister => check_typed::<CasRegister>(args, &raw, html_path, clock, err),
        ModelName::Kv => check_typed::<Kv>(args, &raw, html_path, clock, err),
        ModelName::Counter => check_typed::<Counter>(args, &raw, html_path, clock, err),
    };
    result.unwrap_or_else(FileResult::Error)
}

fn check_typed<M>(
    args: &CheckArgs,
    raw: &parse::RawHistory,
    html_path: Option<&Path>,
    clock: &(dyn Fn() -> Duration + Sync),
    err: &mut dyn Write,
) -> Result<FileResult, String>
where
    M: BuiltinModel + Sync,
    M::Input: Sync,
    M::Output: Sync,
{
    let (model, history) = M::from_raw(raw).map_err(|error| error.to_string())?;
    let options = CheckOptions {
        partition: !args.no_partition,
        search: SearchOptions {
            cache_entries_max: args.cache_entries_max,
            state_bytes_max: args.state_bytes_max,
            cache_bytes_max: args.cache_bytes_max,
        },
    };
    let start = clock();
    let deadline = args
        .timeout
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(|seconds| start + Duration::from_secs_f64(seconds.min(1e9)));
    let should_stop = || deadline.is_some_and(|deadline| clock() >= deadline);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let report = check_parallel(&model, &history, &options, threads, &should_stop);
    let elapsed = clock().saturating_sub(start);
    explain(&model, &history, &report, &raw.source, err);
    if let Some(path) = html_path {
        let page = html::to_html(&model, &history, &report, &raw.source);
        std::fs::write(path, page)
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    Ok(FileResult::Checked {
        verdict: report.verdict,
        operations: history.len(),
        elapsed,
    })
}

/// Details of a failure or an undecided check, on `err`.
/// Writes why `report` is not `linearizable` (nothing if it is) to `err`.
pub(crate) fn explain<M: BuiltinModel>(
    model: &M,
    history: &History<M::Input, M::Output>,
    report: &Report,
    source: &str,
    err: &mut dyn Write,
) {
    match &report.verdict {
        Verdict::Linearizable => {}
        Verdict::NotLinearizable {
            partition,
            op,
            prefix,
        } => {
            let described = history
                .operations
                .get(*op)
                .map_or_else(String::new, |operation| {
                    format!(
                        "client {} `{}`",
                        operation.client,
                        model.describe_operation(&operation.input, operation.outcome.output())
                    )
                });
            let _ = writeln!(
                err,
                "{source}: partition {partition} of {}: operation #{op} ({described}) cannot be linearized after the longest linearizable prefix found ({} operations)",
                report.partitions.len(),
                prefix.len()
            );
        }
        Verdict::Unknown { reason } => {
            let _ = writeln!(err, "{source}: undecided: {reason}");
        }
    }
}
