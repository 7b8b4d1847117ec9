//! The deterministic simulator: a whole group in one thread, in virtual time.
//!
//! One root seed (u64) gives independent ChaCha8 streams per component
//! (network, each node incarnation, workload, clients, faults, bonds), so adding
//! a node or a fault does not reshuffle the others. Events are ordered by
//! (virtual time, sequence number); time jumps from event to event, nothing ever
//! sleeps. Messages travel as bytes through the production codec (sealed with a
//! checksum, so corrupted frames are rejected by the codec, not by luck).
//!
//! A run is built from a seed, the node count, a machine factory, a workload, a
//! fault plan, a duration and a quiet period, and yields a [`RunReport`]: the
//! verdicts of the online Raft invariants, linearizability of the strong
//! operations, the weak-read checks, liveness after the quiet period, and
//! GroupId isolation; plus the trace hash and the last trace events.
//!
//! ```
//! use quorate::examples::KvStore;
//! use quorate::sim::{SimConfig, Simulation, workload::KvWorkload};
//! use std::time::Duration;
//!
//! let mut config = SimConfig::new(42);
//! config.duration = Duration::from_secs(2);
//! config.quiet_period = Duration::from_secs(3);
//! let report = Simulation::new(config, KvStore::default, KvWorkload::default()).run();
//! assert!(report.passed(), "{}", report.failure_text());
//! // The same seed gives the same trace, byte for byte.
//! let mut again = SimConfig::new(42);
//! again.duration = Duration::from_secs(2);
//! again.quiet_period = Duration::from_secs(3);
//! assert_eq!(report.trace_hash, Simulation::new(again, KvStore::default, KvWorkload::default()).run().trace_hash);
//! ```

pub mod choices;
pub mod config;
pub mod faults;
mod fingerprint;
pub mod history;
pub mod inputs;
mod invariants;
pub mod jepsen;
pub mod network;
mod own_machine;
mod queue;
pub mod runner;
pub mod scenario;
pub mod seconds;
pub mod shrink;
pub mod timeline;
pub mod trace;
pub mod workload;
mod world;

use core::fmt;
use core::time::Duration;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use choices::{Choices, Component};
use scenario::{Recorder, Scenario, ScenarioError, Script};

pub use config::{FaultPlan, FaultPreset, NetworkFaults, SimConfig};
pub use own_machine::{MachineTest, check_machine};
pub use runner::{campaign_from_env, reproduce_command};
pub use world::RunStats;

use crate::check::search::SearchOptions;
use crate::check::{CheckOptions, Verdict};
use crate::env::{chance, derive_entropy, uniform_u64};
use crate::id::{GroupIdInput, PeerId};
use history::{KeyedMachineModel, SimHistory};
use inputs::NodeInputs;
use trace::TraceEvent;
use workload::{SimMachine, Workload};
use world::World;

/// Memory bound of the linearizability search per partition, in cached states.
const LINEARIZABILITY_CACHE_MAX: usize = 2_000_000;

/// Memory bound of the linearizability search per partition, in bytes of
/// cached entries: with thousands of clients a partition holds tens of
/// thousands of operations, each entry kilobytes of linearized set, and the
/// entry bound alone let one seed of 5,000 clients exhaust 24 GiB.
const LINEARIZABILITY_CACHE_BYTES_MAX: usize = 1 << 29;

/// How long a debug build's cross-check of a history the log order already
/// explains may search, in polls of its `should_stop` (each a few thousand
/// steps; a count, so the same on every machine). Histories with thousands of
/// operations of unknown outcome (refused as of forgotten sessions, say)
/// would take the search minutes, and the witness has decided them already.
const CROSS_CHECK_POLLS_MAX: u32 = 64;

/// The name of the end-of-run liveness checks ([`Violation::check`]): a
/// failure of these alone gets a second look with a longer quiet period
/// ([`config::second_look_quiet_period`]).
pub const LIVENESS: &str = "liveness";

