//! Built-in models, and any [`StateMachine`] as its own model.
//!
//! * [`CasRegister`]: a register with read, write and compare-and-set that
//!   starts as nil (Jepsen's etcd and Knossos cas-register tests).
//! * [`Kv`]: a key-value map with get, put and append, partitioned by key
//!   (Porcupine's kv tests). A missing key reads as the empty string.
//! * [`Counter`]: an integer with add and read, starting at 0.
//! * [`StateMachineModel`]: any `StateMachine + Clone + Eq + Hash`.
//!
//! The built-in models read [`RawHistory`]s through [`BuiltinModel`].

use core::hash::{Hash, Hasher};
use std::collections::BTreeMap;
use std::rc::Rc;

use serde::Serialize;

use super::history::{History, Operation, Outcome};
use super::model::{JepsenOperation, Model};
use super::parse::{ParseError, RawHistory, RawOperation, RawOutcome, Value};
use super::search::fx_hash;
use crate::log::{Cursor, Term};
use crate::machine::{ApplyContext, StateMachine};

/// A model together with a history typed for it.
pub type TypedHistory<M> = (M, History<<M as Model>::Input, <M as Model>::Output>);

/// A model that reads Jepsen-style raw histories.
pub trait BuiltinModel: Model + Sized {
    /// Builds the model (some, like [`Kv`], depend on the history) and the
    /// typed history; errors name the file and line of the bad operation.
    fn from_raw(raw: &RawHistory) -> Result<TypedHistory<Self>, ParseError>;
}

/// The outcome of a raw operation with `output` as its returned value
/// (`failed_output` for a `:fail` that is an observation; `None` drops it).
fn outcome<O>(operation: &RawOperation, output: O, failed_output: Option<O>) -> Outcome<O> {
    match operation.outcome {
        RawOutcome::Ok { time } => Outcome::Returned { time, output },
        RawOutcome::Fail { time } => match failed_output {
            Some(output) => Outcome::Returned { time, output },
            None => Outcome::Failed { time },
        },
        RawOutcome::Info { time } => Outcome::Indeterminate { time },
    }
}

fn register_value(
    raw: &RawHistory,
    operation: &RawOperation,
    value: &Value,
) -> Result<Option<i64>, ParseError> {
    match value {
        Value::Nil => Ok(None),
        Value::Int(value) => Ok(Some(*value)),
        other => Err(raw.error(
            operation.line,
            format!("expected an integer or nil, found {other}"),
        )),
    }
}

// ---------------------------------------------------------------------------
// Compare-and-set register.

/// A register of `Option<i64>` (nil at first) with read, write and cas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CasRegister;

/// A register operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisterInput {
    /// Read the value.
    Read,
    /// Write a value.
    Write(i64),
    /// If the register holds `.0` (`None`: nil, as it starts), write `.1`.
    Cas(Option<i64>, i64),
}

/// What a register operation returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegisterOutput {
    /// A read's value (`None`: nil).
    Value(Option<i64>),
    /// A write or cas succeeded.
    Ok,
    /// A cas found another value (Jepsen `:fail`).
    CasFailed,
}

impl Model for CasRegister {
    type Input = RegisterInput;
    type Output = RegisterOutput;
    type State = Option<i64>;

    fn init(&self) -> Option<i64> {
        None
    }

    fn step(
        &self,
        state: &Option<i64>,
        input: &RegisterInput,
        output: Option<&RegisterOutput>,
    ) -> Option<Option<i64>> {
        match (input, output) {
            (RegisterInput::Read, Some(RegisterOutput::Value(seen))) => {
                (seen == state).then_some(*state)
            }
            (RegisterInput::Read, None) => Some(*state),
            (RegisterInput::Read, Some(_)) => None,
            (RegisterInput::Write(value), _) => Some(Some(*value)),
            (RegisterInput::Cas(old, new), Some(RegisterOutput::Ok)) => {
                (state == old).then_some(Some(*new))
            }
            (RegisterInput::Cas(old, _), Some(RegisterOutput::CasFailed)) => {
                (state != old).then_some(*state)
            }
            (RegisterInput::Cas(old, new), None) => {
                Some(if state == old { Some(*new) } else { *state })
            }
            (RegisterInput::Cas(..), Some(RegisterOutput::Value(_))) => None,
        }
    }

