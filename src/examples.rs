//! Built-in state machines: the seed's [`Counter`], a compare-and-set
//! [`Register`] and a multi-key [`KvStore`]. The simulator's workloads and the
//! `quorate node` service run them; they are also small examples of the API.
//!
//! All three are `Clone + Eq + Hash`, so each is its own linearizability model.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::id::UniqueId;
use crate::machine::{ApplyContext, LogReplaySync, StateMachine};

/// The seed's counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Counter {
    /// The current value.
    pub value: i64,
}

/// A counter command.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CounterCmd {
    /// Adds to the value.
    Increment(i64),
    /// Subtracts from the value.
    Decrement(i64),
    /// Sets the value to zero.
    Reset,
}

/// A counter query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CounterQuery {
    /// The current value.
    Value,
}

impl StateMachine for Counter {
    type Command = CounterCmd;
    type Query = CounterQuery;
    type QueryResult = i64;
    type StateSync = LogReplaySync<Self>;

    fn signature(&self) -> UniqueId {
        UniqueId::from("counter_v1")
    }

    fn apply(&mut self, command: CounterCmd, _ctx: &dyn ApplyContext) {
        match command {
            CounterCmd::Increment(n) => self.value = self.value.wrapping_add(n),
            CounterCmd::Decrement(n) => self.value = self.value.wrapping_sub(n),
            CounterCmd::Reset => self.value = 0,
        }
    }

    fn query(&self, query: CounterQuery) -> i64 {
        match query {
            CounterQuery::Value => self.value,
        }
    }

    fn state_sync(&self) -> LogReplaySync<Self> {
        LogReplaySync::default()
    }
}

/// A register with compare-and-set. Starts empty (`None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Register {
    /// The current value.
    pub value: Option<u64>,
    /// How many compare-and-sets failed (part of the state, so a failed CAS is
    /// an observable, checkable event).
    pub failed_cas: u64,
}

/// A register command.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RegisterCmd {
    /// Sets the value.
    Write(u64),
    /// Sets the value to `new` if it is `expected`.
    Cas {
        /// The value the register must hold.
        expected: Option<u64>,
        /// The value to set.
        new: u64,
    },
}

/// A register query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RegisterQuery {
    /// The current value.
    Read,
}

impl StateMachine for Register {
    type Command = RegisterCmd;
    type Query = RegisterQuery;
    type QueryResult = Option<u64>;
    type StateSync = LogReplaySync<Self>;

    fn signature(&self) -> UniqueId {
        UniqueId::from("register_v1")
    }

    fn apply(&mut self, command: RegisterCmd, _ctx: &dyn ApplyContext) {
        match command {
            RegisterCmd::Write(value) => self.value = Some(value),
            RegisterCmd::Cas { expected, new } => {
                if self.value == expected {
                    self.value = Some(new);
                } else {
                    self.failed_cas += 1;
                }
            }
        }
    }

    fn query(&self, _query: RegisterQuery) -> Option<u64> {
        self.value
    }

    fn state_sync(&self) -> LogReplaySync<Self> {
        LogReplaySync::default()
    }
}

/// How many tagged results a [`KvStore`] keeps: recording one more evicts the
/// oldest. A client reads its result right after its command is applied, so
/// only that many tagged commands applied in between can make it miss.
pub const TAGGED_RESULTS_MAX: usize = 65_536;

/// A key-value store of strings, the built-in example that `quorate explore`
/// simulates and `quorate node` serves.
///
/// [`StateMachine::apply`] returns nothing, so a command that needs an exact
/// reply (`INCR`'s new value, how many keys `DEL` removed) carries a `tag`: a
/// random `u64` the client chose. The store records that command's
/// [`KvResult`] under the tag, as part of the replicated state, and the client
/// reads it back with [`KvQuery::Result`]. The most recent
/// [`TAGGED_RESULTS_MAX`] results are kept, evicted oldest first. Untagged
/// commands record nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KvStore {
    /// The entries, ordered by key.
    pub entries: BTreeMap<String, String>,
    /// The result of each recent tagged command, by tag.
    pub results: BTreeMap<u64, KvResult>,
    /// The tags of `results` in the order they were first recorded, oldest
    /// first; each tag once.
    pub result_order: VecDeque<u64>,
}

