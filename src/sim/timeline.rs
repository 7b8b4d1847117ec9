//! The timeline view of one run: a self-contained HTML file.
//!
//! One lane per node shows its role and term over virtual time (each leader
//! term in its own colour, downtime hatched, pauses shaded); a band below shows
//! partitions; delivered messages are arrows between lanes; one lane per client
//! shows its operations as bars; every checker violation is a red line with its
//! explanation in the panel at the top. The page zooms (wheel) and pans (drag)
//! along time, and hovering shows the nearest event. A failing run opens
//! zoomed around its first violation.
//!
//! The data is embedded as JSON (times in microseconds, texts interned in one
//! table) and drawn on a canvas by a small script; nothing is fetched. When the
//! view holds too many messages to draw, the script bundles them per sender,
//! receiver and time bucket and says so; when the trace itself is very long,
//! the page keeps role changes, faults and requests and samples the rest, and
//! says so.
//!
//! `render` is a pure function of the report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::trace::{TraceEvent, What};
use super::{ClientOperation, RunReport, Violation};
use crate::check::html::escape as escape_html;
use crate::env::Instant;
use crate::raft::Role;

/// Trace events embedded for hovering and arrows before the rest is sampled.
pub const EMBEDDED_EVENTS_MAX: usize = 200_000;

/// Width of the initial view around a violation, in microseconds.
const VIOLATION_VIEW_MICROS: u64 = 1_000_000;

/// Role codes in the embedded data, indexing the script's `ROLES`.
const ROLE_DOWN: u8 = 4;

/// Outcome codes of client operations in the embedded data.
const OUTCOME_OK: u8 = 0;
const OUTCOME_INFO: u8 = 1;
const OUTCOME_PENDING: u8 = 2;

/// The run as one self-contained HTML page: header, violations, and (if the
/// trace was recorded) the interactive timeline.
///
/// Without a recorded trace (`report.trace` is `None`) the page holds the
/// header and the violations, and says that the trace was not recorded.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use quorate::examples::KvStore;
/// use quorate::sim::{SimConfig, Simulation, workload::KvWorkload, FaultPreset};
///
/// let mut config = SimConfig::new(7);
/// config.nodes = 3;
/// config.duration = Duration::from_millis(500);
/// config.quiet_period = Duration::from_millis(500);
/// config.record_trace = true;
/// config.faults = FaultPreset::None;
/// let report = Simulation::new(config, KvStore::default, KvWorkload::default()).run();
/// let page = quorate::sim::timeline::render(&report, "seed 7");
/// assert!(page.contains("<canvas"));
/// ```
pub fn render(report: &RunReport, title: &str) -> String {
    let header = header_html(report, title);
    let violations = violations_html(report);
    let body = match &report.trace {
        Some(trace) => {
            let data = timeline_data(report, title, trace);
            let json = serde_json::to_string(&data).unwrap_or_else(|_| "null".into());
            timeline_html(&embed_json(&json))
        }
        None => "<p class=\"missing\">The trace of this run was not recorded, so there is no \
                 timeline. Run it again with <code>SimConfig::record_trace</code> on.</p>"
            .to_string(),
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{header}{violations}{body}\
         </body>\n</html>\n",
        title = escape_html(title),
    )
}

/// JSON made safe inside a `<script>` element: no `<` can close it or open a
/// comment. `\u003c` is valid in JSON strings, and `<` occurs only in strings.
fn embed_json(json: &str) -> String {
    json.replace('<', "\\u003c")
}

/// Microseconds since the start of the run.
fn micros(instant: Instant) -> u64 {
    instant.as_nanos() / 1_000
}

fn header_html(report: &RunReport, title: &str) -> String {
    let verdict = if report.passed() {
        "<span class=\"pass\">passed</span>".to_string()
    } else {
        format!(
            "<span class=\"fail\">failed: {}</span>",
            escape_html(report.failed_check().unwrap_or("unknown"))
        )
    };
    let config = &report.config;
    let facts = [
        ("seed", config.seed.to_string()),
        ("nodes", config.nodes.to_string()),
        ("clients", config.clients.to_string()),
        ("workload", report.workload.clone()),
        ("faults", report.faults.clone()),
        (
            "simulated",
            format!("{:.3}s", report.stats.simulated.as_secs_f64()),
        ),
        ("events", report.trace_events.to_string()),
        ("trace hash", report.trace_hash.clone()),
    ];
    let mut html = format!("<header><h1>{} {verdict}</h1><p>", escape_html(title));
    for (name, value) in facts {
        let _ = write!(
            html,
            "<span class=\"fact\"><b>{name}</b> {}</span> ",
            escape_html(&value)
        );
    }
    html.push_str("</p></header>\n");
    html
}

fn violations_html(report: &RunReport) -> String {
    if report.violations.is_empty() {
        return String::new();
    }
    let mut html = String::from("<section id=\"violations\"><h2>Violations</h2><ol>");
    for (position, violation) in report.violations.iter().enumerate() {
        let at = violation
            .at
            .map_or_else(|| "end of run".to_string(), |at| at.to_string());
        let _ = write!(
            html,
            "<li><button class=\"goto\" data-violation=\"{position}\">go to</button> \
             <b>[{}]</b> <i>{}</i>: {}</li>",
            escape_html(&violation.check),
            escape_html(&at),
            escape_html(&violation.message),
        );
    }
    html.push_str("</ol></section>\n");
    html
}

