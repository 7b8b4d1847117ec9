//! Hand-made histories, parsers, the adapter and property tests.

use proptest::prelude::*;

use super::history::{History, Operation, Outcome};
use super::models::{
    BuiltinModel, CasRegister, Counter, Kv, KvAction, KvInput, KvOutput, KvText, MachineInput,
    MachineOutput, RegisterInput, RegisterOutput, StateMachineModel,
};
use super::parse::{self, Format};
use super::{
    CheckOptions, PartitionOutcome, SearchOptions, UnknownReason, Verdict, check, check_parallel,
};
use crate::examples;

/// A register operation from `call` to `ret` (`None`: indeterminate).
fn op(
    client: u64,
    input: RegisterInput,
    call: u64,
    ret: Option<u64>,
    output: RegisterOutput,
) -> Operation<RegisterInput, RegisterOutput> {
    let outcome = match ret {
        Some(time) => Outcome::Returned { time, output },
        None => Outcome::Indeterminate { time: None },
    };
    Operation {
        client,
        input,
        call,
        outcome,
    }
}

fn read(
    client: u64,
    call: u64,
    ret: u64,
    value: Option<i64>,
) -> Operation<RegisterInput, RegisterOutput> {
    op(
        client,
        RegisterInput::Read,
        call,
        Some(ret),
        RegisterOutput::Value(value),
    )
}

fn write(
    client: u64,
    value: i64,
    call: u64,
    ret: Option<u64>,
) -> Operation<RegisterInput, RegisterOutput> {
    op(
        client,
        RegisterInput::Write(value),
        call,
        ret,
        RegisterOutput::Ok,
    )
}

fn register_verdict(operations: Vec<Operation<RegisterInput, RegisterOutput>>) -> Verdict {
    let history = History { operations };
    check(&CasRegister, &history, &CheckOptions::default(), &|| false).verdict
}

fn is_linearizable(operations: Vec<Operation<RegisterInput, RegisterOutput>>) -> bool {
    match register_verdict(operations) {
        Verdict::Linearizable => true,
        Verdict::NotLinearizable { .. } => false,
        Verdict::Unknown { reason } => panic!("undecided: {reason}"),
    }
}

#[test]
fn indeterminate_write_that_took_effect_explains_a_later_read() {
    assert!(is_linearizable(vec![
        write(0, 1, 0, None),
        read(1, 5, 6, Some(1))
    ]));
}

#[test]
fn indeterminate_write_that_never_took_effect_is_allowed() {
    assert!(is_linearizable(vec![
        write(0, 1, 0, None),
        read(1, 5, 6, None),
        read(1, 7, 8, None)
    ]));
}

#[test]
fn indeterminate_write_cannot_take_effect_before_its_call() {
    assert!(!is_linearizable(vec![
        read(1, 0, 1, Some(1)),
        write(0, 1, 2, None)
    ]));
}

#[test]
fn indeterminate_write_cannot_flip_back_and_forth() {
    // Once the read saw 1, the register cannot show nil again.
    assert!(!is_linearizable(vec![
        write(0, 1, 0, None),
        read(1, 5, 6, Some(1)),
        read(1, 7, 8, None)
    ]));
}

#[test]
fn failed_cas_is_an_observation_the_model_must_explain() {
    let failed_cas = |call, ret| {
        op(
            1,
            RegisterInput::Cas(Some(1), 2),
            call,
            Some(ret),
            RegisterOutput::CasFailed,
        )
    };
    // The register held 1 for the whole cas: its failure is impossible.
    assert!(!is_linearizable(vec![
        write(0, 1, 0, Some(1)),
        failed_cas(2, 3)
    ]));
    // The register held nil: the failure is explained.
    assert!(is_linearizable(vec![
        failed_cas(0, 1),
        write(0, 1, 2, Some(3))
    ]));
}

#[test]
fn definitely_failed_write_is_dropped() {
    let failed = Operation {
        client: 0,
        input: RegisterInput::Write(5),
        call: 0,
        outcome: Outcome::Failed { time: 1 },
    };
    assert!(is_linearizable(vec![failed.clone(), read(1, 2, 3, None)]));
    assert!(!is_linearizable(vec![failed, read(1, 2, 3, Some(5))]));
}

#[test]
fn stale_read_is_not_linearizable() {
    let verdict = register_verdict(vec![
        write(0, 1, 0, Some(1)),
        write(0, 2, 2, Some(3)),
        read(1, 4, 5, Some(1)),
    ]);
    let Verdict::NotLinearizable {
        partition,
        op,
        prefix,
    } = verdict
    else {
        panic!("{verdict:?}")
    };
    assert_eq!(
        (partition, op),
        (0, 2),
        "the stale read is the operation that cannot be placed"
    );
    assert_eq!(prefix, vec![0, 1]);
}

