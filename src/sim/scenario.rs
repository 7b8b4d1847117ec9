//! Scenarios: a run written out as an explicit, human-readable JSON file.
//!
//! A seed is compact but opaque: the faults and client operations it stands for
//! are drawn at run time. A scenario spells them out: the cluster and workload
//! settings, every scheduled fault with its virtual time, and every client
//! operation with the virtual time it was issued. Replaying the scenario of a
//! seed gives the seed's exact trace (same hash); and because it is data, a
//! scenario can be shrunk (`quorate shrink`), edited by hand and kept as a
//! regression test (`corpus/regressions/`).
//!
//! ```json
//! {
//!   "format": 1,
//!   "comment": "Figure 8: an old term's entry committed by counting",
//!   "seed": 42, "nodes": 5, "clients": 5, "workload": "kv",
//!   "duration": "20s", "quiet_period": "10s",
//!   "flaws": ["commit-by-counting"],
//!   "timing": { "latency_min": "0.0005s", "latency_max": "0.005s",
//!               "attempt_timeout": "0.8s", "operation_timeout": "4s" },
//!   "network": { "loss": 20000, "duplication": 0, "corruption": 0,
//!                "spike": 0, "spike_latency": "0.4s", "reordering": 0 },
//!   "append_entries_max": 1,
//!   "mismatch": null,
//!   "faults": [
//!     { "at": "1.25s", "action": { "crash": "leader" } },
//!     { "at": "3.5s", "action": "restart_oldest" },
//!     { "at": "4s", "action": { "partition": { "isolate": { "leader": true } } } }
//!   ],
//!   "operations": [
//!     { "client": 1, "at": "0.031s", "command": { "Append": { "key": "3", "value": "1.1 " } } },
//!     { "client": 2, "at": "0.044s", "query": { "Get": { "key": "3" } } },
//!     { "client": 3, "at": "0.050s", "query": { "Get": { "key": "1" } }, "weak": true }
//!   ]
//! }
//! ```
//!
//! * Durations are strings of seconds (`"0.25s"`, exact to the nanosecond) or
//!   plain numbers of seconds.
//! * Probabilities (`loss`, `duplication`, `corruption`, `spike`,
//!   `reordering`) are parts per million, per message. A message that is not
//!   reordered arrives no earlier than the one sent before it on its link.
//!   Files without `reordering` mean 1000000: every message could overtake,
//!   as before the field existed.
//! * `faults[].action` is one of `{"partition": KIND}` (KIND: `"halves"`,
//!   `{"isolate": {"leader": BOOL}}`, `"ring"`, `"bridge"`, `"one_way"`), `"heal"`,
//!   `{"crash": TARGET}` (TARGET: `"leader"` or `{"node": N}`),
//!   `"restart_oldest"`, `{"crash_next_leader": {"messages": N}}`,
//!   `"crash_next_voter"`, `{"pause": TARGET}`, `"resume_oldest"`,
//!   `{"clock": {"node": N, "offset_ms": I, "drift_ppm": I}}`.
//! * `operations[]` has a `command` or a `query` (the machine's own serde
//!   form); `"weak": true` makes a query a local read. A client issues its
//!   operations in order, each at its `at` or as soon as the one before ended.
//! * `tape` (optional, hex) holds the fuzzer input whose bytes steered the run's
//!   network and client choices (see [`super::choices`]).
//!
//! The choices a scenario does not spell out (message latencies, which node a
//! client retries, what a crash loses) still come from the seed, so a scenario
//! with the seed's own schedule and operations is the seed's run exactly.

use core::fmt;
use core::time::Duration;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::config::{
    ALWAYS, CLIENTS_MAX, FaultPlan, FaultPreset, NODES_MAX, NetworkFaults, SimConfig,
    sessions_max_default,
};
use super::faults::{FaultAction, ScheduledFault, Target};
use super::workload::Operation;
use crate::id::{GroupIdInput, PeerId};
use crate::machine::StateMachine;

/// The scenario file format this version writes and reads.
pub const SCENARIO_FORMAT: u32 = 1;

