//! Test your own state machine: [`check_machine`] runs it through many seeds of
//! the simulator from an ordinary `#[test]`.

use core::ops::Range;
use core::time::Duration;

use super::runner::campaign_from_env;
use super::workload::{FnWorkload, Operation, SimMachine};
use super::{FaultPreset, RunReport, SimConfig, Simulation};
use crate::env::Entropy;

/// What [`check_machine`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineTest {
    /// Seeds to run unless `QUORATE_SEED`/`QUORATE_SEEDS` say otherwise.
    pub seeds: Range<u64>,
    /// Voters in the group.
    pub nodes: u64,
    /// Concurrent clients.
    pub clients: u64,
    /// The fault preset.
    pub faults: FaultPreset,
    /// Simulated time of load and faults per seed.
    pub duration: Duration,
    /// Simulated quiet time at the end, before liveness is checked.
    pub quiet_period: Duration,
}

impl Default for MachineTest {
    /// 100 seeds of a 5-node group with 5 clients, swarm faults, 10 simulated
    /// seconds plus 10 of quiet: a few seconds of wall time.
    fn default() -> Self {
        Self {
            seeds: 0..100,
            nodes: 5,
            clients: 5,
            faults: FaultPreset::Swarm,
            duration: Duration::from_secs(10),
            quiet_period: Duration::from_secs(10),
        }
    }
}

/// Runs the machine `make` builds through the seeds of `test`, its clients
/// issuing what `generate(rng, client)` returns, with every check on: the Raft
/// invariants, linearizability of the strong operations against the machine
/// itself, weak reads, liveness. Honours `QUORATE_SEED`, `QUORATE_SEEDS` and
/// `QUORATE_CHECK_DETERMINISM`.
///
/// # Panics
///
/// At the first failing seed, with the explanation, the last trace events and
/// the command that reproduces it: call it from a `#[test]`.
///
/// # Examples
///
/// ```
/// use quorate::examples::{Counter, CounterCmd, CounterQuery};
/// use quorate::sim::workload::Operation;
/// use quorate::sim::{MachineTest, check_machine};
///
/// let test = MachineTest { seeds: 0..3, ..MachineTest::default() };
/// let reports = check_machine(test, Counter::default, |rng, _client| {
///     if quorate::env::uniform_u64(rng, 0, 4) == 0 {
///         Operation::Query { query: CounterQuery::Value, strong: true }
///     } else {
///         Operation::Command(CounterCmd::Increment(1))
///     }
/// });
/// assert_eq!(reports.len(), 3);
/// ```
pub fn check_machine<M, F, G>(test: MachineTest, make: F, generate: G) -> Vec<RunReport>
where
    M: SimMachine,
    F: Fn() -> M + Clone + 'static,
    G: FnMut(&mut Entropy, u64) -> Operation<M> + Clone + Send + 'static,
{
    campaign_from_env(test.seeds.clone(), |seed| {
        let mut config = SimConfig::new(seed);
        config.nodes = test.nodes;
        config.clients = test.clients;
        config.faults = test.faults;
        config.duration = test.duration;
        config.quiet_period = test.quiet_period;
        Simulation::new(
            config,
            make.clone(),
            FnWorkload::new("custom", generate.clone()),
        )
    })
}
