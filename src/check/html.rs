//! A self-contained HTML view of a checked history: no scripts or styles are
//! fetched, everything is in the one file.
//!
//! One row per client; each operation is a bar from its call to its return on
//! a time axis (times are replaced by their rank, so short operations stay
//! visible); an indeterminate operation runs to the right edge, hatched.
//! Bars are labelled with their position in their partition's linearization
//! (or longest linearizable prefix); the operation that cannot be placed is
//! red, operations outside the prefix are grey. Hovering a bar shows the
//! operation, its times, and the model's state before and after it. Below the
//! timeline, each partition's linearization order is listed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::history::{History, Outcome, Time};
use super::model::Model;
use super::{PartitionOutcome, Report, Verdict};

/// Width of one time rank, in pixels.
const RANK_PX: usize = 16;
/// Height of one client row, in pixels.
const ROW_PX: usize = 26;
/// Width of the client label column, in pixels.
const LABEL_PX: usize = 90;

/// What the view knows about one operation's place in the search.
#[derive(Clone, Default)]
struct Placement {
    partition: usize,
    position: Option<usize>,
    before: String,
    after: String,
    failing: bool,
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// Replays each partition's order (or prefix) to learn every placed
/// operation's position and the states around it.
fn placements<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    report: &Report,
) -> Vec<Placement> {
    let mut placements = vec![Placement::default(); history.len()];
    for (partition, part) in report.partitions.iter().enumerate() {
        for &index in part {
            if let Some(placement) = placements.get_mut(index) {
                placement.partition = partition;
            }
        }
        let (order, failing) = match report.outcomes.get(partition) {
            Some(PartitionOutcome::Linearizable { order }) => (order.as_slice(), None),
            Some(PartitionOutcome::NotLinearizable { op, prefix }) => {
                (prefix.as_slice(), Some(*op))
            }
            _ => (&[][..], None),
        };
        let mut state = model.init();
        for (position, &index) in order.iter().enumerate() {
            let Some(operation) = history.operations.get(index) else {
                continue;
            };
            let Some(next) = model.step(&state, &operation.input, operation.outcome.output())
            else {
                break;
            };
            placements[index].position = Some(position + 1);
            placements[index].before = model.describe_state(&state);
            placements[index].after = model.describe_state(&next);
            state = next;
        }
        if let Some(index) = failing.filter(|&index| index < placements.len()) {
            placements[index].failing = true;
            placements[index].before = model.describe_state(&state);
            placements[index].after = "(no state explains this output)".to_string();
        }
    }
    placements
}

