//! Fuzz targets as ordinary functions.
//!
//! The cargo-fuzz crate in `fuzz/` calls these from libFuzzer on nightly, and
//! `tests/fuzz_corpus.rs` runs every file of `corpus/fuzz/<target>/` through
//! [`TARGETS`] on stable, so CI covers the committed corpus without nightly.
//! A target panics exactly when it has found a bug.

use core::fmt::Debug;
use core::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bond::{HandshakeFrame, WireFrame};
use crate::check::cli::explain;
use crate::check::models::{BuiltinModel, CasRegister, Counter, Kv};
use crate::check::parse::{self, Format, RawHistory};
use crate::check::{CheckOptions, SearchOptions, Verdict, check, html};
use crate::codec::{self, SEAL_BYTES};
use crate::examples::{CounterCmd, KvCmd, KvStore, RegisterCmd};
use crate::raft::Message;
use crate::sim::config::second_look_quiet_period;
use crate::sim::runner::liveness_only;
use crate::sim::workload::KvWorkload;
use crate::sim::{FaultPreset, RunReport, SimConfig, Simulation};

/// A fuzz target: panics on the bytes of a bug.
pub type Target = fn(&[u8]);

/// Every target by name: the name is its directory under `corpus/fuzz/` and its
/// binary in `fuzz/fuzz_targets/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("codec", codec_target),
    ("history", history_target),
    ("schedule", schedule_target),
];

/// Simulated seconds of faults in a `schedule` run (then as many quiet ones).
const SCHEDULE_SECONDS: u64 = 5;

/// The run a `schedule` input stands for: byte 0 picks 3 or 5 nodes, bytes 1..9
/// the seed, and the rest is the tape that steers the run's faults, message
/// fates and client timing (see [`crate::sim::choices`]). A short input is a
/// valid run: missing bytes fall back to the seed. `configure` may change the
/// configuration (e.g. switch flaws on) before it runs.
pub fn schedule_simulation(
    input: &[u8],
    configure: impl FnOnce(&mut SimConfig),
) -> Simulation<KvStore> {
    let (head, tape) = input.split_at(input.len().min(9));
    let mut seed = [0u8; 8];
    for (to, from) in seed.iter_mut().zip(head.iter().skip(1)) {
        *to = *from;
    }
    let mut config = SimConfig::new(u64::from_le_bytes(seed));
    config.nodes = if head.first().is_some_and(|byte| byte & 1 == 1) {
        5
    } else {
        3
    };
    config.clients = 3;
    config.duration = Duration::from_secs(SCHEDULE_SECONDS);
    config.quiet_period = Duration::from_secs(SCHEDULE_SECONDS);
    config.faults = FaultPreset::Swarm;
    configure(&mut config);
    Simulation::new(config, KvStore::default, KvWorkload::default()).with_tape(tape)
}

/// A short 3- or 5-node key-value run steered by the input, every check on;
/// panics when a check fails, after writing the run's scenario to
/// `$QUORATE_SCENARIO_DIR` (default `fuzz/artifacts/schedule-scenarios`). Planted flaws
/// (feature `flaws`) come from `$QUORATE_FLAWS`, comma-separated names.
///
/// A run that fails liveness checks only, and passes with the second look's
/// longer quiet period ([`second_look_quiet_period`]), is not a finding: the
/// input only left its group too little quiet time to converge.
pub fn schedule_target(input: &[u8]) {
    let report = schedule_simulation(input, flaws_from_env).run();
    let longer = || {
        schedule_simulation(input, |config| {
            flaws_from_env(config);
            config.quiet_period = second_look_quiet_period(config.quiet_period);
        })
        .run()
    };
    if report.passed() || only_slow(&report, longer) {
        return;
    }
    let mut saved = String::new();
    if let Some(scenario) = &report.scenario {
        let directory = std::env::var("QUORATE_SCENARIO_DIR")
            .unwrap_or_else(|_| "fuzz/artifacts/schedule-scenarios".to_owned());
        let path =
            std::path::Path::new(&directory).join(format!("scenario-{}.json", report.trace_hash));
        if std::fs::create_dir_all(&directory).is_ok()
            && std::fs::write(&path, scenario.to_json()).is_ok()
        {
            saved = format!("scenario written to {}\n", path.display());
        }
    }
    panic!(
        "{}{saved}shrink it: quorate shrink --fuzz-input <this input>",
        report.failure_text()
    );
}

/// Whether failed `report` is only slow: it failed liveness checks alone, and
/// `longer` (the same run with a longer quiet period) passes.
fn only_slow(report: &RunReport, longer: impl FnOnce() -> RunReport) -> bool {
    liveness_only(report) && longer().passed()
}

/// Switches on the flaws named in `$QUORATE_FLAWS` (feature `flaws`).
#[cfg_attr(not(feature = "flaws"), allow(clippy::missing_const_for_fn))]
pub fn flaws_from_env(config: &mut SimConfig) {
    #[cfg(feature = "flaws")]
    if let Ok(names) = std::env::var("QUORATE_FLAWS") {
        for name in names
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            match name.parse::<crate::raft::flaws::Flaw>() {
                Ok(flaw) => config.flaws = config.flaws.with(flaw),
                Err(message) => panic!("QUORATE_FLAWS: {message}"),
            }
        }
    }
    #[cfg(not(feature = "flaws"))]
    let _ = config;
}