/// A run, spelled out. See the module documentation for the file format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Always [`SCENARIO_FORMAT`].
    pub format: u32,
    /// One line on what this scenario is (for regression files: the bug it
    /// once exposed).
    #[serde(default)]
    pub comment: String,
    /// The root seed of the choices the scenario leaves open.
    pub seed: u64,
    /// Voters in the group.
    pub nodes: u64,
    /// Concurrent clients.
    pub clients: u64,
    /// Client sessions each node keeps (the engine's default if absent).
    #[serde(
        default = "sessions_max_default",
        skip_serializing_if = "is_sessions_max_default"
    )]
    pub sessions_max: usize,
    /// The workload's name (`counter`, `register`, `kv`, or your own).
    pub workload: String,
    /// How long faults are injected.
    #[serde(with = "super::seconds")]
    pub duration: Duration,
    /// The quiet period after `duration`, before liveness is checked.
    #[serde(with = "super::seconds")]
    pub quiet_period: Duration,
    /// The preset the run was drawn from (informative: the faults below are
    /// what runs).
    #[serde(default = "swarm")]
    pub preset: FaultPreset,
    /// Planted bugs switched on (feature `flaws`), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flaws: Vec<String>,
    /// Latencies and client timeouts.
    #[serde(default)]
    pub timing: Timing,
    /// Message-level faults during `duration`.
    pub network: NetworkFaults,
    /// Most entries per AppendEntries.
    pub append_entries_max: usize,
    /// A node started with another GroupId, if any.
    #[serde(default)]
    pub mismatch: Option<Mismatch>,
    /// The fault schedule.
    pub faults: Vec<ScheduledFault>,
    /// The client operations.
    pub operations: Vec<ScriptedOperation>,
    /// The fuzzer input that steered the run, in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tape: Option<String>,
}

fn swarm() -> FaultPreset {
    FaultPreset::Swarm
}

fn is_sessions_max_default(sessions_max: &usize) -> bool {
    *sessions_max == sessions_max_default()
}

/// Latencies and client timeouts of a scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// Least one-way network latency.
    #[serde(with = "super::seconds")]
    pub latency_min: Duration,
    /// Upper bound (exclusive) of the one-way latency.
    #[serde(with = "super::seconds")]
    pub latency_max: Duration,
    /// How long a client waits for one attempt.
    #[serde(with = "super::seconds")]
    pub attempt_timeout: Duration,
    /// How long a client retries before giving up.
    #[serde(with = "super::seconds")]
    pub operation_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self::of(&SimConfig::new(0))
    }
}

impl Timing {
    fn of(config: &SimConfig) -> Self {
        Self {
            latency_min: config.latency_min,
            latency_max: config.latency_max,
            attempt_timeout: config.attempt_timeout,
            operation_timeout: config.operation_timeout,
        }
    }
}

/// A node started with a different GroupId input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mismatch {
    /// The node.
    pub node: PeerId,
    /// What differs.
    pub input: GroupIdInput,
}

/// One client operation of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedOperation {
    /// The client, numbered from 1.
    pub client: u64,
    /// When the client issues it (or later, if its previous operation is still
    /// running).
    #[serde(with = "super::seconds")]
    pub at: Duration,
    /// A command, in the machine's serde form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<serde_json::Value>,
    /// A query, in the machine's serde form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<serde_json::Value>,
    /// A local (weak) read rather than a linearizable one.
    #[serde(default, skip_serializing_if = "core::ops::Not::not")]
    pub weak: bool,
}

/// Why a scenario cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError(pub String);

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

fn error(text: impl Into<String>) -> ScenarioError {
    ScenarioError(text.into())
}

/// One client's operations, in order, each with the time it is due.
pub(crate) type ClientScript<M> = Vec<(Duration, Operation<M>)>;

/// A scenario made typed for machine `M`: what the simulator runs.
pub(crate) struct Script<M: StateMachine> {
    pub plan: FaultPlan,
    pub schedule: Vec<ScheduledFault>,
    pub mismatch: Option<(PeerId, GroupIdInput)>,
    /// Per client (index = client number - 1): its operations in order.
    pub operations: Vec<ClientScript<M>>,
}

