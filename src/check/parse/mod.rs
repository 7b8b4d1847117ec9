//! Reading histories from files.
//!
//! Every format is first read into a [`RawHistory`]: Jepsen-style operations
//! with a process, a function name (`f`), an optional key, the invocation's
//! and the completion's values, and how the operation ended. A built-in model
//! ([`crate::check::models::BuiltinModel`]) then turns it into a typed
//! [`History`](crate::check::history::History).
//!
//! # Formats
//!
//! * **`jepsen-log`**: Jepsen's text log, one event per line:
//!   `INFO  jepsen.util - 3 :invoke :write 4` (fields separated by tabs
//!   or spaces). Lines without
//!   `jepsen.util - ` and events of non-numeric processes (`:nemesis`) are
//!   skipped.
//! * **`edn`**: Jepsen events as EDN maps, either one per line (the kv files
//!   of Porcupine's test data) or one vector of maps (Knossos):
//!   `{:process 0, :type :invoke, :f :cas, :value [1 2]}`.
//! * **`jsonl`**: quorate's own format, one JSON object per line, each an
//!   event like Jepsen's:
//!
//!   ```text
//!   {"process": 0, "type": "invoke", "f": "write", "value": 3, "time": 100}
//!   {"process": 0, "type": "ok", "f": "write", "value": 3, "time": 150}
//!   {"process": 1, "type": "invoke", "f": "get", "key": "a", "value": null, "time": 120}
//!   {"process": 1, "type": "info", "f": "get", "key": "a", "value": null, "time": 900}
//!   ```
//!
//!   `process` is a non-negative integer; `type` is `invoke`, `ok`, `fail`
//!   or `info`; `f` names the function; `key` is optional; `value` is any
//!   JSON value (the input on `invoke`, the output on `ok`); `time` is an
//!   optional non-negative integer (virtual nanoseconds in quorate's
//!   simulator), given on every event or on none. Without it, line order is
//!   time. A completion closes the open invocation of its process.
//!
//! In every format an `invoke` opens an operation of its process and the next
//! `ok`, `fail` or `info` of that process closes it; an operation still open
//! at the end (or when its process invokes again) is indeterminate. Without
//! explicit times, time is the event's position in the file.
//!
//! Errors name the file and the line ([`ParseError`]).

pub mod edn;

use core::fmt;

use super::history::Time;

/// A value of a history: EDN's data model, which covers JSON's.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `nil` / `null`.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// An EDN keyword, without its colon.
    Keyword(String),
    /// An EDN symbol.
    Symbol(String),
    /// A vector, list or set.
    Vector(Vec<Value>),
    /// A map, in file order.
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// The name of a keyword, string or symbol.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Keyword(name) | Self::Str(name) | Self::Symbol(name) => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Nil => f.write_str("nil"),
            Self::Bool(value) => write!(f, "{value}"),
            Self::Int(value) => write!(f, "{value}"),
            Self::Float(value) => write!(f, "{value:?}"),
            Self::Str(text) => write!(f, "{text:?}"),
            Self::Keyword(name) => write!(f, ":{name}"),
            Self::Symbol(name) => f.write_str(name),
            Self::Vector(items) => {
                f.write_str("[")?;
                for (position, item) in items.iter().enumerate() {
                    if position > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Self::Map(pairs) => {
                f.write_str("{")?;
                for (position, (key, value)) in pairs.iter().enumerate() {
                    if position > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{key} {value}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// A history file could not be read; names the file and (if known) the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file (or other source name).
    pub file: String,
    /// The 1-based line, or 0 when the error concerns the whole file.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

impl std::error::Error for ParseError {}

/// How a raw operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RawOutcome {
    /// `:ok` at `time`.
    Ok {
        /// When.
        time: Time,
    },
    /// `:fail` at `time`.
    Fail {
        /// When.
        time: Time,
    },
    /// `:info` (at `time`, if it was reported) or never completed.
    Info {
        /// When, if reported.
        time: Option<Time>,
    },
}

/// An operation as Jepsen describes it, before a model gives it meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct RawOperation {
    /// The process (client).
    pub process: u64,
    /// The function, such as `read` or `cas`.
    pub f: String,
    /// The key, for keyed histories.
    pub key: Option<Value>,
    /// The invocation's `:value`.
    pub invoke_value: Value,
    /// The completion's `:value` (`nil` if it never completed).
    pub complete_value: Value,
    /// When it was invoked.
    pub call: Time,
    /// How it ended.
    pub outcome: RawOutcome,
    /// The line of the invocation.
    pub line: usize,
}

/// A history read from a file, before a model gives it meaning.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawHistory {
    /// The file it came from, for error messages.
    pub source: String,
    /// The operations, in invocation order.
    pub operations: Vec<RawOperation>,
}

impl RawHistory {
    /// An error about `line` of this history's file.
    pub fn error(&self, line: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            file: self.source.clone(),
            line,
            message: message.into(),
        }
    }
}

