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
//! * [`parse`]: readers for Jepsen logs, EDN and quorate's JSON lines.
//! * [`edn`] and [`html`]: writers.
//! * [`cli`]: the `quorate check` subcommand.
//!
//! Partitions (Horn and Kroening's P-compositionality: a kv history splits by
//! key) are checked independently. [`check`] runs them one after another;
//! [`check_parallel`] spreads them over threads and reports the same verdict
//! (see its docs for why that is deterministic).
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

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    /// Each partition's outcome, in partition order. A partition cancelled
    /// because an earlier one failed reads `Unknown { reason: Stopped }`.
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
/// failing partition wins; otherwise the first undecided one; otherwise
/// linearizable.
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

/// Checks `history` against `model`, one partition after another, stopping
/// at the first partition that is not linearizable.
pub fn check<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    options: &CheckOptions,
    should_stop: &dyn Fn() -> bool,
) -> Report {
    let parts = partitions(model, history, options.partition);
    let mut outcomes = Vec::with_capacity(parts.len());
    let mut failed = false;
    for part in &parts {
        let outcome = if failed {
            PartitionOutcome::Unknown {
                reason: UnknownReason::Stopped,
            }
        } else {
            search::check_operations(model, history, part, options.search, should_stop)
        };
        failed |= matches!(outcome, PartitionOutcome::NotLinearizable { .. });
        outcomes.push(outcome);
    }
    Report {
        verdict: verdict(&outcomes),
        partitions: parts,
        outcomes,
    }
}

/// Operations the calling thread of [`check_parallel`] checks on its own
/// before it starts helper threads. Starting a thread costs tens of
/// microseconds, as much as searching a few hundred operations: Porcupine's kv
/// histories, split by key, ran 2.5x slower on two threads than on one.
pub const PARALLEL_AFTER_OPERATIONS: usize = 2_000;

/// Like [`check`], with the partitions spread over up to `threads` scoped
/// threads where that pays: the calling thread checks partitions in order
/// and starts the others only once the work shows itself big enough (the
/// partitions it has finished hold [`PARALLEL_AFTER_OPERATIONS`] operations,
/// or one partition's search has run a few thousand steps). Small histories
/// thus never start a thread, and none are started for a single partition or
/// `threads <= 1`.
///
/// # Determinism
///
/// Each partition's search is a pure function of its operations. Threads take
/// partitions from a shared counter and write each outcome to that
/// partition's slot, so outcomes are reported in partition order whatever the
/// schedule. When partition `i` fails, only partitions after `i` are
/// cancelled; every partition before it runs to completion, so the failing
/// partition reported (the first) is the same as [`check`]'s. Only the
/// caller's `should_stop` (a wall-clock deadline) can make runs differ.
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
    if threads <= 1 || parts.len() <= 1 {
        return check(model, history, options, should_stop);
    }
    let next = AtomicUsize::new(0);
    let first_failed = AtomicUsize::new(usize::MAX);
    let slots: Vec<Mutex<Option<PartitionOutcome>>> =
        parts.iter().map(|_| Mutex::new(None)).collect();
    // Checks the next partition not yet taken, calling `on_poll` whenever the
    // search polls its stop condition; returns how many operations it
    // searched (none for a cancelled one), or `None` when none is left.
    let check_next = |on_poll: &dyn Fn()| -> Option<usize> {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let part = parts.get(index)?;
        let cancelled = || first_failed.load(Ordering::Relaxed) < index;
        let (outcome, searched) = if cancelled() {
            let stopped = PartitionOutcome::Unknown {
                reason: UnknownReason::Stopped,
            };
            (stopped, 0)
        } else {
            let stop = || {
                on_poll();
                should_stop() || cancelled()
            };
            let outcome = search::check_operations(model, history, part, options.search, &stop);
            (outcome, part.len())
        };
        if matches!(outcome, PartitionOutcome::NotLinearizable { .. }) {
            first_failed.fetch_min(index, Ordering::Relaxed);
        }
        if let Ok(mut slot) = slots[index].lock() {
            *slot = Some(outcome);
        }
        Some(searched)
    };
    let help = || while check_next(&|| {}).is_some() {};
    std::thread::scope(|scope| {
        let started = Cell::new(false);
        let start_helpers = || {
            if !started.replace(true) {
                for _ in 1..threads.min(parts.len()) {
                    scope.spawn(help);
                }
            }
        };
        let mut checked = 0;
        while let Some(searched) = check_next(&start_helpers) {
            checked += searched;
            if checked >= PARALLEL_AFTER_OPERATIONS {
                start_helpers();
            }
        }
    });
    let outcomes: Vec<PartitionOutcome> = slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .ok()
                .flatten()
                .unwrap_or(PartitionOutcome::Unknown {
                    reason: UnknownReason::Stopped,
                })
        })
        .collect();
    Report {
        verdict: verdict(&outcomes),
        partitions: parts,
        outcomes,
    }
}
