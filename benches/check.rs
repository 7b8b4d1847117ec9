//! Linearizability checker benchmark, against Porcupine on the same files.
//!
//! Times the check (parsing excluded) of Porcupine's test data in
//! `../shared/testdata/porcupine`: the whole jepsen set, the kv set
//! partitioned, and each kv c10 file unpartitioned. Each figure is the
//! median of `REPEATS` runs. If `go` is on the PATH, the Go program in
//! `benches/porcupine/` times Porcupine v1.3.0 on the same files in the same
//! run, and the table shows both and the ratio. Porcupine comes through the
//! Go module proxy, or, with `PORCUPINE_SRC=DIR`, from a local copy of its
//! source (built offline). `QUORATE_BENCH_KV_FILES="A.txt B.txt"` adds more kv
//! histories, each timed partitioned on both sides.
//!
//! Run with `make bench-check` (or `cargo bench --bench check`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use quorate::check::history::History;
use quorate::check::model::Model;
use quorate::check::models::{BuiltinModel, CasRegister, Kv};
use quorate::check::{CheckOptions, Verdict, check_parallel, parse};

const REPEATS: usize = 5;

struct Loaded<M: Model> {
    name: String,
    model: M,
    history: History<M::Input, M::Output>,
}

fn load<M: BuiltinModel>(files: &[PathBuf]) -> Vec<Loaded<M>> {
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).expect("readable test data");
            let raw =
                parse::parse(&text, None, &file.display().to_string()).expect("parsable test data");
            let (model, history) = M::from_raw(&raw).expect("valid test data");
            let name = file
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            Loaded {
                name,
                model,
                history,
            }
        })
        .collect()
}

/// Checks every history once; returns the elapsed time and the verdicts.
fn run<M>(set: &[Loaded<M>], partition: bool, threads: usize) -> (Duration, Vec<bool>)
where
    M: Model + Sync,
    M::Input: Sync,
    M::Output: Sync,
{
    let options = CheckOptions {
        partition,
        ..CheckOptions::default()
    };
    let start = Instant::now();
    let verdicts = set
        .iter()
        .map(|loaded| {
            let report =
                check_parallel(&loaded.model, &loaded.history, &options, threads, &|| false);
            assert!(
                !matches!(report.verdict, Verdict::Unknown { .. }),
                "{} undecided",
                loaded.name
            );
            report.verdict == Verdict::Linearizable
        })
        .collect();
    (start.elapsed(), verdicts)
}

fn median<M>(set: &[Loaded<M>], partition: bool, threads: usize) -> (f64, Vec<bool>)
where
    M: Model + Sync,
    M::Input: Sync,
    M::Output: Sync,
{
    let mut times = Vec::new();
    let mut verdicts = Vec::new();
    for _ in 0..REPEATS {
        let (elapsed, seen) = run(set, partition, threads);
        times.push(elapsed.as_secs_f64() * 1e3);
        verdicts = seen;
    }
    times.sort_by(f64::total_cmp);
    (times[REPEATS / 2], verdicts)
}

/// Environment variables for `go`.
type GoEnvironment = Vec<(&'static str, &'static str)>;

/// The folder the Porcupine program runs in, and the Go environment to run
/// it with: `benches/porcupine` itself, fetching Porcupine through the Go
/// module proxy; or, when `PORCUPINE_SRC` names a local copy of Porcupine
/// v1.3.0's source (a box without the proxy), a copy of the program under
/// `target/` whose go.mod is pointed there, built offline.
fn porcupine_folder() -> Result<(PathBuf, GoEnvironment), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let program = root.join("benches/porcupine");
    let Some(source) = std::env::var_os("PORCUPINE_SRC") else {
        return Ok((program, vec![("GOFLAGS", "-mod=mod")]));
    };
    let source = std::fs::canonicalize(&source)
        .map_err(|error| format!("PORCUPINE_SRC={}: {error}", Path::new(&source).display()))?;
    if !source.join("checker.go").is_file() {
        return Err(format!(
            "PORCUPINE_SRC={} holds no checker.go: not Porcupine's source",
            source.display()
        ));
    }
    let copy = root.join("target/porcupine-local");
    std::fs::create_dir_all(&copy).map_err(|error| format!("{}: {error}", copy.display()))?;
    let go_mod = std::fs::read_to_string(program.join("go.mod"))
        .map_err(|error| format!("benches/porcupine/go.mod: {error}"))?;
    let written = std::fs::copy(program.join("main.go"), copy.join("main.go")).and_then(|_| {
        std::fs::write(
            copy.join("go.mod"),
            format!(
                "{go_mod}\nreplace github.com/anishathalye/porcupine => {}\n",
                source.display()
            ),
        )
    });
    written.map_err(|error| format!("{}: {error}", copy.display()))?;
    let offline = vec![
        ("GOFLAGS", "-mod=mod"),
        ("GOPROXY", "off"),
        ("GOSUMDB", "off"),
    ];
    Ok((copy, offline))
}