/// A history file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Jepsen's text log (`INFO  jepsen.util - 3 :invoke :write 4`).
    JepsenLog,
    /// EDN maps, one per line or in one vector.
    Edn,
    /// quorate's JSON lines.
    Jsonl,
}

impl Format {
    /// Guesses the format from the first non-blank line: a Jepsen log line
    /// mentions `jepsen.util` (or starts with a log level), JSON lines start
    /// with `{"`, EDN starts with `{`, `[` or `(`. `None` if nothing fits.
    pub fn detect(text: &str) -> Option<Self> {
        let line = text.lines().map(str::trim).find(|line| !line.is_empty())?;
        if line.contains("jepsen.util") || line.starts_with("INFO") {
            return Some(Self::JepsenLog);
        }
        let compact: String = line
            .chars()
            .filter(|c| !c.is_whitespace())
            .take(2)
            .collect();
        if compact == "{\"" || compact == "{}" && line.len() == 2 {
            return Some(Self::Jsonl);
        }
        if line.starts_with(['{', '[', '(']) {
            return Some(Self::Edn);
        }
        if text
            .lines()
            .take(1000)
            .any(|line| line.contains("jepsen.util - "))
        {
            return Some(Self::JepsenLog);
        }
        None
    }
}

/// The kind of a Jepsen event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// One event, format-independent.
struct Event {
    line: usize,
    process: u64,
    kind: EventKind,
    f: String,
    key: Option<Value>,
    value: Value,
    time: Time,
}

/// Pairs invocations with completions.
struct Assembler {
    history: RawHistory,
    /// Open operation of each process: (process, index into operations).
    /// A `BTreeMap` keeps the result independent of hashing.
    open: std::collections::BTreeMap<u64, usize>,
}

impl Assembler {
    fn new(source: &str) -> Self {
        Self {
            history: RawHistory {
                source: source.to_string(),
                operations: Vec::new(),
            },
            open: Default::default(),
        }
    }

    fn push(&mut self, event: Event) -> Result<(), ParseError> {
        if event.kind == EventKind::Invoke {
            if let Some(previous) = self
                .open
                .insert(event.process, self.history.operations.len())
            {
                // The process invoked again without completing: it crashed.
                self.history.operations[previous].outcome = RawOutcome::Info { time: None };
            }
            self.history.operations.push(RawOperation {
                process: event.process,
                f: event.f,
                key: event.key,
                invoke_value: event.value,
                complete_value: Value::Nil,
                call: event.time,
                outcome: RawOutcome::Info { time: None },
                line: event.line,
            });
            return Ok(());
        }
        let Some(index) = self.open.remove(&event.process) else {
            if event.kind == EventKind::Info {
                return Ok(()); // An :info with no invocation (a nemesis note).
            }
            return Err(self.history.error(
                event.line,
                format!(
                    "completion of process {} without an invocation",
                    event.process
                ),
            ));
        };
        let source = &self.history.source;
        let operation = &mut self.history.operations[index];
        let error = |message: String| ParseError {
            file: source.clone(),
            line: event.line,
            message,
        };
        if operation.f != event.f {
            return Err(error(format!(
                "process {} completes :{} but invoked :{} (line {})",
                event.process, event.f, operation.f, operation.line
            )));
        }
        if event.time < operation.call {
            return Err(error("completion before its invocation".to_string()));
        }
        operation.complete_value = event.value;
        operation.outcome = match event.kind {
            EventKind::Ok => RawOutcome::Ok { time: event.time },
            EventKind::Fail => RawOutcome::Fail { time: event.time },
            EventKind::Info | EventKind::Invoke => RawOutcome::Info {
                time: Some(event.time),
            },
        };
        Ok(())
    }
}