/// A check that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which check: `safety` (Raft's properties), `engine` (the engine's own
    /// consistency, its storage, the encoding of what it sends), `message
    /// storm`, `livelock`, `linearizability`, `weak reads`, `liveness`, `group
    /// isolation`, `panic`.
    pub check: String,
    /// The explanation.
    pub message: String,
    /// When it was found (virtual time), if during the run.
    pub at: Option<crate::env::Instant>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(at) => write!(f, "[{}] at {at}: {}", self.check, self.message),
            None => write!(f, "[{}] {}", self.check, self.message),
        }
    }
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The configuration it ran with.
    pub config: SimConfig,
    /// The workload's name.
    pub workload: String,
    /// The faults it drew.
    pub faults: String,
    /// The checks that failed; empty if the run passed.
    pub violations: Vec<Violation>,
    /// Bonds refused, with the reason (e.g. a named signature mismatch).
    pub bond_refusals: Vec<String>,
    /// The hash of the trace.
    pub trace_hash: String,
    /// How many trace events.
    pub trace_events: u64,
    /// The last trace events.
    pub trace_tail: Vec<TraceEvent>,
    /// Every trace event, if recording was on.
    pub trace: Option<Vec<TraceEvent>>,
    /// Per-event trace checkpoints, if kept (determinism checks).
    pub checkpoints: Option<Vec<u64>>,
    /// Counters.
    pub stats: RunStats,
    /// Client operations invoked and completed ok.
    pub operations: (usize, usize),
    /// Whether the linearizability search gave up (not a failure, but weaker).
    pub linearizability_unknown: Option<String>,
    /// The leader of each term, in term order.
    pub leaders: Vec<(crate::log::Term, PeerId)>,
    /// The strong client operations as Jepsen EDN, if asked for
    /// ([`Simulation::with_history_edn`]).
    pub history_edn: Option<String>,
    /// Whether the run came from a scenario (so a seed alone does not
    /// reproduce it).
    pub scripted: bool,
    /// The run as a scenario file: kept when the run failed, or when asked for
    /// ([`Simulation::with_scenario`]). Replaying it gives this run's trace.
    pub scenario: Option<Scenario>,
    /// Every client operation in invocation order, if the trace was recorded
    /// ([`SimConfig::record_trace`]): for the timeline view.
    pub client_operations: Vec<ClientOperation>,
}

/// One client operation as the timeline shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOperation {
    /// The client (numbered from 1).
    pub client: u64,
    /// What it asked, e.g. `Command(Put { key: 1, value: 7 })`.
    pub description: String,
    /// When it asked.
    pub invoked: crate::env::Instant,
    /// When it learned the outcome or gave up; `None` if still pending at the end.
    pub ended: Option<crate::env::Instant>,
    /// `ok`, `info` (gave up: may or may not have happened) or `pending`.
    pub outcome: &'static str,
    /// A query's answer, if it had one.
    pub answer: Option<String>,
}

impl RunReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The first failed check's name, for grouping failures.
    pub fn failed_check(&self) -> Option<&str> {
        self.violations
            .first()
            .map(|violation| violation.check.as_str())
    }

    /// A failure report: the seed, what failed, the last trace events and the
    /// command that reproduces it.
    pub fn failure_text(&self) -> String {
        use fmt::Write;
        let mut text = String::new();
        let _ = writeln!(
            text,
            "seed {} FAILED ({} nodes, workload {}, faults {}: {})",
            self.config.seed, self.config.nodes, self.workload, self.config.faults, self.faults
        );
        for violation in &self.violations {
            let _ = writeln!(text, "  {violation}");
        }
        let _ = writeln!(text, "  last {} trace events:", self.trace_tail.len());
        for event in &self.trace_tail {
            let _ = writeln!(text, "    {event}");
        }
        let _ = writeln!(text, "  trace hash {}", self.trace_hash);
        if self.scripted {
            let _ = writeln!(
                text,
                "  reproduce: quorate replay --scenario FILE (the scenario this run came from)"
            );
        } else {
            let _ = writeln!(
                text,
                "  reproduce: {}",
                reproduce_command(&self.config, &self.workload)
            );
        }
        text
    }
}