    fn is_read_only(&self, input: &RegisterInput) -> bool {
        matches!(input, RegisterInput::Read)
    }

    fn leaves_state_unchanged(&self, input: &RegisterInput, output: &RegisterOutput) -> bool {
        match input {
            RegisterInput::Read => true,
            RegisterInput::Write(_) => false,
            RegisterInput::Cas(old, new) => {
                *old == Some(*new) || *output == RegisterOutput::CasFailed
            }
        }
    }

    fn describe_operation(&self, input: &RegisterInput, output: Option<&RegisterOutput>) -> String {
        let result = match output {
            None => "?".to_string(),
            Some(RegisterOutput::Value(value)) => describe_register(value),
            Some(RegisterOutput::Ok) => "ok".to_string(),
            Some(RegisterOutput::CasFailed) => "fail".to_string(),
        };
        match input {
            RegisterInput::Read => format!("read -> {result}"),
            RegisterInput::Write(value) => format!("write {value} -> {result}"),
            RegisterInput::Cas(old, new) => {
                format!("cas {}->{new} -> {result}", describe_register(old))
            }
        }
    }

    fn describe_state(&self, state: &Option<i64>) -> String {
        describe_register(state)
    }

    fn jepsen_operation(
        &self,
        input: &RegisterInput,
        output: Option<&RegisterOutput>,
    ) -> JepsenOperation {
        let int = |value: &Option<i64>| value.map_or(Value::Nil, Value::Int);
        let (f, invoke_value) = match input {
            RegisterInput::Read => ("read", Value::Nil),
            RegisterInput::Write(value) => ("write", Value::Int(*value)),
            RegisterInput::Cas(old, new) => {
                ("cas", Value::Vector(vec![int(old), Value::Int(*new)]))
            }
        };
        let complete_value = match output {
            Some(RegisterOutput::Value(value)) => int(value),
            _ => invoke_value.clone(),
        };
        JepsenOperation {
            f: f.to_string(),
            key: None,
            invoke_value,
            complete_value,
            failed: output == Some(&RegisterOutput::CasFailed),
        }
    }
}

fn describe_register(value: &Option<i64>) -> String {
    value.map_or_else(|| "nil".to_string(), |value| value.to_string())
}

impl BuiltinModel for CasRegister {
    fn from_raw(
        raw: &RawHistory,
    ) -> Result<(Self, History<RegisterInput, RegisterOutput>), ParseError> {
        let mut history = History::new();
        for operation in &raw.operations {
            let (input, outcome) = match operation.f.as_str() {
                "read" => {
                    let value = match operation.outcome {
                        RawOutcome::Ok { .. } => {
                            register_value(raw, operation, &operation.complete_value)?
                        }
                        _ => None,
                    };
                    (
                        RegisterInput::Read,
                        outcome(operation, RegisterOutput::Value(value), None),
                    )
                }
                "write" => match register_value(raw, operation, &operation.invoke_value)? {
                    Some(value) => (
                        RegisterInput::Write(value),
                        outcome(operation, RegisterOutput::Ok, None),
                    ),
                    None => return Err(raw.error(operation.line, "write of nil")),
                },
                "cas" => {
                    let pair = match &operation.invoke_value {
                        Value::Vector(items) if items.len() == 2 => (
                            register_value(raw, operation, &items[0])?,
                            register_value(raw, operation, &items[1])?,
                        ),
                        other => {
                            return Err(raw.error(
                                operation.line,
                                format!("cas expects [old new], found {other}"),
                            ));
                        }
                    };
                    let (old, Some(new)) = pair else {
                        return Err(raw.error(operation.line, "cas to nil"));
                    };
                    (
                        RegisterInput::Cas(old, new),
                        outcome(
                            operation,
                            RegisterOutput::Ok,
                            Some(RegisterOutput::CasFailed),
                        ),
                    )
                }
                other => {
                    return Err(raw.error(
                        operation.line,
                        format!("unknown register function :{other}"),
                    ));
                }
            };
            history.push(Operation {
                client: operation.process,
                input,
                call: operation.call,
                outcome,
            });
        }
        Ok((CasRegister, history))
    }
}