/// What a tagged [`KvCmd`] did, as [`KvQuery::Result`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvResult {
    /// The value after an increment, or how many keys a delete removed.
    Integer(i64),
    /// The increment was refused: the value is not an integer. Nothing changed.
    NotAnInteger,
    /// The increment was refused: it would overflow an `i64`. Nothing changed.
    Overflow,
}

impl KvResult {
    const NOT_AN_INTEGER: &str = "not an integer";
    const OVERFLOW: &str = "overflow";

    /// The text [`KvQuery::Result`] answers with (the query's result type is
    /// the store's `Option<String>`).
    pub fn encode(self) -> String {
        match self {
            Self::Integer(value) => value.to_string(),
            Self::NotAnInteger => Self::NOT_AN_INTEGER.to_owned(),
            Self::Overflow => Self::OVERFLOW.to_owned(),
        }
    }

    /// The result [`encode`](KvResult::encode) wrote; `None` for other text.
    pub fn decode(text: &str) -> Option<Self> {
        match text {
            Self::NOT_AN_INTEGER => Some(Self::NotAnInteger),
            Self::OVERFLOW => Some(Self::Overflow),
            _ => text.parse().ok().map(Self::Integer),
        }
    }
}

impl KvStore {
    /// The recorded result of the tagged command `tag`, unless it was evicted
    /// or no such command was applied.
    pub fn result(&self, tag: u64) -> Option<KvResult> {
        self.results.get(&tag).copied()
    }

    /// Records `result` under `tag`, evicting the oldest beyond
    /// [`TAGGED_RESULTS_MAX`]. A tag used again (two clients drew the same
    /// random tag) keeps its first place in the eviction order.
    fn record(&mut self, tag: u64, result: KvResult) {
        if self.results.insert(tag, result).is_none() {
            self.result_order.push_back(tag);
        }
        while self.result_order.len() > TAGGED_RESULTS_MAX {
            if let Some(oldest) = self.result_order.pop_front() {
                self.results.remove(&oldest);
            }
        }
    }
}

/// A key-value command.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvCmd {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Appends `value` to the value of `key` (an absent key counts as empty).
    Append {
        /// The key.
        key: String,
        /// What to append.
        value: String,
    },
    /// Removes `key`. With a tag, records how many keys it removed (0 or 1).
    Delete {
        /// The key.
        key: String,
        /// Where to record the result; see [`KvStore`].
        tag: Option<u64>,
    },
    /// Adds `by` to the integer value of `key` (absent counts as 0; a value that
    /// is not an integer is left unchanged). Without a tag an overflow wraps;
    /// with one it leaves the value unchanged, as Redis's `INCRBY` does, and the
    /// store records the new value or why it was refused.
    Increment {
        /// The key.
        key: String,
        /// The amount.
        by: i64,
        /// Where to record the result; see [`KvStore`].
        tag: Option<u64>,
    },
}

impl KvCmd {
    /// The key the command touches.
    pub fn key(&self) -> &str {
        match self {
            Self::Put { key, .. }
            | Self::Append { key, .. }
            | Self::Delete { key, .. }
            | Self::Increment { key, .. } => key,
        }
    }
}

/// A key-value query.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvQuery {
    /// The value of `key`.
    Get {
        /// The key.
        key: String,
    },
    /// The result of the tagged command `tag`, as [`KvResult::encode`] wrote
    /// it; `None` if it was evicted or never applied.
    Result {
        /// The command's tag.
        tag: u64,
    },
}

impl KvQuery {
    /// The key the query reads, if it reads one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Get { key } => Some(key),
            Self::Result { .. } => None,
        }
    }
}

impl StateMachine for KvStore {
    type Command = KvCmd;
    type Query = KvQuery;
    type QueryResult = Option<String>;
    type StateSync = LogReplaySync<Self>;

    fn signature(&self) -> UniqueId {
        UniqueId::from("kv_store_v2")
    }

