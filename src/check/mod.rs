//! Linearizability checking of recorded histories.
//!
//! A [`history::History`] of operations is checked against a
//! [`model::Model`], a sequential specification: is there one order
//! of the operations, consistent with real time, that the model allows?
//!
//! * [`history`]: operations with a client, input, call time and outcome
//!   (returned with an output, definitely failed, or indeterminate).
//! * [`model`]: the `Model` trait.
//! * [`models`]: built-in models (compare-and-set register, key-value store,
//!   counter) and [`StateMachineModel`](models::StateMachineModel), which
//!   makes any `StateMachine` its own specification.
//! * [`search`]: Wing and Gong's search with Lowe's memoization.
//! * [`turns`]: how partitions take turns, and which failure is reported.
//! * [`parse`]: readers for Jepsen logs, EDN and quorate's JSON lines.
//! * [`edn`] and [`html`]: writers.
//! * [`cli`]: the `quorate check` subcommand.
//!
//! Partitions (Horn and Kroening's P-compositionality: a kv history splits by
//! key) are checked independently, taking turns ([`turns`]) so that a quick
//! failure is not kept waiting behind a partition that takes long. [`check`]
//! runs them on one thread; [`check_parallel`] spreads them over threads and
//! reports the same (see [`turns`] for why that is deterministic).
//!
//! Nothing here reads a clock: a deadline reaches the search as a caller's
//! `should_stop` closure.
//!
//! # Examples
//!
//! ```
//! use quorate::check::history::{History, Operation, Outcome};
//! use quorate::check::models::{CasRegister, RegisterInput, RegisterOutput};
//! use quorate::check::{check, CheckOptions, Verdict};
//!
//! let mut history = History::new();
//! // Client 0 writes 1 over [0, 10]; client 1 reads 1 over [5, 6].
//! history.push(Operation { client: 0, input: RegisterInput::Write(1), call: 0,
//!     outcome: Outcome::Returned { time: 10, output: RegisterOutput::Ok } });
//! history.push(Operation { client: 1, input: RegisterInput::Read, call: 5,
//!     outcome: Outcome::Returned { time: 6, output: RegisterOutput::Value(Some(1)) } });
//! let report = check(&CasRegister, &history, &CheckOptions::default(), &|| false);
//! assert_eq!(report.verdict, Verdict::Linearizable);
//! ```

pub mod cli;
pub mod edn;
pub mod history;
pub mod html;
pub mod model;
pub mod models;
pub mod parse;
pub mod search;
#[cfg(test)]
mod tests;
pub mod turns;

use history::History;
use model::Model;
pub use search::{PartitionOutcome, SearchOptions, UnknownReason};

/// Options of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    /// Split the history with [`Model::partition`] (true) or check it whole.
    pub partition: bool,
    /// Limits of each partition's search.
    pub search: SearchOptions,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            partition: true,
            search: SearchOptions::default(),
        }
    }
}

/// The verdict on a whole history.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Every partition is linearizable.
    Linearizable,
    /// Some partition is not; the first such partition (in partition order).
    NotLinearizable {
        /// The index of the partition in [`Report::partitions`].
        partition: usize,
        /// The operation (index into the history) that cannot be placed.
        op: usize,
        /// The longest linearizable prefix found in that partition
        /// (indexes into the history).
        prefix: Vec<usize>,
    },
    /// No partition is known to fail, but some search gave up.
    Unknown {
        /// Why the first undecided partition gave up.
        reason: UnknownReason,
    },
}

/// The verdict and the details behind it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// The partitions, as lists of indexes into the history.
    pub partitions: Vec<Vec<usize>>,
    /// Each partition's outcome, in partition order. A partition whose
    /// search was stopped because another partition's failure was found in
    /// fewer steps (see [`turns`]) reads `Unknown { reason: Stopped }`.
    pub outcomes: Vec<PartitionOutcome>,
}