// ---------------------------------------------------------------------------
// Key-value store.

/// The multiplier of [`text_hash`]: odd, with well-mixed bits.
const TEXT_HASH_BASE: u64 = 0x9e37_79b9_7f4a_7c15;

/// A polynomial hash of `bytes` (each byte plus one, so that zero bytes count)
/// that extends in O(1): the hash of `a + b` is `hash(a) * BASE^len(b) +
/// hash(b)`, so an append hashes only its suffix, however long the value.
/// Equal texts hash alike; a collision only costs a comparison of the texts.
fn text_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, fold_byte)
}

/// One byte of [`text_hash`] folded in.
fn fold_byte(hash: u64, &byte: &u8) -> u64 {
    hash.wrapping_mul(TEXT_HASH_BASE)
        .wrapping_add(u64::from(byte) + 1)
}

/// The hash of `text` followed by `suffix`, from `text`'s hash.
fn extend_text_hash(hash: u64, suffix: &[u8]) -> u64 {
    // `wrapping_pow` takes a u32: a longer suffix folds in its bytes one by one.
    match u32::try_from(suffix.len()) {
        Ok(length) => hash
            .wrapping_mul(TEXT_HASH_BASE.wrapping_pow(length))
            .wrapping_add(text_hash(suffix)),
        Err(_) => suffix.iter().fold(hash, fold_byte),
    }
}

/// A string with its hash computed once, so states hash in O(keys). The
/// bytes are always UTF-8: a value is a put's string or a value with an
/// append's string after it.
#[derive(Debug, Clone)]
pub struct KvValue {
    hash: u64,
    text: Rc<[u8]>,
}

impl KvValue {
    /// Wraps a string.
    pub fn new(text: &str) -> Self {
        Self {
            hash: text_hash(text.as_bytes()),
            text: Rc::from(text.as_bytes()),
        }
    }

    /// This value with `suffix` appended: one allocation, and only the
    /// suffix hashed.
    fn appended(&self, suffix: &str) -> Self {
        Self {
            hash: extend_text_hash(self.hash, suffix.as_bytes()),
            text: Rc::from([&self.text[..], suffix.as_bytes()].concat()),
        }
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        // Built from strings only (see the type's docs), so never lossy.
        core::str::from_utf8(&self.text).unwrap_or("\u{fffd}")
    }
}

impl PartialEq for KvValue {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && (Rc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}

impl Eq for KvValue {}

impl Hash for KvValue {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A key-value map with get, put and append over string keys and values.
/// Keys are numbered in order of first appearance; the state is the value of
/// every key, in that order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kv {
    keys: Vec<String>,
}

impl Kv {
    /// A model for these keys (numbered by position).
    pub fn new(keys: Vec<String>) -> Self {
        Self { keys }
    }

    /// The key numbered `key`.
    pub fn key(&self, key: u32) -> &str {
        self.keys.get(key as usize).map_or("?", String::as_str)
    }
}

/// What a kv operation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvAction {
    /// Read the key's value.
    Get,
    /// Replace the key's value.
    Put(String),
    /// Append to the key's value.
    Append(String),
}

/// A kv operation: a key (numbered, see [`Kv`]) and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvInput {
    /// The key's number.
    pub key: u32,
    /// The action.
    pub action: KvAction,
}

/// A string read by a get, with its hash computed once (shareable between
/// threads, unlike the state's [`KvValue`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KvText {
    hash: u64,
    text: Box<str>,
}

impl KvText {
    /// Wraps a string.
    pub fn new(text: &str) -> Self {
        Self {
            hash: text_hash(text.as_bytes()),
            text: Box::from(text),
        }
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn matches(&self, value: &KvValue) -> bool {
        self.hash == value.hash && self.text.as_bytes() == &*value.text
    }
}

/// What a kv operation returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOutput {
    /// A get's value.
    Value(KvText),
    /// A put or append completed.
    Ok,
}