#[test]
fn lost_write_is_not_linearizable() {
    // Write 1 completed, then a read still sees nil.
    assert!(!is_linearizable(vec![
        write(0, 1, 0, Some(1)),
        read(1, 2, 3, None)
    ]));
}

#[test]
fn concurrent_writes_may_land_in_either_order() {
    let writes = || vec![write(0, 1, 0, Some(10)), write(1, 2, 0, Some(10))];
    for (seen, last) in [(1, 2), (2, 1)] {
        let mut operations = writes();
        operations.push(read(2, 11, 12, Some(last)));
        operations.push(read(2, 13, 14, Some(last)));
        assert!(is_linearizable(operations), "last {last}");
        let mut operations = writes();
        operations.push(read(2, 11, 12, Some(seen)));
        operations.push(read(2, 13, 14, Some(last)));
        assert!(!is_linearizable(operations), "{seen} then {last}");
    }
}

#[test]
fn touching_intervals_are_concurrent() {
    // The read returns at the write's call time: they overlap at that instant.
    assert!(is_linearizable(vec![
        read(1, 0, 5, Some(1)),
        write(0, 1, 5, Some(6))
    ]));
}

#[test]
fn should_stop_and_a_full_cache_give_unknown() {
    let operations: Vec<_> = (0..40)
        .map(|client| write(client, client as i64, 0, Some(100)))
        .collect();
    let history = History { operations };
    let stopped = check(&CasRegister, &history, &CheckOptions::default(), &|| true);
    // 40 writes find a linearization in 40 steps, before the first poll.
    assert_eq!(stopped.verdict, Verdict::Linearizable);
    let mut operations: Vec<_> = (0..20)
        .map(|client| write(client, client as i64, 0, Some(100)))
        .collect();
    operations.push(read(99, 101, 102, Some(1000)));
    let history = History { operations };
    let stopped = check(&CasRegister, &history, &CheckOptions::default(), &|| true);
    assert_eq!(
        stopped.verdict,
        Verdict::Unknown {
            reason: UnknownReason::Stopped
        }
    );
    let tiny = CheckOptions {
        partition: true,
        search: SearchOptions {
            cache_entries_max: 100,
            ..SearchOptions::default()
        },
    };
    let full = check(&CasRegister, &history, &tiny, &|| false);
    assert_eq!(
        full.verdict,
        Verdict::Unknown {
            reason: UnknownReason::CacheFull
        }
    );
    // The entries' bytes bound it too (the entry bound left at its default):
    // each holds a set of this history's operations, and 100 entries' worth
    // is too few, as above.
    let entry_bytes = 8 * history.operations.len().div_ceil(64) + 20;
    let few_bytes = CheckOptions {
        partition: true,
        search: SearchOptions {
            cache_bytes_max: 100 * entry_bytes,
            ..SearchOptions::default()
        },
    };
    let full = check(&CasRegister, &history, &few_bytes, &|| false);
    assert_eq!(
        full.verdict,
        Verdict::Unknown {
            reason: UnknownReason::CacheFull
        }
    );
}

#[test]
fn state_machine_adapter_checks_the_seed_counter() {
    use examples::{CounterCmd, CounterQuery};
    let model = StateMachineModel::new(examples::Counter::default());
    let increment = |client, call, ret| Operation {
        client,
        input: MachineInput::Command(CounterCmd::Increment(5)),
        call,
        outcome: Outcome::Returned {
            time: ret,
            output: MachineOutput::Applied,
        },
    };
    let value = |client, call, ret, seen| Operation {
        client,
        input: MachineInput::Query(CounterQuery::Value),
        call,
        outcome: Outcome::Returned {
            time: ret,
            output: MachineOutput::Answer(seen),
        },
    };
    let good = History {
        operations: vec![
            increment(0, 0, 10),
            increment(1, 1, 2),
            value(2, 3, 4, 5),
            value(2, 11, 12, 10),
        ],
    };
    assert_eq!(
        check(&model, &good, &CheckOptions::default(), &|| false).verdict,
        Verdict::Linearizable
    );
    let bad = History {
        operations: vec![increment(0, 0, 1), value(2, 3, 4, 0)],
    };
    assert!(matches!(
        check(&model, &bad, &CheckOptions::default(), &|| false).verdict,
        Verdict::NotLinearizable { op: 1, .. }
    ));
}

