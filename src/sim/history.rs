//! The clients' history: every operation with invoke/ok/info semantics, and its
//! conversion into the linearizability checker's [`History`].

use core::hash::BuildHasherDefault;
use std::collections::{BTreeMap, HashMap};

use super::workload::{Operation, SimMachine, Workload};
use crate::check::history::{History, Operation as CheckedOperation, Outcome};
use crate::check::model::Model;
use crate::check::models::{MachineInput, MachineOutput, ModelApplyContext, StateMachineModel};
use crate::check::search::FxHasher;
use crate::env::Instant;
use crate::log::{Cursor, Index};
use crate::machine::StateMachine;

/// A map of deterministic hashes (FxHash): a hash map that is only looked up,
/// never iterated, gives the same results on every run.
type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The checker's history of machine `M`'s operations.
pub type CheckedHistory<M> = History<
    MachineInput<<M as StateMachine>::Command, <M as StateMachine>::Query>,
    MachineOutput<<M as StateMachine>::QueryResult>,
>;

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationOutcome<R> {
    /// Not finished when the run ended.
    Pending,
    /// Completed; a query's answer and the position it reflects.
    Ok {
        /// When the client learned it.
        at: Instant,
        /// A query's answer.
        answer: Option<(R, Cursor)>,
    },
    /// The client gave up: the operation may or may not have taken effect.
    Info {
        /// When the client gave up.
        at: Instant,
    },
}

/// One client operation.
#[derive(Debug, Clone)]
pub struct RecordedOperation<M: SimMachine> {
    /// The client.
    pub client: u64,
    /// What it asked.
    pub operation: Operation<M>,
    /// When it asked.
    pub invoked: Instant,
    /// How it ended.
    pub outcome: OperationOutcome<M::QueryResult>,
}

/// Every client operation of a run, in invocation order.
#[derive(Debug, Clone)]
pub struct SimHistory<M: SimMachine> {
    /// The operations.
    pub operations: Vec<RecordedOperation<M>>,
}

impl<M: SimMachine> Default for SimHistory<M> {
    fn default() -> Self {
        Self {
            operations: Vec::new(),
        }
    }
}

impl<M: SimMachine> SimHistory<M> {
    /// Records an invocation; returns its index.
    pub fn invoke(&mut self, client: u64, operation: Operation<M>, at: Instant) -> usize {
        self.operations.push(RecordedOperation {
            client,
            operation,
            invoked: at,
            outcome: OperationOutcome::Pending,
        });
        self.operations.len() - 1
    }

    /// Records how operation `index` ended.
    pub fn complete(&mut self, index: usize, outcome: OperationOutcome<M::QueryResult>) {
        self.operations[index].outcome = outcome;
    }

    /// Every operation as the timeline shows it.
    pub fn summaries(&self) -> Vec<super::ClientOperation> {
        self.operations
            .iter()
            .map(|recorded| {
                let (ended, outcome, answer) = match &recorded.outcome {
                    OperationOutcome::Ok { at, answer } => (
                        Some(*at),
                        "ok",
                        answer.as_ref().map(|(result, _)| format!("{result:?}")),
                    ),
                    OperationOutcome::Info { at } => (Some(*at), "info", None),
                    OperationOutcome::Pending => (None, "pending", None),
                };
                let description = match &recorded.operation {
                    Operation::Command(command) => format!("{command:?}"),
                    Operation::Query { query, strong } => {
                        let kind = if *strong { "strong" } else { "weak" };
                        format!("{kind} {query:?}")
                    }
                };
                super::ClientOperation {
                    client: recorded.client,
                    description,
                    invoked: recorded.invoked,
                    ended,
                    outcome,
                    answer,
                }
            })
            .collect()
    }

    /// How many operations completed ok.
    pub fn completed(&self) -> usize {
        self.operations
            .iter()
            .filter(|operation| matches!(operation.outcome, OperationOutcome::Ok { .. }))
            .count()
    }

    /// The strong operations as a checker history (weak reads are checked apart).
    /// Times are virtual nanoseconds.
    pub fn to_checked(&self) -> CheckedHistory<M> {
        let mut history = History::new();
        for recorded in &self.operations {
            let input = match &recorded.operation {
                Operation::Command(command) => MachineInput::Command(command.clone()),
                Operation::Query {
                    query,
                    strong: true,
                } => MachineInput::Query(query.clone()),
                Operation::Query { strong: false, .. } => continue,
            };
            let outcome = match &recorded.outcome {
                OperationOutcome::Ok { at, answer } => Outcome::Returned {
                    time: at.as_nanos(),
                    output: match answer {
                        Some((result, _)) => MachineOutput::Answer(result.clone()),
                        None => MachineOutput::Applied,
                    },
                },
                OperationOutcome::Info { at } => Outcome::Indeterminate {
                    time: Some(at.as_nanos()),
                },
                OperationOutcome::Pending => Outcome::Indeterminate { time: None },
            };
            history.push(CheckedOperation {
                client: recorded.client,
                input,
                call: recorded.invoked.as_nanos(),
                outcome,
            });
        }
        history
    }