/// The state of a [`Kv`]: each key whose value is not empty, in key order,
/// with its value; shared between states. Leaving out the empty ones keeps
/// the form canonical (equal maps, equal states) and a partition's states
/// small: a partition touches one key, so its states hold one value, not
/// one per key of the whole history.
pub type KvState = Rc<[(u32, KvValue)]>;

/// `state` with `key` (at `position`, as a binary search found it) set to
/// `value`, or removed if `value` is empty: one allocation, the entries
/// collected straight into the new slice.
fn with_value(
    state: &KvState,
    key: u32,
    position: Result<usize, usize>,
    value: KvValue,
) -> KvState {
    let entry = |index: usize| state[index].clone();
    match (position, value.text.is_empty()) {
        (Ok(at), false) => (0..state.len())
            .map(|index| {
                if index == at {
                    (key, value.clone())
                } else {
                    entry(index)
                }
            })
            .collect(),
        (Ok(at), true) => (0..state.len() - 1)
            .map(|index| entry(if index < at { index } else { index + 1 }))
            .collect(),
        (Err(at), false) => (0..=state.len())
            .map(|index| match index.cmp(&at) {
                core::cmp::Ordering::Less => entry(index),
                core::cmp::Ordering::Equal => (key, value.clone()),
                core::cmp::Ordering::Greater => entry(index - 1),
            })
            .collect(),
        (Err(_), true) => state.clone(),
    }
}

impl Model for Kv {
    type Input = KvInput;
    type Output = KvOutput;
    type State = KvState;

    fn init(&self) -> KvState {
        Rc::new([])
    }

    /// A put or append of a value that no get of its key returned as part of
    /// what it read. Wherever such an operation took effect, every get after
    /// it, up to the next put of the key, reads a value holding its string
    /// (appends only lengthen a value), so no get can have come in that
    /// stretch: leaving it out changes no output.
    fn unobservable(&self, input: &KvInput, returned: &[(&KvInput, &KvOutput)]) -> bool {
        let (KvAction::Put(value) | KvAction::Append(value)) = &input.action else {
            return false;
        };
        !value.is_empty()
            && (input.key as usize) < self.keys.len()
            && returned.iter().all(|(other, output)| {
                other.key != input.key
                    || !matches!(output, KvOutput::Value(read) if read.as_str().contains(value.as_str()))
            })
    }

    fn step(&self, state: &KvState, input: &KvInput, output: Option<&KvOutput>) -> Option<KvState> {
        if input.key as usize >= self.keys.len() {
            return None;
        }
        let position = state.binary_search_by_key(&input.key, |(key, _)| *key);
        let current = position.ok().map(|at| &state[at].1);
        match (&input.action, output) {
            (KvAction::Get, Some(KvOutput::Value(seen))) => {
                let matches = match current {
                    Some(value) => seen.matches(value),
                    None => seen.as_str().is_empty(),
                };
                matches.then(|| state.clone())
            }
            (KvAction::Get, None) => Some(state.clone()),
            (KvAction::Get, Some(KvOutput::Ok)) => None,
            (KvAction::Put(value), _) => {
                Some(with_value(state, input.key, position, KvValue::new(value)))
            }
            (KvAction::Append(suffix), _) => {
                let value = match current {
                    Some(value) => value.appended(suffix),
                    None => KvValue::new(suffix),
                };
                Some(with_value(state, input.key, position, value))
            }
        }
    }

    fn is_read_only(&self, input: &KvInput) -> bool {
        input.action == KvAction::Get
    }

    fn partition(&self, history: &History<KvInput, KvOutput>) -> Vec<Vec<usize>> {
        let mut parts: Vec<Vec<usize>> = vec![Vec::new(); self.keys.len()];
        for (index, operation) in history.operations.iter().enumerate() {
            if let Some(part) = parts.get_mut(operation.input.key as usize) {
                part.push(index);
            }
        }
        parts.retain(|part| !part.is_empty());
        parts
    }