fn raw(text: &str, format: Option<Format>) -> Result<parse::RawHistory, parse::ParseError> {
    parse::parse(text, format, "test.txt")
}

#[test]
fn knossos_vector_with_nemesis_and_info() {
    let text = "[{:process 0, :type :invoke, :f :write, :value 1}\n\
                {:process :nemesis, :type :info, :f :start, :value nil}\n\
                {:process 0, :type :ok, :f :write, :value 1}\n\
                {:process 1, :type :invoke, :f :cas, :value [1 2]}\n\
                {:process 1, :type :info, :f :cas, :value [1 2]}\n\
                {:process 2, :type :invoke, :f :read, :value nil}\n\
                {:process 2, :type :ok, :f :read, :value 2}]";
    let raw = raw(text, None).unwrap();
    assert_eq!(raw.operations.len(), 3);
    let (model, history) = CasRegister::from_raw(&raw).unwrap();
    assert_eq!(
        history.operations[1].outcome,
        Outcome::Indeterminate { time: Some(4) }
    );
    assert_eq!(
        check(&model, &history, &CheckOptions::default(), &|| false).verdict,
        Verdict::Linearizable
    );
}

#[test]
fn jsonl_counter_history() {
    let text = r#"{"process": 0, "type": "invoke", "f": "add", "value": 2, "time": 10}
{"process": 1, "type": "invoke", "f": "read", "value": null, "time": 11}
{"process": 0, "type": "ok", "f": "add", "value": 2, "time": 20}
{"process": 1, "type": "ok", "f": "read", "value": 2, "time": 21}
"#;
    let raw = raw(text, None).unwrap();
    let (model, history) = Counter::from_raw(&raw).unwrap();
    assert_eq!(history.operations[0].call, 10);
    assert_eq!(
        check(&model, &history, &CheckOptions::default(), &|| false).verdict,
        Verdict::Linearizable
    );
}

#[test]
fn parse_errors_name_file_and_line() {
    let cases: &[(&str, &str)] = &[
        (
            "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0, :type :ok, :f :write, :value 1\n",
            "test.txt:2:",
        ),
        (
            "{\"process\": 0, \"type\": \"invoke\", \"f\": \"write\", \"value\": 1}\n{oops}\n",
            "test.txt:2: bad JSON",
        ),
        (
            "{:process 0, :type :ok, :f :write, :value 1}\n",
            "test.txt:1: completion of process 0 without an invocation",
        ),
        (
            "INFO  jepsen.util - 0\t:invoke\t:write\t[1\n",
            "test.txt:1:",
        ),
        (
            "INFO  jepsen.util - x\t:invoke\t:write\t1\n",
            "test.txt:1: bad process",
        ),
        ("hello\n", "test.txt: unknown format"),
    ];
    for (text, expected) in cases {
        let error = raw(text, None).unwrap_err().to_string();
        assert!(
            error.starts_with(expected),
            "{error:?} should start with {expected:?}"
        );
    }
    let raw = raw("{:process 0, :type :invoke, :f :cas, :value 3}\n\n{:process 0, :type :ok, :f :cas, :value 3}", None).unwrap();
    let error = CasRegister::from_raw(&raw).unwrap_err().to_string();
    assert!(
        error.starts_with("test.txt:1: cas expects [old new]"),
        "{error}"
    );
}

#[test]
fn format_detection() {
    assert_eq!(
        Format::detect("INFO  jepsen.util - 0\t:invoke\t:read\tnil"),
        Some(Format::JepsenLog)
    );
    assert_eq!(Format::detect("\n  {:process 0}"), Some(Format::Edn));
    assert_eq!(Format::detect("[{:process 0}]"), Some(Format::Edn));
    assert_eq!(Format::detect("{\"process\": 0}"), Some(Format::Jsonl));
    assert_eq!(Format::detect("garbage"), None);
}

#[test]
fn edn_export_round_trips() {
    let history = History {
        operations: vec![
            write(0, 1, 0, Some(3)),
            op(
                1,
                RegisterInput::Cas(Some(5), 6),
                1,
                Some(2),
                RegisterOutput::CasFailed,
            ),
            write(2, 2, 4, None),
            read(3, 5, 6, Some(2)),
        ],
    };
    let text = super::edn::to_edn(&CasRegister, &history);
    let (_, back) = CasRegister::from_raw(&raw(&text, None).unwrap()).unwrap();
    let strip = |history: &History<RegisterInput, RegisterOutput>| -> Vec<_> {
        history
            .operations
            .iter()
            .map(|operation| {
                (
                    operation.client,
                    operation.input,
                    operation.outcome.output().copied(),
                )
            })
            .collect()
    };
    assert_eq!(strip(&back), strip(&history));
}

