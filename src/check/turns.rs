//! Partitions take turns: how [`check`](super::check) and
//! [`check_parallel`](super::check_parallel) search many partitions at once
//! and still report the same thing in every run.
//!
//! A history fails if one partition fails, and some partitions may take
//! far longer to search than others, or never end at all (Porcupine's kv
//! `c50-bad` has partitions that neither checker decides in minutes, beside
//! others that fail within a millisecond). So no partition is searched to
//! the end before the others have had a turn: each first gets
//! [`FIRST_TURN_STEPS`] steps, and every later turn goes a quarter further
//! than the last. A turn that ends past the failure found overshoots it by at
//! most that quarter; with turns of twice the last, Porcupine's kv `c50-bad`
//! (whose quickest failure takes 8,561 steps) searched every partition to
//! 16,384 steps first.
//!
//! The failure reported is the one found in the fewest search steps, the
//! lowest partition among equals. A search's steps depend only on its
//! partition, so that failure is the same whatever the order of turns or
//! the number of threads. Once a failure is known, no search goes further
//! than its steps: a later failure could not be the one reported. Every
//! partition is searched at least that far, and each outcome decided within
//! it is kept; the rest read `Unknown { reason: Stopped }`.
//!
//! A thread's paused searches keep their caches. If together they hold more
//! than one search may ([`SearchOptions`](super::SearchOptions)), they are
//! dropped and their partitions searched again from the start, one at a
//! time. Checked between turns, this keeps a thread's memory within twice
//! the bounds of one search.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::CheckOptions;
use super::history::History;
use super::model::Model;
use super::search::{PartitionOutcome, PartitionSearch, UnknownReason};

/// Steps a partition's search takes in its first turn.
pub const FIRST_TURN_STEPS: u64 = 1 << 12;

/// Steps a search left alone takes between looks at the fewest steps of a
/// failure found on another thread.
const LONE_TURN_STEPS: u64 = 1 << 16;

/// What the threads share: the fewest steps of a failure found so far, and
/// each partition's outcome with the steps it took.
struct Shared {
    fewest_failing_steps: AtomicU64,
    results: Vec<Mutex<Option<(PartitionOutcome, u64)>>>,
}

impl Shared {
    fn fewest_failing_steps(&self) -> u64 {
        self.fewest_failing_steps.load(Ordering::Relaxed)
    }

    fn record(&self, index: usize, outcome: PartitionOutcome, steps: u64) {
        if matches!(outcome, PartitionOutcome::NotLinearizable { .. }) {
            self.fewest_failing_steps
                .fetch_min(steps, Ordering::Relaxed);
        }
        if let Ok(mut slot) = self.results[index].lock() {
            *slot = Some((outcome, steps));
        }
    }