/// A simulation of machine `M` under workload `W`.
pub struct Simulation<M: SimMachine> {
    config: SimConfig,
    make_machine: Box<dyn Fn(PeerId) -> M>,
    workload: Box<dyn Workload<M>>,
    checkpoints: bool,
    history_edn: bool,
    record_scenario: bool,
    script: Option<Script<M>>,
    tape: Option<Arc<[u8]>>,
    record_inputs: bool,
}

impl<M: SimMachine> Simulation<M> {
    /// A simulation of `config`, each node running a machine from `make_machine`.
    pub fn new(
        config: SimConfig,
        make_machine: impl Fn() -> M + 'static,
        workload: impl Workload<M> + 'static,
    ) -> Self {
        Self::per_node(config, move |_| make_machine(), workload)
    }

    /// A simulation whose node `id` runs `make_machine(id)`: for machines that
    /// differ per node only in what is not part of their state, such as their
    /// leadership preference. Equal states must still compare equal.
    ///
    /// # Panics
    ///
    /// If `config` has no node or more than [`config::NODES_MAX`], or more
    /// than [`config::CLIENTS_MAX`] clients.
    pub fn per_node(
        config: SimConfig,
        make_machine: impl Fn(PeerId) -> M + 'static,
        workload: impl Workload<M> + 'static,
    ) -> Self {
        assert!(
            (1..=config::NODES_MAX).contains(&config.nodes),
            "SimConfig::nodes is {}; 1 to {}",
            config.nodes,
            config::NODES_MAX
        );
        assert!(
            config.clients <= config::CLIENTS_MAX,
            "SimConfig::clients is {}; at most {}",
            config.clients,
            config::CLIENTS_MAX
        );
        Self {
            config,
            make_machine: Box::new(make_machine),
            workload: Box::new(workload),
            checkpoints: false,
            history_edn: false,
            record_scenario: false,
            script: None,
            tape: None,
            record_inputs: false,
        }
    }

    /// A simulation of `scenario`: its settings, faults and client operations
    /// instead of those the seed would draw. Replaying the scenario of a run
    /// gives that run's trace.
    ///
    /// # Errors
    ///
    /// If the scenario does not fit `M` (an operation that is not one of its
    /// commands or queries) or this build (a flaw it does not have).
    pub fn from_scenario(
        scenario: &Scenario,
        make_machine: impl Fn(PeerId) -> M + 'static,
        workload: impl Workload<M> + 'static,
    ) -> Result<Self, ScenarioError> {
        scenario.validate()?;
        let mut simulation = Self::per_node(scenario.config()?, make_machine, workload);
        simulation.script = Some(scenario.script()?);
        simulation.tape = scenario.tape()?;
        Ok(simulation)
    }

    /// Lets `tape` (a fuzzer's input) steer the run's choices; see
    /// [`choices`].
    #[must_use]
    pub fn with_tape(mut self, tape: &[u8]) -> Self {
        self.tape = Some(Arc::from(tape));
        self
    }

    /// Keeps the run's scenario in [`RunReport::scenario`] even if it passes
    /// (a failed run always keeps it).
    #[must_use]
    pub fn with_scenario(mut self) -> Self {
        self.record_scenario = true;
        self
    }

    /// Sets the quiet period (the second look at a liveness failure runs the
    /// same simulation with a longer one; see [`runner::second_look`]).
    #[must_use]
    pub fn with_quiet_period(mut self, quiet_period: Duration) -> Self {
        self.config.quiet_period = quiet_period;
        self
    }

    /// Sets the configuration's `record_trace`: keep every trace event.
    #[must_use]
    pub fn recording_trace(mut self, record: bool) -> Self {
        self.config.record_trace = record;
        self
    }

    /// Keeps a running hash after every trace event, so two runs can be compared
    /// event by event.
    #[must_use]
    pub fn with_checkpoints(mut self) -> Self {
        self.checkpoints = true;
        self
    }