#[test]
fn a_search_whose_states_outgrow_their_byte_budget_is_unknown() {
    // Six concurrent appends of 1000 bytes each, then a read of all six: the
    // states the search keeps hold 1000, 2000, ... 6000 bytes of text.
    let mut text = String::new();
    let values: Vec<String> = (b'a'..=b'f')
        .map(|letter| (letter as char).to_string().repeat(1000))
        .collect();
    for (process, value) in values.iter().enumerate() {
        text += &format!(
            "{{:process {process}, :type :invoke, :f :append, :key \"k\", :value \"{value}\"}}\n"
        );
    }
    for (process, value) in values.iter().enumerate() {
        text += &format!(
            "{{:process {process}, :type :ok, :f :append, :key \"k\", :value \"{value}\"}}\n"
        );
    }
    let all = values.concat();
    text += "{:process 9, :type :invoke, :f :get, :key \"k\", :value nil}\n";
    text += &format!("{{:process 9, :type :ok, :f :get, :key \"k\", :value \"{all}\"}}\n");
    let (model, history) = Kv::from_raw(&raw(&text, None).unwrap()).unwrap();
    let roomy = check(&model, &history, &CheckOptions::default(), &|| false);
    assert_eq!(roomy.verdict, Verdict::Linearizable);
    let tight = CheckOptions {
        search: SearchOptions {
            state_bytes_max: 10_000,
            ..SearchOptions::default()
        },
        ..CheckOptions::default()
    };
    let stopped = check(&model, &history, &tight, &|| false);
    assert_eq!(
        stopped.verdict,
        Verdict::Unknown {
            reason: UnknownReason::CacheFull
        }
    );
}

#[test]
fn kv_partitions_by_key_and_parallel_agrees() {
    let text = "{:process 0, :type :invoke, :f :put, :key \"a\", :value \"1\"}\n\
                {:process 1, :type :invoke, :f :append, :key \"b\", :value \"x\"}\n\
                {:process 0, :type :ok, :f :put, :key \"a\", :value \"1\"}\n\
                {:process 1, :type :ok, :f :append, :key \"b\", :value \"x\"}\n\
                {:process 0, :type :invoke, :f :get, :key \"b\", :value nil}\n\
                {:process 0, :type :ok, :f :get, :key \"b\", :value \"\"}\n";
    let (model, history) = Kv::from_raw(&raw(text, None).unwrap()).unwrap();
    let report = check(&model, &history, &CheckOptions::default(), &|| false);
    assert_eq!(report.partitions, vec![vec![0], vec![1, 2]]);
    assert!(matches!(
        report.verdict,
        Verdict::NotLinearizable {
            partition: 1,
            op: 2,
            ..
        }
    ));
    assert!(matches!(
        report.outcomes[0],
        PartitionOutcome::Linearizable { .. }
    ));
    let parallel = check_parallel(&model, &history, &CheckOptions::default(), 2, &|| false);
    assert_eq!(parallel.verdict, report.verdict);
}

/// A kv history over `keys` keys, each written and read back in turn by its
/// own client `rounds` times; with `stale_key`, that key's last read returns
/// the value before the last write (not linearizable).
fn many_keys(keys: usize, rounds: usize, stale_key: Option<usize>) -> String {
    let mut text = String::new();
    for round in 0..rounds {
        for key in 0..keys {
            let value = if stale_key == Some(key) && round == rounds - 1 {
                round - 1
            } else {
                round
            };
            for (kind, f, value) in [
                ("invoke", "put", round.to_string()),
                ("ok", "put", round.to_string()),
                ("invoke", "get", "nil".to_owned()),
                ("ok", "get", value.to_string()),
            ] {
                let value = if value == "nil" {
                    value
                } else {
                    format!("\"{value}\"")
                };
                text.push_str(&format!(
                    "{{:process {key}, :type :{kind}, :f :{f}, :key \"{key}\", :value {value}}}\n"
                ));
            }
        }
    }
    text
}

#[test]
fn parallel_reports_what_check_does() {
    // 40 keys x 30 rounds x 2 operations: 2400 operations, enough for
    // check_parallel to start threads.
    let rounds = 30;
    assert!(40 * rounds * 2 >= super::PARALLEL_FROM_OPERATIONS);
    for stale_key in [None, Some(3), Some(37), Some(39)] {
        let text = many_keys(40, rounds, stale_key);
        let (model, history) = Kv::from_raw(&raw(&text, None).unwrap()).unwrap();
        let alone = check(&model, &history, &CheckOptions::default(), &|| false);
        let parallel = check_parallel(&model, &history, &CheckOptions::default(), 2, &|| false);
        assert_eq!(parallel, alone, "stale key {stale_key:?}");
        match alone.verdict {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable { partition, .. } => {
                assert_eq!(
                    Some(partition),
                    stale_key,
                    "the stale key's partition fails"
                );
            }
            Verdict::Unknown { .. } => panic!("undecided: {:?}", alone.verdict),
        }
    }
}