fn event_kind(name: &str) -> Option<EventKind> {
    match name {
        "invoke" => Some(EventKind::Invoke),
        "ok" => Some(EventKind::Ok),
        "fail" => Some(EventKind::Fail),
        "info" => Some(EventKind::Info),
        _ => None,
    }
}

/// Reads a history in `format` (detected from the content if `None`).
/// `source` names the file in errors.
pub fn parse(text: &str, format: Option<Format>, source: &str) -> Result<RawHistory, ParseError> {
    let format = match format.or_else(|| Format::detect(text)) {
        Some(format) => format,
        None if text.trim().is_empty() => {
            return Ok(RawHistory {
                source: source.to_string(),
                operations: Vec::new(),
            });
        }
        None => {
            return Err(ParseError {
                file: source.to_string(),
                line: 0,
                message: "unknown format (expected a Jepsen log, EDN or JSON lines)".to_string(),
            });
        }
    };
    match format {
        Format::JepsenLog => parse_jepsen_log(text, source),
        Format::Edn => parse_edn(text, source),
        Format::Jsonl => parse_jsonl(text, source),
    }
}

/// Reads a Jepsen text log.
pub fn parse_jepsen_log(text: &str, source: &str) -> Result<RawHistory, ParseError> {
    let mut assembler = Assembler::new(source);
    let mut time: Time = 0;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let Some(position) = line.find("jepsen.util - ") else {
            continue;
        };
        let rest = &line[position + "jepsen.util - ".len()..];
        let mut fields = rest.trim_start().splitn(2, char::is_whitespace);
        let process_token = fields.next().unwrap_or_default();
        let rest = fields.next().unwrap_or_default().trim_start();
        let mut fields = rest.splitn(2, char::is_whitespace);
        let kind_token = fields.next().unwrap_or_default();
        let Some(kind) = kind_token.strip_prefix(':').and_then(event_kind) else {
            continue; // Some other jepsen.util message.
        };
        let Ok(process) = process_token.parse::<u64>() else {
            if process_token.starts_with(':') {
                continue; // :nemesis and friends.
            }
            return Err(assembler
                .history
                .error(number, format!("bad process {process_token:?}")));
        };
        let rest = fields.next().unwrap_or_default().trim_start();
        let mut fields = rest.splitn(2, char::is_whitespace);
        let f_token = fields.next().unwrap_or_default();
        let Some(f) = f_token.strip_prefix(':').filter(|f| !f.is_empty()) else {
            return Err(assembler
                .history
                .error(number, format!("bad function {f_token:?}")));
        };
        let value_text = fields.next().unwrap_or_default();
        let mut reader = edn::Reader::new(value_text, number);
        let value = match reader.next_form() {
            Ok(Some((_, value))) => value,
            Ok(None) => Value::Nil,
            Err((_, message)) => return Err(assembler.history.error(number, message)),
        };
        if !reader.at_end() {
            return Err(assembler.history.error(
                number,
                format!("unexpected text after the value: {value_text:?}"),
            ));
        }
        assembler.push(Event {
            line: number,
            process,
            kind,
            f: f.to_string(),
            key: None,
            value,
            time,
        })?;
        time += 1;
    }
    Ok(assembler.history)
}