    /// Keeps the client history, as the linearizability check sees it, as
    /// Jepsen EDN in [`RunReport::history_edn`].
    #[must_use]
    pub fn with_history_edn(mut self) -> Self {
        self.history_edn = true;
        self
    }

    /// Runs the simulation to the end of the quiet period and checks everything.
    /// A panic inside the run (an engine assertion) is reported as a violation.
    pub fn run(self) -> RunReport {
        self.run_catching().0
    }

    /// [`Simulation::run`], keeping every input the engines were given, so
    /// that bare engines can be driven through the same steps
    /// ([`NodeInputs::drive_engines`]). `None` if the run panicked.
    pub fn run_recording_inputs(mut self) -> (RunReport, Option<NodeInputs<M>>) {
        self.record_inputs = true;
        self.run_catching()
    }

    fn run_catching(self) -> (RunReport, Option<NodeInputs<M>>) {
        let config = self.config.clone();
        let workload_name = self.workload.name();
        let outcome = catch_unwind(AssertUnwindSafe(|| run_world(self)));
        outcome.unwrap_or_else(|panic| {
            let message = panic_message(&*panic);
            let report = RunReport {
                config,
                workload: workload_name,
                faults: String::new(),
                violations: vec![Violation {
                    check: "panic".into(),
                    message,
                    at: None,
                }],
                bond_refusals: Vec::new(),
                trace_hash: String::new(),
                trace_events: 0,
                trace_tail: Vec::new(),
                trace: None,
                checkpoints: None,
                stats: RunStats::default(),
                operations: (0, 0),
                linearizability_unknown: None,
                leaders: Vec::new(),
                history_edn: None,
                scripted: false,
                scenario: None,
                client_operations: Vec::new(),
            };
            (report, None)
        })
    }
}

fn run_world<M: SimMachine>(simulation: Simulation<M>) -> (RunReport, Option<NodeInputs<M>>) {
    let Simulation {
        config,
        make_machine,
        workload,
        checkpoints,
        history_edn,
        record_scenario,
        script,
        tape,
        record_inputs,
    } = simulation;
    let scripted = script.is_some();
    let (plan, schedule, mismatch, scripts) = match script {
        Some(script) => (
            script.plan,
            script.schedule,
            script.mismatch,
            Some(script.operations),
        ),
        None => {
            let (plan, schedule, mismatch) = draw_faults(&config, tape.clone());
            (plan, schedule, mismatch, None)
        }
    };
    let faults = if scripts.is_some() {
        format!("{} scheduled faults; {}", schedule.len(), plan.summary())
    } else {
        plan.summary()
    };
    let workload_name = workload.name();
    let recorder = Recorder::new(
        &config,
        workload_name.clone(),
        &plan,
        &schedule,
        mismatch,
        tape.as_deref(),
    );
    let fault_rng = Choices::with_tape(
        derive_entropy(config.seed, "fault-runtime"),
        tape.clone(),
        Component::FaultRuntime,
    );
    let mut world = World::new(
        config.clone(),
        plan,
        make_machine,
        workload,
        checkpoints,
        world::Choosing {
            fault_rng,
            tape,
            scripts,
        },
    );
    // An engine assertion is a finding like any other: keep the run's
    // history, so its scenario can be written out and shrunk.
    if record_inputs {
        world.record_inputs();
    }
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        world.start(schedule, mismatch);
        world.run();
    }))
    .err()
    .map(|panic| panic_message(&*panic));
    let inputs = world.take_inputs();

    let mut violations: Vec<Violation> = world
        .violations
        .iter()
        .map(|(at, check, message)| Violation {
            check: (*check).into(),
            message: message.clone(),
            at: Some(*at),
        })
        .collect();
    if let Some(message) = panicked {
        violations.push(Violation {
            check: "panic".into(),
            message,
            at: Some(world.now()),
        });
    }
    if !violations.is_empty() {
        // The run stopped at a safety violation or a panic: the end-of-run
        // checks would only report its consequences.
        let scenario = scenario_of(recorder, &world);
        let report = report_of(
            config,
            (workload_name, faults, scripted),
            violations,
            scenario,
            &world,
            EndOfRun::default(),
        );
        return (report, inputs);
    }
    for (check, message) in world.final_checks() {
        violations.push(Violation {
            check: check.into(),
            message,
            at: None,
        });
    }
    if let Err(message) = world.history.check_reads_agree() {
        violations.push(Violation {
            check: "weak reads".into(),
            message,
            at: None,
        });
    }
    if let Err(message) = world
        .history
        .check_weak_reads_monotonic(&world.weak_read_sources)
    {
        violations.push(Violation {
            check: "weak reads".into(),
            message,
            at: None,
        });
    }
    let linearizability_unknown = check_linearizability(
        &world.history,
        &*world.workload,
        world.fresh_machine(),
        world.commands_in_log_order(),
        &mut violations,
    );
    let history_edn = history_edn.then(|| {
        let checked = world.history.to_checked();
        world.workload.jepsen_history(&checked).unwrap_or_else(|| {
            let model = crate::check::models::StateMachineModel::new(world.fresh_machine());
            crate::check::edn::to_edn(&model, &checked)
        })
    });
    let scenario = (record_scenario || !violations.is_empty())
        .then(|| scenario_of(recorder, &world))
        .flatten();
    let report = report_of(
        config,
        (workload_name, faults, scripted),
        violations,
        scenario,
        &world,
        EndOfRun {
            linearizability_unknown,
            history_edn,
        },
    );
    (report, inputs)
}

