//! Built-in state machines: the seed's [`Counter`], a compare-and-set
//! [`Register`] and a multi-key [`KvStore`]. The simulator's workloads and the
//! `quorate node` service run them; they are also small examples of the API.
//!
//! All three are `Clone + Eq + Hash`, so each is its own linearizability model.

use std::collections::BTreeMap;

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

/// A key-value store of strings, the built-in example that `quorate explore`
/// simulates and `quorate node` serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KvStore {
    /// The entries, ordered by key.
    pub entries: BTreeMap<String, String>,
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
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
    /// Adds `by` to the integer value of `key` (absent counts as 0; a value that
    /// is not an integer is left unchanged).
    Increment {
        /// The key.
        key: String,
        /// The amount.
        by: i64,
    },
}

impl KvCmd {
    /// The key the command touches.
    pub fn key(&self) -> &str {
        match self {
            Self::Put { key, .. }
            | Self::Append { key, .. }
            | Self::Delete { key }
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
}

impl StateMachine for KvStore {
    type Command = KvCmd;
    type Query = KvQuery;
    type QueryResult = Option<String>;
    type StateSync = LogReplaySync<Self>;

    fn signature(&self) -> UniqueId {
        UniqueId::from("kv_store_v1")
    }

    fn apply(&mut self, command: KvCmd, _ctx: &dyn ApplyContext) {
        match command {
            KvCmd::Put { key, value } => {
                self.entries.insert(key, value);
            }
            KvCmd::Append { key, value } => self.entries.entry(key).or_default().push_str(&value),
            KvCmd::Delete { key } => {
                self.entries.remove(&key);
            }
            KvCmd::Increment { key, by } => {
                let entry = self.entries.entry(key).or_insert_with(|| "0".to_owned());
                if let Ok(current) = entry.parse::<i64>() {
                    *entry = current.wrapping_add(by).to_string();
                }
            }
        }
    }

    fn query(&self, query: KvQuery) -> Option<String> {
        match query {
            KvQuery::Get { key } => self.entries.get(&key).cloned(),
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
        kv.apply(KvCmd::Delete { key: "p".into() }, &Context);
        assert_eq!(get(&kv, "a").as_deref(), Some("xy"));
        assert_eq!(get(&kv, "n").as_deref(), Some("5"));
        assert_eq!(get(&kv, "p"), None);
    }
}