impl Scenario {
    /// Parses a scenario file's text.
    ///
    /// # Errors
    ///
    /// If the text is not a valid scenario: malformed JSON (with line and
    /// column), an unknown field, a wrong format number, or settings that
    /// contradict each other (see [`Scenario::validate`]).
    pub fn from_json(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Self = serde_json::from_str(text)
            .map_err(|cause| error(format!("not a valid scenario: {cause}")))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The scenario as pretty JSON, one fault or operation per line.
    pub fn to_json(&self) -> String {
        // Pretty-print the header, but keep each fault and operation on one
        // line so a long scenario stays readable and diffs well.
        let mut header = self.clone();
        header.faults.clear();
        header.operations.clear();
        let mut text = serde_json::to_string_pretty(&header).unwrap_or_default();
        let one_line = |value: Result<String, serde_json::Error>| value.unwrap_or_default();
        for (field, items) in [
            (
                "faults",
                self.faults
                    .iter()
                    .map(|fault| one_line(serde_json::to_string(fault)))
                    .collect::<Vec<_>>(),
            ),
            (
                "operations",
                self.operations
                    .iter()
                    .map(|operation| one_line(serde_json::to_string(operation)))
                    .collect(),
            ),
        ] {
            let empty = format!("\"{field}\": []");
            let filled = if items.is_empty() {
                empty.clone()
            } else {
                format!("\"{field}\": [\n    {}\n  ]", items.join(",\n    "))
            };
            text = text.replacen(&empty, &filled, 1);
        }
        text + "\n"
    }

    /// Checks what serde cannot: the format number, node and client numbers in
    /// range, one of command or query per operation, a readable tape.
    ///
    /// # Errors
    ///
    /// The first problem found, naming the field.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.format != SCENARIO_FORMAT {
            return Err(error(format!(
                "scenario format {} is not supported (this quorate reads format {SCENARIO_FORMAT})",
                self.format
            )));
        }
        if !(1..=NODES_MAX).contains(&self.nodes) {
            return Err(error(format!("nodes is {}; 1 to {NODES_MAX}", self.nodes)));
        }
        if self.clients > CLIENTS_MAX {
            return Err(error(format!(
                "clients is {}; at most {CLIENTS_MAX}",
                self.clients
            )));
        }
        if let Some((name, rate)) = self.network.out_of_range() {
            return Err(error(format!(
                "network.{name} is {rate} parts per million; at most {ALWAYS}"
            )));
        }
        if self.append_entries_max == 0 {
            return Err(error("append_entries_max must be at least 1"));
        }
        if self.timing.latency_max < self.timing.latency_min {
            return Err(error("timing.latency_max is below timing.latency_min"));
        }
        let node_exists = |node: PeerId| (1..=self.nodes).contains(&node.0);
        for (number, fault) in self.faults.iter().enumerate() {
            let node = match &fault.action {
                FaultAction::Crash(Target::Node(node))
                | FaultAction::Pause(Target::Node(node))
                | FaultAction::Clock { node, .. } => Some(*node),
                _ => None,
            };
            if let Some(node) = node.filter(|node| !node_exists(*node)) {
                return Err(error(format!(
                    "faults[{number}] names {node}, but the group has {} nodes",
                    self.nodes
                )));
            }
        }
        if let Some(mismatch) = self.mismatch.filter(|m| !node_exists(m.node)) {
            return Err(error(format!(
                "mismatch names {}, but the group has {} nodes",
                mismatch.node, self.nodes
            )));
        }
        for (number, operation) in self.operations.iter().enumerate() {
            if !(1..=self.clients).contains(&operation.client) {
                return Err(error(format!(
                    "operations[{number}] is for client {}, but clients are numbered 1 to {}",
                    operation.client, self.clients
                )));
            }
            if operation.command.is_some() == operation.query.is_some() {
                return Err(error(format!(
                    "operations[{number}] needs exactly one of \"command\" and \"query\""
                )));
            }
            if operation.weak && operation.command.is_some() {
                return Err(error(format!(
                    "operations[{number}]: only a query can be weak"
                )));
            }
        }
        self.tape()?;
        Ok(())
    }

    /// The simulation configuration (seed, sizes, timing, flaws).
    ///
    /// # Errors
    ///
    /// If the scenario switches on a flaw this build does not have.
    pub fn config(&self) -> Result<SimConfig, ScenarioError> {
        let mut config = SimConfig::new(self.seed);
        config.nodes = self.nodes;
        config.clients = self.clients;
        config.sessions_max = self.sessions_max;
        config.duration = self.duration;
        config.quiet_period = self.quiet_period;
        config.faults = self.preset;
        config.latency_min = self.timing.latency_min;
        config.latency_max = self.timing.latency_max;
        config.attempt_timeout = self.timing.attempt_timeout;
        config.operation_timeout = self.timing.operation_timeout;
        #[cfg(feature = "flaws")]
        for name in &self.flaws {
            let flaw: crate::raft::flaws::Flaw = name.parse().map_err(error)?;
            config.flaws = config.flaws.with(flaw);
        }
        #[cfg(not(feature = "flaws"))]
        if !self.flaws.is_empty() {
            return Err(error(format!(
                "the scenario switches on planted flaws ({}); build with `--features flaws`, \
                 or clear its \"flaws\"",
                self.flaws.join(", ")
            )));
        }
        Ok(config)
    }

    /// The fuzzer input that steered the run, if any.
    ///
    /// # Errors
    ///
    /// If `tape` is not hex.
    pub fn tape(&self) -> Result<Option<Arc<[u8]>>, ScenarioError> {
        let Some(hex) = &self.tape else {
            return Ok(None);
        };
        from_hex(hex)
            .map(|bytes| Some(Arc::from(bytes)))
            .ok_or_else(|| error("tape is not an even number of hex digits"))
    }

    /// The scenario typed for machine `M`.
    ///
    /// # Errors
    ///
    /// If an operation is not a command or query of `M`.
    pub(crate) fn script<M: StateMachine>(&self) -> Result<Script<M>, ScenarioError> {
        let mut operations: Vec<ClientScript<M>> = (0..self.clients).map(|_| Vec::new()).collect();
        for (number, scripted) in self.operations.iter().enumerate() {
            let bad = |cause: serde_json::Error| {
                error(format!(
                    "operations[{number}] is not an operation of workload {}: {cause}",
                    self.workload
                ))
            };
            let operation = match (&scripted.command, &scripted.query) {
                (Some(command), _) => {
                    Operation::Command(serde_json::from_value(command.clone()).map_err(bad)?)
                }
                (None, Some(query)) => Operation::Query {
                    query: serde_json::from_value(query.clone()).map_err(bad)?,
                    strong: !scripted.weak,
                },
                (None, None) => return Err(error(format!("operations[{number}] is empty"))),
            };
            let client = usize::try_from(scripted.client - 1).unwrap_or(usize::MAX);
            operations
                .get_mut(client)
                .ok_or_else(|| error(format!("operations[{number}]: no such client")))?
                .push((scripted.at, operation));
        }
        for client in &mut operations {
            // Stable: equal times keep their file order.
            client.sort_by_key(|(at, _)| *at);
        }
        Ok(Script {
            plan: FaultPlan {
                network: self.network,
                append_entries_max: self.append_entries_max,
                ..FaultPlan::none()
            },
            schedule: self.faults.clone(),
            mismatch: self.mismatch.map(|m| (m.node, m.input)),
            operations,
        })
    }

    /// The sizes shrinking reduces, for reports: `5 nodes, 3 faults, 120
    /// operations, 20s`.
    pub fn size(&self) -> String {
        format!(
            "{} nodes, {} faults, {} operations, {}",
            self.nodes,
            self.faults.len(),
            self.operations.len(),
            super::seconds::format(self.duration)
        )
    }
}