fn panic_message(panic: &(dyn core::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// The run's scenario: what it drew, and the operations its clients issued.
fn scenario_of<M: SimMachine>(recorder: Recorder, world: &World<M>) -> Option<Scenario> {
    let operations = world.history.operations.iter().map(|recorded| {
        (
            recorded.client,
            recorded.invoked,
            recorded.operation.clone(),
        )
    });
    recorder.operations(operations).ok()
}

/// What only a run that reached its end has: the end-of-run checks' leftovers.
#[derive(Default)]
struct EndOfRun {
    linearizability_unknown: Option<String>,
    history_edn: Option<String>,
}

/// The report of a run, whether it reached its end or stopped at a safety
/// violation or a panic (then `end` is empty).
fn report_of<M: SimMachine>(
    config: SimConfig,
    (workload, faults, scripted): (String, String, bool),
    violations: Vec<Violation>,
    scenario: Option<Scenario>,
    world: &World<M>,
    end: EndOfRun,
) -> RunReport {
    RunReport {
        workload,
        faults,
        violations,
        bond_refusals: world
            .bond_errors
            .iter()
            .map(|(node, peer, error)| format!("{node} refused {peer}: {error}"))
            .collect(),
        trace_hash: world.trace.hash(),
        trace_events: world.trace.len(),
        trace_tail: world.trace_tail(),
        trace: world.trace.events().map(<[TraceEvent]>::to_vec),
        checkpoints: world.trace.checkpoints().map(<[u64]>::to_vec),
        stats: world.stats(),
        operations: (world.history.operations.len(), world.history.completed()),
        linearizability_unknown: end.linearizability_unknown,
        leaders: world.leaders(),
        history_edn: end.history_edn,
        scripted,
        scenario,
        client_operations: if config.record_trace {
            world.history.summaries()
        } else {
            Vec::new()
        },
        config,
    }
}

/// Draws the run's fault plan, schedule and GroupId mismatch from the seed's
/// fault stream (steered by `tape`, if any).
fn draw_faults(
    config: &SimConfig,
    tape: Option<Arc<[u8]>>,
) -> (
    FaultPlan,
    Vec<faults::ScheduledFault>,
    Option<(PeerId, GroupIdInput)>,
) {
    let mut fault_rng = Choices::with_tape(
        derive_entropy(config.seed, "faults"),
        tape,
        Component::FaultSchedule,
    );
    let plan = FaultPlan::from_preset(config.faults, &mut fault_rng);
    let nodes: Vec<PeerId> = (1..=config.nodes).map(PeerId).collect();
    let schedule = faults::schedule(&plan, &nodes, config.duration, &mut fault_rng);
    // A node of another GroupId: at most one, and only where the rest still
    // make a quorum.
    let mismatch = (plan.group_mismatch && config.nodes >= 3).then(|| {
        let node = nodes[uniform_u64(&mut fault_rng, 0, nodes.len() as u64) as usize];
        let input = if chance(&mut fault_rng, 700_000) {
            GroupIdInput::MachineSignature
        } else {
            GroupIdInput::Key
        };
        (node, input)
    });
    (plan, schedule, mismatch)
}

/// Checks the strong operations for linearizability against the machine itself.
/// Returns why the search gave up, if it did.
///
/// First it tries the order the log gives (`commands`, see
/// [`SimHistory::linearizes_in_log_order`]): when that order explains every
/// answer, the history is linearizable and no search is needed. A run whose
/// log order fails (a bug, or reads the order cannot place) gets the full
/// search, which decides and explains. Debug builds (the test suites) run the
/// search after a witness too, and panic if the two disagree.
fn check_linearizability<M: SimMachine>(
    history: &SimHistory<M>,
    workload: &dyn Workload<M>,
    initial: M,
    commands: Option<Vec<(crate::log::Index, usize)>>,
    violations: &mut Vec<Violation>,
) -> Option<String> {
    let witnessed = commands
        .is_some_and(|commands| history.linearizes_in_log_order(initial.clone(), &commands));
    if witnessed && !cfg!(debug_assertions) {
        return None;
    }
    let checked = history.to_checked();
    let model = KeyedMachineModel::new(initial, workload);
    let options = CheckOptions {
        partition: true,
        search: SearchOptions {
            cache_entries_max: LINEARIZABILITY_CACHE_MAX,
            cache_bytes_max: LINEARIZABILITY_CACHE_BYTES_MAX,
            ..SearchOptions::default()
        },
    };
    let polls = core::cell::Cell::new(0u32);
    let should_stop = || {
        polls.set(polls.get() + 1);
        witnessed && polls.get() > CROSS_CHECK_POLLS_MAX
    };
    let report = crate::check::check(&model, &checked, &options, &should_stop);
    match report.verdict {
        Verdict::Linearizable => None,
        Verdict::Unknown { .. } if witnessed => None,
        Verdict::NotLinearizable { op, prefix, .. } => {
            debug_assert!(
                !witnessed,
                "the log order explains a history the search finds not linearizable"
            );
            let operation = &checked.operations[op];
            let description = crate::check::model::Model::describe_operation(
                &model,
                &operation.input,
                operation.outcome.output(),
            );
            violations.push(Violation {
                check: "linearizability".into(),
                message: format!(
                    "client {} operation `{description}` (called at {} ns) cannot be linearized after a linearizable prefix of {} operations",
                    operation.client,
                    operation.call,
                    prefix.len()
                ),
                at: None,
            });
            None
        }
        Verdict::Unknown { reason } => Some(reason.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples::KvStore;
    use crate::sim::workload::KvWorkload;

    /// A configuration past the limits is refused before it allocates:
    /// 10^12 clients used to abort the process asking for 528 TB.
    #[test]
    #[should_panic(expected = "SimConfig::clients is 1000000000000; at most 100000")]
    fn a_simulation_refuses_more_clients_than_it_can_hold() {
        let mut config = SimConfig::new(1);
        config.clients = 1_000_000_000_000;
        let _ = Simulation::new(config, KvStore::default, KvWorkload::default());
    }

    #[test]
    #[should_panic(expected = "SimConfig::nodes is 0; 1 to 255")]
    fn a_simulation_refuses_a_group_of_no_node() {
        let mut config = SimConfig::new(1);
        config.nodes = 0;
        let _ = Simulation::new(config, KvStore::default, KvWorkload::default());
    }
}