fn timeline_html(json: &str) -> String {
    format!(
        "<nav id=\"controls\"><button id=\"fit\">fit</button>\
         <button id=\"zoom-in\">zoom in</button><button id=\"zoom-out\">zoom out</button>\
         <button id=\"goto\">go to violation</button>\
         <span id=\"span\"></span> <span id=\"note\"></span></nav>\n\
         <div id=\"legend\"></div>\n\
         <div id=\"stage\"><canvas id=\"timeline\"></canvas><div id=\"tip\"></div></div>\n\
         <p class=\"help\">Wheel: zoom around the cursor. Drag: pan. Hover: details of the \
         nearest event.</p>\n\
         <script id=\"timeline-data\" type=\"application/json\">{json}</script>\n\
         <script>{SCRIPT}</script>\n"
    )
}

/// Everything the script draws. Times are microseconds since the start.
#[derive(Serialize)]
struct TimelineData {
    title: String,
    nodes: u64,
    end: u64,
    /// The initial window, `[start, end]`.
    view: [u64; 2],
    /// Interned texts; other fields refer to them by index.
    strings: Vec<String>,
    lanes: Vec<Lane>,
    /// `[node, start, end]`.
    pauses: Vec<[u64; 3]>,
    /// `[start, end, text]`.
    partitions: Vec<[u64; 3]>,
    /// `[time, node (0: cluster-wide), text]`.
    faults: Vec<[u64; 3]>,
    /// `[time, node (0: none), text]`, and for a delivered message also
    /// `from, latency`; in time order. A node's role and term at an event are
    /// its lane's.
    events: Vec<Vec<u64>>,
    clients: Vec<ClientLane>,
    violations: Vec<ViolationMark>,
    /// Why some data is missing, for the page to say.
    notes: Vec<String>,
}

/// One node's role over time.
#[derive(Serialize)]
struct Lane {
    node: u64,
    /// `[start, end, role, term, leader (0: none known)]`.
    segments: Vec<[u64; 5]>,
}

/// One client's operations.
#[derive(Serialize)]
struct ClientLane {
    client: u64,
    /// `[invoked, ended (end of run if pending), outcome, text, highlighted]`.
    operations: Vec<[u64; 5]>,
}

/// A violation where the timeline draws it.
#[derive(Serialize)]
struct ViolationMark {
    check: String,
    message: String,
    /// When it was found; `None` for checks at the end of the run.
    at: Option<u64>,
    /// Where it is drawn.
    time: u64,
    /// The client operation it names, `[client, index in that client's lane]`.
    operation: Option<[u64; 2]>,
}

/// Texts interned into one table, so repeated ones cost an index.
#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: BTreeMap<String, u64>,
}

impl Strings {
    fn intern(&mut self, text: &str) -> u64 {
        if let Some(&index) = self.index.get(text) {
            return index;
        }
        let index = self.table.len() as u64;
        self.table.push(text.to_string());
        self.index.insert(text.to_string(), index);
        index
    }
}

fn timeline_data(report: &RunReport, title: &str, trace: &[TraceEvent]) -> TimelineData {
    let last_event = trace.last().map_or(0, |event| micros(event.time));
    let simulated = u64::try_from(report.stats.simulated.as_micros()).unwrap_or(u64::MAX);
    let end = simulated.max(last_event).max(1);
    let nodes = trace
        .iter()
        .filter_map(|event| event.node.map(|node| node.0))
        .fold(report.config.nodes, u64::max);
    let mut strings = Strings::default();
    let mut clients = client_lanes(report, end, &mut strings);
    let violations = violation_marks(&report.violations, end, &clients);
    highlight_named_operations(&mut clients, &violations);
    let (events, notes) = embedded_events(trace, &mut strings);
    TimelineData {
        title: title.to_string(),
        nodes,
        end,
        view: initial_view(&violations, end),
        lanes: lanes(trace, nodes, end),
        pauses: pauses(trace, end),
        partitions: partitions(trace, end, &mut strings),
        faults: faults(trace, &mut strings),
        events,
        clients,
        violations,
        notes,
        strings: strings.table,
    }
}

fn role_code(role: Option<Role>) -> u8 {
    match role {
        Some(Role::Follower) => 0,
        Some(Role::PreCandidate) => 1,
        Some(Role::Candidate) => 2,
        Some(Role::Leader) => 3,
        None => ROLE_DOWN,
    }
}

/// Each node's role, term and known leader as segments. A segment starts at
/// the node's first event and changes when role or term changes.
fn lanes(trace: &[TraceEvent], nodes: u64, end: u64) -> Vec<Lane> {
    let mut lanes: Vec<Lane> = (1..=nodes)
        .map(|node| Lane {
            node,
            segments: Vec::new(),
        })
        .collect();
    for event in trace {
        let Some(node) = event.node else { continue };
        let Some(lane) = node
            .0
            .checked_sub(1)
            .and_then(|position| lanes.get_mut(position as usize))
        else {
            continue;
        };
        let time = micros(event.time);
        let role = role_code(event.role);
        let term = if role == ROLE_DOWN { 0 } else { event.term.0 };
        let last = lane.segments.last_mut();
        let leader_known = last
            .as_ref()
            .filter(|last| last[3] == term)
            .map_or(0, |last| last[4]);
        let leader = match &event.what {
            What::Role { leader } => leader.map_or(0, |leader| leader.0),
            _ => leader_known,
        };
        match last {
            Some(last) if last[2] == u64::from(role) && last[3] == term => last[4] = leader,
            Some(last) => {
                last[1] = time;
                lane.segments
                    .push([time, end, u64::from(role), term, leader]);
            }
            None => lane
                .segments
                .push([time, end, u64::from(role), term, leader]),
        }
    }
    lanes
}