    /// Whether the strong operations linearize in the order the log gives
    /// them: each command where the log applied it (`commands` lists, in log
    /// order, the index and the place in the history of every command applied;
    /// a later copy of one counts once, at the first; a list out of log order
    /// is refused), each strong read right after the position it reflects,
    /// reads of one position in the order they were invoked. The machine steps
    /// through that order once, in place.
    ///
    /// `true` proves the history linearizable: the order is a witness, checked
    /// against every answer and against real time (no operation placed after
    /// one that returned before it was invoked). `false` proves nothing, as
    /// another order may work: the full search decides. Indeterminate commands
    /// missing from `commands` never took effect.
    pub fn linearizes_in_log_order(&self, initial: M, commands: &[(Index, usize)]) -> bool {
        if !commands.is_sorted_by_key(|(index, _)| *index) {
            return false; // not in log order: nothing to witness
        }
        // (log index, place in the history) of each command, in log order.
        let mut applied = Vec::with_capacity(commands.len());
        let mut placed = vec![false; self.operations.len()];
        for &(index, position) in commands {
            let Some(recorded) = self.operations.get(position) else {
                return false;
            };
            if !matches!(recorded.operation, Operation::Command(_)) {
                return false;
            }
            if !core::mem::replace(&mut placed[position], true) {
                applied.push((index, position));
            }
        }
        // (log index, invoked, place in the history) of each strong read.
        let mut reads = Vec::new();
        for (position, recorded) in self.operations.iter().enumerate() {
            match (&recorded.operation, &recorded.outcome) {
                (Operation::Command(_), OperationOutcome::Ok { .. }) if !placed[position] => {
                    return false; // done, says the client; not in the log
                }
                (
                    Operation::Query { strong: true, .. },
                    OperationOutcome::Ok {
                        answer: Some((_, at)),
                        ..
                    },
                ) => reads.push((at.index(), recorded.invoked.as_nanos(), position)),
                _ => {}
            }
        }
        reads.sort_unstable();
        // The commands in log order, each read merged in right after the
        // command at the position it reflects.
        let mut order = Vec::with_capacity(applied.len() + reads.len());
        let mut reads = reads.into_iter().peekable();
        for (index, position) in applied {
            while let Some((_, _, read)) = reads.next_if(|(at, _, _)| *at < index) {
                order.push(read);
            }
            order.push(position);
        }
        order.extend(reads.map(|(_, _, read)| read));
        let mut machine = initial;
        let mut invoked_max = 0;
        for position in order {
            let recorded = &self.operations[position];
            if let OperationOutcome::Ok { at, .. } = recorded.outcome
                && at.as_nanos() < invoked_max
            {
                return false; // it returned before an operation placed earlier began
            }
            invoked_max = invoked_max.max(recorded.invoked.as_nanos());
            match (&recorded.operation, &recorded.outcome) {
                (Operation::Command(command), _) => {
                    machine.apply(command.clone(), &ModelApplyContext);
                }
                (
                    Operation::Query { query, .. },
                    OperationOutcome::Ok {
                        answer: Some((result, _)),
                        ..
                    },
                ) => {
                    if machine.query(query.clone()) != *result {
                        return false;
                    }
                }
                _ => return false,
            }
        }
        true
    }

    /// Weak reads at the same log position asking the same query must agree, as
    /// must strong reads: each reflects the committed prefix through its position.
    /// Returns the first disagreement found.
    pub fn check_reads_agree(&self) -> Result<(), String> {
        let mut seen = FxMap::default();
        for (position, recorded) in self.operations.iter().enumerate() {
            let (
                Operation::Query { query, .. },
                OperationOutcome::Ok {
                    answer: Some((result, at)),
                    ..
                },
            ) = (&recorded.operation, &recorded.outcome)
            else {
                continue;
            };
            let key = (at.index().0, at.term().0, query);
            if let Some((earlier, earlier_position)) = seen.get(&key) {
                if *earlier != result {
                    return Err(format!(
                        "reads of {query:?} at log position {at} disagree: operation {earlier_position} saw {earlier:?}, operation {position} saw {result:?}"
                    ));
                }
            } else {
                seen.insert(key, (result, position));
            }
        }
        Ok(())
    }

