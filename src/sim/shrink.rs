//! Shrinking: from a failing scenario to a minimal one that fails the same check.
//!
//! Delta debugging over the scenario's parts, cheapest wins first: a shorter
//! run, fewer nodes and clients, then the faults and the client operations by
//! `ddmin` (remove chunks, halving the chunk size when no chunk can go), then
//! milder network faults, then the fuzzer tape. Every candidate is a whole run;
//! a candidate is kept when it fails the *same* check (a shrink that turns a
//! linearizability failure into a liveness failure is a different bug).
//!
//! A liveness failure is a special case: a shorter run, or one with a fault
//! less, can fail liveness only because its group is slow to converge within
//! the quiet period, which says nothing of the original. So if the original is
//! stuck (it fails liveness with a much longer quiet period too,
//! [`second_look_quiet_period`]), a candidate is kept only if it is stuck as
//! well: if it fails liveness with that same longer quiet period.
//!
//! Shrinking is deterministic: the same scenario gives the same minimal scenario,
//! since every run is deterministic and the candidates are tried in a fixed
//! order. A budget of runs bounds the time it takes.

use core::time::Duration;

use super::LIVENESS;
use super::config::second_look_quiet_period;
use super::faults::{FaultAction, ScheduledFault, Target};
use super::scenario::Scenario;
use super::seconds;

/// What shrinking did.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// The smallest failing scenario found.
    pub scenario: Scenario,
    /// One line per accepted reduction, in order.
    pub steps: Vec<String>,
    /// How many runs it took.
    pub runs: usize,
    /// Whether the run budget ran out before no reduction was left.
    pub budget_exhausted: bool,
    /// For a liveness failure: whether the original is stuck (it fails with
    /// a much longer quiet period too), so that every reduction kept is.
    /// `None` for other checks.
    pub stuck: Option<bool>,
}

/// How a run failed: its first failed check, and when, if the check fired
/// during the run (safety) rather than at its end (liveness, linearizability).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check's name.
    pub check: String,
    /// When it fired, from the start of the run.
    pub at: Option<Duration>,
}

/// Shrinks `failing`, which fails check `check` when run by `run`. `run`
/// returns how a scenario's run failed, or `None` if it passed. At most
/// `runs_max` runs.
pub fn shrink(
    failing: Scenario,
    check: &str,
    runs_max: usize,
    run: &mut dyn FnMut(&Scenario) -> Option<Failure>,
) -> Shrunk {
    let longer_quiet = second_look_quiet_period(failing.quiet_period);
    let mut shrinker = Shrinker {
        best: failing,
        check: check.to_owned(),
        stuck: None,
        longer_quiet,
        failed_at: None,
        steps: Vec::new(),
        runs: 0,
        runs_max,
        run,
    };
    // The failing run once more, for when it fails: a run stops at its first
    // safety violation, so what comes after it can go at once.
    shrinker.runs += 1;
    shrinker.failed_at = (shrinker.run)(&shrinker.best)
        .filter(|failure| failure.check == check)
        .and_then(|failure| failure.at);
    if check == LIVENESS {
        let original = shrinker.best.clone();
        shrinker.stuck = Some(shrinker.fails_with_longer_quiet(&original));
    }
    shrinker.cut_after_failure();
    loop {
        let before = shrinker.steps.len();
        shrinker.shorten();
        shrinker.fewer_nodes();
        shrinker.fewer_clients();
        shrinker.fewer_faults();
        shrinker.fewer_operations();
        shrinker.milder_network();
        shrinker.less_tape();
        if shrinker.steps.len() == before || shrinker.exhausted() {
            break;
        }
    }
    Shrunk {
        stuck: shrinker.stuck,
        budget_exhausted: shrinker.exhausted(),
        scenario: shrinker.best,
        steps: shrinker.steps,
        runs: shrinker.runs,
    }
}

struct Shrinker<'a> {
    best: Scenario,
    check: String,
    /// Whether the original fails liveness even with a much longer quiet
    /// period, so candidates must too (`None` for other checks).
    stuck: Option<bool>,
    /// That longer quiet period: the original's second look, the same for
    /// every candidate (one whose own quiet period was halved is not let off
    /// with a shorter one).
    longer_quiet: Duration,
    /// When the best scenario's run fails, if during the run.
    failed_at: Option<Duration>,
    steps: Vec<String>,
    runs: usize,
    runs_max: usize,
    run: &'a mut dyn FnMut(&Scenario) -> Option<Failure>,
}