fn fault_text(event: &TraceEvent) -> Option<&str> {
    match &event.what {
        What::Fault(text) => Some(text.as_str()),
        _ => None,
    }
}

/// Pause intervals per node: from `pause` to `resume`, a crash, or the end.
fn pauses(trace: &[TraceEvent], end: u64) -> Vec<[u64; 3]> {
    let mut open: BTreeMap<u64, u64> = BTreeMap::new();
    let mut pauses = Vec::new();
    for event in trace {
        let (Some(node), Some(text)) = (event.node, fault_text(event)) else {
            continue;
        };
        let time = micros(event.time);
        if text.starts_with("pause") {
            open.entry(node.0).or_insert(time);
        } else if (text.starts_with("resume") || text.starts_with("crash"))
            && let Some(start) = open.remove(&node.0)
        {
            pauses.push([node.0, start, time]);
        }
    }
    pauses.extend(open.into_iter().map(|(node, start)| [node, start, end]));
    pauses
}

/// Partition intervals: a cluster-wide fault that cuts links starts one (and
/// ends the one before); `heal`, the quiet period or `no partition` end it.
fn partitions(trace: &[TraceEvent], end: u64, strings: &mut Strings) -> Vec<[u64; 3]> {
    let mut open: Option<(u64, u64)> = None;
    let mut partitions = Vec::new();
    for event in trace {
        let (None, Some(text)) = (event.node, fault_text(event)) else {
            continue;
        };
        let ends = ["heal", "faults end", "no partition"]
            .iter()
            .any(|prefix| text.starts_with(prefix));
        let point = text.starts_with("crash") || text.starts_with("clock");
        if point {
            continue;
        }
        let time = micros(event.time);
        if let Some((start, label)) = open.take() {
            partitions.push([start, time, label]);
        }
        if !ends {
            open = Some((time, strings.intern(text)));
        }
    }
    partitions.extend(open.map(|(start, label)| [start, end, label]));
    partitions
}

fn faults(trace: &[TraceEvent], strings: &mut Strings) -> Vec<[u64; 3]> {
    trace
        .iter()
        .filter_map(|event| {
            let text = fault_text(event)?;
            let node = event.node.map_or(0, |node| node.0);
            Some([micros(event.time), node, strings.intern(text)])
        })
        .collect()
}

/// Whether an event is kept whole when the trace is sampled.
fn always_kept(what: &What) -> bool {
    !matches!(
        what,
        What::Received { .. } | What::Timer(_) | What::Commit(_)
    )
}

/// The events to embed, and a note if some were sampled away.
fn embedded_events(trace: &[TraceEvent], strings: &mut Strings) -> (Vec<Vec<u64>>, Vec<String>) {
    let kept_whole = trace
        .iter()
        .filter(|event| always_kept(&event.what))
        .count();
    let sampled = trace.len() - kept_whole;
    let budget = EMBEDDED_EVENTS_MAX.saturating_sub(kept_whole).max(1);
    let stride = if trace.len() <= EMBEDDED_EVENTS_MAX {
        1
    } else {
        sampled.div_ceil(budget).max(1)
    };
    let mut events = Vec::with_capacity(trace.len().min(EMBEDDED_EVENTS_MAX));
    let mut seen = 0usize;
    for event in trace {
        if !always_kept(&event.what) {
            seen += 1;
            if !(seen - 1).is_multiple_of(stride) {
                continue;
            }
        }
        events.push(event_row(event, strings));
    }
    let mut notes = Vec::new();
    if stride > 1 {
        notes.push(format!(
            "The trace has {} events: the page keeps every role change, fault and request, \
             and one in {stride} of the {sampled} messages, timers and commits ({} events kept).",
            trace.len(),
            events.len()
        ));
    }
    (events, notes)
}

fn event_row(event: &TraceEvent, strings: &mut Strings) -> Vec<u64> {
    let node = event.node.map_or(0, |node| node.0);
    let time = micros(event.time);
    let mut row = vec![time, node];
    match &event.what {
        What::Received {
            from,
            message,
            sent,
        } => row.extend([
            strings.intern(message.name()),
            from.0,
            time.saturating_sub(micros(*sent)),
        ]),
        what => row.push(strings.intern(&what.to_string())),
    }
    row
}

fn outcome_code(operation: &ClientOperation) -> u8 {
    match operation.outcome {
        "ok" => OUTCOME_OK,
        "info" => OUTCOME_INFO,
        _ => OUTCOME_PENDING,
    }
}

fn client_lanes(report: &RunReport, end: u64, strings: &mut Strings) -> Vec<ClientLane> {
    let mut clients: BTreeMap<u64, Vec<[u64; 5]>> = (1..=report.config.clients)
        .map(|client| (client, Vec::new()))
        .collect();
    for operation in &report.client_operations {
        let mut text = format!("{} [{}]", operation.description, operation.outcome);
        if let Some(answer) = &operation.answer {
            let _ = write!(text, " -> {answer}");
        }
        let invoked = micros(operation.invoked);
        let ended = operation.ended.map_or(end, micros).max(invoked);
        clients.entry(operation.client).or_default().push([
            invoked,
            ended,
            u64::from(outcome_code(operation)),
            strings.intern(&text),
            0,
        ]);
    }
    clients
        .into_iter()
        .map(|(client, operations)| ClientLane { client, operations })
        .collect()
}