    fn apply(&mut self, command: KvCmd, _ctx: &dyn ApplyContext) {
        match command {
            KvCmd::Put { key, value } => {
                self.entries.insert(key, value);
            }
            KvCmd::Append { key, value } => self.entries.entry(key).or_default().push_str(&value),
            KvCmd::Delete { key, tag } => {
                let removed = self.entries.remove(&key).is_some();
                if let Some(tag) = tag {
                    self.record(tag, KvResult::Integer(i64::from(removed)));
                }
            }
            KvCmd::Increment { key, by, tag } => {
                let current = self
                    .entries
                    .get(&key)
                    .map_or(Ok(0), |value| value.parse::<i64>());
                let result = match current {
                    Err(_) => KvResult::NotAnInteger,
                    Ok(current) => match current.checked_add(by) {
                        None if tag.is_some() => KvResult::Overflow,
                        sum => {
                            let sum = sum.unwrap_or_else(|| current.wrapping_add(by));
                            self.entries.insert(key, sum.to_string());
                            KvResult::Integer(sum)
                        }
                    },
                };
                if let Some(tag) = tag {
                    self.record(tag, result);
                }
            }
        }
    }

    fn query(&self, query: KvQuery) -> Option<String> {
        match query {
            KvQuery::Get { key } => self.entries.get(&key).cloned(),
            KvQuery::Result { tag } => self.result(tag).map(KvResult::encode),
        }
    }

    fn state_sync(&self) -> LogReplaySync<Self> {
        LogReplaySync::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Cursor, Term};

    struct Context;

    impl ApplyContext for Context {
        fn committed(&self) -> Cursor {
            Cursor::ZERO
        }
        fn log_position(&self) -> Cursor {
            Cursor::ZERO
        }
        fn current_term(&self) -> Term {
            Term::ZERO
        }
    }

    #[test]
    fn register_cas_succeeds_only_on_the_expected_value() {
        let mut register = Register::default();
        register.apply(
            RegisterCmd::Cas {
                expected: Some(1),
                new: 2,
            },
            &Context,
        );
        assert_eq!(register.value, None);
        register.apply(
            RegisterCmd::Cas {
                expected: None,
                new: 2,
            },
            &Context,
        );
        assert_eq!(register.query(RegisterQuery::Read), Some(2));
        assert_eq!(register.failed_cas, 1);
    }

    #[test]
    fn kv_store_applies_each_command() {
        let mut kv = KvStore::default();
        let get = |kv: &KvStore, key: &str| kv.query(KvQuery::Get { key: key.into() });
        kv.apply(
            KvCmd::Append {
                key: "a".into(),
                value: "x".into(),
            },
            &Context,
        );
        kv.apply(
            KvCmd::Append {
                key: "a".into(),
                value: "y".into(),
            },
            &Context,
        );
        kv.apply(
            KvCmd::Increment {
                key: "n".into(),
                by: 5,
                tag: None,
            },
            &Context,
        );
        kv.apply(
            KvCmd::Put {
                key: "p".into(),
                value: "v".into(),
            },
            &Context,
        );
        kv.apply(
            KvCmd::Delete {
                key: "p".into(),
                tag: None,
            },
            &Context,
        );
        assert_eq!(get(&kv, "a").as_deref(), Some("xy"));
        assert_eq!(get(&kv, "n").as_deref(), Some("5"));
        assert_eq!(get(&kv, "p"), None);
        assert!(kv.results.is_empty() && kv.result_order.is_empty());
    }

    fn increment(key: &str, by: i64, tag: Option<u64>) -> KvCmd {
        KvCmd::Increment {
            key: key.into(),
            by,
            tag,
        }
    }

    fn delete(key: &str, tag: Option<u64>) -> KvCmd {
        KvCmd::Delete {
            key: key.into(),
            tag,
        }
    }

    fn result(kv: &KvStore, tag: u64) -> Option<KvResult> {
        let answer = kv.query(KvQuery::Result { tag });
        let decoded = answer
            .as_deref()
            .map(|text| KvResult::decode(text).unwrap());
        assert_eq!(decoded, kv.result(tag));
        decoded
    }