/// EDN lines for `appends` appends to `key` by as many clients, all running
/// at once, then a read of `read` by one more client after they all return.
/// The search tries the appends' orders one by one, so it takes many steps
/// (and cache entries) to place the read.
fn concurrent_appends(key: &str, appends: usize, read: &str) -> String {
    let line = |process: usize, kind: &str, f: &str, value: &str| {
        format!("{{:process {process}, :type :{kind}, :f :{f}, :key \"{key}\", :value {value}}}\n")
    };
    let mut text = String::new();
    for process in 0..appends {
        text += &line(process, "invoke", "append", &format!("\"{process}\""));
    }
    for process in 0..appends {
        text += &line(process, "ok", "append", &format!("\"{process}\""));
    }
    text += &line(appends, "invoke", "get", "nil");
    text += &line(appends, "ok", "get", &format!("\"{read}\""));
    text
}

#[test]
fn the_failure_found_in_fewest_steps_is_reported_however_the_work_is_spread() {
    // Partition 0 fails only once every order of its 8 appends was tried
    // (its read names an order that cannot be); partition 1 fails at once
    // (it reads what was never written). Filler keys make the history big
    // enough for threads.
    let mut text = concurrent_appends("slow", 8, "impossible");
    text += "{:process 90, :type :invoke, :f :get, :key \"quick\", :value nil}\n\
             {:process 90, :type :ok, :f :get, :key \"quick\", :value \"never\"}\n";
    text += &many_keys(20, 30, None);
    let (model, history) = Kv::from_raw(&raw(&text, None).unwrap()).unwrap();
    assert!(history.len() >= super::PARALLEL_FROM_OPERATIONS);
    let alone = check(&model, &history, &CheckOptions::default(), &|| false);
    assert!(
        matches!(alone.verdict, Verdict::NotLinearizable { partition: 1, .. }),
        "{:?}",
        alone.verdict
    );
    // The slow partition could not beat it: left undecided, in every run.
    assert_eq!(
        alone.outcomes[0],
        PartitionOutcome::Unknown {
            reason: UnknownReason::Stopped
        }
    );
    for threads in [2, 3, 8] {
        let parallel = check_parallel(&model, &history, &CheckOptions::default(), threads, &|| {
            false
        });
        assert_eq!(parallel, alone, "{threads} threads");
    }
    // Alone, the slow partition is found to fail too.
    let slow = concurrent_appends("slow", 8, "impossible");
    let (model, history) = Kv::from_raw(&raw(&slow, None).unwrap()).unwrap();
    let report = check(&model, &history, &CheckOptions::default(), &|| false);
    assert!(matches!(
        report.verdict,
        Verdict::NotLinearizable { partition: 0, .. }
    ));
}

#[test]
fn a_finished_search_gives_its_outcome_again_and_takes_no_more_steps() {
    for read in ["impossible", "01234"] {
        let text = concurrent_appends("k", 5, read);
        let (model, history) = Kv::from_raw(&raw(&text, None).unwrap()).unwrap();
        let ops: Vec<usize> = (0..history.len()).collect();
        let mut search =
            super::search::PartitionSearch::new(&model, &history, &ops, SearchOptions::default());
        let mut limit = 1;
        let outcome = loop {
            // Pausing every few steps changes nothing in what it finds.
            if let Some(outcome) = search.run_until(limit, &|| false) {
                break outcome;
            }
            assert_eq!(search.steps(), limit);
            limit += 7;
        };
        let alone = super::search::check_operations(
            &model,
            &history,
            &ops,
            SearchOptions::default(),
            &|| false,
        );
        assert_eq!(outcome, alone, "read {read:?}");
        let steps = search.steps();
        assert_eq!(search.run_until(u64::MAX, &|| false), Some(outcome));
        assert_eq!(search.steps(), steps);
    }
}