/// The client and invocation time (ns) a linearizability message names:
/// `client C operation `...` (called at N ns) ...`.
fn named_operation(message: &str) -> Option<(u64, u64)> {
    let client = message.strip_prefix("client ")?;
    let client: u64 = client.split(' ').next()?.parse().ok()?;
    let (_, called) = message.rsplit_once("(called at ")?;
    let nanos: u64 = called.split(' ').next()?.parse().ok()?;
    Some((client, nanos))
}

fn violation_marks(
    violations: &[Violation],
    end: u64,
    clients: &[ClientLane],
) -> Vec<ViolationMark> {
    violations
        .iter()
        .map(|violation| {
            let at = violation.at.map(micros);
            let operation = named_operation(&violation.message).and_then(|(client, nanos)| {
                let lane = clients.iter().find(|lane| lane.client == client)?;
                let index = lane
                    .operations
                    .iter()
                    .position(|operation| operation[0] == nanos / 1_000)?;
                Some([client, index as u64])
            });
            ViolationMark {
                check: violation.check.clone(),
                message: violation.message.clone(),
                at,
                time: at.unwrap_or(end).min(end),
                operation,
            }
        })
        .collect()
}

/// Flags the client operations that violations name.
fn highlight_named_operations(clients: &mut [ClientLane], violations: &[ViolationMark]) {
    for [client, index] in violations.iter().filter_map(|mark| mark.operation) {
        let operation = clients
            .iter_mut()
            .find(|lane| lane.client == client)
            .and_then(|lane| lane.operations.get_mut(index as usize));
        if let Some(operation) = operation {
            operation[4] = 1;
        }
    }
}

/// The whole run if it passed; otherwise a window around the first violation,
/// kept inside the run.
fn initial_view(violations: &[ViolationMark], end: u64) -> [u64; 2] {
    let Some(first) = violations.first() else {
        return [0, end];
    };
    let span = VIOLATION_VIEW_MICROS.min(end);
    let start = first.time.saturating_sub(span / 2).min(end - span);
    [start, start + span]
}

