//! Workloads: what simulated clients ask of the group. A [`Workload`] produces
//! operations from the workload's entropy stream; the built-in ones drive the
//! seed's counter, a compare-and-set register and a multi-key key-value store.

use core::fmt;
use core::hash::Hash;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::env::{Entropy, uniform_u64};
use crate::examples::{
    Counter, CounterCmd, CounterQuery, KvCmd, KvQuery, KvStore, Register, RegisterCmd,
    RegisterQuery,
};
use crate::machine::StateMachine;

/// A machine the simulator can run and check: its own linearizability model
/// (`Clone + Eq + Hash`), with printable messages for traces and reports.
pub trait SimMachine:
    StateMachine<
        Command: fmt::Debug + Eq + Hash,
        Query: fmt::Debug + Eq + Hash,
        QueryResult: fmt::Debug + Eq + Hash,
    > + Clone
    + Eq
    + Hash
    + fmt::Debug
{
}

impl<M> SimMachine for M where
    M: StateMachine<
            Command: fmt::Debug + Eq + Hash,
            Query: fmt::Debug + Eq + Hash,
            QueryResult: fmt::Debug + Eq + Hash,
        > + Clone
        + Eq
        + Hash
        + fmt::Debug
{
}

/// What a client does next.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operation<M: StateMachine> {
    /// Propose a command.
    Command(M::Command),
    /// Ask a query; `strong` for a linearizable read, else a weak (local) one.
    Query {
        /// The query.
        query: M::Query,
        /// Linearizable (true) or local (false).
        strong: bool,
    },
}

/// A source of client operations for machine `M`.
pub trait Workload<M: StateMachine>: Send {
    /// The workload's name, for reports.
    fn name(&self) -> String;

    /// The next operation, for workloads that decide reads themselves. The
    /// default, `None`, lets the simulator choose a read or a write (by
    /// [`SimConfig::read_per_mille`](super::SimConfig)) and call
    /// [`command`](Workload::command) or [`query`](Workload::query).
    fn operation(&mut self, _rng: &mut Entropy, _client: u64) -> Option<Operation<M>> {
        None
    }

    /// The next command a client issues (reads are decided by the simulator).
    fn command(&mut self, rng: &mut Entropy, client: u64) -> M::Command;

    /// A query for a read.
    fn query(&mut self, rng: &mut Entropy, client: u64) -> M::Query;

    /// The key an operation touches, if the machine's state splits by key (so the
    /// linearizability check can be P-compositional). `None`: one partition.
    fn key_of_command(&self, _command: &M::Command) -> Option<u64> {
        None
    }

    /// The key a query reads; see [`Workload::key_of_command`].
    fn key_of_query(&self, _query: &M::Query) -> Option<u64> {
        None
    }

    /// The history as Jepsen EDN in the shape of a model Jepsen's tools know
    /// (see [`super::jepsen`]); `None`: the generic form of
    /// [`crate::check::edn`], which they can read but not check.
    fn jepsen_history(&self, _history: &super::history::CheckedHistory<M>) -> Option<String> {
        None
    }
}

/// The built-in workloads of `quorate explore --workload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    /// The seed's counter: increments, decrements, reads.
    Counter,
    /// A compare-and-set register: writes, CAS, reads.
    Register,
    /// A key-value store over ten keys: put, append, get.
    Kv,
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Counter => "counter",
            Self::Register => "register",
            Self::Kv => "kv",
        })
    }
}

impl FromStr for WorkloadKind {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "counter" => Ok(Self::Counter),
            "register" => Ok(Self::Register),
            "kv" => Ok(Self::Kv),
            other => Err(format!(
                "unknown workload {other:?}; one of counter, register, kv"
            )),
        }
    }
}

/// Increments and decrements of small amounts on the seed's [`Counter`].
#[derive(Debug, Clone, Default)]
pub struct CounterWorkload;

impl Workload<Counter> for CounterWorkload {
    fn name(&self) -> String {
        "counter".into()
    }

    fn command(&mut self, rng: &mut Entropy, _client: u64) -> CounterCmd {
        let amount = uniform_u64(rng, 1, 6) as i64;
        match uniform_u64(rng, 0, 10) {
            0 => CounterCmd::Decrement(amount),
            _ => CounterCmd::Increment(amount),
        }
    }

    fn query(&mut self, _rng: &mut Entropy, _client: u64) -> CounterQuery {
        CounterQuery::Value
    }

    fn jepsen_history(&self, history: &super::history::CheckedHistory<Counter>) -> Option<String> {
        super::jepsen::counter_edn(history)
    }
}