/// Builds the scenario of a run from what it drew and what its clients did.
pub(crate) struct Recorder {
    pub scenario: Scenario,
}

impl Recorder {
    /// The scenario header of `config` with the drawn `plan`, `schedule` and
    /// `mismatch`.
    pub fn new(
        config: &SimConfig,
        workload: String,
        plan: &FaultPlan,
        schedule: &[ScheduledFault],
        mismatch: Option<(PeerId, GroupIdInput)>,
        tape: Option<&[u8]>,
    ) -> Self {
        #[cfg(feature = "flaws")]
        let flaws = crate::raft::flaws::Flaw::ALL
            .iter()
            .filter(|(_, flaw)| config.flaws.contains(*flaw))
            .map(|(name, _)| (*name).to_owned())
            .collect();
        #[cfg(not(feature = "flaws"))]
        let flaws = Vec::new();
        Self {
            scenario: Scenario {
                format: SCENARIO_FORMAT,
                comment: String::new(),
                seed: config.seed,
                nodes: config.nodes,
                clients: config.clients,
                sessions_max: config.sessions_max,
                workload,
                duration: config.duration,
                quiet_period: config.quiet_period,
                preset: config.faults,
                flaws,
                timing: Timing::of(config),
                network: plan.network,
                append_entries_max: plan.append_entries_max,
                mismatch: mismatch.map(|(node, input)| Mismatch { node, input }),
                faults: schedule.to_vec(),
                operations: Vec::new(),
                tape: tape.map(to_hex),
            },
        }
    }

