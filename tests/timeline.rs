//! The timeline view (issue 7): one self-contained HTML page per run, with a
//! lane per node, client operations, and violations the page opens at.

use std::time::Duration;

use quorate::env::Instant;
use quorate::examples::KvStore;
use quorate::sim::timeline::render;
use quorate::sim::workload::KvWorkload;
use quorate::sim::{FaultPreset, RunReport, SimConfig, Simulation, Violation};
use serde_json::Value;

/// A short run of three nodes under every kind of fault, traced.
fn short_run(seed: u64) -> RunReport {
    let mut config = SimConfig::new(seed);
    config.nodes = 3;
    config.duration = Duration::from_secs(3);
    config.quiet_period = Duration::from_secs(3);
    config.record_trace = true;
    config.faults = FaultPreset::All;
    Simulation::new(config, KvStore::default, KvWorkload::default()).run()
}

/// The JSON the page embeds for its script.
fn embedded_data(page: &str) -> Value {
    let opening = "<script id=\"timeline-data\" type=\"application/json\">";
    let start = page.find(opening).expect("the page embeds its data") + opening.len();
    let length = page[start..]
        .find("</script>")
        .expect("the data script is closed");
    serde_json::from_str(&page[start..start + length]).expect("the embedded data is JSON")
}

fn micros(value: &Value) -> u64 {
    value.as_u64().expect("a time in microseconds")
}

#[test]
fn page_is_self_contained() {
    let page = render(&short_run(3), "seed 3");
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<canvas"));
    for external in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "<link",
        "@import",
        "url(http",
    ] {
        assert!(
            !page.contains(external),
            "the page refers outside: {external}"
        );
    }
}