/// Renders `history` and its `report` as one self-contained HTML page.
///
/// # Examples
///
/// ```
/// use quorate::check::history::{History, Operation, Outcome};
/// use quorate::check::models::{CasRegister, RegisterInput, RegisterOutput};
/// use quorate::check::{check, html, CheckOptions};
///
/// let mut history = History::new();
/// history.push(Operation { client: 0, input: RegisterInput::Write(1), call: 0,
///     outcome: Outcome::Returned { time: 1, output: RegisterOutput::Ok } });
/// let report = check(&CasRegister, &history, &CheckOptions::default(), &|| false);
/// let page = html::to_html(&CasRegister, &history, &report, "example");
/// assert!(page.contains("write 1"));
/// ```
pub fn to_html<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    report: &Report,
    title: &str,
) -> String {
    let placements = placements(model, history, report);
    let mut times: Vec<Time> = history
        .operations
        .iter()
        .flat_map(|operation| [Some(operation.call), operation.outcome.end_time()])
        .flatten()
        .collect();
    times.sort_unstable();
    times.dedup();
    let rank = |time: Time| {
        times
            .binary_search(&time)
            .unwrap_or_else(|position| position)
    };
    let end_rank = times.len() + 1;
    let clients: BTreeMap<u64, usize> = history
        .operations
        .iter()
        .map(|operation| operation.client)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .enumerate()
        .map(|(row, client)| (client, row))
        .collect();
    let width = LABEL_PX + (end_rank + 1) * RANK_PX;
    let height = clients.len() * ROW_PX + 30;

    let (verdict_text, verdict_class) = match &report.verdict {
        Verdict::Linearizable => ("linearizable".to_string(), "ok"),
        Verdict::NotLinearizable {
            partition,
            op,
            prefix,
        } => (
            format!(
                "not linearizable: in partition {partition}, operation #{op} cannot be placed after the longest linearizable prefix ({} operations)",
                prefix.len()
            ),
            "bad",
        ),
        Verdict::Unknown { reason } => (format!("unknown: {reason}"), "unknown"),
    };

    let mut page = String::new();
    let _ = write!(
        page,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 20px; color: #222; }}
h1 {{ font-size: 18px; margin: 0 0 4px; }}
.verdict {{ font-weight: 600; padding: 4px 8px; border-radius: 4px; display: inline-block; margin: 6px 0; }}
.verdict.ok {{ background: #dff5e1; color: #185c1f; }}
.verdict.bad {{ background: #fde2e1; color: #8a1612; }}
.verdict.unknown {{ background: #fff4d6; color: #6b5200; }}
.legend span {{ display: inline-block; margin-right: 14px; }}
.sw {{ display: inline-block; width: 14px; height: 10px; border-radius: 2px; vertical-align: middle; margin-right: 4px; }}
.scroll {{ overflow-x: auto; border: 1px solid #ddd; border-radius: 4px; margin: 10px 0; }}
.timeline {{ position: relative; }}
.row {{ position: absolute; left: 0; height: {ROW_PX}px; border-bottom: 1px solid #f0f0f0; }}
.label {{ position: absolute; left: 0; padding-left: 6px; width: {label}px; background: rgba(255,255,255,.92); z-index: 4; font-size: 12px; color: #555; line-height: {ROW_PX}px; }}
.op {{ position: absolute; height: 18px; border-radius: 3px; font-size: 11px; line-height: 18px; color: #fff;
      text-align: center; overflow: hidden; white-space: nowrap; cursor: default; box-sizing: border-box; }}
.op.placed {{ background: #3b7dd8; }}
.op.unplaced {{ background: #b9bec7; color: #333; }}
.op.failing {{ background: #d93025; outline: 2px solid #7a0f0a; z-index: 2; }}
.op.open {{ background-image: repeating-linear-gradient(45deg, rgba(255,255,255,.35) 0 4px, transparent 4px 8px); }}
.op:hover {{ filter: brightness(1.15); z-index: 3; }}
#tip {{ position: fixed; display: none; background: #222; color: #fff; padding: 6px 8px; border-radius: 4px; font-size: 12px;
       max-width: 520px; pointer-events: none; white-space: pre-wrap; z-index: 10; }}
ol {{ font-size: 13px; }} li.failing {{ color: #b3261e; font-weight: 600; }}
code {{ font-size: 12px; }}
</style></head><body>
<h1>{title}</h1>
<div class="verdict {verdict_class}">{verdict}</div>
<div>{operations} operations, {client_count} clients, {partitions} partition(s). Hover an operation for its states.</div>
<div class="legend"><span><i class="sw" style="background:#3b7dd8"></i>linearized (number: position in its partition's order)</span>
<span><i class="sw" style="background:#d93025"></i>cannot be linearized</span>
<span><i class="sw" style="background:#b9bec7"></i>not placed</span>
<span><i class="sw" style="background:#3b7dd8;background-image:repeating-linear-gradient(45deg,rgba(255,255,255,.5) 0 3px,transparent 3px 6px)"></i>no return (indeterminate)</span></div>
<div class="scroll"><div class="timeline" style="width:{width}px;height:{height}px">
"#,
        title = escape(title),
        label = LABEL_PX - 6,
        verdict = escape(&verdict_text),
        operations = history.len(),
        client_count = clients.len(),
        partitions = report.partitions.len(),
    );
    for (client, row) in &clients {
        let _ = writeln!(
            page,
            r#"<div class="row" style="top:{top}px;width:{width}px"><span class="label">client {client}</span></div>"#,
            top = row * ROW_PX,
        );
    }
    for (index, operation) in history.operations.iter().enumerate() {
        let row = clients.get(&operation.client).copied().unwrap_or(0);
        let start = rank(operation.call);
        let (end, open, ended) = match operation.outcome {
            Outcome::Returned { time, .. } => (rank(time), false, format!("{time}")),
            Outcome::Failed { time } => (rank(time), false, format!("{time} (failed: no effect)")),
            Outcome::Indeterminate { time } => (
                end_rank,
                true,
                time.map_or_else(
                    || "never (indeterminate)".to_string(),
                    |time| format!("{time} (indeterminate)"),
                ),
            ),
        };
        let placement = &placements[index];
        let class = if placement.failing {
            "failing"
        } else if placement.position.is_some() {
            "placed"
        } else {
            "unplaced"
        };
        let label = if placement.failing {
            "&#10007;".to_string()
        } else {
            placement
                .position
                .map_or_else(String::new, |position| position.to_string())
        };
        let description = model.describe_operation(&operation.input, operation.outcome.output());
        let place = match (placement.failing, placement.position) {
            (true, _) => "CANNOT BE LINEARIZED".to_string(),
            (false, Some(position)) => format!("linearized #{position}"),
            (false, None) => "not placed".to_string(),
        };
        let tip = format!(
            "#{index} client {client}: {description}\ncall {call}, return {ended}\npartition {partition}, {place}\nstate before: {before}\nstate after: {after}",
            client = operation.client,
            call = operation.call,
            partition = placement.partition,
            before = if placement.before.is_empty() {
                "-"
            } else {
                &placement.before
            },
            after = if placement.after.is_empty() {
                "-"
            } else {
                &placement.after
            },
        );
        let _ = writeln!(
            page,
            r#"<div class="op {class}{open}" style="left:{left}px;top:{top}px;width:{bar}px" data-tip="{tip}">{label}</div>"#,
            open = if open { " open" } else { "" },
            left = LABEL_PX + start * RANK_PX,
            top = row * ROW_PX + 4,
            bar = (end.saturating_sub(start) + 1) * RANK_PX - 2,
            tip = escape(&tip),
        );
    }
    page.push_str("</div></div>\n<h2 style=\"font-size:16px\">Linearization order</h2>\n");
    for (partition, outcome) in report.outcomes.iter().enumerate() {
        let (order, failing, heading) = match outcome {
            PartitionOutcome::Linearizable { order } => (order.as_slice(), None, "linearizable"),
            PartitionOutcome::NotLinearizable { op, prefix } => (
                prefix.as_slice(),
                Some(*op),
                "longest linearizable prefix, then the operation that cannot be placed",
            ),
            PartitionOutcome::Unknown { .. } => (&[][..], None, "undecided"),
        };
        let _ = writeln!(
            page,
            "<details{}><summary>partition {partition}: {heading} ({} operations)</summary><ol>",
            if failing.is_some() || report.outcomes.len() == 1 {
                " open"
            } else {
                ""
            },
            order.len()
        );
        for &index in order.iter().chain(failing.iter()) {
            let Some(operation) = history.operations.get(index) else {
                continue;
            };
            let placement = &placements[index];
            let _ = writeln!(
                page,
                "<li{}><code>#{index}</code> client {}: {} &rarr; <code>{}</code></li>",
                if placement.failing {
                    " class=\"failing\""
                } else {
                    ""
                },
                operation.client,
                escape(&model.describe_operation(&operation.input, operation.outcome.output())),
                escape(&placement.after),
            );
        }
        page.push_str("</ol></details>\n");
    }
    page.push_str(
        r#"<div id="tip"></div>
<script>
const tip = document.getElementById('tip');
document.querySelectorAll('.op').forEach(function (bar) {
  bar.addEventListener('mousemove', function (event) {
    tip.textContent = bar.dataset.tip;
    tip.style.display = 'block';
    tip.style.left = Math.min(event.clientX + 12, window.innerWidth - 540) + 'px';
    tip.style.top = (event.clientY + 14) + 'px';
  });
  bar.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
});
// Keep client labels in view, and open on the operation that cannot be placed.
const scroller = document.querySelector('.scroll');
const labels = document.querySelectorAll('.label');
scroller.addEventListener('scroll', function () {
  labels.forEach(function (label) { label.style.left = scroller.scrollLeft + 'px'; });
});
const failing = document.querySelector('.op.failing');
if (failing) { scroller.scrollLeft = failing.offsetLeft - scroller.clientWidth / 2; }
</script>
</body></html>
"#,
    );
    page
}