#[test]
fn searches_holding_too_much_together_start_again_one_at_a_time() {
    // Four keys whose searches each outlast a first turn and need many
    // cache entries; the read names the last order tried, so each is
    // linearizable.
    let order: String = (0..7).rev().map(|process| process.to_string()).collect();
    let text: String = ["a", "b", "c", "d"]
        .iter()
        .map(|key| concurrent_appends(key, 7, &order))
        .collect();
    let (model, history) = Kv::from_raw(&raw(&text, None).unwrap()).unwrap();
    let roomy = check(&model, &history, &CheckOptions::default(), &|| false);
    assert_eq!(roomy.verdict, Verdict::Linearizable);
    // What one partition's search needs at most, and that it outlasts a
    // first turn (else nothing would be paused).
    let mut one = super::search::PartitionSearch::new(
        &model,
        &history,
        &roomy.partitions[0],
        SearchOptions::default(),
    );
    assert!(
        one.run_until(super::turns::FIRST_TURN_STEPS, &|| false)
            .is_none()
    );
    while one.run_until(u64::MAX, &|| false).is_none() {}
    let needed = one.cache_entries();
    // Room for one search but not for all four paused together: they are
    // searched again one at a time, and the report is the same.
    let tight = CheckOptions {
        search: SearchOptions {
            cache_entries_max: needed + needed / 2,
            ..SearchOptions::default()
        },
        ..CheckOptions::default()
    };
    assert_eq!(check(&model, &history, &tight, &|| false), roomy);
}

#[test]
fn garbage_input_never_panics() {
    let inputs = [
        "{:process 0, :type :ok}",
        "[",
        "[{:process -1, :type :invoke, :f :x}]",
        "{\"process\": 1.5}",
        "INFO  jepsen.util - 0\t:ok\t:read\t1",
        "{:process 0, :type :invoke, :f :read}\n{:process 0, :type :ok, :f :write}",
        "{\"process\": 0, \"type\": \"invoke\", \"f\": \"w\", \"time\": 1}\n{\"process\": 0, \"type\": \"ok\", \"f\": \"w\"}",
    ];
    for text in inputs {
        if let Ok(raw) = raw(text, None) {
            let _ = CasRegister::from_raw(&raw);
            let _ = Kv::from_raw(&raw);
            let _ = Counter::from_raw(&raw);
        }
    }
}

/// A register history made by running `operations` one at a time: each takes
/// effect at its own instant, inside an interval of random width around it.
fn sequential_history(
    operations: &[(u8, i64, u8, u8, bool)],
) -> History<RegisterInput, RegisterOutput> {
    let mut state: Option<i64> = None;
    let mut history = History::new();
    for (position, (kind, value, before, after, indeterminate)) in operations.iter().enumerate() {
        let instant = 100 + 10 * position as u64;
        let (input, output) = match kind % 3 {
            0 => (RegisterInput::Read, RegisterOutput::Value(state)),
            1 => (RegisterInput::Write(*value), RegisterOutput::Ok),
            _ => (
                RegisterInput::Cas(Some(value % 3), *value),
                if state == Some(value % 3) {
                    RegisterOutput::Ok
                } else {
                    RegisterOutput::CasFailed
                },
            ),
        };
        state = CasRegister_step(&state, &input, &output);
        let call = instant - u64::from(*before) * 7;
        let ret = instant + u64::from(*after) * 7;
        let outcome = if *indeterminate && !matches!(input, RegisterInput::Read) {
            Outcome::Indeterminate { time: Some(ret) }
        } else {
            Outcome::Returned { time: ret, output }
        };
        history.push(Operation {
            client: position as u64,
            input,
            call,
            outcome,
        });
    }
    history
}

#[allow(non_snake_case)]
fn CasRegister_step(
    state: &Option<i64>,
    input: &RegisterInput,
    output: &RegisterOutput,
) -> Option<i64> {
    use super::model::Model;
    CasRegister
        .step(state, input, Some(output))
        .expect("the generator follows the model")
}

/// A kv history over up to four keys from `operations`: (key, kind: 0 get,
/// 1 put, 2 append, value, call time, duration). Operations overlap freely,
/// and a get reads a value of its own, so many histories fail.
fn random_kv_history(operations: &[(u8, u8, u8, u64, u64)]) -> (Kv, History<KvInput, KvOutput>) {
    let model = Kv::new((0..4).map(|key| key.to_string()).collect());
    let mut history = History::new();
    for (client, &(key, kind, value, call, duration)) in operations.iter().enumerate() {
        let text = value.to_string();
        let (action, output) = match kind {
            0 => (KvAction::Get, KvOutput::Value(KvText::new(&text))),
            1 => (KvAction::Put(text), KvOutput::Ok),
            _ => (KvAction::Append(text), KvOutput::Ok),
        };
        history.push(Operation {
            client: client as u64,
            input: KvInput {
                key: u32::from(key),
                action,
            },
            call,
            outcome: Outcome::Returned {
                time: call + duration,
                output,
            },
        });
    }
    (model, history)
}