/// More kv histories to time, partitioned, on both sides:
/// `QUORATE_BENCH_KV_FILES`, paths separated by spaces (Porcupine's
/// `c50-ok.txt` and `c50-bad.txt`, say, which `../shared` lacks).
fn extra_kv_files() -> Vec<PathBuf> {
    std::env::var("QUORATE_BENCH_KV_FILES")
        .unwrap_or_default()
        .split_whitespace()
        .map(PathBuf::from)
        .collect()
}

/// Runs the Porcupine program; returns its `name milliseconds` lines.
fn porcupine(data: &Path) -> Result<Vec<(String, f64)>, String> {
    let (folder, environment) = porcupine_folder()?;
    let output = Command::new("go")
        .arg("run")
        .arg(".")
        .arg(data)
        .args(extra_kv_files())
        .envs(environment)
        .current_dir(&folder)
        .output()
        .map_err(|error| format!("go not runnable ({error}); skipping Porcupine"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "the Porcupine program failed (is github.com/anishathalye/porcupine v1.3.0 \
             reachable through the Go module proxy, or PORCUPINE_SRC set to its source?):\n{}",
            stderr.trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?.to_string();
            let millis = fields.next()?.parse().ok()?;
            Some((name, millis))
        })
        .collect())
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/porcupine");
    if !data.is_dir() {
        println!("skipped: {} is absent", data.display());
        return;
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut jepsen_files: Vec<PathBuf> = std::fs::read_dir(data.join("jepsen"))
        .expect("jepsen folder")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .collect();
    jepsen_files.sort();
    let kv_names = ["c01-ok", "c01-bad", "c10-ok", "c10-bad"];
    let kv_files: Vec<PathBuf> = kv_names
        .iter()
        .map(|name| data.join(format!("kv/{name}.txt")))
        .collect();

    let jepsen = load::<CasRegister>(&jepsen_files);
    let kv = load::<Kv>(&kv_files);
    let mut ours: Vec<(String, f64)> = Vec::new();
    let (millis, verdicts) = median(&jepsen, true, threads);
    let linearizable = verdicts.iter().filter(|&&verdict| verdict).count();
    println!(
        "jepsen: {} files, {linearizable} linearizable",
        jepsen.len()
    );
    ours.push(("jepsen_total".to_string(), millis));
    let (millis, _) = median(&kv, true, threads);
    ours.push(("kv_partitioned_total".to_string(), millis));
    for name in ["c10-ok", "c10-bad"] {
        let one: Vec<Loaded<Kv>> = kv
            .iter()
            .filter(|loaded| loaded.name.starts_with(name))
            .map(|loaded| Loaded {
                name: loaded.name.clone(),
                model: loaded.model.clone(),
                history: loaded.history.clone(),
            })
            .collect();
        let (millis, _) = median(&one, false, threads);
        ours.push((format!("kv_{name}_unpartitioned"), millis));
    }
    for file in extra_kv_files() {
        let one = load::<Kv>(std::slice::from_ref(&file));
        let (millis, _) = median(&one, true, threads);
        let name = one
            .first()
            .map_or_else(String::new, |loaded| loaded.name.clone());
        ours.push((format!("kv_file_{name}"), millis));
    }

    let theirs = porcupine(&data);
    println!("median of {REPEATS} runs, check only (parsing excluded), {threads} threads");
    println!(
        "{:<28} {:>12} {:>14} {:>8}",
        "set", "quorate ms", "porcupine ms", "ratio"
    );
    for (name, millis) in &ours {
        let other = theirs
            .as_ref()
            .ok()
            .and_then(|lines| lines.iter().find(|(other, _)| other == name))
            .map(|(_, millis)| *millis);
        match other {
            Some(other) => println!(
                "{name:<28} {millis:>12.2} {other:>14.2} {:>7.1}x",
                other / millis
            ),
            None => println!("{name:<28} {millis:>12.2} {:>14} {:>8}", "-", "-"),
        }
    }
    if let Err(message) = theirs {
        println!("porcupine: {message}");
    }
}