/// Writes and compare-and-sets of values 0 to 4 on a [`Register`].
#[derive(Debug, Clone, Default)]
pub struct RegisterWorkload;

impl Workload<Register> for RegisterWorkload {
    fn name(&self) -> String {
        "register".into()
    }

    fn command(&mut self, rng: &mut Entropy, _client: u64) -> RegisterCmd {
        let value = uniform_u64(rng, 0, 5);
        if uniform_u64(rng, 0, 2) == 0 {
            RegisterCmd::Write(value)
        } else {
            let expected = match uniform_u64(rng, 0, 6) {
                5 => None,
                known => Some(known),
            };
            RegisterCmd::Cas {
                expected,
                new: value,
            }
        }
    }

    fn query(&mut self, _rng: &mut Entropy, _client: u64) -> RegisterQuery {
        RegisterQuery::Read
    }

    fn jepsen_history(&self, history: &super::history::CheckedHistory<Register>) -> Option<String> {
        super::jepsen::register_edn(history)
    }
}

/// Puts and appends of unique values over ten keys of a [`KvStore`]; checked per
/// key.
#[derive(Debug, Clone, Default)]
pub struct KvWorkload {
    written: u64,
}

/// Keys of the key-value workload.
const KV_KEYS: u64 = 10;

/// Appends `value` in decimal, as `value.to_string()` writes it.
fn push_decimal(text: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    text.extend(digits[start..].iter().map(|&digit| char::from(digit)));
}

/// `value` in decimal, as `value.to_string()` writes it.
fn decimal(value: u64) -> String {
    let mut text = String::with_capacity(4);
    push_decimal(&mut text, value);
    text
}

impl Workload<KvStore> for KvWorkload {
    fn name(&self) -> String {
        "kv".into()
    }

    fn command(&mut self, rng: &mut Entropy, client: u64) -> KvCmd {
        self.written += 1;
        let key = decimal(uniform_u64(rng, 0, KV_KEYS));
        // "{client}.{written} ", built without the formatting machinery (a
        // tenth of the cost: it runs for every write of every run).
        let mut value = String::with_capacity(24);
        push_decimal(&mut value, client);
        value.push('.');
        push_decimal(&mut value, self.written);
        value.push(' ');
        if uniform_u64(rng, 0, 4) == 0 {
            KvCmd::Put { key, value }
        } else {
            KvCmd::Append { key, value }
        }
    }

    fn query(&mut self, rng: &mut Entropy, _client: u64) -> KvQuery {
        KvQuery::Get {
            key: decimal(uniform_u64(rng, 0, KV_KEYS)),
        }
    }

    fn key_of_command(&self, command: &KvCmd) -> Option<u64> {
        command.key().parse().ok()
    }

    fn key_of_query(&self, query: &KvQuery) -> Option<u64> {
        query.key()?.parse().ok()
    }

    fn jepsen_history(&self, history: &super::history::CheckedHistory<KvStore>) -> Option<String> {
        super::jepsen::kv_edn(history)
    }
}

/// A workload from a closure that produces each client's next operation:
/// the shortest way to drive your own machine (see [`super::check_machine`]).
pub struct FnWorkload<F> {
    name: String,
    next: F,
}

impl<F> FnWorkload<F> {
    /// A workload named `name` whose operations come from `next(rng, client)`.
    pub fn new(name: impl Into<String>, next: F) -> Self {
        Self {
            name: name.into(),
            next,
        }
    }
}

impl<M, F> Workload<M> for FnWorkload<F>
where
    M: StateMachine,
    F: FnMut(&mut Entropy, u64) -> Operation<M> + Send,
{
    fn name(&self) -> String {
        self.name.clone()
    }

    fn operation(&mut self, rng: &mut Entropy, client: u64) -> Option<Operation<M>> {
        Some((self.next)(rng, client))
    }

    /// Not used: [`operation`](Workload::operation) always answers. Draws from
    /// the closure until it yields a command.
    fn command(&mut self, rng: &mut Entropy, client: u64) -> M::Command {
        loop {
            if let Operation::Command(command) = (self.next)(rng, client) {
                return command;
            }
        }
    }

    /// Not used: [`operation`](Workload::operation) always answers. Draws from
    /// the closure until it yields a query.
    fn query(&mut self, rng: &mut Entropy, client: u64) -> M::Query {
        loop {
            if let Operation::Query { query, .. } = (self.next)(rng, client) {
                return query;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_writes_what_to_string_writes() {
        for value in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(decimal(value), value.to_string());
        }
    }
}