    fn describe_operation(&self, input: &KvInput, output: Option<&KvOutput>) -> String {
        let key = self.key(input.key);
        match (&input.action, output) {
            (KvAction::Get, Some(KvOutput::Value(value))) => {
                format!("get {key:?} -> {:?}", value.as_str())
            }
            (KvAction::Get, _) => format!("get {key:?} -> ?"),
            (KvAction::Put(value), _) => format!("put {key:?} {value:?}"),
            (KvAction::Append(value), _) => format!("append {key:?} {value:?}"),
        }
    }

    /// The slice, and the text of the values this state alone holds (a new
    /// state shares every value but the one it changed with the state before).
    fn state_bytes(&self, state: &KvState) -> usize {
        core::mem::size_of_val::<[(u32, KvValue)]>(state)
            + state
                .iter()
                .filter(|(_, value)| Rc::strong_count(&value.text) == 1)
                .map(|(_, value)| value.text.len())
                .sum::<usize>()
    }

    fn describe_state(&self, state: &KvState) -> String {
        let pairs: Vec<String> = state
            .iter()
            .map(|(key, value)| format!("{:?}: {:?}", self.key(*key), value.as_str()))
            .collect();
        format!("{{{}}}", pairs.join(", "))
    }

    fn jepsen_operation(&self, input: &KvInput, output: Option<&KvOutput>) -> JepsenOperation {
        let (f, invoke_value) = match &input.action {
            KvAction::Get => ("get", Value::Nil),
            KvAction::Put(value) => ("put", Value::Str(value.clone())),
            KvAction::Append(value) => ("append", Value::Str(value.clone())),
        };
        let complete_value = match output {
            Some(KvOutput::Value(value)) => Value::Str(value.as_str().to_string()),
            _ => invoke_value.clone(),
        };
        JepsenOperation {
            f: f.to_string(),
            key: Some(Value::Str(self.key(input.key).to_string())),
            invoke_value,
            complete_value,
            failed: false,
        }
    }
}

fn kv_text(
    raw: &RawHistory,
    operation: &RawOperation,
    value: &Value,
) -> Result<String, ParseError> {
    match value {
        Value::Nil => Ok(String::new()),
        Value::Str(text) => Ok(text.clone()),
        Value::Int(value) => Ok(value.to_string()),
        other => Err(raw.error(
            operation.line,
            format!("expected a string value, found {other}"),
        )),
    }
}

impl BuiltinModel for Kv {
    fn from_raw(raw: &RawHistory) -> Result<(Self, History<KvInput, KvOutput>), ParseError> {
        let mut keys: Vec<String> = Vec::new();
        let mut numbers: BTreeMap<String, u32> = BTreeMap::new();
        let mut history = History::new();
        for operation in &raw.operations {
            let key = match &operation.key {
                Some(Value::Str(key)) => key.clone(),
                Some(Value::Int(key)) => key.to_string(),
                Some(Value::Keyword(key)) => format!(":{key}"),
                Some(other) => return Err(raw.error(operation.line, format!("bad :key {other}"))),
                None => return Err(raw.error(operation.line, "kv operation without :key")),
            };
            let key = *numbers.entry(key.clone()).or_insert_with(|| {
                keys.push(key);
                (keys.len() - 1) as u32
            });
            let (action, output) = match operation.f.as_str() {
                "get" | "read" => {
                    let value = match operation.outcome {
                        RawOutcome::Ok { .. } => {
                            kv_text(raw, operation, &operation.complete_value)?
                        }
                        _ => String::new(),
                    };
                    (KvAction::Get, KvOutput::Value(KvText::new(&value)))
                }
                "put" | "write" => (
                    KvAction::Put(kv_text(raw, operation, &operation.invoke_value)?),
                    KvOutput::Ok,
                ),
                "append" => (
                    KvAction::Append(kv_text(raw, operation, &operation.invoke_value)?),
                    KvOutput::Ok,
                ),
                other => {
                    return Err(raw.error(operation.line, format!("unknown kv function :{other}")));
                }
            };
            history.push(Operation {
                client: operation.process,
                input: KvInput { key, action },
                call: operation.call,
                outcome: outcome(operation, output, None),
            });
        }
        Ok((Kv { keys }, history))
    }
}