impl Shrinker<'_> {
    fn exhausted(&self) -> bool {
        self.runs >= self.runs_max
    }

    /// Runs `candidate`; keeps it (and logs `step`) if it fails the same check.
    fn try_candidate(&mut self, candidate: Scenario, step: impl FnOnce() -> String) -> bool {
        if self.exhausted() || candidate == self.best || candidate.validate().is_err() {
            return false;
        }
        self.runs += 1;
        match (self.run)(&candidate) {
            Some(failure)
                if failure.check == self.check
                    && (self.stuck != Some(true) || self.fails_with_longer_quiet(&candidate)) =>
            {
                self.steps.push(step());
                self.best = candidate;
                self.failed_at = failure.at;
                true
            }
            _ => false,
        }
    }

    /// Whether `scenario` still fails liveness with the original's much
    /// longer quiet period (one run more).
    fn fails_with_longer_quiet(&mut self, scenario: &Scenario) -> bool {
        let longer = Scenario {
            quiet_period: self.longer_quiet,
            ..scenario.clone()
        };
        self.runs += 1;
        (self.run)(&longer).is_some_and(|failure| failure.check == LIVENESS)
    }

    /// Ends the run just after its failure, with a short quiet period: the
    /// run stops there, so later faults and operations never mattered.
    fn cut_after_failure(&mut self) {
        let Some(at) = self.failed_at else {
            return;
        };
        let cut = at + Duration::from_millis(1);
        let (duration, quiet) = (self.best.duration, self.best.quiet_period);
        let mut candidate = self.best.clone();
        if cut < duration {
            cut_at(&mut candidate, cut);
        }
        candidate.quiet_period = quiet.min(Duration::from_secs(1));
        self.try_candidate(candidate, || {
            format!(
                "cut after the failure at {}: duration {} -> {}, quiet period {} -> {}",
                seconds::format(at),
                seconds::format(duration),
                seconds::format(cut.min(duration)),
                seconds::format(quiet),
                seconds::format(quiet.min(Duration::from_secs(1)))
            )
        });
    }

    /// A shorter run: the faults and operations past the new end go with it.
    fn shorten(&mut self) {
        self.cut_after_failure();
        loop {
            let duration = self.best.duration;
            let shorter = [1, 2, 4, 6].into_iter().find_map(|eighths| {
                let cut = duration * eighths / 8;
                (cut >= Duration::from_millis(100)).then_some(cut)?;
                let mut candidate = self.best.clone();
                cut_at(&mut candidate, cut);
                self.try_candidate(candidate, || {
                    format!(
                        "duration {} -> {}",
                        seconds::format(duration),
                        seconds::format(cut)
                    )
                })
                .then_some(())
            });
            if shorter.is_none() {
                break;
            }
        }
        let quiet = self.best.quiet_period;
        let half = quiet / 2;
        if half >= Duration::from_secs(1) {
            let mut candidate = self.best.clone();
            candidate.quiet_period = half;
            self.try_candidate(candidate, || {
                format!(
                    "quiet period {} -> {}",
                    seconds::format(quiet),
                    seconds::format(half)
                )
            });
        }
    }

    /// Fewer nodes, down to 3 (Raft's smallest group with a real quorum).
    fn fewer_nodes(&mut self) {
        while self.best.nodes > 3 {
            let nodes = self.best.nodes;
            let fewer = (nodes - 2).max(3);
            let mut candidate = self.best.clone();
            candidate.nodes = fewer;
            candidate
                .faults
                .retain(|fault| node_of(&fault.action).is_none_or(|node| node.0 <= fewer));
            if candidate
                .mismatch
                .is_some_and(|mismatch| mismatch.node.0 > fewer)
            {
                candidate.mismatch = None;
            }
            if !self.try_candidate(candidate, || format!("nodes {nodes} -> {fewer}")) {
                break;
            }
        }
    }

    /// Fewer clients: the operations of the last clients go; then each
    /// remaining client's operations, one client at a time.
    fn fewer_clients(&mut self) {
        self.halve_clients();
        for client in (1..=self.best.clients).rev() {
            if !self.best.operations.iter().any(|op| op.client == client) {
                continue;
            }
            let mut candidate = self.best.clone();
            candidate
                .operations
                .retain(|operation| operation.client != client);
            let before = self.best.operations.len();
            let left = candidate.operations.len();
            self.try_candidate(candidate, || {
                format!("operations {before} -> {left} (all of client {client}'s)")
            });
        }
    }

    fn halve_clients(&mut self) {
        while self.best.clients > 1 {
            let clients = self.best.clients;
            let fewer = clients / 2;
            let mut candidate = self.best.clone();
            candidate.clients = fewer;
            candidate
                .operations
                .retain(|operation| operation.client <= fewer);
            if !self.try_candidate(candidate, || format!("clients {clients} -> {fewer}")) {
                break;
            }
        }
    }

    fn fewer_faults(&mut self) {
        let faults = self.best.faults.clone();
        let kept = self.ddmin(faults, "faults", |scenario, faults| {
            scenario.faults = faults;
        });
        self.best.faults = kept;
        if self.best.mismatch.is_some() {
            let mut candidate = self.best.clone();
            candidate.mismatch = None;
            self.try_candidate(candidate, || "removed the GroupId mismatch".into());
        }
    }

    fn fewer_operations(&mut self) {
        let operations = self.best.operations.clone();
        let kept = self.ddmin(operations, "operations", |scenario, operations| {
            scenario.operations = operations;
        });
        self.best.operations = kept;
    }

    /// Each network fault switched off, then smaller latency spikes.
    fn milder_network(&mut self) {
        type Rate = fn(&mut super::NetworkFaults) -> &mut u32;
        let rates: [(&str, Rate); 5] = [
            ("loss", |network| &mut network.loss),
            ("duplication", |network| &mut network.duplication),
            ("corruption", |network| &mut network.corruption),
            ("latency spikes", |network| &mut network.spike),
            ("reordering", |network| &mut network.reordering),
        ];
        for (name, rate) in rates {
            let mut candidate = self.best.clone();
            let value = rate(&mut candidate.network);
            if *value == 0 {
                continue;
            }
            let before = *value;
            *value = 0;
            self.try_candidate(candidate, || format!("{name} {before} ppm -> 0"));
        }
        while self.best.network.spike > 0
            && self.best.network.spike_latency >= Duration::from_millis(20)
        {
            let latency = self.best.network.spike_latency;
            let mut candidate = self.best.clone();
            candidate.network.spike_latency = latency / 2;
            if !self.try_candidate(candidate, || {
                format!(
                    "spike latency {} -> {}",
                    seconds::format(latency),
                    seconds::format(latency / 2)
                )
            }) {
                break;
            }
        }
    }

    /// The fuzzer tape: none at all, else the shortest prefix that still fails.
    fn less_tape(&mut self) {
        if self.best.tape.is_none() {
            return;
        }
        let mut candidate = self.best.clone();
        candidate.tape = None;
        if self.try_candidate(candidate, || "removed the fuzzer tape".into()) {
            return;
        }
        while let Some(tape) = self.best.tape.clone() {
            // Hex digits in pairs: keep the first half of the bytes.
            let half = tape.len() / 4 * 2;
            if half == 0 {
                break;
            }
            let mut candidate = self.best.clone();
            candidate.tape = Some(tape[..half].to_owned());
            let bytes = tape.len() / 2;
            if !self.try_candidate(candidate, || {
                format!("fuzzer tape {bytes} -> {} bytes", half / 2)
            }) {
                break;
            }
        }
    }

    /// Zeller's ddmin over `items`: removes chunks while the run still fails,
    /// halving the chunk size when no chunk can go. Returns what is left.
    fn ddmin<T: Clone>(
        &mut self,
        mut items: Vec<T>,
        name: &str,
        set: impl Fn(&mut Scenario, Vec<T>),
    ) -> Vec<T> {
        let mut chunks = 2usize;
        while !items.is_empty() && !self.exhausted() {
            let size = items.len().div_ceil(chunks);
            let mut removed_any = false;
            let mut start = 0;
            while start < items.len() && !self.exhausted() {
                let end = (start + size).min(items.len());
                let mut rest = items[..start].to_vec();
                rest.extend_from_slice(&items[end..]);
                let mut candidate = self.best.clone();
                set(&mut candidate, rest.clone());
                let (before, left) = (items.len(), rest.len());
                if self.try_candidate(candidate, || format!("{name} {before} -> {left}")) {
                    items = rest;
                    removed_any = true;
                } else {
                    start = end;
                }
            }
            if removed_any {
                chunks = chunks.saturating_sub(1).max(2);
            } else if size <= 1 {
                break;
            } else {
                chunks = (chunks * 2).min(items.len());
            }
        }
        items
    }
}