    fn new(partitions: usize) -> Self {
        Self {
            fewest_failing_steps: AtomicU64::new(u64::MAX),
            results: (0..partitions).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Each partition's outcome, in partition order, once every thread is done.
    fn outcomes(self) -> Vec<PartitionOutcome> {
        let fewest = self.fewest_failing_steps();
        self.results
            .into_iter()
            .map(|slot| match slot.into_inner().ok().flatten() {
                // Decided within the steps of the failure reported: every run
                // searches this far, so every run decides it alike.
                Some((outcome, steps)) if steps <= fewest => outcome,
                _ => PartitionOutcome::Unknown {
                    reason: UnknownReason::Stopped,
                },
            })
            .collect()
    }
}

/// Searches `parts` of `history` on this thread alone; returns each
/// partition's outcome, in partition order.
pub(super) fn check_partitions_here<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    parts: &[Vec<usize>],
    options: &CheckOptions,
    should_stop: &dyn Fn() -> bool,
) -> Vec<PartitionOutcome> {
    let shared = Shared::new(parts.len());
    let all: Vec<usize> = (0..parts.len()).collect();
    take_turns(model, history, parts, &all, options, &shared, should_stop);
    shared.outcomes()
}

/// Searches `parts` of `history` on up to `threads` threads; returns what
/// [`check_partitions_here`] does.
pub(super) fn check_partitions<M>(
    model: &M,
    history: &History<M::Input, M::Output>,
    parts: &[Vec<usize>],
    options: &CheckOptions,
    threads: usize,
    should_stop: &(dyn Fn() -> bool + Sync),
) -> Vec<PartitionOutcome>
where
    M: Model + Sync,
    M::Input: Sync,
    M::Output: Sync,
{
    let threads = threads.min(parts.len());
    if threads <= 1 {
        return check_partitions_here(model, history, parts, options, should_stop);
    }
    let shared = Shared::new(parts.len());
    // Thread `t` owns the partitions `t`, `t + threads`, ...: searches hold
    // states a model may keep in `Rc`s, so they never change threads.
    let work = |thread: usize| {
        let owned: Vec<usize> = (thread..parts.len()).step_by(threads).collect();
        take_turns(model, history, parts, &owned, options, &shared, should_stop);
    };
    std::thread::scope(|scope| {
        for thread in 1..threads {
            scope.spawn(move || work(thread));
        }
        work(0);
    });
    shared.outcomes()
}

/// One thread's share: the partitions `owned` take turns until each is
/// decided or has gone past the fewest steps of a failure found.
fn take_turns<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    parts: &[Vec<usize>],
    owned: &[usize],
    options: &CheckOptions,
    shared: &Shared,
    should_stop: &dyn Fn() -> bool,
) {
    // Runs `search` on to `limit` steps, but never past a failure found:
    // returns true once it is done with (decided, or past that failure).
    let turn = |index: usize, search: &mut PartitionSearch<'_, M>, limit: u64| -> bool {
        let fewest = shared.fewest_failing_steps();
        if let Some(outcome) = search.run_until(limit.min(fewest.saturating_add(1)), should_stop) {
            shared.record(index, outcome, search.steps());
            return true;
        }
        search.steps() > shared.fewest_failing_steps()
    };
    let mut paused: Vec<(usize, PartitionSearch<'_, M>)> = Vec::new();
    for &index in owned {
        let mut search = PartitionSearch::new(model, history, &parts[index], options.search);
        if !turn(index, &mut search, FIRST_TURN_STEPS) {
            paused.push((index, search));
        }
    }
    let mut limit = FIRST_TURN_STEPS;
    while paused.len() > 1 {
        let held: usize = paused
            .iter()
            .map(|(_, search)| search.cache_entries())
            .sum();
        let bytes: usize = paused.iter().map(|(_, search)| search.state_bytes()).sum();
        let cache_bytes: usize = paused.iter().map(|(_, search)| search.cache_bytes()).sum();
        if held > options.search.cache_entries_max
            || bytes > options.search.state_bytes_max
            || cache_bytes > options.search.cache_bytes_max
        {
            // Too much memory held at once: start again, one at a time.
            let restart: Vec<usize> = paused.drain(..).map(|(index, _)| index).collect();
            for index in restart {
                let search = PartitionSearch::new(model, history, &parts[index], options.search);
                alone(index, search, &turn);
            }
            return;
        }
        limit = limit.saturating_add(limit / 4);
        paused.retain_mut(|(index, search)| !turn(*index, search, limit));
    }
    if let Some((index, search)) = paused.pop() {
        alone(index, search, &turn);
    }
}

/// Runs a search with no other to take turns with, in turns of
/// [`LONE_TURN_STEPS`] so that a failure found on another thread stops it.
fn alone<'h, M: Model>(
    index: usize,
    mut search: PartitionSearch<'h, M>,
    turn: &dyn Fn(usize, &mut PartitionSearch<'h, M>, u64) -> bool,
) {
    loop {
        let limit = search.steps().saturating_add(LONE_TURN_STEPS);
        if turn(index, &mut search, limit) {
            return;
        }
    }
}