// ---------------------------------------------------------------------------
// Counter.

/// An integer counter starting at 0, with add and read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Counter;

/// A counter operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterInput {
    /// Add to the counter (negative to subtract).
    Add(i64),
    /// Read the counter.
    Read,
}

/// What a counter operation returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterOutput {
    /// A read's value.
    Value(i64),
    /// An add completed.
    Ok,
}

impl Model for Counter {
    type Input = CounterInput;
    type Output = CounterOutput;
    type State = i64;

    fn init(&self) -> i64 {
        0
    }

    fn step(
        &self,
        state: &i64,
        input: &CounterInput,
        output: Option<&CounterOutput>,
    ) -> Option<i64> {
        match (input, output) {
            (CounterInput::Add(amount), _) => Some(state.wrapping_add(*amount)),
            (CounterInput::Read, Some(CounterOutput::Value(seen))) => {
                (seen == state).then_some(*state)
            }
            (CounterInput::Read, None) => Some(*state),
            (CounterInput::Read, Some(CounterOutput::Ok)) => None,
        }
    }

    fn is_read_only(&self, input: &CounterInput) -> bool {
        matches!(input, CounterInput::Read)
    }

    fn describe_operation(&self, input: &CounterInput, output: Option<&CounterOutput>) -> String {
        match (input, output) {
            (CounterInput::Add(amount), _) => format!("add {amount}"),
            (CounterInput::Read, Some(CounterOutput::Value(value))) => format!("read -> {value}"),
            (CounterInput::Read, _) => "read -> ?".to_string(),
        }
    }

    fn describe_state(&self, state: &i64) -> String {
        state.to_string()
    }

    fn jepsen_operation(
        &self,
        input: &CounterInput,
        output: Option<&CounterOutput>,
    ) -> JepsenOperation {
        let (f, invoke_value) = match input {
            CounterInput::Add(amount) => ("add", Value::Int(*amount)),
            CounterInput::Read => ("read", Value::Nil),
        };
        let complete_value = match output {
            Some(CounterOutput::Value(value)) => Value::Int(*value),
            _ => invoke_value.clone(),
        };
        JepsenOperation {
            f: f.to_string(),
            key: None,
            invoke_value,
            complete_value,
            failed: false,
        }
    }
}

impl BuiltinModel for Counter {
    fn from_raw(
        raw: &RawHistory,
    ) -> Result<(Self, History<CounterInput, CounterOutput>), ParseError> {
        let mut history = History::new();
        for operation in &raw.operations {
            let (input, output) = match operation.f.as_str() {
                "add" | "inc" | "increment" => match operation.invoke_value {
                    Value::Int(amount) => (CounterInput::Add(amount), CounterOutput::Ok),
                    Value::Nil => (CounterInput::Add(1), CounterOutput::Ok),
                    ref other => {
                        return Err(raw.error(
                            operation.line,
                            format!("add expects an integer, found {other}"),
                        ));
                    }
                },
                "read" => match (&operation.outcome, &operation.complete_value) {
                    (RawOutcome::Ok { .. }, Value::Int(value)) => {
                        (CounterInput::Read, CounterOutput::Value(*value))
                    }
                    (RawOutcome::Ok { .. }, other) => {
                        return Err(raw.error(
                            operation.line,
                            format!("read returned {other}, expected an integer"),
                        ));
                    }
                    _ => (CounterInput::Read, CounterOutput::Value(0)),
                },
                other => {
                    return Err(
                        raw.error(operation.line, format!("unknown counter function :{other}"))
                    );
                }
            };
            history.push(Operation {
                client: operation.process,
                input,
                call: operation.call,
                outcome: outcome(operation, output, None),
            });
        }
        Ok((Counter, history))
    }
}