/// Ends the faults at `cut`: what was scheduled later goes.
fn cut_at(scenario: &mut Scenario, cut: Duration) {
    scenario.duration = cut;
    scenario
        .faults
        .retain(|fault: &ScheduledFault| fault.at < cut);
    scenario.operations.retain(|operation| operation.at < cut);
}

/// The node a fault names, if it names one.
fn node_of(action: &FaultAction) -> Option<crate::id::PeerId> {
    match action {
        FaultAction::Crash(Target::Node(node))
        | FaultAction::Pause(Target::Node(node))
        | FaultAction::Clock { node, .. } => Some(*node),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::FaultPlan;
    use crate::sim::scenario::ScriptedOperation;
    use crate::sim::{SimConfig, scenario};

    /// A scenario of `faults` crashes and `operations` operations.
    fn scenario(faults: usize, operations: usize) -> Scenario {
        let mut scenario = scenario::tests_support::empty(&SimConfig::new(1), &FaultPlan::all());
        for index in 0..faults {
            scenario.faults.push(ScheduledFault {
                at: Duration::from_millis(100 * index as u64),
                action: FaultAction::Crash(Target::Node(crate::id::PeerId(1 + index as u64 % 5))),
            });
        }
        for index in 0..operations {
            scenario.operations.push(ScriptedOperation {
                client: 1 + index as u64 % 5,
                at: Duration::from_millis(10 * index as u64),
                command: Some(serde_json::json!(index)),
                query: None,
                weak: false,
            });
        }
        scenario
    }

    fn failure(check: &str) -> Failure {
        Failure {
            check: check.to_owned(),
            at: None,
        }
    }

    fn has_command(scenario: &Scenario, value: u64) -> bool {
        scenario
            .operations
            .iter()
            .any(|operation| operation.command == Some(serde_json::json!(value)))
    }

    #[test]
    fn shrinking_finds_the_two_operations_that_matter_and_keeps_the_check() {
        // "Fails" iff operations 17 and 120 are both there and node 3 crashes.
        let mut run = |scenario: &Scenario| {
            let crash3 = scenario.faults.iter().any(|fault| {
                fault.action == FaultAction::Crash(Target::Node(crate::id::PeerId(3)))
            });
            (has_command(scenario, 17) && has_command(scenario, 120) && crash3)
                .then(|| failure("safety"))
        };
        let original = scenario(12, 200);
        let shrunk = shrink(original.clone(), "safety", 10_000, &mut run);
        assert_eq!(shrunk.scenario.operations.len(), 2, "{:?}", shrunk.steps);
        assert_eq!(shrunk.scenario.faults.len(), 1, "{:?}", shrunk.steps);
        assert!(!shrunk.budget_exhausted);
        assert_eq!(run(&shrunk.scenario), Some(failure("safety")));
        // Deterministic: the same input, the same result.
        let again = shrink(original, "safety", 10_000, &mut run);
        assert_eq!(again.scenario, shrunk.scenario);
        assert_eq!(again.steps, shrunk.steps);
    }

    #[test]
    fn a_candidate_failing_another_check_is_not_kept() {
        // Removing anything turns the failure into a different one.
        let original = scenario(3, 10);
        let full = original.clone();
        let mut run = |scenario: &Scenario| {
            Some(failure(if *scenario == full {
                "safety"
            } else {
                "liveness"
            }))
        };
        let shrunk = shrink(original.clone(), "safety", 1_000, &mut run);
        assert_eq!(shrunk.scenario, original);
        assert!(shrunk.steps.is_empty());
    }

    /// A stuck liveness failure shrinks to one that is stuck too, not to one
    /// that only fails for want of quiet time.
    #[test]
    fn a_stuck_liveness_failure_shrinks_to_a_stuck_one() {
        // The crash of node 1 hangs the group for good; any crash at all slows
        // it past a quiet period under 25 s.
        let crash_of = |scenario: &Scenario, node: u64| {
            scenario.faults.iter().any(|fault| {
                fault.action == FaultAction::Crash(Target::Node(crate::id::PeerId(node)))
            })
        };
        let mut run = |scenario: &Scenario| {
            let stuck = crash_of(scenario, 1);
            let slow =
                !scenario.faults.is_empty() && scenario.quiet_period < Duration::from_secs(25);
            (stuck || slow).then(|| failure("liveness"))
        };
        let mut original = scenario(5, 0);
        original.quiet_period = Duration::from_secs(10);
        let shrunk = shrink(original.clone(), "liveness", 1_000, &mut run);
        assert_eq!(shrunk.stuck, Some(true));
        assert_eq!(shrunk.scenario.faults.len(), 1, "{:?}", shrunk.steps);
        assert!(crash_of(&shrunk.scenario, 1), "{:?}", shrunk.steps);

        // Without node 1's crash the failure is only slow, and shrinks as any
        // other (to a single crash, whichever).
        original.faults.remove(0);
        let shrunk = shrink(original, "liveness", 1_000, &mut run);
        assert_eq!(shrunk.stuck, Some(false));
        assert_eq!(shrunk.scenario.faults.len(), 1, "{:?}", shrunk.steps);
        assert!(!crash_of(&shrunk.scenario, 1));
    }

    #[test]
    fn the_budget_bounds_the_runs() {
        let mut run = |_: &Scenario| None;
        let shrunk = shrink(scenario(20, 300), "safety", 25, &mut run);
        // One run to confirm the failure, then the budget's worth of candidates.
        assert_eq!(shrunk.runs, 25);
        assert!(shrunk.budget_exhausted);
    }
}
