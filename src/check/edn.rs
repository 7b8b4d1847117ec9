//! Export of any history to Jepsen EDN.
//!
//! The output is a Knossos-style vector of event maps, one per line, in time
//! order (at equal times, invocations first):
//!
//! ```text
//! [{:process 0, :type :invoke, :f :write, :value 1}
//!  {:process 0, :type :ok, :f :write, :value 1}]
//! ```
//!
//! Definite failures become `:fail`, indeterminate operations `:info` (or no
//! completion at all if their time is unknown), and failures the model
//! explains (a compare-and-set that found another value) `:fail` as Jepsen
//! writes them. Reading the file back with [`super::parse`] gives the same
//! operations, with times renumbered.

use std::fmt::Write as _;

use super::history::{History, Outcome, Time};
use super::model::Model;
use super::parse::Value;

/// Writes `history` as a Jepsen EDN vector of events.
///
/// # Examples
///
/// ```
/// use quorate::check::edn::to_edn;
/// use quorate::check::history::{History, Operation, Outcome};
/// use quorate::check::models::{CasRegister, RegisterInput, RegisterOutput};
///
/// let mut history = History::new();
/// history.push(Operation { client: 0, input: RegisterInput::Write(1), call: 0,
///     outcome: Outcome::Returned { time: 1, output: RegisterOutput::Ok } });
/// let edn = to_edn(&CasRegister, &history);
/// assert!(edn.contains("{:process 0, :type :invoke, :f :write, :value 1}"));
/// ```
pub fn to_edn<M: Model>(model: &M, history: &History<M::Input, M::Output>) -> String {
    // (time, 0 invoke / 1 completion, op index)
    let mut events: Vec<(Time, u8, usize)> = Vec::with_capacity(history.len() * 2);
    for (index, operation) in history.operations.iter().enumerate() {
        events.push((operation.call, 0, index));
        if let Some(time) = operation.outcome.end_time() {
            events.push((time, 1, index));
        }
    }
    events.sort_unstable();
    let mut text = String::from("[");
    for (position, (_, kind, index)) in events.iter().enumerate() {
        let operation = &history.operations[*index];
        let jepsen = model.jepsen_operation(&operation.input, operation.outcome.output());
        let (kind, value) = if *kind == 0 {
            ("invoke", &jepsen.invoke_value)
        } else {
            match operation.outcome {
                Outcome::Returned { .. } if jepsen.failed => ("fail", &jepsen.complete_value),
                Outcome::Returned { .. } => ("ok", &jepsen.complete_value),
                Outcome::Failed { .. } => ("fail", &jepsen.invoke_value),
                Outcome::Indeterminate { .. } => ("info", &jepsen.invoke_value),
            }
        };
        if position > 0 {
            text.push_str("\n ");
        }
        let _ = write!(
            text,
            "{{:process {}, :type :{kind}, :f {}",
            operation.client,
            keyword(&jepsen.f)
        );
        if let Some(key) = &jepsen.key {
            let _ = write!(text, ", :key {key}");
        }
        let _ = write!(text, ", :value {value}}}");
    }
    text.push_str("]\n");
    text
}

/// A keyword for `name`, or a string if `name` cannot be one.
fn keyword(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "-_?!*+./<>=".contains(c))
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        format!(":{name}")
    } else {
        Value::Str(name.to_string()).to_string()
    }
}