    /// Weak reads of one client never go back in log position while it reads from
    /// one node incarnation.
    pub fn check_weak_reads_monotonic(
        &self,
        incarnations: &BTreeMap<usize, (u64, u64)>,
    ) -> Result<(), String> {
        let mut last: BTreeMap<(u64, (u64, u64)), Cursor> = BTreeMap::new();
        for (position, recorded) in self.operations.iter().enumerate() {
            let (
                Operation::Query { strong: false, .. },
                OperationOutcome::Ok {
                    answer: Some((_, at)),
                    ..
                },
            ) = (&recorded.operation, &recorded.outcome)
            else {
                continue;
            };
            let Some(incarnation) = incarnations.get(&position) else {
                continue;
            };
            let key = (recorded.client, *incarnation);
            if let Some(previous) = last.get(&key)
                && at.index() < previous.index()
            {
                return Err(format!(
                    "weak reads went back: client {} read at {previous} then at {at} from the same node",
                    recorded.client
                ));
            }
            last.insert(key, *at);
        }
        Ok(())
    }
}

/// A model that checks `M` as its own specification, split by the workload's
/// keys (P-compositionality) when it has them.
pub struct KeyedMachineModel<'w, M: SimMachine> {
    inner: StateMachineModel<M>,
    workload: &'w dyn Workload<M>,
}

impl<'w, M: SimMachine> KeyedMachineModel<'w, M> {
    /// The model of `initial`, partitioned by `workload`'s keys.
    pub fn new(initial: M, workload: &'w dyn Workload<M>) -> Self {
        Self {
            inner: StateMachineModel::new(initial),
            workload,
        }
    }
}