// ---------------------------------------------------------------------------
// Any state machine.

/// An operation on a [`StateMachine`]: a command or a query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MachineInput<C, Q> {
    /// A command, applied to the state.
    Command(C),
    /// A query, answered from the state.
    Query(Q),
}

/// What an operation on a [`StateMachine`] returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MachineOutput<R> {
    /// A command was applied (commands return nothing).
    Applied,
    /// A query's answer.
    Answer(R),
}

/// The [`ApplyContext`] the adapter hands to `apply`: every position and term
/// is zero, so a machine that reads them sees the same values on every step.
pub(crate) struct ModelApplyContext;

impl ApplyContext for ModelApplyContext {
    fn committed(&self) -> Cursor {
        Cursor::default()
    }

    fn log_position(&self) -> Cursor {
        Cursor::default()
    }

    fn current_term(&self) -> Term {
        Term::default()
    }
}

/// Any state machine as its own specification: a command steps a clone of
/// the state through [`StateMachine::apply`] (with an [`ApplyContext`] whose
/// positions and term are all zero), and a query must have returned what
/// [`StateMachine::query`] returns on the state at that point.
///
/// # Examples
///
/// ```
/// use quorate::check::history::{History, Operation, Outcome};
/// use quorate::check::models::{MachineInput, MachineOutput, StateMachineModel};
/// use quorate::check::{check, CheckOptions, Verdict};
/// use quorate::machine::NoOp;
///
/// let model = StateMachineModel::new(NoOp::default());
/// let mut history: History<MachineInput<(), ()>, MachineOutput<()>> = History::new();
/// history.push(Operation { client: 0, input: MachineInput::Query(()), call: 0,
///     outcome: Outcome::Returned { time: 1, output: MachineOutput::Answer(()) } });
/// let report = check(&model, &history, &CheckOptions::default(), &|| false);
/// assert_eq!(report.verdict, Verdict::Linearizable);
/// ```
pub struct StateMachineModel<S> {
    initial: S,
}

impl<S> StateMachineModel<S> {
    /// A model whose initial state is `initial`.
    pub fn new(initial: S) -> Self {
        Self { initial }
    }
}

impl<S> Model for StateMachineModel<S>
where
    S: StateMachine + Clone + Eq + Hash,
    S::QueryResult: Eq,
{
    type Input = MachineInput<S::Command, S::Query>;
    type Output = MachineOutput<S::QueryResult>;
    type State = S;

    fn init(&self) -> S {
        self.initial.clone()
    }

    fn step(&self, state: &S, input: &Self::Input, output: Option<&Self::Output>) -> Option<S> {
        match (input, output) {
            (MachineInput::Command(command), _) => {
                let mut next = state.clone();
                next.apply(command.clone(), &ModelApplyContext);
                Some(next)
            }
            (MachineInput::Query(_), None) => Some(state.clone()),
            (MachineInput::Query(query), Some(MachineOutput::Answer(seen))) => {
                (state.query(query.clone()) == *seen).then(|| state.clone())
            }
            (MachineInput::Query(_), Some(MachineOutput::Applied)) => None,
        }
    }

    fn is_read_only(&self, input: &Self::Input) -> bool {
        matches!(input, MachineInput::Query(_))
    }

    fn explains(&self, state: &S, input: &Self::Input, output: &Self::Output) -> bool {
        match (input, output) {
            (MachineInput::Query(query), MachineOutput::Answer(seen)) => {
                state.query(query.clone()) == *seen
            }
            _ => self.step(state, input, Some(output)).is_some(),
        }
    }

    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String {
        match (input, output) {
            (MachineInput::Command(command), _) => format!("apply {}", json(command)),
            (MachineInput::Query(query), Some(MachineOutput::Answer(answer))) => {
                format!("query {} -> {}", json(query), json(answer))
            }
            (MachineInput::Query(query), _) => format!("query {} -> ?", json(query)),
        }
    }

    fn describe_state(&self, state: &S) -> String {
        format!("{} #{:016x}", state.signature(), fx_hash(state))
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|error| format!("<{error}>"))
}
