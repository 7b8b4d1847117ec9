//! The path from a failing seed to a small scenario, through the real binary
//! (feature `flaws`): `explore --save-failures` writes the failing seed's
//! scenario, `replay --scenario` reproduces its exact trace, `shrink` reduces
//! it (the same way twice), the shrunk scenario still fails with the flaw on
//! and passes with it off.
#![cfg(feature = "flaws")]

use std::path::PathBuf;
use std::process::{Command, Output};

use quorate::sim::scenario::Scenario;

fn quorate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quorate"))
        .args(args)
        .output()
        .expect("run quorate")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn scratch(test: &str) -> PathBuf {
    // One directory per test: tests run in parallel, and clearing a shared
    // one deleted another test's files under it.
    let dir = std::env::temp_dir().join(format!("quorate-shrink-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The first `trace hash X` in a report.
fn trace_hash(text: &str) -> String {
    let at = text
        .find("trace hash ")
        .expect("a trace hash in the report")
        + 11;
    text[at..at + 16].to_owned()
}

#[test]
fn a_failing_seed_becomes_a_small_scenario_that_replays_and_passes_once_fixed() {
    let dir = scratch("shrink");
    let failures = dir.join("failures");
    let explore = quorate(&[
        "explore",
        "--seeds",
        "0..30",
        "--flaw",
        "quorum-of-reachable",
        "--duration",
        "5",
        "--quiet",
        "5",
        "--stop-after",
        "1",
        "--save-failures",
        failures.to_str().unwrap(),
    ]);
    let report = stdout(&explore);
    assert_eq!(
        explore.status.code(),
        Some(1),
        "the flaw was not found:\n{report}"
    );
    let saved = std::fs::read_dir(&failures)
        .expect("--save-failures made its directory")
        .next()
        .expect("one scenario written")
        .unwrap()
        .path();
    assert!(
        report.contains(&format!("scenario: {}", saved.display())),
        "{report}"
    );

    // The scenario replays the seed's exact trace.
    let replay = quorate(&["replay", "--brief", "--scenario", saved.to_str().unwrap()]);
    assert_eq!(replay.status.code(), Some(1), "{}", stdout(&replay));
    assert_eq!(trace_hash(&stdout(&replay)), trace_hash(&report));

    // Shrinking is deterministic and keeps the failure.
    let shrunk: Vec<PathBuf> = ["a.json", "b.json"]
        .iter()
        .map(|name| dir.join(name))
        .collect();
    for out in &shrunk {
        let shrink = quorate(&[
            "shrink",
            "--scenario",
            saved.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--runs",
            "400",
        ]);
        assert_eq!(shrink.status.code(), Some(0), "{}", stdout(&shrink));
        assert!(stdout(&shrink).contains("after:"), "{}", stdout(&shrink));
    }
    let read = |path: &PathBuf| std::fs::read_to_string(path).unwrap();
    assert_eq!(
        read(&shrunk[0]),
        read(&shrunk[1]),
        "shrinking is not deterministic"
    );
    let before = Scenario::from_json(&read(&saved)).unwrap();
    let after = Scenario::from_json(&read(&shrunk[0])).unwrap();
    assert!(
        after.faults.len() <= before.faults.len()
            && after.operations.len() < before.operations.len()
            && after.duration <= before.duration,
        "nothing shrank: {} -> {}",
        before.size(),
        after.size()
    );

    let small = shrunk[0].to_str().unwrap();
    let again = quorate(&["replay", "--brief", "--scenario", small]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "the shrunk scenario passes:\n{}",
        stdout(&again)
    );
    let fixed = quorate(&["replay", "--brief", "--scenario", small, "--without-flaws"]);
    assert_eq!(
        fixed.status.code(),
        Some(0),
        "fails without the flaw:\n{}",
        stdout(&fixed)
    );
}

#[test]
fn bad_scenario_files_get_a_clear_error_and_exit_2() {
    let dir = scratch("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("broken.json");
    std::fs::write(&path, "{\"format\": 1, \"seed\": ").unwrap();
    let replay = quorate(&["replay", "--scenario", path.to_str().unwrap()]);
    assert_eq!(replay.status.code(), Some(2));
    let text = stdout(&replay);
    assert!(
        text.contains("broken.json") && text.contains("not a valid scenario"),
        "{text}"
    );
    let missing = quorate(&["replay", "--scenario", "/nonexistent/scenario.json"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stdout(&missing).contains("cannot read"),
        "{}",
        stdout(&missing)
    );
}