const STYLE: &str = r##"
body { font: 13px/1.4 system-ui, sans-serif; margin: 0; padding: 8px 12px; color: #222; background: #fafafa; }
h1 { font-size: 17px; margin: 0 0 2px; }
h2 { font-size: 14px; margin: 0 0 4px; }
header p { margin: 0 0 6px; color: #444; }
.fact { margin-right: 10px; white-space: nowrap; }
.pass { color: #1d7a3a; } .fail { color: #c0152b; }
#violations { border: 2px solid #c0152b; background: #fff0f1; padding: 6px 10px; margin-bottom: 6px; border-radius: 4px; }
#violations ol { margin: 0; padding-left: 22px; }
#controls { margin: 4px 0; }
#controls button, .goto { font: inherit; padding: 1px 8px; margin-right: 4px; cursor: pointer; }
#note { color: #8a5a00; }
#span { color: #555; margin-left: 8px; }
#legend { margin: 4px 0; color: #333; }
.key { display: inline-block; margin-right: 12px; white-space: nowrap; }
.swatch { display: inline-block; width: 14px; height: 10px; margin-right: 4px; vertical-align: -1px; border: 1px solid #0003; }
#stage { position: relative; }
#timeline { display: block; width: 100%; background: #fff; border: 1px solid #ccc; cursor: grab; }
#tip { position: absolute; display: none; pointer-events: none; white-space: pre; background: #222e; color: #fff; padding: 4px 7px; border-radius: 3px; font: 12px/1.35 ui-monospace, monospace; z-index: 2; max-width: 640px; overflow: hidden; }
.help { color: #777; margin: 4px 0; }
.missing { padding: 12px; background: #fff7e0; border: 1px solid #e0c070; }
"##;

const SCRIPT: &str = r##"
"use strict";
const D = JSON.parse(document.getElementById("timeline-data").textContent);
const S = D.strings;
const ROLES = ["follower", "pre-candidate", "candidate", "leader", "down"];
const OUTCOMES = ["ok", "info", "pending"];
const OUTCOME_COLOURS = ["#3a9d5d", "#e8912d", "#a0a0a0"];
const MESSAGE_COLOURS = ["#3b6fc4", "#c4503b", "#2e9e6e", "#8e4fc4", "#b08a1e", "#1e9bb0", "#c43b8e", "#6b6b6b"];
const ARROWS_MAX = 2000, ARROWHEADS_MAX = 300, BUCKETS = 160;
const LABEL_W = 92, AXIS_H = 28, BAND_H = 20, CLIENT_H = 15, GAP = 10;
const canvas = document.getElementById("timeline"), ctx = canvas.getContext("2d");
const tip = document.getElementById("tip"), note = document.getElementById("note");
// Layout: lanes grow to fill the window (between 30 and 80 pixels each).
let LANE_H = 34, bandY = 0, clientsY = 0, height = 0;
let v0 = D.view[0], v1 = D.view[1], width = 0, plotW = 1;
function layout() {
  const fixed = AXIS_H + 4 + BAND_H + GAP + D.clients.length * CLIENT_H + 8;
  const room = window.innerHeight - canvas.getBoundingClientRect().top - 34 - fixed;
  LANE_H = Math.max(30, Math.min(80, Math.floor(room / Math.max(1, D.nodes))));
  bandY = AXIS_H + D.nodes * LANE_H + 4;
  clientsY = bandY + BAND_H + GAP;
  height = clientsY + D.clients.length * CLIENT_H + 8;
}

// Indexes: events per node, messages (in receive order), message colours.
const byNode = Array.from({length: D.nodes + 1}, () => []);
const messages = [];
const messageColour = new Map();
let latencyMax = 0;
D.events.forEach((e, i) => {
  if (e[1] <= D.nodes) byNode[e[1]].push(i);
  if (e.length > 3) {
    messages.push(e);
    latencyMax = Math.max(latencyMax, e[4]);
    if (!messageColour.has(e[2])) messageColour.set(e[2], MESSAGE_COLOURS[messageColour.size % MESSAGE_COLOURS.length]);
  }
});

const termColour = term => `hsl(${(term * 137.508) % 360}, 68%, ${term % 2 ? 42 : 52}%)`;
const x = t => LABEL_W + (t - v0) * plotW / (v1 - v0);
const timeAt = px => v0 + (px - LABEL_W) * (v1 - v0) / plotW;
const laneMid = node => AXIS_H + (node - 1) * LANE_H + LANE_H / 2;
// An axis label: seconds with as many decimals as the tick step needs.
function fmt(us, step) {
  const decimals = Math.max(0, Math.ceil(-Math.log10(step / 1e6) - 1e-9));
  return (us / 1e6).toFixed(decimals) + "s";
}
const fmtExact = us => (us / 1e6).toFixed(6) + "s";
function lowerBound(array, time, key) {
  let lo = 0, hi = array.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (key(array[mid]) < time) lo = mid + 1; else hi = mid; }
  return lo;
}
function pattern(background, stroke) {
  const tile = document.createElement("canvas"); tile.width = tile.height = 8;
  const c = tile.getContext("2d");
  if (background) { c.fillStyle = background; c.fillRect(0, 0, 8, 8); }
  c.strokeStyle = stroke; c.lineWidth = 2; c.beginPath(); c.moveTo(0, 8); c.lineTo(8, 0); c.stroke();
  return ctx.createPattern(tile, "repeat");
}
const DOWN = pattern("#3a3a3a", "#6a6a6a"), PAUSED = pattern(null, "rgba(40,90,200,0.55)");
const SEGMENT_FILL = [() => "#e4eaf1", () => "#f7ecb5", () => "#e2c045", termColour, () => DOWN];

function resize() {
  layout();
  const ratio = window.devicePixelRatio || 1;
  width = canvas.clientWidth; plotW = Math.max(1, width - LABEL_W);
  canvas.width = width * ratio; canvas.height = height * ratio; canvas.style.height = height + "px";
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  draw();
}
let queued = false;
function redraw() { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; draw(); }); } }

function draw() {
  ctx.clearRect(0, 0, width, height);
  ctx.save(); ctx.beginPath(); ctx.rect(LABEL_W, 0, plotW, height); ctx.clip();
  drawAxis(); drawLanes(); drawPartitions(); drawMessages(); drawSegmentLabels(); drawFaults(); drawClients(); drawViolations();
  ctx.restore();
  drawLabels();
  document.getElementById("span").textContent = `showing ${fmtExact(v0)} – ${fmtExact(v1)} of ${fmtExact(D.end)}`;
}

function drawAxis() {
  const raw = (v1 - v0) / Math.max(1, plotW / 110), power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * power).find(s => s >= raw);
  ctx.font = "11px sans-serif"; ctx.textBaseline = "middle"; ctx.fillStyle = "#555"; ctx.strokeStyle = "#eee"; ctx.lineWidth = 1;
  for (let t = Math.ceil(v0 / step) * step; t <= v1; t += step) {
    const px = Math.round(x(t)) + 0.5;
    ctx.beginPath(); ctx.moveTo(px, AXIS_H - 6); ctx.lineTo(px, height); ctx.stroke();
    ctx.fillText(fmt(t, step), px + 3, AXIS_H / 2 - 2);
  }
  ctx.strokeStyle = "#bbb"; ctx.beginPath(); ctx.moveTo(LABEL_W, AXIS_H - 0.5); ctx.lineTo(width, AXIS_H - 0.5); ctx.stroke();
}

// Segment labels are drawn after the arrows, on a light backing, to stay legible.
let segmentLabels = [];
function drawSegmentLabels() {
  ctx.font = "bold 11px sans-serif"; ctx.textBaseline = "middle";
  for (const [text, left, middle, room] of segmentLabels) {
    const w = Math.min(room, ctx.measureText(text).width);
    ctx.fillStyle = "rgba(255,255,255,0.8)"; ctx.fillRect(left - 2, middle - 7, w + 4, 14);
    ctx.fillStyle = "#222"; ctx.fillText(text, left, middle, room);
  }
  segmentLabels = [];
}
function drawLanes() {
  for (const lane of D.lanes) {
    const top = AXIS_H + (lane.node - 1) * LANE_H + 4, h = LANE_H - 8;
    for (const [start, end, role, term] of lane.segments) {
      if (end < v0 || start > v1) continue;
      const a = Math.max(LABEL_W, x(start)), b = Math.min(width, x(end)), w = Math.max(1, b - a);
      ctx.fillStyle = SEGMENT_FILL[role](term); ctx.fillRect(a, top, w, h);
      if (role < 3 && term > 0) { ctx.fillStyle = termColour(term); ctx.fillRect(a, top + h - 4, w, 4); }
      if (w > 46) {
        const text = role === 4 ? "down" : `${role === 3 ? "leader " : role === 0 ? "" : ROLES[role] + " "}t${term}`;
        segmentLabels.push([text, a + 4, top + h / 2, w - 8]);
      }
    }
  }
  for (const [node, start, end] of D.pauses) {
    if (end < v0 || start > v1) continue;
    const a = x(start), b = x(end), top = AXIS_H + (node - 1) * LANE_H + 2;
    ctx.fillStyle = "rgba(40,90,200,0.15)"; ctx.fillRect(a, top, b - a, LANE_H - 4);
    ctx.fillStyle = PAUSED; ctx.fillRect(a, top, b - a, LANE_H - 4);
  }
}

function drawPartitions() {
  ctx.font = "11px sans-serif"; ctx.textBaseline = "middle";
  for (const [start, end, text] of D.partitions) {
    if (end < v0 || start > v1) continue;
    const a = x(start), b = x(end);
    ctx.fillStyle = "rgba(220,40,40,0.07)"; ctx.fillRect(a, AXIS_H, b - a, D.nodes * LANE_H);
    ctx.fillStyle = "#f3b7b7"; ctx.fillRect(a, bandY + 2, b - a, BAND_H - 4);
    ctx.fillStyle = "#7a1010"; if (b - a > 40) ctx.fillText(S[text], Math.max(a, LABEL_W) + 4, bandY + BAND_H / 2, b - Math.max(a, LABEL_W) - 8);
  }
}

function visibleMessages() {
  const out = [];
  for (let k = lowerBound(messages, v0, e => e[0]); k < messages.length; k++) {
    const e = messages[k];
    if (e[0] > v1 + latencyMax) break;
    if (e[0] - e[4] <= v1) out.push(e);
  }
  return out;
}

function drawMessages() {
  const visible = visibleMessages();
  if (visible.length <= ARROWS_MAX) {
    note.textContent = `${visible.length} messages in view` + sampledNote();
    ctx.lineWidth = 1; ctx.globalAlpha = 0.6;
    for (const e of visible) {
      const x0 = x(e[0] - e[4]), y0 = laneMid(e[3]), x1 = x(e[0]), y1 = laneMid(e[1]);
      ctx.strokeStyle = ctx.fillStyle = messageColour.get(e[2]);
      ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
      if (visible.length <= ARROWHEADS_MAX) arrowhead(x0, y0, x1, y1);
    }
    ctx.globalAlpha = 1;
    return;
  }
  const bucket = (v1 - v0) / BUCKETS, bundles = new Map();
  for (const e of visible) {
    const sent = e[0] - e[4], key = ((e[3] * 4096 + e[1]) * 4 * BUCKETS) + Math.floor((sent - v0) / bucket) + BUCKETS;
    const b = bundles.get(key);
    if (b) { b.n++; b.sent += sent; b.received += e[0]; } else bundles.set(key, {from: e[3], to: e[1], n: 1, sent, received: e[0]});
  }
  note.textContent = `${visible.length} messages in view, aggregated into ${bundles.size} bundles (zoom in to see each)` + sampledNote();
  ctx.strokeStyle = "rgba(40,70,140,0.22)";
  for (const b of bundles.values()) {
    ctx.lineWidth = Math.min(4, 0.5 + Math.log2(b.n) / 2);
    ctx.beginPath(); ctx.moveTo(x(b.sent / b.n), laneMid(b.from)); ctx.lineTo(x(b.received / b.n), laneMid(b.to)); ctx.stroke();
  }
  ctx.lineWidth = 1;
}
const sampledNote = () => D.notes.length ? " · " + D.notes.join(" ") : "";

function arrowhead(x0, y0, x1, y1) {
  const angle = Math.atan2(y1 - y0, x1 - x0), size = 6;
  ctx.beginPath(); ctx.moveTo(x1, y1);
  ctx.lineTo(x1 - size * Math.cos(angle - 0.4), y1 - size * Math.sin(angle - 0.4));
  ctx.lineTo(x1 - size * Math.cos(angle + 0.4), y1 - size * Math.sin(angle + 0.4));
  ctx.closePath(); ctx.fill();
}

function drawFaults() {
  ctx.font = "10px sans-serif"; ctx.textBaseline = "top";
  const labelled = [];
  for (const [time, node, text] of D.faults) {
    if (time < v0 || time > v1) continue;
    const px = x(time), top = node ? AXIS_H + (node - 1) * LANE_H : bandY;
    ctx.fillStyle = "#c0152b";
    ctx.beginPath(); ctx.moveTo(px - 5, top); ctx.lineTo(px + 5, top); ctx.lineTo(px, top + 8); ctx.closePath(); ctx.fill();
    if (px - (labelled[node] ?? -1e9) < 150) continue;
    labelled[node] = px;
    const label = S[text], w = Math.min(140, ctx.measureText(label).width) + 4;
    ctx.fillStyle = "rgba(255,255,255,0.85)"; ctx.fillRect(px + 5, top + 1, w, 12);
    ctx.fillStyle = "#900"; ctx.fillText(label, px + 7, top + 2, 140);
  }
}

function drawClients() {
  D.clients.forEach((lane, row) => {
    const top = clientsY + row * CLIENT_H + 2, h = CLIENT_H - 4;
    for (const [start, end, outcome, , highlighted] of lane.operations) {
      if (end < v0 || start > v1) continue;
      const a = x(start), w = Math.max(1.5, x(end) - a);
      ctx.fillStyle = OUTCOME_COLOURS[outcome]; ctx.fillRect(a, top, w, h);
      if (highlighted) { ctx.strokeStyle = "#c0152b"; ctx.lineWidth = 3; ctx.strokeRect(a - 1.5, top - 1.5, w + 3, h + 3); ctx.lineWidth = 1; }
    }
  });
}

function drawViolations() {
  ctx.font = "bold 11px sans-serif"; ctx.textBaseline = "middle";
  for (const v of D.violations) {
    if (v.time < v0 || v.time > v1) continue;
    const px = Math.round(x(v.time)) + 0.5;
    ctx.strokeStyle = "#e0102a"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(px, AXIS_H - 10); ctx.lineTo(px, height); ctx.stroke(); ctx.lineWidth = 1;
    const label = "✖ " + v.check, w = ctx.measureText(label).width + 8, left = px + w + 2 > width ? px - w - 2 : px + 2;
    ctx.fillStyle = "#e0102a"; ctx.fillRect(left, 2, w, 14); ctx.fillStyle = "#fff"; ctx.fillText(label, left + 4, 9);
  }
}

function drawLabels() {
  ctx.fillStyle = "#fafafa"; ctx.fillRect(0, 0, LABEL_W, height);
  ctx.fillStyle = "#222"; ctx.font = "bold 12px sans-serif"; ctx.textBaseline = "middle";
  for (let n = 1; n <= D.nodes; n++) ctx.fillText(`node n${n}`, 8, laneMid(n));
  ctx.font = "11px sans-serif";
  ctx.fillText("cluster", 8, bandY + BAND_H / 2);
  D.clients.forEach((lane, row) => ctx.fillText(`client ${lane.client}`, 8, clientsY + row * CLIENT_H + CLIENT_H / 2));
}

function legend() {
  const key = (fill, text) => `<span class="key"><span class="swatch" style="background:${fill}"></span>${text}</span>`;
  const terms = [1, 2, 3, 4].map(t => `<span class="swatch" style="background:${termColour(t)};margin-right:1px"></span>`).join("");
  let html = `<span class="key">${terms} leader (colour per term)</span>` + key("#e4eaf1", "follower") + key("#f7ecb5", "pre-candidate")
    + key("#e2c045", "candidate") + key("repeating-linear-gradient(45deg,#3a3a3a 0 3px,#6a6a6a 3px 5px)", "down")
    + key("repeating-linear-gradient(45deg,#dde6f6 0 3px,#7b9be0 3px 5px)", "paused") + key("#f3b7b7", "partition")
    + key("#c0152b", "fault ▼") + OUTCOMES.map((o, i) => key(OUTCOME_COLOURS[i], "op " + o)).join("");
  html += " &nbsp;messages: " + [...messageColour].map(([name, colour]) => key(colour, S[name])).join("");
  document.getElementById("legend").innerHTML = html;
}

// Hover: the nearest event on the lane under the cursor.
function segmentAt(node, time) {
  const segments = D.lanes[node - 1] ? D.lanes[node - 1].segments : [];
  const s = segments[lowerBound(segments, time + 1, s => s[0]) - 1];
  return s && time < s[1] ? s : (s && time === D.end ? s : null);
}
const describeRole = s => s[2] === 4 ? "down" : `${ROLES[s[2]]} t${s[3]}${s[4] ? ", leader n" + s[4] : ""}`;
function describeEvent(e) {
  const s = e[1] ? segmentAt(e[1], e[0]) : null;
  const where = e[1] ? `n${e[1]} ${s ? describeRole(s) : ""}` : "cluster";
  let what = S[e[2]];
  if (e.length > 3) what = `<- n${e[3]} ${what}\nsent ${fmtExact(e[0] - e[4])}, ${(e[4] / 1000).toFixed(3)}ms in flight`;
  return `${fmtExact(e[0])}  ${where}\n${what}`;
}
function nearest(list, time, key) {
  const k = lowerBound(list, time, key);
  const candidates = [list[k - 1], list[k]].filter(c => c !== undefined);
  candidates.sort((a, b) => Math.abs(key(a) - time) - Math.abs(key(b) - time));
  return candidates[0];
}
function hover(px, py) {
  if (px < LABEL_W || py < AXIS_H - 10) return null;
  const time = timeAt(px), slack = 6 * (v1 - v0) / plotW;
  for (const v of D.violations) if (Math.abs(v.time - time) <= slack) return `VIOLATION [${v.check}] at ${v.at === null ? "end of run" : fmtExact(v.at)}\n${v.message}`;
  const node = Math.floor((py - AXIS_H) / LANE_H) + 1;
  if (py >= AXIS_H && node >= 1 && node <= D.nodes) {
    const i = nearest(byNode[node], time, i => D.events[i][0]);
    if (i !== undefined && Math.abs(D.events[i][0] - time) <= slack) return describeEvent(D.events[i]);
    const s = segmentAt(node, time);
    if (s) return `n${node} ${describeRole(s)}\nfrom ${fmtExact(s[0])} to ${fmtExact(s[1])}`;
    return null;
  }
  if (py >= bandY && py < bandY + BAND_H) {
    const f = nearest(D.faults, time, f => f[0]);
    if (f && Math.abs(f[0] - time) <= slack) return `${fmtExact(f[0])}  ${f[1] ? "n" + f[1] : "cluster"}\nFAULT ${S[f[2]]}`;
    const p = D.partitions.find(p => p[0] <= time && time < p[1]);
    return p ? `partition ${S[p[2]]}\nfrom ${fmtExact(p[0])} to ${fmtExact(p[1])}` : null;
  }
  const row = Math.floor((py - clientsY) / CLIENT_H), lane = D.clients[row];
  if (py < clientsY || !lane) return null;
  const op = lane.operations.find(o => o[0] - slack <= time && time <= o[1] + slack);
  return op ? `client ${lane.client}: ${S[op[3]]}\n${fmtExact(op[0])} – ${fmtExact(op[1])} (${OUTCOMES[op[2]]})${op[4] ? "\nnamed by a violation" : ""}` : null;
}

// Zoom, pan and buttons.
function setView(start, end) {
  const span = Math.max(20, end - start), margin = D.end * 0.05;
  start = Math.max(-margin, Math.min(start, D.end + margin - span));
  v0 = start; v1 = start + Math.min(span, D.end + 2 * margin); redraw();
}
function zoom(factor, around) { setView(around - (around - v0) * factor, around + (v1 - around) * factor); }
function centreOn(time, span) { setView(time - span / 2, time + span / 2); }
let drag = null, violationCursor = 0;
canvas.addEventListener("wheel", ev => { ev.preventDefault(); zoom(Math.exp(ev.deltaY * 0.0015), timeAt(ev.offsetX)); }, {passive: false});
canvas.addEventListener("mousedown", ev => { drag = {x: ev.clientX, v0, v1}; canvas.style.cursor = "grabbing"; });
window.addEventListener("mouseup", () => { drag = null; canvas.style.cursor = "grab"; });
window.addEventListener("mousemove", ev => {
  if (drag) { const shift = (ev.clientX - drag.x) * (drag.v1 - drag.v0) / plotW; setView(drag.v0 - shift, drag.v1 - shift); tip.style.display = "none"; return; }
  if (ev.target !== canvas) { tip.style.display = "none"; return; }
  const text = hover(ev.offsetX, ev.offsetY);
  if (!text) { tip.style.display = "none"; return; }
  tip.textContent = text; tip.style.display = "block";
  const left = ev.offsetX + 14 + tip.offsetWidth > width ? ev.offsetX - tip.offsetWidth - 10 : ev.offsetX + 14;
  tip.style.left = left + "px"; tip.style.top = (ev.offsetY + 14) + "px";
});
canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
document.getElementById("fit").onclick = () => setView(0, D.end);
document.getElementById("zoom-in").onclick = () => zoom(0.5, (v0 + v1) / 2);
document.getElementById("zoom-out").onclick = () => zoom(2, (v0 + v1) / 2);
function gotoViolation(i) {
  const v = D.violations[i]; if (!v) return;
  const span = Math.min(1e6, D.end);
  if (v.operation) {
    const op = D.clients.find(c => c.client === v.operation[0]).operations[v.operation[1]];
    setView(Math.min(op[0], v.time) - span / 10, Math.max(op[1], v.time) + span / 10);
  } else centreOn(v.time, span);
}
const gotoButton = document.getElementById("goto");
if (!D.violations.length) gotoButton.disabled = true;
gotoButton.onclick = () => { gotoViolation(violationCursor); violationCursor = (violationCursor + 1) % D.violations.length; };
document.querySelectorAll("button.goto").forEach(b => b.onclick = () => { gotoViolation(+b.dataset.violation); canvas.scrollIntoView({block: "nearest"}); });
window.addEventListener("resize", resize);
legend();
resize();
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_operation_reads_client_and_call_time() {
        let message = "client 3 operation `put 1 7` (called at 1234567 ns) cannot be \
                       linearized after a linearizable prefix of 4 operations";
        assert_eq!(named_operation(message), Some((3, 1_234_567)));
        assert_eq!(named_operation("leader changed in term 3"), None);
    }

    #[test]
    fn embedded_json_cannot_close_the_script() {
        let json = serde_json::to_string("</script><!--").unwrap_or_default();
        let embedded = embed_json(&json);
        assert!(!embedded.contains('<'));
        let back: String = serde_json::from_str(&embedded).unwrap_or_default();
        assert_eq!(back, "</script><!--");
    }

    #[test]
    fn long_traces_keep_role_changes_and_sample_the_rest() {
        let event = |nanos: u64, what: What| TraceEvent {
            time: Instant::from_nanos(nanos),
            node: Some(crate::id::PeerId(1)),
            term: crate::log::Term(1),
            role: Some(Role::Follower),
            what,
        };
        let mut trace: Vec<TraceEvent> = (0..EMBEDDED_EVENTS_MAX as u64 + 50_000)
            .map(|nanos| event(nanos * 1_000, What::Timer(crate::env::TimerKind::Election)))
            .collect();
        trace.push(event(u64::MAX / 2, What::Role { leader: None }));
        let mut strings = Strings::default();
        let (events, notes) = embedded_events(&trace, &mut strings);
        assert!(events.len() <= EMBEDDED_EVENTS_MAX);
        assert!(events.len() > EMBEDDED_EVENTS_MAX / 2);
        assert_eq!(notes.len(), 1, "the page says it sampled");
        let role_change = strings.intern("role change, no leader");
        assert_eq!(events.last().map(|row| row[2]), Some(role_change));
    }

    #[test]
    fn initial_view_centres_on_the_first_violation() {
        let mark = |time| ViolationMark {
            check: "safety".into(),
            message: String::new(),
            at: Some(time),
            time,
            operation: None,
        };
        assert_eq!(initial_view(&[], 5_000_000), [0, 5_000_000]);
        assert_eq!(
            initial_view(&[mark(2_000_000)], 5_000_000),
            [1_500_000, 2_500_000]
        );
        assert_eq!(
            initial_view(&[mark(5_000_000)], 5_000_000),
            [4_000_000, 5_000_000]
        );
        assert_eq!(initial_view(&[mark(100)], 300), [0, 300]);
    }
}