/// Looks up a map field by name (keyword or string key).
fn field<'a>(pairs: &'a [(Value, Value)], name: &str) -> Option<&'a Value> {
    pairs
        .iter()
        .find(|(key, _)| key.name() == Some(name))
        .map(|(_, value)| value)
}

/// Turns one map into an event; `Ok(None)` for events to skip (non-numeric
/// processes such as `:nemesis`).
fn map_event(
    pairs: &[(Value, Value)],
    line: usize,
    time: Time,
    history: &RawHistory,
) -> Result<Option<Event>, ParseError> {
    let process = match field(pairs, "process") {
        Some(Value::Int(process)) if *process >= 0 => *process as u64,
        Some(Value::Keyword(_) | Value::Str(_) | Value::Symbol(_)) => return Ok(None),
        Some(other) => return Err(history.error(line, format!("bad :process {other}"))),
        None => return Err(history.error(line, "missing :process")),
    };
    let kind = match field(pairs, "type") {
        Some(value) => match value.name().and_then(event_kind) {
            Some(kind) => kind,
            None => return Err(history.error(line, format!("bad :type {value}"))),
        },
        None => return Err(history.error(line, "missing :type")),
    };
    let f = match field(pairs, "f").and_then(Value::name) {
        Some(f) => f.to_string(),
        None => return Err(history.error(line, "missing or bad :f")),
    };
    Ok(Some(Event {
        line,
        process,
        kind,
        f,
        key: field(pairs, "key").cloned(),
        value: field(pairs, "value").cloned().unwrap_or(Value::Nil),
        time,
    }))
}

/// Reads EDN: maps one per line, or one vector (or list) of maps.
pub fn parse_edn(text: &str, source: &str) -> Result<RawHistory, ParseError> {
    let mut assembler = Assembler::new(source);
    let forms =
        edn::read_events(text).map_err(|(line, message)| assembler.history.error(line, message))?;
    for (time, (line, form)) in forms.iter().enumerate() {
        let Value::Map(pairs) = form else {
            return Err(assembler
                .history
                .error(*line, format!("expected a map, found {form}")));
        };
        if let Some(event) = map_event(pairs, *line, time as Time, &assembler.history)? {
            assembler.push(event)?;
        }
    }
    Ok(assembler.history)
}

fn json_value(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(value) => Value::Bool(*value),
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(value) => Value::Int(value),
            None => Value::Float(number.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(text) => Value::Str(text.clone()),
        serde_json::Value::Array(items) => Value::Vector(items.iter().map(json_value).collect()),
        serde_json::Value::Object(fields) => Value::Map(
            fields
                .iter()
                .map(|(key, value)| (Value::Str(key.clone()), json_value(value)))
                .collect(),
        ),
    }
}

/// Reads quorate's JSON lines (see the module docs).
pub fn parse_jsonl(text: &str, source: &str) -> Result<RawHistory, ParseError> {
    let mut assembler = Assembler::new(source);
    let mut timed: Option<bool> = None;
    let mut position: Time = 0;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line).map_err(|error| {
            assembler
                .history
                .error(number, format!("bad JSON: {error}"))
        })?;
        let Value::Map(pairs) = json_value(&value) else {
            return Err(assembler.history.error(number, "expected a JSON object"));
        };
        let time = match field(&pairs, "time") {
            None | Some(Value::Nil) => None,
            Some(Value::Int(time)) if *time >= 0 => Some(*time as Time),
            Some(other) => {
                return Err(assembler.history.error(number, format!("bad time {other}")));
            }
        };
        if *timed.get_or_insert(time.is_some()) != time.is_some() {
            return Err(assembler
                .history
                .error(number, "\"time\" must be on every event or on none"));
        }
        let time = time.unwrap_or(position);
        position += 1;
        if let Some(event) = map_event(&pairs, number, time, &assembler.history)? {
            assembler.push(event)?;
        }
    }
    Ok(assembler.history)
}