#[test]
fn page_has_one_lane_per_node_with_role_changes() {
    let report = short_run(3);
    let page = render(&report, "seed 3");
    let data = embedded_data(&page);
    assert_eq!(data["nodes"], 3);
    let lanes = data["lanes"].as_array().expect("lanes");
    let nodes: Vec<u64> = lanes
        .iter()
        .map(|lane| lane["node"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(nodes, [1, 2, 3]);
    let roles: Vec<u64> = lanes
        .iter()
        .flat_map(|lane| lane["segments"].as_array().cloned().unwrap_or_default())
        .map(|segment| segment[2].as_u64().unwrap_or(99))
        .collect();
    assert!(roles.contains(&3), "some node leads at some point");
    assert!(roles.contains(&0), "some node follows at some point");
    for lane in lanes {
        let segments = lane["segments"].as_array().expect("segments");
        assert!(segments.len() >= 2, "each node changes role at least once");
        for pair in segments.windows(2) {
            assert_eq!(pair[0][1], pair[1][0], "segments of a lane are contiguous");
        }
    }
    assert!(
        !data["events"].as_array().expect("events").is_empty(),
        "events are embedded for hovering"
    );
    let end = micros(&data["end"]);
    assert_eq!(data["view"][0], 0, "a passing run opens on the whole run");
    assert_eq!(micros(&data["view"][1]), end);
    assert!(page.contains("trace hash") && page.contains(&report.trace_hash));
}

#[test]
fn page_draws_delivered_messages_and_client_operations() {
    let report = short_run(3);
    let data = embedded_data(&render(&report, "seed 3"));
    let messages = data["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|event| event.as_array().is_some_and(|fields| fields.len() == 5))
        .count() as u64;
    assert_eq!(messages, report.stats.messages_delivered);
    let operations: usize = data["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .map(|lane| lane["operations"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(operations, report.client_operations.len());
    assert!(operations > 0);
}

#[test]
fn failing_run_opens_at_its_violation() {
    let mut report = short_run(3);
    let at = Instant::from_nanos(2_000_000_000);
    report.violations.push(Violation {
        check: "safety".into(),
        message: "two leaders in term 4: n1 and n2".into(),
        at: Some(at),
    });
    let page = render(&report, "seed 3");
    assert!(page.contains("failed: safety"));
    assert!(page.contains("two leaders in term 4: n1 and n2"));
    let data = embedded_data(&page);
    assert_eq!(data["violations"][0]["time"], 2_000_000);
    let (start, end) = (micros(&data["view"][0]), micros(&data["view"][1]));
    assert!(start < 2_000_000 && 2_000_000 < end);
    assert_eq!((start + end) / 2, 2_000_000, "the view is centred on it");
    assert!(end - start < micros(&data["end"]), "the view is zoomed in");
}

#[test]
fn violation_found_at_the_end_marks_the_end_and_its_operation() {
    let mut report = short_run(3);
    let operation = report.client_operations[2].clone();
    report.violations.push(Violation {
        check: "linearizability".into(),
        message: format!(
            "client {} operation `{}` (called at {} ns) cannot be linearized after a \
             linearizable prefix of 2 operations",
            operation.client,
            operation.description,
            operation.invoked.as_nanos()
        ),
        at: None,
    });
    let data = embedded_data(&render(&report, "seed 3"));
    let end = micros(&data["end"]);
    assert_eq!(micros(&data["violations"][0]["time"]), end);
    assert_eq!(micros(&data["view"][1]), end);
    let named = &data["violations"][0]["operation"];
    assert_eq!(named[0].as_u64(), Some(operation.client));
    let lane = data["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .find(|lane| lane["client"].as_u64() == Some(operation.client))
        .expect("the client's lane");
    let index = named[1].as_u64().expect("an index") as usize;
    assert_eq!(
        lane["operations"][index][4], 1,
        "the operation is highlighted"
    );
}

#[test]
fn script_injection_in_texts_is_escaped() {
    let mut report = short_run(3);
    let hostile = "</script><script>alert(1)</script>";
    report.client_operations[0].description = hostile.into();
    report.violations.push(Violation {
        check: "safety".into(),
        message: hostile.into(),
        at: Some(Instant::from_nanos(1_000_000_000)),
    });
    let page = render(&report, hostile);
    assert!(!page.contains(hostile));
    assert_eq!(
        page.matches("</script>").count(),
        2,
        "only the page's own scripts close"
    );
    let data = embedded_data(&page);
    let strings = data["strings"].as_array().expect("strings");
    assert!(
        strings
            .iter()
            .any(|text| text.as_str().is_some_and(|text| text.starts_with(hostile))),
        "the text survives, escaped"
    );
    assert_eq!(data["violations"][0]["message"], hostile);
}

#[test]
fn report_without_trace_says_so() {
    let mut report = short_run(3);
    report.trace = None;
    report.violations.push(Violation {
        check: "liveness".into(),
        message: "no leader after the quiet period".into(),
        at: None,
    });
    let page = render(&report, "seed 3");
    assert!(page.contains("not recorded"));
    assert!(page.contains("no leader after the quiet period"));
    assert!(!page.contains("<canvas"));
}

/// Writes pages for a manual look: `cargo test --test timeline -- --ignored`,
/// then `scripts/timeline_shot.sh /tmp/timeline.html /tmp/timeline.png`.
#[test]
#[ignore = "writes files to /tmp for a manual look"]
fn write_pages_for_a_look() {
    let mut config = SimConfig::new(11);
    config.record_trace = true;
    let report = Simulation::new(config, KvStore::default, KvWorkload::default()).run();
    let page = render(&report, "seed 11, 5 nodes, 20 s swarm");
    std::fs::write("/tmp/timeline.html", &page).expect("write /tmp/timeline.html");
    println!(
        "/tmp/timeline.html: {} bytes, {} events",
        page.len(),
        report.trace_events
    );

    let mut failing = short_run(3);
    failing.violations.push(Violation {
        check: "safety".into(),
        message: "two leaders in term 4: n1 and n2".into(),
        at: Some(Instant::from_nanos(2_000_000_000)),
    });
    let page = render(&failing, "seed 3 (planted violation)");
    std::fs::write("/tmp/timeline-failing.html", &page).expect("write /tmp/timeline-failing.html");
    println!("/tmp/timeline-failing.html: {} bytes", page.len());

    let mut config = SimConfig::new(5);
    config.duration = Duration::from_secs(10);
    config.record_trace = true;
    config.faults = FaultPreset::All;
    let report = Simulation::new(config, KvStore::default, KvWorkload::default()).run();
    let page = render(&report, "seed 5, 5 nodes, 10 s, all faults");
    std::fs::write("/tmp/timeline-faults.html", &page).expect("write /tmp/timeline-faults.html");
    println!("/tmp/timeline-faults.html: {} bytes", page.len());
}