proptest! {
    #[test]
    fn operations_run_one_at_a_time_are_linearizable(
        operations in prop::collection::vec((0u8..3, 0i64..3, 0u8..4, 0u8..4, prop::bool::weighted(0.1)), 0..40)
    ) {
        let history = sequential_history(&operations);
        let report = check(&CasRegister, &history, &CheckOptions::default(), &|| false);
        prop_assert_eq!(report.verdict, Verdict::Linearizable);
    }

    #[test]
    fn a_wrong_read_in_a_sequential_history_is_caught(
        operations in prop::collection::vec((0u8..3, 0i64..3, Just(0u8), Just(0u8), Just(false)), 1..30),
        victim in any::<prop::sample::Index>(),
        wrong in 3i64..6,
    ) {
        let mut history = sequential_history(&operations);
        let index = victim.index(history.len());
        let operation = &mut history.operations[index];
        operation.input = RegisterInput::Read;
        operation.outcome = Outcome::Returned { time: operation.call, output: RegisterOutput::Value(Some(wrong)) };
        // Values written are below 3, so a read of 3..6 can never be explained.
        let report = check(&CasRegister, &history, &CheckOptions::default(), &|| false);
        let is_not_linearizable = matches!(report.verdict, Verdict::NotLinearizable { .. });
        prop_assert!(is_not_linearizable);
    }

    #[test]
    fn turns_report_alike_on_any_number_of_threads_and_match_each_partition_alone(
        operations in prop::collection::vec((0u8..2, 0u8..3, 0u8..3, 0u64..40, 0u64..20), 0..64)
    ) {
        let (model, history) = random_kv_history(&operations);
        let options = CheckOptions::default();
        let parts = super::partitions(&model, &history, true);
        let here = super::turns::check_partitions_here(&model, &history, &parts, &options, &|| false);
        for threads in 2..=4 {
            let spread = super::turns::check_partitions(&model, &history, &parts, &options, threads, &|| false);
            prop_assert_eq!(&spread, &here, "{} threads", threads);
        }
        // Each partition searched alone, to its end.
        let alone: Vec<PartitionOutcome> = parts
            .iter()
            .map(|part| super::search::check_operations(&model, &history, part, options.search, &|| false))
            .collect();
        match super::verdict(&here) {
            Verdict::Linearizable => {
                let all_linearizable = alone
                    .iter()
                    .all(|outcome| matches!(outcome, PartitionOutcome::Linearizable { .. }));
                prop_assert!(all_linearizable);
            }
            Verdict::NotLinearizable { partition, .. } => {
                prop_assert_eq!(&here[partition], &alone[partition]);
            }
            Verdict::Unknown { .. } => prop_assert!(false, "undecided"),
        }
        // Every outcome decided is what the partition alone decides.
        for (outcome, alone) in here.iter().zip(&alone) {
            if !matches!(outcome, PartitionOutcome::Unknown { .. }) {
                prop_assert_eq!(outcome, alone);
            }
        }
    }
}

/// Whether `history` is linearizable, by trying every order: the oracle the
/// search is held to. An operation may go next if it was called no later than
/// every unplaced operation that returned has returned; indeterminate ones may
/// go anywhere after their call, or never. Exponential: for a handful of
/// operations only.
fn linearizable_by_brute_force<M: super::model::Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
) -> bool {
    fn place<M: super::model::Model>(
        model: &M,
        operations: &[&Operation<M::Input, M::Output>],
        placed: &mut Vec<bool>,
        state: &M::State,
    ) -> bool {
        let earliest_return = (0..operations.len())
            .filter(|&index| !placed[index])
            .filter_map(|index| match operations[index].outcome {
                Outcome::Returned { time, .. } => Some(time),
                _ => None,
            })
            .min();
        let Some(earliest_return) = earliest_return else {
            // Every operation that returned is placed.
            return true;
        };
        for index in 0..operations.len() {
            let operation = operations[index];
            if placed[index] || operation.call > earliest_return {
                continue;
            }
            let Some(next) = model.step(state, &operation.input, operation.outcome.output()) else {
                continue;
            };
            placed[index] = true;
            let found = place(model, operations, placed, &next);
            placed[index] = false;
            if found {
                return true;
            }
        }
        false
    }
    let operations: Vec<_> = history
        .operations
        .iter()
        .filter(|operation| !matches!(operation.outcome, Outcome::Failed { .. }))
        .collect();
    let mut placed = vec![false; operations.len()];
    place(model, &operations, &mut placed, &model.init())
}

