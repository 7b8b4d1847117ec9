//! `quorate explore --jobs/--shard/--summary`, `quorate merge` and
//! `quorate replay --history`, through the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use quorate::campaign::Summary;

/// Short runs: few seeds, two simulated seconds of load and two of quiet.
const CLUSTER: [&str; 4] = ["--duration", "2", "--quiet", "2"];

fn quorate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(args)
        .output()
        .expect("run quorate")
}

/// Runs quorate with `args`: its exit status and its report (stdout).
fn report_of(args: &[&str]) -> (Option<i32>, String) {
    let output = quorate(args);
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code(), report)
}

/// [`report_of`] a campaign over `seeds` with the planted `flaw` switched on.
#[cfg(feature = "flaws")]
fn explore_with_flaw(seeds: &str, flaw: &str) -> (Option<i32>, String) {
    report_of(&["explore", "--seeds", seeds, "--flaw", flaw])
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("quorate-campaign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn explore(extra: &[&str], summary: &Path) -> (Output, Summary) {
    let mut args = vec!["explore", "--summary", summary.to_str().unwrap()];
    args.extend_from_slice(&CLUSTER);
    args.extend_from_slice(extra);
    let output = quorate(&args);
    assert!(
        output.status.code().is_some_and(|code| code <= 1),
        "explore failed to run: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let text = std::fs::read_to_string(summary).expect("summary written");
    (output, serde_json::from_str(&text).expect("summary parses"))
}

/// The report without its wall-time figures (the speed line).
fn report_without_speed(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.starts_with("speed:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A run that fails liveness checks only is run again with a longer quiet
/// period, and the report says which it was: slow or stuck. With neither load
/// nor quiet (`--duration 0 --quiet 0`), seed 0 ends before any election, so
/// it has no leader; given 20 s of quiet, it elects one and passes.
#[test]
fn a_liveness_failure_is_told_slow_or_stuck() {
    let cluster = ["--seed", "0", "--duration", "0", "--quiet", "0"];
    let verdict = "slow, not stuck: with a quiet period of 20 s the same run passes \
         (cargo run --release -- replay --seed 0 --nodes 5 --clients 5 --workload kv \
         --faults swarm --duration 0 --quiet 20)";
    let summary = scratch("liveness.json");
    let mut args = vec!["explore", "--summary", summary.to_str().unwrap()];
    args.extend_from_slice(&["--seeds", "0..1", "--duration", "0", "--quiet", "0"]);
    let (status, report) = report_of(&args);
    assert_eq!(status, Some(1), "{report}");
    assert!(
        report.contains(
            "[liveness] no leader at the end of the quiet period: \
             n1 n2 n3 n4 n5 follower in term 0"
        ),
        "{report}"
    );
    assert!(report.contains(verdict), "{report}");
    assert!(
        report.contains("[liveness] 1 seed(s) (0 stuck, 1 only slow):"),
        "{report}"
    );
    let summary: Summary =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(summary.failures.len(), 1);
    assert_eq!(summary.failures[0].second_look.as_deref(), Some(verdict));

    let mut args = vec!["replay", "--brief"];
    args.extend_from_slice(&cluster);
    let (status, report) = report_of(&args);
    assert_eq!(status, Some(1), "{report}");
    assert!(report.contains(verdict), "{report}");

    // The longer run passes, so it has no second look.
    let (status, report) = report_of(&[
        "replay",
        "--brief",
        "--seed",
        "0",
        "--duration",
        "0",
        "--quiet",
        "20",
    ]);
    assert_eq!(status, Some(0), "{report}");
    assert!(!report.contains("slow, not stuck"), "{report}");
}

/// With no leader at the end, the report groups the nodes by role and term.
/// Seed 780 with one second of quiet ends mid-election, the others in term
/// 14 and n2, started with another signature, never bonded and still at term 0.
#[test]
fn no_leader_names_each_nodes_role_and_term() {
    let (status, report) = report_of(&["replay", "--brief", "--seed", "780", "--quiet", "1"]);
    assert_eq!(status, Some(1), "{report}");
    assert!(
        report.contains(
            "[liveness] no leader at the end of the quiet period: n2 (different state \
             machine signature) pre-candidate in term 0; n4 n5 follower in term 14; \
             n1 n3 pre-candidate in term 14"
        ),
        "seed 780 no longer ends without a leader; if the engine changed, find \
         another seed with `quorate explore --quiet 1`:\n{report}"
    );
    assert!(report.contains("slow, not stuck"), "{report}");
}

/// A liveness bug is told stuck: with the planted flaw keep-next-on-conflict,
/// a leader never repairs a follower whose log diverged, and seed 3's n3
/// applies nothing, however long the quiet period.
#[cfg(feature = "flaws")]
#[test]
fn a_stuck_follower_is_told_stuck() {
    let (status, report) = explore_with_flaw("3..4", "keep-next-on-conflict");
    assert_eq!(status, Some(1), "{report}");
    assert!(
        report.contains(
            "stuck: with a quiet period of 40 s it still fails: [liveness] replicas did not converge"
        ),
        "seed 3 is no longer stuck; if the engine changed, find another seed with \
         `quorate explore --flaw keep-next-on-conflict`:\n{report}"
    );
    assert!(
        report.contains("[liveness] 1 seed(s) (1 stuck, 0 only slow):"),
        "{report}"
    );
}

/// A node that cuts entries it had committed is caught at the step it does
/// so. Under truncate-committed, seed 12's n3 cuts its log below what it had
/// applied, and its commit index from 62 to 60. The engine's own check names
/// the first (a debug assertion, so a panic, in debug builds). Release builds
/// run on past it, and the simulator's check that a commit index never goes
/// back names the second.
#[cfg(feature = "flaws")]
#[test]
fn a_node_that_cuts_committed_entries_is_caught_at_once() {
    let (status, report) = explore_with_flaw("12..13", "truncate-committed");
    assert_eq!(status, Some(1), "{report}");
    let again = "if the engine changed, find another seed with \
                 `quorate explore --flaw truncate-committed`";
    let engine_check = if cfg!(debug_assertions) {
        "[panic] at 14.526776s: node n3 broke an invariant: applied 62@12 is past commit 60"
    } else {
        "[engine] at 14.526776s: n3: applied 62@12 is past commit 60"
    };
    assert!(
        report.contains(engine_check),
        "seed 12's n3 no longer applies past its commit index; {again}:\n{report}"
    );
    if !cfg!(debug_assertions) {
        assert!(
            report.contains("[safety] at 14.526776s: n3: commit index went back from 62 to 60"),
            "seed 12's n3 no longer takes its commit index back; {again}:\n{report}"
        );
    }
}

/// An operation left pending is named: which, when it was invoked, and the
/// node its client turns to. Under keep-next-on-conflict, seed 79's group
/// never commits client 1's last append.
#[cfg(feature = "flaws")]
#[test]
fn a_pending_operation_is_named() {
    let (status, report) = explore_with_flaw("79..80", "keep-next-on-conflict");
    assert_eq!(status, Some(1), "{report}");
    assert!(
        report.contains(
            "[liveness] 1 client operation still pending after the quiet period; the oldest, \
             client 1's command Append { key: \"3\", value: \"1.20 \" }, was invoked at \
             16.889153s, and its client turns to n3"
        ),
        "seed 79 no longer leaves an operation pending; if the engine changed, find \
         another seed with `quorate explore --flaw keep-next-on-conflict`:\n{report}"
    );
}

#[test]
fn two_jobs_give_the_same_per_seed_results_as_one() {
    let (one, a) = explore(&["--seeds", "0..5", "--jobs", "1"], &scratch("jobs1.json"));
    let (two, b) = explore(&["--seeds", "0..5", "--jobs", "2"], &scratch("jobs2.json"));
    assert_eq!(a.runs.len(), 5);
    assert!(a.runs.iter().all(|run| !run.trace_hash.is_empty()));
    assert_eq!(a.runs, b.runs);
    assert_eq!(a.failures, b.failures);
    assert_eq!(a.totals.events, b.totals.events);
    assert!(
        a.totals.entries_received > 0,
        "the followers received entries"
    );
    assert_eq!(a.totals.entries_received, b.totals.entries_received);
    assert_eq!(a.totals.entries_already_held, b.totals.entries_already_held);
    assert!(
        String::from_utf8_lossy(&one.stdout).contains("log entries received were already held")
    );
    assert_eq!(report_without_speed(&one), report_without_speed(&two));
    assert_eq!(one.status.code(), two.status.code());
}

#[test]
fn two_shards_merged_equal_one_unsharded_run() {
    let (_, whole) = explore(&["--seeds", "3..9"], &scratch("whole.json"));
    let shard0 = scratch("shard0.json");
    let shard1 = scratch("shard1.json");
    let (_, first) = explore(&["--seeds", "3..9", "--shard", "0/2"], &shard0);
    let (_, second) = explore(&["--seeds", "3..9", "--shard", "1/2"], &shard1);
    assert_eq!(
        first.runs.iter().map(|run| run.seed).collect::<Vec<_>>(),
        [4, 6, 8]
    );
    assert_eq!(second.runs.len(), 3);

    let merged_path = scratch("merged.json");
    let merge = quorate(&[
        "merge",
        shard1.to_str().unwrap(),
        shard0.to_str().unwrap(),
        "--summary",
        merged_path.to_str().unwrap(),
    ]);
    assert_eq!(
        merge.status.code(),
        Some(i32::from(!whole.failures.is_empty())),
        "{}",
        String::from_utf8_lossy(&merge.stderr)
    );
    let merged: Summary =
        serde_json::from_str(&std::fs::read_to_string(&merged_path).unwrap()).unwrap();
    assert_eq!(merged.campaign, whole.campaign);
    assert_eq!(merged.runs, whole.runs);
    assert_eq!(merged.failures, whole.failures);
    assert_eq!(merged.totals.seeds, 6);
    assert_eq!(merged.totals.events, whole.totals.events);
    assert_eq!(
        merged.totals.entries_received,
        whole.totals.entries_received
    );
    assert_eq!(
        merged.totals.entries_already_held,
        whole.totals.entries_already_held
    );
    assert!(String::from_utf8_lossy(&merge.stdout).contains("seeds run: 6, failed: "));
    // One core's speed survives the merge: the shards' busy time adds up.
    assert!(first.totals.busy_seconds > 0.0 && second.totals.busy_seconds > 0.0);
    assert_eq!(
        merged.totals.busy_seconds,
        second.totals.busy_seconds + first.totals.busy_seconds
    );
    assert!(
        String::from_utf8_lossy(&merge.stdout).contains(" per thread running seeds); "),
        "{}",
        String::from_utf8_lossy(&merge.stdout)
    );
}

#[test]
fn merge_refuses_different_campaigns_and_duplicate_shards() {
    let a = scratch("other0.json");
    let b = scratch("other1.json");
    explore(&["--seeds", "0..2", "--shard", "0/2"], &a);
    explore(
        &["--seeds", "0..2", "--shard", "1/2", "--workload", "counter"],
        &b,
    );
    let different = quorate(&["merge", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(different.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&different.stderr).contains("different campaign"));
    let twice = quorate(&["merge", a.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("appears twice"));
}

#[test]
fn replay_history_is_jepsen_edn_that_parses_back() {
    let path = scratch("history.edn");
    let mut args = vec![
        "replay",
        "--seed",
        "7",
        "--brief",
        "--history",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(&CLUSTER);
    let output = quorate(&args);
    assert!(output.status.code().is_some_and(|code| code <= 1));
    let text = std::fs::read_to_string(&path).expect("history written");
    assert!(text.starts_with("[{:process "), "{text}");
    let history = quorate::check::parse::parse(&text, None, "history.edn").expect("EDN parses");
    assert!(
        history.operations.len() > 10,
        "{} operations",
        history.operations.len()
    );
}

/// Each built-in workload's history comes out in the shape of a model Jepsen's
/// tools know (counter, Knossos cas-register, Porcupine kv), and `quorate
/// check` with that model judges it as the simulator did.
#[test]
fn replay_history_is_checkable_with_the_workloads_jepsen_model() {
    for (workload, model, shape) in [
        ("counter", "counter", ":f :add"),
        ("register", "cas-register", ":f :cas"),
        ("kv", "kv", ":f :append"),
    ] {
        let path = scratch(&format!("{workload}.edn"));
        let mut args = vec![
            "replay",
            "--seed",
            "11",
            "--brief",
            "--workload",
            workload,
            "--history",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(&CLUSTER);
        let replay = quorate(&args);
        assert_eq!(replay.status.code(), Some(0), "{workload}: seed 11 failed");
        let text = std::fs::read_to_string(&path).expect("history written");
        assert!(
            text.contains(shape),
            "{workload}: not in its model's shape:\n{text}"
        );
        let check = quorate(&["check", "--model", model, path.to_str().unwrap()]);
        let report = String::from_utf8_lossy(&check.stdout);
        assert_eq!(check.status.code(), Some(0), "{workload}: {report}");
        assert!(report.contains(": linearizable"), "{workload}: {report}");
    }
}

/// A run the simulator finds non-linearizable (a planted stale read) is found
/// non-linearizable again from its exported history alone.
#[cfg(feature = "flaws")]
#[test]
fn a_non_linearizable_run_exports_a_history_the_checker_rejects() {
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/corpus/regressions/flaw-read-without-read-index.json"
    );
    let path = scratch("stale-read.edn");
    let replay = quorate(&[
        "replay",
        "--brief",
        "--scenario",
        scenario,
        "--history",
        path.to_str().unwrap(),
    ]);
    assert_eq!(
        replay.status.code(),
        Some(1),
        "the planted stale read was not found"
    );
    let check = quorate(&["check", "--model", "kv", path.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{report}");
    assert!(
        report.contains("NOT linearizable") || report.contains("not linearizable"),
        "{report}"
    );
}

/// A run whose traffic grows without bound is stopped and reported as a
/// message storm, with its busiest link, not left to run for minutes. With
/// the planted flaw resend-at-match, every answer that moves nothing begets a
/// resend, and every duplicated message one more such exchange: seed 6's
/// traffic grows until 9.2 simulated seconds in, when it is stopped. (Most
/// swarm seeds storm: 14 of 0..20.)
#[cfg(feature = "flaws")]
#[test]
fn a_message_storm_is_stopped_and_named() {
    let (status, report) = explore_with_flaw("6..7", "resend-at-match");
    assert_eq!(status, Some(1), "{report}");
    assert!(
        report.contains("[message storm] 1 seed(s):\n  seed 6: over 75776 events in flight, "),
        "seed 6 no longer storms; if the engine changed, find another seed \
         with `quorate explore --flaw resend-at-match --seeds 0..100`:\n{report}"
    );
    // It names the link that carries most of the storm.
    assert!(report.contains(" of them on n"), "{report}");
}

#[test]
fn rust_log_debug_shows_every_trace_event_with_its_virtual_time() {
    let args = ["replay", "--seed", "3", "--duration", "2", "--quiet", "2"];
    let shown = Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(args)
        .env("RUST_LOG", "quorate=debug")
        // Plain text: no colour codes between a field's name and its value.
        .env("NO_COLOR", "1")
        .output()
        .expect("run quorate");
    let stderr = String::from_utf8_lossy(&shown.stderr);
    assert_eq!(shown.status.code(), Some(0), "{stderr}");
    let report = String::from_utf8_lossy(&shown.stdout);
    let events: usize = report
        .split_once(" trace events")
        .and_then(|(before, _)| before.rsplit(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no trace event count in:\n{report}"));
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("quorate::sim:"))
        .collect();
    assert_eq!(lines.len(), events, "one line per trace event");
    assert!(
        lines[0].contains("role change") && lines[0].ends_with("time=0.000000s"),
        "the first event, with its virtual time as a field: {}",
        lines[0]
    );
    assert!(
        lines.iter().any(|line| line.contains("<- n")),
        "deliveries are shown"
    );

    let quiet = Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run quorate");
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("quorate::sim:"),
        "without RUST_LOG no trace line is shown"
    );
    assert_eq!(
        String::from_utf8_lossy(&quiet.stdout),
        report,
        "showing the trace does not change the run"
    );
}

/// The numbers of `replay`'s traffic line: sent, delivered, rejected, entries
/// received, and the percentage of those resent in vain.
fn traffic_of(report: &str) -> (u64, u64, u64, u64, f64) {
    let line = report
        .lines()
        .find(|line| line.starts_with("traffic: "))
        .unwrap_or_else(|| panic!("no traffic line in the report:\n{report}"));
    let numbers: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|word| word.trim_end_matches('.').parse().ok())
        .collect();
    let [sent, delivered, rejected, received, vain] = numbers[..] else {
        panic!("five numbers expected in {line:?}");
    };
    (
        sent as u64,
        delivered as u64,
        rejected as u64,
        received as u64,
        vain,
    )
}

/// `replay` tells the run's traffic. Without faults, every entry a follower
/// receives is new to it and no frame is rejected; with network faults,
/// corrupted frames are rejected by the codec and reordered batches make a
/// leader resend some entries.
#[test]
fn replay_tells_the_traffic_and_the_entries_resent_in_vain() {
    let run = |faults: &str| {
        let (status, report) = report_of(&[
            "replay",
            "--brief",
            "--seed",
            "3",
            "--duration",
            "5",
            "--faults",
            faults,
        ]);
        assert_eq!(status, Some(0), "{report}");
        traffic_of(&report)
    };
    let (sent, delivered, rejected, received, vain) = run("none");
    assert!(
        sent > 0 && delivered <= sent && received > 0,
        "{sent} {delivered} {received}"
    );
    assert_eq!((rejected, vain), (0, 0.0));

    let (sent, delivered, rejected, received, vain) = run("network");
    assert!(
        delivered < sent && received > 0,
        "{sent} {delivered} {received}"
    );
    assert!(rejected > 0, "seed 3 with network faults corrupts frames");
    assert!(vain > 0.0 && vain < 50.0, "{vain}% resent in vain");
}
