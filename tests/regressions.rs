//! The regression corpus: every scenario in `corpus/regressions/` once exposed
//! a bug (its `comment` says which). Each must pass every check as the code is
//! now, so a fixed bug stays fixed.
//!
//! A scenario made from a planted flaw (its `flaws` list is not empty) is also
//! run with those flaws switched on, where the build has them (feature
//! `flaws`): it must still fail, or it no longer tests anything.
//!
//! Add one with `make regress NAME=what-broke SEED=n ARGS="..."`.

use std::fs;
use std::path::{Path, PathBuf};

use quorate::cli::explore::{Keep, load_scenario, run_scenario};

fn scenarios() -> Vec<PathBuf> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/regressions");
    let mut files: Vec<PathBuf> = fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_regression_scenario_passes_every_check() {
    let files = scenarios();
    assert!(!files.is_empty(), "corpus/regressions holds no scenario");
    for path in files {
        let mut scenario = load_scenario(&path).unwrap_or_else(|error| panic!("{error}"));
        assert!(
            !scenario.comment.trim().is_empty(),
            "{}: say in `comment` what bug it exposed",
            path.display()
        );
        scenario.flaws.clear();
        let report = run_scenario(&scenario, Keep::default())
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert!(
            report.passed(),
            "{} ({}) fails again:\n{}\nreplay: cargo run --release -- replay --scenario {}",
            path.display(),
            scenario.comment,
            report.failure_text(),
            path.display()
        );
    }
}

#[cfg(feature = "flaws")]
#[test]
fn every_flaw_scenario_still_exposes_its_flaw() {
    for path in scenarios() {
        let scenario = load_scenario(&path).unwrap_or_else(|error| panic!("{error}"));
        if scenario.flaws.is_empty() {
            continue;
        }
        let report = run_scenario(&scenario, Keep::default())
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert!(
            !report.passed(),
            "{}: with {:?} on, the scenario no longer fails: it tests nothing",
            path.display(),
            scenario.flaws
        );
    }
}