/// A kv history like [`random_kv_history`]'s over two keys, where a put or
/// append may also be indeterminate (its return never seen), and a get may
/// read two values appended ("01", "12") or nothing ("").
fn random_kv_history_with_unknowns(
    operations: &[(u8, u8, u8, u64, u64, bool)],
) -> (Kv, History<KvInput, KvOutput>) {
    let plain: Vec<_> = operations
        .iter()
        .map(|&(key, kind, value, call, duration, _)| (key % 2, kind, value % 3, call, duration))
        .collect();
    let (model, mut history) = random_kv_history(&plain);
    for (operation, &(_, _, value, _, _, unknown)) in history.operations.iter_mut().zip(operations)
    {
        match &mut operation.outcome {
            Outcome::Returned { output, .. }
                if operation.input.action == KvAction::Get && value >= 3 =>
            {
                let read = ["01", "12", ""][usize::from(value - 3)];
                *output = KvOutput::Value(KvText::new(read));
            }
            Outcome::Returned { .. } if operation.input.action == KvAction::Get => {}
            _ if unknown => operation.outcome = Outcome::Indeterminate { time: None },
            _ => {}
        }
    }
    (model, history)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The search's verdict is the brute force's, on small kv histories with
    /// overlapping, indeterminate and conflicting operations, partitioned by
    /// key or not.
    #[test]
    fn the_search_agrees_with_brute_force(
        operations in prop::collection::vec((0u8..2, 0u8..3, 0u8..6, 0u64..30, 0u64..15, prop::bool::weighted(0.3)), 0..8),
        partition in any::<bool>(),
    ) {
        let (model, history) = random_kv_history_with_unknowns(&operations);
        let expected = linearizable_by_brute_force(&model, &history);
        let options = CheckOptions { partition, ..CheckOptions::default() };
        let report = check(&model, &history, &options, &|| false);
        let found = match report.verdict {
            Verdict::Linearizable => true,
            Verdict::NotLinearizable { .. } => false,
            Verdict::Unknown { .. } => return Err(TestCaseError::fail("undecided")),
        };
        prop_assert_eq!(found, expected, "{:#?}", history);
    }
}

/// Appends to one key cut off by crashes: `unknown` indeterminate appends
/// called at the start, of which only the sixth ever takes effect (after the
/// 30th of 60 appends that returned), each followed by a get of the whole
/// value. With `lose_last`, the last get misses the last append, which
/// returned before it was called.
fn appends_with_unknowns(unknown: usize, lose_last: bool) -> History<KvInput, KvOutput> {
    let mut history = History::new();
    let input = |action| KvInput { key: 0, action };
    for index in 0..unknown {
        history.push(Operation {
            client: 100 + index as u64,
            input: input(KvAction::Append(format!("i{index} "))),
            call: index as u64,
            outcome: Outcome::Indeterminate { time: None },
        });
    }
    let mut value = String::new();
    for round in 0..60u64 {
        let at = 100 + 10 * round;
        let appended = format!("a{round} ");
        history.push(Operation {
            client: 0,
            input: input(KvAction::Append(appended.clone())),
            call: at,
            outcome: Outcome::Returned {
                time: at + 1,
                output: KvOutput::Ok,
            },
        });
        let before = value.clone();
        value.push_str(&appended);
        if round == 29 {
            value.push_str("i5 ");
        }
        let read = if lose_last && round == 59 {
            &before
        } else {
            &value
        };
        history.push(Operation {
            client: 1,
            input: input(KvAction::Get),
            call: at + 2,
            outcome: Outcome::Returned {
                time: at + 3,
                output: KvOutput::Value(KvText::new(read)),
            },
        });
    }
    history
}

/// Indeterminate appends that no get ever shows are left out of the search
/// ([`Model::unobservable`](super::model::Model::unobservable)): with 24 of
/// them, one search with a cache of 10,000 entries decides the history both
/// ways, where trying each of them at every step filled it (a turmoil run of
/// the kv example, seed 102, found the case).
#[test]
fn appends_no_get_shows_are_left_out_of_the_search() {
    let model = Kv::new(vec!["k".into()]);
    let options = CheckOptions {
        partition: true,
        search: SearchOptions {
            cache_entries_max: 10_000,
            ..SearchOptions::default()
        },
    };
    let report = check(&model, &appends_with_unknowns(24, false), &options, &|| {
        false
    });
    assert_eq!(report.verdict, Verdict::Linearizable);
    let report = check(&model, &appends_with_unknowns(24, true), &options, &|| {
        false
    });
    assert!(
        matches!(report.verdict, Verdict::NotLinearizable { .. }),
        "{:?}",
        report.verdict
    );
}
