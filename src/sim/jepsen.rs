//! The built-in workloads' histories in the shapes Jepsen's tools know, so
//! Knossos (`cas-register`), Porcupine's kv parser or any counter checker can
//! check a simulated run without quorate:
//!
//! * counter: `{:f :add, :value n}` and `{:f :read, :value n}`;
//! * register: `{:f :write, :value v}`, `{:f :read, :value v}` and
//!   `{:f :cas, :value [old new]}`, a cas completing `:info` (the client is not
//!   told whether it swapped, so the checker must allow both);
//! * kv: `{:f :put|:append|:get, :key "k", :value "v"}`, Porcupine's kv model.
//!
//! Operations the shape cannot express (a counter reset, kv deletes and
//! increments) fall back to the generic form of
//! [`crate::check::edn`].

use super::history::CheckedHistory;
use crate::check::edn::to_edn;
use crate::check::history::{History, Operation, Outcome};
use crate::check::models::{
    CasRegister, Counter as CounterModel, CounterInput, CounterOutput, Kv, KvAction, KvInput,
    KvOutput, KvText, MachineInput, MachineOutput, RegisterInput, RegisterOutput,
};
use crate::examples::{Counter, CounterCmd, KvCmd, KvQuery, KvStore, Register, RegisterCmd};

/// Maps every operation with `map`; `None` if one cannot be mapped.
fn map_history<I, O, J, P>(
    history: &History<I, O>,
    mut map: impl FnMut(&I, &Outcome<O>) -> Option<(J, Outcome<P>)>,
) -> Option<History<J, P>> {
    let mut mapped = History::new();
    for operation in &history.operations {
        let (input, outcome) = map(&operation.input, &operation.outcome)?;
        mapped.push(Operation {
            client: operation.client,
            input,
            call: operation.call,
            outcome,
        });
    }
    Some(mapped)
}

/// The same outcome with `output` in place of a returned value.
fn with_output<O, P>(outcome: &Outcome<O>, output: P) -> Outcome<P> {
    match outcome {
        Outcome::Returned { time, .. } => Outcome::Returned {
            time: *time,
            output,
        },
        Outcome::Failed { time } => Outcome::Failed { time: *time },
        Outcome::Indeterminate { time } => Outcome::Indeterminate { time: *time },
    }
}

/// A counter history as Jepsen `:add`/`:read` events.
pub fn counter_edn(history: &CheckedHistory<Counter>) -> Option<String> {
    let mapped = map_history(history, |input, outcome| {
        let read = |outcome: &Outcome<MachineOutput<i64>>| match outcome {
            Outcome::Returned {
                output: MachineOutput::Answer(value),
                ..
            } => Some(with_output(outcome, CounterOutput::Value(*value))),
            Outcome::Returned { .. } => None,
            other => Some(with_output(other, CounterOutput::Ok)),
        };
        match input {
            MachineInput::Command(CounterCmd::Increment(by)) => Some((
                CounterInput::Add(*by),
                with_output(outcome, CounterOutput::Ok),
            )),
            MachineInput::Command(CounterCmd::Decrement(by)) => Some((
                CounterInput::Add(by.checked_neg()?),
                with_output(outcome, CounterOutput::Ok),
            )),
            MachineInput::Command(CounterCmd::Reset) => None,
            MachineInput::Query(_) => Some((CounterInput::Read, read(outcome)?)),
        }
    })?;
    Some(to_edn(&CounterModel, &mapped))
}

/// A register history as Knossos `cas-register` events.
pub fn register_edn(history: &CheckedHistory<Register>) -> Option<String> {
    let value = |v: u64| i64::try_from(v).ok();
    let mapped = map_history(history, |input, outcome| match input {
        MachineInput::Command(RegisterCmd::Write(v)) => Some((
            RegisterInput::Write(value(*v)?),
            with_output(outcome, RegisterOutput::Ok),
        )),
        // Whether it swapped is not reported: indeterminate, for the checker to
        // decide.
        MachineInput::Command(RegisterCmd::Cas { expected, new }) => {
            let time = match outcome {
                Outcome::Returned { time, .. } | Outcome::Failed { time } => Some(*time),
                Outcome::Indeterminate { time } => *time,
            };
            Some((
                RegisterInput::Cas(
                    match expected {
                        Some(expected) => Some(value(*expected)?),
                        None => None,
                    },
                    value(*new)?,
                ),
                Outcome::Indeterminate { time },
            ))
        }
        MachineInput::Query(_) => {
            let outcome = match outcome {
                Outcome::Returned {
                    output: MachineOutput::Answer(read),
                    ..
                } => with_output(
                    outcome,
                    RegisterOutput::Value(match read {
                        Some(v) => Some(value(*v)?),
                        None => None,
                    }),
                ),
                Outcome::Returned { .. } => return None,
                other => with_output(other, RegisterOutput::Ok),
            };
            Some((RegisterInput::Read, outcome))
        }
    })?;
    Some(to_edn(&CasRegister, &mapped))
}

/// A key-value history as Porcupine/Jepsen kv events.
pub fn kv_edn(history: &CheckedHistory<KvStore>) -> Option<String> {
    let (model, mapped) = kv_history(history)?;
    Some(to_edn(&model, &mapped))
}

/// A key-value history in the terms of the [`Kv`] model (get, put and append,
/// keys numbered in order of first use), with the model; `None` if an
/// operation is neither. The model partitions by key, counts its states'
/// strings and leaves out puts and appends cut off before any get saw them,
/// so it decides histories with many indeterminate writes that the generic
/// [`StateMachineModel`](crate::check::models::StateMachineModel) of the
/// store cannot.
pub fn kv_history(history: &CheckedHistory<KvStore>) -> Option<(Kv, History<KvInput, KvOutput>)> {
    let mut keys: Vec<String> = Vec::new();
    let mut key_number = |key: &str| -> Option<u32> {
        let position = match keys.iter().position(|known| known == key) {
            Some(position) => position,
            None => {
                keys.push(key.to_owned());
                keys.len() - 1
            }
        };
        u32::try_from(position).ok()
    };
    let mapped = map_history(history, |input, outcome| {
        let (key, action) = match input {
            MachineInput::Command(KvCmd::Put { key, value }) => (key, KvAction::Put(value.clone())),
            MachineInput::Command(KvCmd::Append { key, value }) => {
                (key, KvAction::Append(value.clone()))
            }
            MachineInput::Query(KvQuery::Get { key }) => (key, KvAction::Get),
            _ => return None,
        };
        let output = match (&action, outcome) {
            (
                KvAction::Get,
                Outcome::Returned {
                    output: MachineOutput::Answer(read),
                    ..
                },
            ) => with_output(
                outcome,
                KvOutput::Value(KvText::new(read.as_deref().unwrap_or(""))),
            ),
            (KvAction::Get, Outcome::Returned { .. }) => return None,
            (_, outcome) => with_output(outcome, KvOutput::Ok),
        };
        Some((
            KvInput {
                key: key_number(key)?,
                action,
            },
            output,
        ))
    })?;
    Some((Kv::new(keys), mapped))
}