/// Arbitrary bytes decoded as every wire message type, plain and sealed.
///
/// Never panics unless the codec is wrong: decoding fails cleanly or yields a
/// value that encodes, decodes back to itself and re-encodes to the same bytes;
/// unsealing agrees with decoding; a sealed value unseals to itself.
pub fn codec_target(bytes: &[u8]) {
    // `bytes` with its own checksum appended: gets the fuzzer past the CRC into
    // `unseal`'s decoding.
    let mut sealed = bytes.to_vec();
    sealed.extend_from_slice(&crate::codec::crc32c(bytes).to_le_bytes());

    round_trip::<Message<KvCmd>>(bytes, &sealed);
    round_trip::<Message<CounterCmd>>(bytes, &sealed);
    round_trip::<Message<RegisterCmd>>(bytes, &sealed);
    round_trip::<WireFrame<KvCmd>>(bytes, &sealed);
    round_trip::<WireFrame<CounterCmd>>(bytes, &sealed);
    round_trip::<WireFrame<RegisterCmd>>(bytes, &sealed);
    round_trip::<HandshakeFrame>(bytes, &sealed);
}

fn round_trip<T>(bytes: &[u8], sealed: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let decoded = codec::decode::<T>(bytes);
    if let Ok(value) = &decoded {
        let encoded = codec::encode(value).expect("a decoded value encodes");
        let again = codec::decode::<T>(&encoded).expect("an encoded value decodes");
        assert_eq!(&again, value, "decode(encode(x)) != x");
        let twice = codec::encode(&again).expect("a decoded value encodes");
        assert_eq!(twice, encoded, "encoding is not canonical");

        let resealed = codec::seal(value).expect("a decoded value seals");
        assert_eq!(resealed.len(), encoded.len() + SEAL_BYTES);
        let unsealed = codec::unseal::<T>(&resealed).expect("a sealed value unseals");
        assert_eq!(&unsealed, value, "unseal(seal(x)) != x");
    }

    // The input as a sealed frame: whatever it unseals to must round-trip too.
    if let Ok(value) = codec::unseal::<T>(bytes) {
        let resealed = codec::seal(&value).expect("an unsealed value seals");
        assert_eq!(codec::unseal::<T>(&resealed).as_ref(), Ok(&value));
    }

    // With a valid checksum, unsealing is decoding.
    assert_eq!(
        codec::unseal::<T>(sealed),
        decoded,
        "unseal and decode disagree"
    );
}

/// Histories of at most this many operations are also checked whole, against
/// their partitioned verdict.
const HISTORY_WHOLE_OPERATIONS_MAX: usize = 16;

/// A history file as `quorate check` reads it: byte 0 picks the format
/// (detected, Jepsen log, EDN, JSON lines), the rest is the file's text. It is
/// read, typed for every built-in model, checked, explained and drawn as HTML.
///
/// Never panics unless the checker is wrong: bad text is an error naming its
/// line, and a short history's verdict is the same partitioned and whole
/// (linearizability is compositional), wherever both searches decide.
pub fn history_target(bytes: &[u8]) {
    let Some((&selector, text)) = bytes.split_first() else {
        return;
    };
    // `quorate check` refuses text that is not UTF-8 before it parses.
    let Ok(text) = core::str::from_utf8(text) else {
        return;
    };
    let format = match selector % 4 {
        0 => None,
        1 => Some(Format::JepsenLog),
        2 => Some(Format::Edn),
        _ => Some(Format::Jsonl),
    };
    let Ok(raw) = parse::parse(text, format, "fuzz") else {
        return;
    };
    check_history::<CasRegister>(&raw);
    check_history::<Kv>(&raw);
    check_history::<Counter>(&raw);
}

/// `raw` typed for `M` (if it fits), checked, explained and drawn.
fn check_history<M: BuiltinModel>(raw: &RawHistory) {
    let Ok((model, history)) = M::from_raw(raw) else {
        return;
    };
    // Small bounds: an input must not buy a long search.
    let options = CheckOptions {
        partition: true,
        search: SearchOptions {
            cache_entries_max: 1 << 12,
            state_bytes_max: 1 << 20,
            cache_bytes_max: 1 << 22,
        },
    };
    let report = check(&model, &history, &options, &|| false);
    explain(&model, &history, &report, "fuzz", &mut std::io::sink());
    let page = html::to_html(&model, &history, &report, "fuzz");
    assert!(page.contains("</html>"), "an HTML view ends its page");
    if history.len() > HISTORY_WHOLE_OPERATIONS_MAX {
        return;
    }
    let whole = CheckOptions {
        partition: false,
        ..options
    };
    let whole = check(&model, &history, &whole, &|| false);
    let decided = |verdict: &Verdict| !matches!(verdict, Verdict::Unknown { .. });
    if decided(&report.verdict) && decided(&whole.verdict) {
        assert_eq!(
            report.verdict == Verdict::Linearizable,
            whole.verdict == Verdict::Linearizable,
            "partitioned: {:?}, whole: {:?}",
            report.verdict,
            whole.verdict
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schedule left no quiet time (nor load) fails liveness, and is only
    /// slow: with the usual quiet period it passes. One that fails again with
    /// it is stuck, a finding.
    #[test]
    fn a_schedule_short_of_quiet_time_is_only_slow() {
        let input = [1u8, 7, 0, 0, 0, 0, 0, 0, 0];
        let unfinished = schedule_simulation(&input, |config| {
            config.duration = Duration::ZERO;
            config.quiet_period = Duration::ZERO;
        })
        .run();
        assert_eq!(unfinished.failed_check(), Some("liveness"));
        let finished =
            || schedule_simulation(&input, |config| config.duration = Duration::ZERO).run();
        assert!(finished().passed());
        assert!(only_slow(&unfinished, finished));
        assert!(!only_slow(&unfinished, || unfinished.clone()));
    }

    #[test]
    fn edge_inputs_do_not_panic() {
        codec_target(&[]);
        codec_target(&[0]);
        codec_target(&[0xff; 64]);
        codec_target(&[9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    }
}
