//! The [`Model`] trait: the sequential specification a history is checked against.

use core::hash::Hash;

use super::history::History;
use super::parse::Value;

/// A sequential specification.
///
/// The checker asks whether the operations of a history can be put in one
/// order, consistent with real time, in which every step is allowed by the
/// model. Implementations must be deterministic: `step` may depend only on its
/// arguments.
///
/// # Examples
///
/// A register that holds one integer:
///
/// ```
/// use quorate::check::model::Model;
///
/// struct Register;
///
/// enum Op { Read, Write(i64) }
///
/// impl Model for Register {
///     type Input = Op;
///     type Output = i64; // what a read returned; ignored for writes
///     type State = i64;
///
///     fn init(&self) -> i64 { 0 }
///
///     fn step(&self, state: &i64, input: &Op, output: Option<&i64>) -> Option<i64> {
///         match (input, output) {
///             (Op::Read, Some(seen)) => (seen == state).then_some(*state),
///             (Op::Read, None) => Some(*state),
///             (Op::Write(value), _) => Some(*value),
///         }
///     }
///
///     fn is_read_only(&self, input: &Op) -> bool { matches!(input, Op::Read) }
///
///     fn describe_operation(&self, input: &Op, output: Option<&i64>) -> String {
///         match (input, output) {
///             (Op::Read, Some(value)) => format!("read -> {value}"),
///             (Op::Read, None) => "read -> ?".to_string(),
///             (Op::Write(value), _) => format!("write {value}"),
///         }
///     }
///
///     fn describe_state(&self, state: &i64) -> String { state.to_string() }
/// }
/// assert_eq!(Register.step(&3, &Op::Read, Some(&3)), Some(3));
/// assert_eq!(Register.step(&3, &Op::Read, Some(&4)), None);
/// ```
pub trait Model {
    /// What a client asks.
    type Input;
    /// What a client is told.
    type Output;
    /// The specification's state. Hashed and compared by the search's cache,
    /// so both should be cheap (share large parts with `Arc`).
    type State: Clone + Eq + Hash;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Applies `input` to `state`. `output` is what the client was told, or
    /// `None` when the operation is indeterminate (the step must then accept
    /// and return the state the operation would leave). Returns the next
    /// state, or `None` when the output cannot be explained from `state`.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// Whether `input` never changes the state. Indeterminate read-only
    /// operations constrain nothing, so the checker drops them.
    fn is_read_only(&self, input: &Self::Input) -> bool {
        let _ = input;
        false
    }

    /// Whether `input`, having returned `output`, leaves every state it is
    /// allowed in unchanged: for every state `s`, `step(s, input, Some(output))`
    /// is `None` or `Some(s)`. The search places such operations greedily
    /// (a large pruning), so a wrong `true` can hide a linearization; the
    /// default is [`is_read_only`](Model::is_read_only).
    fn leaves_state_unchanged(&self, input: &Self::Input, output: &Self::Output) -> bool {
        let _ = output;
        self.is_read_only(input)
    }

    /// Whether an indeterminate operation with `input` may be left out of the
    /// search: whether, wherever it took effect, no output in `returned`
    /// (the inputs and outputs of its part's operations that returned) could
    /// differ. Then a linearization with it exists if and only if one without
    /// it does (and it can go last, as it never returned, so
    /// [`step`](Model::step) with no output must accept it in every state).
    /// Dropping an operation that never took effect spares the search from
    /// trying it at every later step, where a history with many of them
    /// (writes cut off by crashes) grows past any cache. A wrong `true` can
    /// hide a violation; the default is `false`.
    fn unobservable(
        &self,
        input: &Self::Input,
        returned: &[(&Self::Input, &Self::Output)],
    ) -> bool {
        let _ = (input, returned);
        false
    }

    /// Roughly how many bytes `state` takes, with what it owns on the heap:
    /// the search keeps at most
    /// [`SearchOptions::state_bytes_max`](super::SearchOptions::state_bytes_max)
    /// bytes of states. The default counts the value alone, right for states
    /// that own nothing. A model whose states own growing data (strings, maps)
    /// should count it, or a hard history can fill the memory long before the
    /// cache's entry bound stops the search.
    fn state_bytes(&self, state: &Self::State) -> usize {
        let _ = state;
        core::mem::size_of::<Self::State>()
    }

    /// Whether `state` explains `output` for an operation that
    /// [leaves the state unchanged](Model::leaves_state_unchanged): the search
    /// asks this instead of [`step`](Model::step) for such operations, so a
    /// model whose states are costly to copy can answer without building the
    /// (identical) next state. The default asks `step`.
    fn explains(&self, state: &Self::State, input: &Self::Input, output: &Self::Output) -> bool {
        self.step(state, input, Some(output)).is_some()
    }

    /// Splits a history into independent sub-histories (Horn and Kroening's
    /// P-compositionality: for example one per key of a key-value store). The
    /// history is linearizable if and only if every part is. Each part lists
    /// indexes into `history.operations`; together the parts must cover every
    /// index exactly once. The default is one part holding everything.
    fn partition(&self, history: &History<Self::Input, Self::Output>) -> Vec<Vec<usize>> {
        vec![(0..history.len()).collect()]
    }

    /// A short human-readable form of an operation, for reports.
    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String;

    /// A short human-readable form of a state, for reports.
    fn describe_state(&self, state: &Self::State) -> String;

    /// The operation as a Jepsen event pair, for EDN export. The default
    /// exports the description as the value of an `:op` operation.
    fn jepsen_operation(
        &self,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> JepsenOperation {
        JepsenOperation {
            f: "op".to_string(),
            key: None,
            invoke_value: Value::Str(self.describe_operation(input, None)),
            complete_value: Value::Str(self.describe_operation(input, output)),
            failed: false,
        }
    }
}

/// An operation in Jepsen's terms, as written by the EDN exporter.
#[derive(Debug, Clone, PartialEq)]
pub struct JepsenOperation {
    /// The function (`:f`), without the colon.
    pub f: String,
    /// The key (`:key`), for keyed models.
    pub key: Option<Value>,
    /// The `:value` of the invocation.
    pub invoke_value: Value,
    /// The `:value` of the completion.
    pub complete_value: Value,
    /// Whether the completion is a `:fail` that the model explains (a
    /// compare-and-set that found another value) rather than an `:ok`.
    pub failed: bool,
}
