//! Recorded histories: what each client asked, when, and what it was told.
//!
//! A [`History`] is a list of [`Operation`]s. Each has a client, an input, a
//! call time and an [`Outcome`]. Times are logical: any totally ordered `u64`
//! works (line numbers of a log, virtual nanoseconds of a simulation). Two
//! operations whose intervals touch (one returns at the very time the other is
//! called) count as concurrent.

/// A logical instant. Only the order of times matters to the checker.
pub type Time = u64;

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome<O> {
    /// The operation completed at `time` with `output`. This includes
    /// failures that are themselves observations, such as a compare-and-set
    /// that found another value: the model must explain the output.
    Returned {
        /// When the client learned the result.
        time: Time,
        /// What the client was told.
        output: O,
    },
    /// The operation definitely did not take effect (a definite failure). The
    /// checker drops it: it neither changed the state nor observed it.
    Failed {
        /// When the client learned of the failure.
        time: Time,
    },
    /// The client never learned the result (timed out or crashed). The
    /// operation may have taken effect at any point after its call, or never;
    /// the checker treats its return time as +infinity.
    Indeterminate {
        /// When the client gave up, if known (for display only).
        time: Option<Time>,
    },
}

impl<O> Outcome<O> {
    /// The output, if the operation returned one.
    pub fn output(&self) -> Option<&O> {
        match self {
            Self::Returned { output, .. } => Some(output),
            Self::Failed { .. } | Self::Indeterminate { .. } => None,
        }
    }

    /// The time the operation ended, if it ended at a known time (the time of
    /// an indeterminate operation is reported but not trusted).
    pub fn end_time(&self) -> Option<Time> {
        match self {
            Self::Returned { time, .. } | Self::Failed { time } => Some(*time),
            Self::Indeterminate { time } => *time,
        }
    }
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Operation<I, O> {
    /// The client (Jepsen: process) that issued it.
    pub client: u64,
    /// What was asked.
    pub input: I,
    /// When it was called.
    pub call: Time,
    /// How it ended.
    pub outcome: Outcome<O>,
}

/// A recorded history of operations.
///
/// # Examples
///
/// ```
/// use quorate::check::history::{History, Operation, Outcome};
///
/// let mut history = History::new();
/// history.push(Operation { client: 0, input: "write 1", call: 0, outcome: Outcome::Returned { time: 2, output: () } });
/// history.push(Operation { client: 1, input: "write 2", call: 1, outcome: Outcome::Indeterminate { time: None } });
/// assert_eq!(history.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct History<I, O> {
    /// The operations, in no particular order (usually by call time).
    pub operations: Vec<Operation<I, O>>,
}

impl<I, O> Default for History<I, O> {
    fn default() -> Self {
        Self {
            operations: Vec::new(),
        }
    }
}

impl<I, O> History<I, O> {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an operation.
    pub fn push(&mut self, operation: Operation<I, O>) {
        self.operations.push(operation);
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether there are no operations.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}