impl<M: SimMachine> Model for KeyedMachineModel<'_, M> {
    type Input = MachineInput<M::Command, M::Query>;
    type Output = MachineOutput<M::QueryResult>;
    type State = M;

    fn init(&self) -> M {
        self.inner.init()
    }

    fn step(&self, state: &M, input: &Self::Input, output: Option<&Self::Output>) -> Option<M> {
        self.inner.step(state, input, output)
    }

    fn is_read_only(&self, input: &Self::Input) -> bool {
        self.inner.is_read_only(input)
    }

    fn explains(&self, state: &M, input: &Self::Input, output: &Self::Output) -> bool {
        self.inner.explains(state, input, output)
    }

    fn partition(&self, history: &History<Self::Input, Self::Output>) -> Vec<Vec<usize>> {
        let mut parts: BTreeMap<Option<u64>, Vec<usize>> = BTreeMap::new();
        for (index, operation) in history.operations.iter().enumerate() {
            let key = match &operation.input {
                MachineInput::Command(command) => self.workload.key_of_command(command),
                MachineInput::Query(query) => self.workload.key_of_query(query),
            };
            parts.entry(key).or_default().push(index);
        }
        // Operations without a key touch everything: then nothing can be split.
        if parts.contains_key(&None) {
            return vec![(0..history.len()).collect()];
        }
        parts.into_values().collect()
    }

    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String {
        self.inner.describe_operation(input, output)
    }

    fn describe_state(&self, state: &M) -> String {
        self.inner.describe_state(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples::{KvCmd, KvQuery, KvStore};
    use crate::log::{Index, Term};

    fn read(history: &mut SimHistory<KvStore>, key: &str, index: u64, value: &str) {
        let query = KvQuery::Get { key: key.into() };
        let position = history.invoke(
            1,
            Operation::Query {
                query,
                strong: false,
            },
            Instant::ZERO,
        );
        let at = Cursor::new(Term(1), Index(index));
        let answer = Some((Some(value.to_owned()), at));
        history.complete(
            position,
            OperationOutcome::Ok {
                at: Instant::ZERO,
                answer,
            },
        );
    }

    #[test]
    fn reads_of_one_key_at_one_position_must_agree() {
        let mut history = SimHistory::default();
        read(&mut history, "a", 3, "x");
        read(&mut history, "b", 3, "y");
        read(&mut history, "a", 4, "z");
        read(&mut history, "a", 3, "x");
        assert_eq!(history.check_reads_agree(), Ok(()));
        read(&mut history, "a", 3, "w");
        let error = history.check_reads_agree().expect_err("a disagreement");
        assert!(
            error.contains("operation 0 saw") && error.contains("operation 4 saw"),
            "{error}"
        );
    }

    /// A put of `key` = `value` invoked at `invoked`, returned at `returned`
    /// (indeterminate if `None`). Returns its place in the history.
    fn put(
        history: &mut SimHistory<KvStore>,
        key: &str,
        value: &str,
        invoked: u64,
        returned: Option<u64>,
    ) -> usize {
        let command = KvCmd::Put {
            key: key.into(),
            value: value.into(),
        };
        let position = history.invoke(1, Operation::Command(command), Instant::from_nanos(invoked));
        let outcome = match returned {
            Some(at) => OperationOutcome::Ok {
                at: Instant::from_nanos(at),
                answer: None,
            },
            None => OperationOutcome::Info {
                at: Instant::from_nanos(invoked + 100),
            },
        };
        history.complete(position, outcome);
        position
    }

    /// A strong read of `key` over `invoked..returned` that saw `value` at
    /// log index `index`.
    fn strong_read(
        history: &mut SimHistory<KvStore>,
        key: &str,
        value: Option<&str>,
        index: u64,
        (invoked, returned): (u64, u64),
    ) {
        let query = KvQuery::Get { key: key.into() };
        let operation = Operation::Query {
            query,
            strong: true,
        };
        let position = history.invoke(2, operation, Instant::from_nanos(invoked));
        let at = Cursor::new(Term(1), Index(index));
        let outcome = OperationOutcome::Ok {
            at: Instant::from_nanos(returned),
            answer: Some((value.map(str::to_owned), at)),
        };
        history.complete(position, outcome);
    }

    #[test]
    fn the_log_order_witnesses_a_linearizable_history() {
        let mut history = SimHistory::default();
        let x = put(&mut history, "a", "x", 0, Some(10));
        strong_read(&mut history, "a", None, 0, (1, 2));
        strong_read(&mut history, "a", Some("x"), 1, (11, 12));
        let y = put(&mut history, "a", "y", 20, Some(30));
        // Concurrent with the put of y, at the position before it.
        strong_read(&mut history, "a", Some("x"), 1, (21, 29));
        strong_read(&mut history, "a", Some("y"), 3, (31, 32));
        // Gave up on, and never applied: it took no effect.
        put(&mut history, "a", "z", 40, None);
        strong_read(&mut history, "a", Some("y"), 3, (50, 51));
        let order = [(Index(1), x), (Index(3), y)];
        assert!(history.linearizes_in_log_order(KvStore::default(), &order));
        // A later copy of a command counts once.
        let order = [(Index(1), x), (Index(3), y), (Index(4), x)];
        assert!(history.linearizes_in_log_order(KvStore::default(), &order));
    }

    #[test]
    fn the_log_order_refuses_what_it_cannot_explain() {
        let base = |history: &mut SimHistory<KvStore>| {
            let x = put(history, "a", "x", 0, Some(10));
            let y = put(history, "a", "y", 20, Some(30));
            vec![(Index(1), x), (Index(2), y)]
        };
        // A stale read: at position 2 it should see y.
        let mut history = SimHistory::default();
        let order = base(&mut history);
        strong_read(&mut history, "a", Some("x"), 2, (31, 32));
        assert!(!history.linearizes_in_log_order(KvStore::default(), &order));
        // Against real time: y's put returned before x's began.
        let mut history = SimHistory::default();
        let x = put(&mut history, "a", "x", 20, Some(30));
        let y = put(&mut history, "a", "y", 0, Some(10));
        let order = [(Index(1), x), (Index(2), y)];
        assert!(!history.linearizes_in_log_order(KvStore::default(), &order));
        // A command its client saw done, missing from the log.
        let mut history = SimHistory::default();
        let order = base(&mut history);
        put(&mut history, "b", "z", 40, Some(50));
        assert!(!history.linearizes_in_log_order(KvStore::default(), &order));
        // A read that names a command as applied.
        let mut history = SimHistory::default();
        base(&mut history);
        strong_read(&mut history, "a", Some("x"), 1, (31, 32));
        let order = [(Index(1), 0), (Index(2), 2)];
        assert!(!history.linearizes_in_log_order(KvStore::default(), &order));
        // Commands listed out of log order.
        let mut history = SimHistory::default();
        let mut order = base(&mut history);
        assert!(history.linearizes_in_log_order(KvStore::default(), &order));
        order.swap(0, 1);
        assert!(!history.linearizes_in_log_order(KvStore::default(), &order));
    }
}