/// The partitions of `history`: [`Model::partition`] if `partition` is set,
/// else one part with every operation. Parts are sanitized: indexes out of
/// range or repeated are dropped, and operations no part names are added as
/// one more part, so a wrong `partition` cannot hide an operation.
pub fn partitions<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    partition: bool,
) -> Vec<Vec<usize>> {
    let all = || vec![(0..history.len()).collect::<Vec<_>>()];
    if !partition {
        return all();
    }
    let mut seen = vec![false; history.len()];
    let mut parts: Vec<Vec<usize>> = Vec::new();
    for part in model.partition(history) {
        let part: Vec<usize> = part
            .into_iter()
            .filter(|&index| index < seen.len() && !std::mem::replace(&mut seen[index], true))
            .collect();
        if !part.is_empty() {
            parts.push(part);
        }
    }
    let missing: Vec<usize> = (0..history.len()).filter(|&index| !seen[index]).collect();
    if !missing.is_empty() {
        parts.push(missing);
    }
    if parts.is_empty() { all() } else { parts }
}

/// Combines partition outcomes (in partition order) into a verdict: the first
/// failing partition wins (after [`check`], every failing partition left
/// failed in the same fewest steps); otherwise the first undecided one;
/// otherwise linearizable.
pub fn verdict(outcomes: &[PartitionOutcome]) -> Verdict {
    for (partition, outcome) in outcomes.iter().enumerate() {
        if let PartitionOutcome::NotLinearizable { op, prefix } = outcome {
            return Verdict::NotLinearizable {
                partition,
                op: *op,
                prefix: prefix.clone(),
            };
        }
    }
    for outcome in outcomes {
        if let PartitionOutcome::Unknown { reason } = outcome {
            return Verdict::Unknown { reason: *reason };
        }
    }
    Verdict::Linearizable
}

/// Checks `history` against `model` on this thread alone. Partitions take
/// turns (see [`turns`]): if more than one fails, the failure reported is
/// the one the search finds in the fewest steps (the lowest partition among
/// equals), and partitions that could not beat it are left undecided.
pub fn check<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    options: &CheckOptions,
    should_stop: &dyn Fn() -> bool,
) -> Report {
    let parts = partitions(model, history, options.partition);
    // One thread: nothing is shared, so the model need not be `Sync`.
    let outcomes = turns::check_partitions_here(model, history, &parts, options, should_stop);
    Report {
        verdict: verdict(&outcomes),
        partitions: parts,
        outcomes,
    }
}

/// Operations a history must hold before [`check_parallel`] starts threads:
/// starting one costs tens of microseconds, as much as searching a few
/// hundred operations. Porcupine's kv histories with 10 clients (under 500
/// operations, split by key) took 0.44-0.48 ms on two threads against
/// 0.17-0.22 ms on one.
pub const PARALLEL_FROM_OPERATIONS: usize = 1_000;

/// Like [`check`], with the partitions spread over up to `threads` threads
/// when the history holds at least [`PARALLEL_FROM_OPERATIONS`] operations
/// (none are started for a single partition or `threads <= 1`).
///
/// # Determinism
///
/// The report is [`check`]'s, whatever the number of threads and their
/// schedule: the failure reported is fixed by the steps each partition's
/// search takes, which depend on nothing but the partition (see [`turns`]).
/// Only the caller's `should_stop` (a wall-clock deadline) can make runs
/// differ.
pub fn check_parallel<M>(
    model: &M,
    history: &History<M::Input, M::Output>,
    options: &CheckOptions,
    threads: usize,
    should_stop: &(dyn Fn() -> bool + Sync),
) -> Report
where
    M: Model + Sync,
    M::Input: Sync,
    M::Output: Sync,
{
    let parts = partitions(model, history, options.partition);
    let threads = if history.len() < PARALLEL_FROM_OPERATIONS {
        1
    } else {
        threads
    };
    let outcomes = turns::check_partitions(model, history, &parts, options, threads, should_stop);
    Report {
        verdict: verdict(&outcomes),
        partitions: parts,
        outcomes,
    }
}
