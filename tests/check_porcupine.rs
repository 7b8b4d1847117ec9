//! The checker against Porcupine's recorded histories: every file gets the
//! verdict `../shared/testdata/porcupine/README.md` states, partitioned and
//! (for the kv files) unpartitioned, through the library and the CLI.

use std::path::{Path, PathBuf};
use std::time::Instant;

use quorate::check::cli::{CheckArgs, ModelName, run_check};
use quorate::check::models::{BuiltinModel, CasRegister, Kv};
use quorate::check::parse;
use quorate::check::search::{
    CACHE_BYTES_MAX_DEFAULT, CACHE_ENTRIES_MAX_DEFAULT, STATE_BYTES_MAX_DEFAULT,
};
use quorate::check::{CheckOptions, Verdict, check};

const JEPSEN_LINEARIZABLE: [u32; 10] = [2, 5, 7, 18, 25, 31, 38, 45, 48, 49];

fn testdata() -> Option<PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/porcupine");
    if folder.is_dir() {
        Some(folder)
    } else {
        println!("skipped: {} is absent", folder.display());
        None
    }
}

fn verdict_of<M: BuiltinModel>(file: &Path, partition: bool) -> Verdict {
    let text = std::fs::read_to_string(file).unwrap();
    let raw = parse::parse(&text, None, &file.display().to_string()).unwrap();
    let (model, history) = M::from_raw(&raw).unwrap();
    let options = CheckOptions {
        partition,
        ..CheckOptions::default()
    };
    check(&model, &history, &options, &|| false).verdict
}

fn jepsen_files(folder: &Path) -> Vec<(PathBuf, bool)> {
    (0..50)
        .map(|number| {
            (
                folder.join(format!("jepsen/etcd_{number:03}.log")),
                JEPSEN_LINEARIZABLE.contains(&number),
            )
        })
        .collect()
}

fn kv_files(folder: &Path) -> Vec<(PathBuf, bool)> {
    ["c01-ok", "c01-bad", "c10-ok", "c10-bad"]
        .iter()
        .map(|name| (folder.join(format!("kv/{name}.txt")), name.ends_with("-ok")))
        .collect()
}

#[test]
fn every_jepsen_etcd_log_gets_the_readme_verdict() {
    let Some(folder) = testdata() else { return };
    for (file, linearizable) in jepsen_files(&folder) {
        let verdict = verdict_of::<CasRegister>(&file, true);
        match verdict {
            Verdict::Linearizable => assert!(
                linearizable,
                "{} should not be linearizable",
                file.display()
            ),
            Verdict::NotLinearizable { .. } => {
                assert!(!linearizable, "{} should be linearizable", file.display())
            }
            Verdict::Unknown { reason } => panic!("{}: undecided ({reason})", file.display()),
        }
    }
}

#[test]
fn every_kv_file_gets_its_verdict_partitioned_and_whole() {
    let Some(folder) = testdata() else { return };
    for (file, linearizable) in kv_files(&folder) {
        for partition in [true, false] {
            let verdict = verdict_of::<Kv>(&file, partition);
            assert_eq!(
                verdict == Verdict::Linearizable,
                linearizable,
                "{} (partition: {partition}): {verdict:?}",
                file.display()
            );
            assert!(!matches!(verdict, Verdict::Unknown { .. }));
        }
    }
}

#[test]
fn the_cli_prints_a_line_per_file_and_exits_by_verdict() {
    let Some(folder) = testdata() else { return };
    let start = Instant::now();
    let clock = move || start.elapsed();
    let run = |model, files: Vec<PathBuf>| {
        let args = CheckArgs {
            model,
            format: None,
            no_partition: false,
            timeout: Some(60.0),
            html: None,
            cache_entries_max: CACHE_ENTRIES_MAX_DEFAULT,
            state_bytes_max: STATE_BYTES_MAX_DEFAULT,
            cache_bytes_max: CACHE_BYTES_MAX_DEFAULT,
            files,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = run_check(&args, &clock, &mut out, &mut err);
        (status, String::from_utf8(out).unwrap())
    };
    let (status, out) = run(
        ModelName::CasRegister,
        vec![folder.join("jepsen/etcd_002.log")],
    );
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("etcd_002.log: linearizable ("), "{out}");
    let (status, out) = run(
        ModelName::Kv,
        vec![folder.join("kv/c01-ok.txt"), folder.join("kv/c01-bad.txt")],
    );
    assert_eq!(status, 1, "{out}");
    assert_eq!(out.lines().count(), 2);
    assert!(
        out.contains("c01-bad.txt: not linearizable (38 ops, "),
        "{out}"
    );
    let (status, out) = run(ModelName::Kv, vec![folder.join("kv/missing.txt")]);
    assert_eq!(status, 2, "{out}");
}

#[test]
fn edn_export_of_jepsen_logs_keeps_the_verdict() {
    let Some(folder) = testdata() else { return };
    for (file, linearizable) in jepsen_files(&folder).into_iter().take(12) {
        let text = std::fs::read_to_string(&file).unwrap();
        let (model, history) =
            CasRegister::from_raw(&parse::parse(&text, None, "log").unwrap()).unwrap();
        let edn = quorate::check::edn::to_edn(&model, &history);
        let (model, back) =
            CasRegister::from_raw(&parse::parse(&edn, None, "edn").unwrap()).unwrap();
        let verdict = check(&model, &back, &CheckOptions::default(), &|| false).verdict;
        assert_eq!(
            verdict == Verdict::Linearizable,
            linearizable,
            "{}",
            file.display()
        );
    }
}