    #[test]
    fn kv_store_records_each_tagged_result() {
        let mut kv = KvStore::default();
        kv.apply(increment("n", 1, Some(10)), &Context);
        kv.apply(increment("n", 1, Some(11)), &Context);
        kv.apply(increment("n", 1, None), &Context);
        kv.apply(increment("n", -5, Some(12)), &Context);
        // Each increment's own value, not the latest.
        assert_eq!(result(&kv, 10), Some(KvResult::Integer(1)));
        assert_eq!(result(&kv, 11), Some(KvResult::Integer(2)));
        assert_eq!(result(&kv, 12), Some(KvResult::Integer(-2)));
        assert_eq!(result(&kv, 99), None);

        kv.apply(delete("n", Some(20)), &Context);
        kv.apply(delete("n", Some(21)), &Context);
        assert_eq!(result(&kv, 20), Some(KvResult::Integer(1)));
        assert_eq!(result(&kv, 21), Some(KvResult::Integer(0)));

        kv.apply(
            KvCmd::Put {
                key: "s".into(),
                value: "text".into(),
            },
            &Context,
        );
        kv.apply(increment("s", 1, Some(30)), &Context);
        assert_eq!(result(&kv, 30), Some(KvResult::NotAnInteger));
        assert_eq!(kv.entries["s"], "text");

        // A refused tagged increment creates no key.
        kv.apply(increment("big", i64::MAX, Some(40)), &Context);
        kv.apply(increment("big", 1, Some(41)), &Context);
        assert_eq!(result(&kv, 41), Some(KvResult::Overflow));
        assert_eq!(kv.entries["big"], i64::MAX.to_string());
        // Untagged, an overflow wraps as it always did.
        kv.apply(increment("big", 1, None), &Context);
        assert_eq!(kv.entries["big"], i64::MIN.to_string());
        assert_eq!(kv.results.len(), 8);
        assert!(kv.result_order.iter().eq(&[10, 11, 12, 20, 21, 30, 40, 41]));
    }

    #[test]
    fn kv_store_evicts_the_oldest_tagged_result_beyond_the_bound() {
        let mut kv = KvStore::default();
        let total = TAGGED_RESULTS_MAX as u64 + 10;
        for tag in 0..total {
            kv.apply(increment("n", 1, Some(tag)), &Context);
        }
        assert_eq!(kv.results.len(), TAGGED_RESULTS_MAX);
        assert_eq!(kv.result_order.len(), TAGGED_RESULTS_MAX);
        for tag in 0..10 {
            assert_eq!(result(&kv, tag), None, "tag {tag} evicted");
        }
        assert_eq!(result(&kv, 10), Some(KvResult::Integer(11)));
        let last = i64::try_from(total).unwrap();
        assert_eq!(result(&kv, total - 1), Some(KvResult::Integer(last)));
        assert_eq!(kv.result_order.front(), Some(&10));

        // A reused tag is overwritten in place and keeps its place in line.
        kv.apply(delete("n", Some(10)), &Context);
        assert_eq!(result(&kv, 10), Some(KvResult::Integer(1)));
        assert_eq!(kv.result_order.len(), TAGGED_RESULTS_MAX);
        kv.apply(delete("n", Some(total)), &Context);
        assert_eq!(result(&kv, 10), None);
        assert_eq!(result(&kv, total), Some(KvResult::Integer(0)));

        // The same commands give the same state: eviction is deterministic.
        let mut again = KvStore::default();
        for tag in 0..total {
            again.apply(increment("n", 1, Some(tag)), &Context);
        }
        again.apply(delete("n", Some(10)), &Context);
        again.apply(delete("n", Some(total)), &Context);
        assert_eq!(again, kv);
    }

    #[test]
    fn kv_result_round_trips_through_its_text() {
        for result in [
            KvResult::Integer(0),
            KvResult::Integer(-7),
            KvResult::Integer(i64::MAX),
            KvResult::NotAnInteger,
            KvResult::Overflow,
        ] {
            assert_eq!(KvResult::decode(&result.encode()), Some(result));
        }
        assert_eq!(KvResult::decode("nonsense"), None);
    }
}