    /// Adds the operations of the run's history.
    ///
    /// # Errors
    ///
    /// If a command or query has no JSON form (e.g. a map with non-string keys).
    pub fn operations<M: StateMachine>(
        mut self,
        operations: impl Iterator<Item = (u64, crate::env::Instant, Operation<M>)>,
    ) -> Result<Scenario, ScenarioError> {
        for (client, at, operation) in operations {
            let json = |value: Result<serde_json::Value, serde_json::Error>| {
                value.map_err(|cause| error(format!("an operation has no JSON form: {cause}")))
            };
            let at = Duration::from_nanos(at.as_nanos());
            self.scenario.operations.push(match operation {
                Operation::Command(command) => ScriptedOperation {
                    client,
                    at,
                    command: Some(json(serde_json::to_value(&command))?),
                    query: None,
                    weak: false,
                },
                Operation::Query { query, strong } => ScriptedOperation {
                    client,
                    at,
                    command: None,
                    query: Some(json(serde_json::to_value(&query))?),
                    weak: !strong,
                },
            });
        }
        Ok(self.scenario)
    }
}

/// Scenarios for other modules' tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A scenario of `config` and `plan` with no faults and no operations.
    pub(crate) fn empty(config: &SimConfig, plan: &FaultPlan) -> Scenario {
        Recorder::new(config, "kv".into(), plan, &[], None, None).scenario
    }
}

/// Lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Bytes from hex; `None` if it is not hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2)
        .map(|pair| {
            let digits = core::str::from_utf8(pair).ok()?;
            u8::from_str_radix(digits, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Scenario {
        Recorder::new(
            &SimConfig::new(3),
            "kv".into(),
            &FaultPlan::all(),
            &[ScheduledFault {
                at: Duration::from_millis(1250),
                action: FaultAction::Crash(Target::Leader),
            }],
            None,
            None,
        )
        .scenario
    }

    #[test]
    fn a_scenario_round_trips_through_its_json() {
        let mut scenario = sample();
        scenario.operations.push(ScriptedOperation {
            client: 2,
            at: Duration::from_nanos(31_000_001),
            command: None,
            query: Some(serde_json::json!({"Get": {"key": "3"}})),
            weak: true,
        });
        let text = scenario.to_json();
        assert!(
            text.contains(r#"{"at":"1.25s","action":{"crash":"leader"}}"#),
            "{text}"
        );
        assert_eq!(Scenario::from_json(&text), Ok(scenario));
    }

    #[test]
    fn a_scenario_without_reordering_reorders_every_message_as_before() {
        let scenario = sample();
        assert_eq!(
            scenario.network.reordering, 100_000,
            "FaultPlan::all's rate"
        );
        let mut json: serde_json::Value =
            serde_json::from_str(&scenario.to_json()).expect("valid JSON");
        let removed = json["network"]
            .as_object_mut()
            .expect("an object")
            .remove("reordering");
        assert!(removed.is_some(), "the field is written");
        let older = Scenario::from_json(&json.to_string()).expect("still valid");
        assert_eq!(older.network.reordering, crate::sim::config::ALWAYS);
    }

    #[test]
    fn bad_scenarios_get_errors_that_name_the_problem() {
        let text = sample().to_json();
        let cases = [
            (text.replace("\"format\": 1", "\"format\": 9"), "format 9"),
            (text.replace("\"nodes\": 5", "\"nodes\": 0"), "nodes is 0"),
            (
                text.replace("\"clients\": 5", "\"clients\": 1000000000000"),
                "clients is 1000000000000; at most 100000",
            ),
            (
                text.replace("\"loss\": 20000", "\"loss\": 2000000"),
                "network.loss is 2000000 parts per million",
            ),
            (
                text.replace("\"crash\":\"leader\"", "\"crash\":{\"node\":7}"),
                "faults[0] names n7",
            ),
            (text.replace("\"seed\"", "\"sede\""), "unknown field"),
            (text[..text.len() / 2].to_owned(), "not a valid scenario"),
        ];
        for (bad, expected) in cases {
            let message = Scenario::from_json(&bad).expect_err(expected).0;
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn hex_round_trips_and_refuses_nonsense() {
        assert_eq!(
            from_hex(&to_hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }
}
