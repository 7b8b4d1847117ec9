//! What a simulation is built from: [`SimConfig`] with its [`FaultPlan`].

use core::fmt;
use core::str::FromStr;
use core::time::Duration;

use serde::{Deserialize, Serialize};

use rand_core::Rng;

use crate::env::{chance, uniform_u64};

/// Parts per million, for probabilities drawn from the seed.
pub type PerMillion = u32;

/// The network's behaviour while faults are on. Each probability is per message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkFaults {
    /// Messages lost.
    pub loss: PerMillion,
    /// Messages delivered twice.
    pub duplication: PerMillion,
    /// Messages whose bytes are corrupted (the codec's checksum must reject them).
    pub corruption: PerMillion,
    /// Messages delayed by a latency spike.
    pub spike: PerMillion,
    /// The extra delay of a spike.
    #[serde(with = "super::seconds")]
    pub spike_latency: Duration,
    /// Messages that may overtake those sent before them on the same link.
    /// The others keep their link's order, as over one TCP connection: each
    /// arrives no earlier than the one sent before it. Files written before
    /// this field existed reordered every message, so it defaults to
    /// [`ALWAYS`] there.
    #[serde(default = "always")]
    pub reordering: PerMillion,
}

/// A probability of one: every message.
pub const ALWAYS: PerMillion = 1_000_000;

fn always() -> PerMillion {
    ALWAYS
}

impl NetworkFaults {
    /// A perfect network: latency only, each link in order.
    pub const NONE: Self = Self {
        loss: 0,
        duplication: 0,
        corruption: 0,
        spike: 0,
        spike_latency: Duration::ZERO,
        reordering: 0,
    };
}

/// Which kinds of faults a run may inject, and how often. Each switch is drawn
/// into a concrete schedule from the seed's fault stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultPlan {
    /// Message-level faults.
    pub network: NetworkFaults,
    /// Partitions: random halves, an isolated node (sometimes the leader), a
    /// majority ring, a bridge, one-way links; each healed after a while.
    pub partitions: bool,
    /// Crash and restart of nodes (sometimes the leader), losing unsynced writes.
    pub crashes: bool,
    /// Pause and resume of nodes.
    pub pauses: bool,
    /// Clock skew and drift per node.
    pub clocks: bool,
    /// One node started with a different machine signature (a rolling upgrade
    /// gone wrong) or a different group key.
    pub group_mismatch: bool,
    /// Mean time between scheduled faults.
    #[serde(with = "super::seconds")]
    pub mean_interval: Duration,
    /// Most entries per AppendEntries in this run's nodes: small values split a
    /// new leader's blank entry from the older entries it must replicate, which
    /// is where commitment bugs (Figure 8) hide.
    pub append_entries_max: usize,
}

impl FaultPlan {
    /// No faults at all.
    pub fn none() -> Self {
        Self {
            network: NetworkFaults::NONE,
            partitions: false,
            crashes: false,
            pauses: false,
            clocks: false,
            group_mismatch: false,
            mean_interval: Duration::from_secs(1),
            append_entries_max: 256,
        }
    }

    /// Every fault kind, at moderate rates.
    pub fn all() -> Self {
        Self {
            network: NetworkFaults {
                loss: 20_000,
                duplication: 10_000,
                corruption: 5_000,
                spike: 10_000,
                spike_latency: Duration::from_millis(400),
                reordering: 100_000,
            },
            partitions: true,
            crashes: true,
            pauses: true,
            clocks: true,
            group_mismatch: true,
            mean_interval: Duration::from_millis(800),
            append_entries_max: 2,
        }
    }

    /// A preset, with the seed's fault stream for presets that draw (`swarm`).
    pub fn from_preset(preset: FaultPreset, rng: &mut (impl Rng + ?Sized)) -> Self {
        let none = Self::none();
        match preset {
            FaultPreset::None => none,
            FaultPreset::Network => Self {
                network: Self::all().network,
                ..none
            },
            FaultPreset::Partitions => Self {
                partitions: true,
                ..none
            },
            FaultPreset::Crashes => Self {
                crashes: true,
                ..none
            },
            FaultPreset::Pauses => Self {
                pauses: true,
                clocks: true,
                ..none
            },
            FaultPreset::Mismatch => Self {
                group_mismatch: true,
                ..none
            },
            FaultPreset::All => Self::all(),
            FaultPreset::Swarm => Self::swarm(rng),
        }
    }

    /// Swarm testing (as in TigerBeetle's VOPR): each seed switches a random
    /// subset of fault kinds on, at random rates, so runs differ in kind and not
    /// only in timing.
    pub fn swarm(rng: &mut (impl Rng + ?Sized)) -> Self {
        let mut rate = |max: u64| -> PerMillion {
            if chance(rng, 500_000) {
                uniform_u64(rng, 0, max + 1) as PerMillion
            } else {
                0
            }
        };
        let network = NetworkFaults {
            loss: rate(100_000),
            duplication: rate(50_000),
            corruption: rate(20_000),
            spike: rate(50_000),
            spike_latency: Duration::from_millis(50),
            reordering: 0,
        };
        let spike_latency = Duration::from_millis(uniform_u64(rng, 50, 2_000));
        let mut plan = Self {
            network: NetworkFaults {
                spike_latency,
                ..network
            },
            partitions: chance(rng, 600_000),
            crashes: chance(rng, 600_000),
            pauses: chance(rng, 300_000),
            clocks: chance(rng, 300_000),
            group_mismatch: chance(rng, 100_000),
            mean_interval: Duration::from_millis(uniform_u64(rng, 200, 3_000)),
            append_entries_max: [1, 2, 4, 16, 256][uniform_u64(rng, 0, 5) as usize],
        };
        // Drawn last, so the other switches of a seed are the ones they were
        // before reordering could be switched off.
        if chance(rng, 500_000) {
            plan.network.reordering = uniform_u64(rng, 0, u64::from(ALWAYS) + 1) as PerMillion;
        }
        plan
    }

    /// A one-line summary for reports.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        let network = &self.network;
        for (name, rate) in [
            ("loss", network.loss),
            ("dup", network.duplication),
            ("corrupt", network.corruption),
            ("spike", network.spike),
            ("reorder", network.reordering),
        ] {
            if rate > 0 {
                parts.push(format!("{name}={:.1}%", f64::from(rate) / 10_000.0));
            }
        }
        for (name, on) in [
            ("partitions", self.partitions),
            ("crashes", self.crashes),
            ("pauses", self.pauses),
            ("clocks", self.clocks),
            ("mismatch", self.group_mismatch),
        ] {
            if on {
                parts.push(name.to_owned());
            }
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(" ")
        }
    }
}

/// The named fault presets of `quorate explore --faults`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultPreset {
    /// No faults.
    None,
    /// Loss, duplication, corruption, latency spikes and reordering only.
    Network,
    /// Partitions only.
    Partitions,
    /// Crashes and restarts only.
    Crashes,
    /// Pauses, clock skew and drift.
    Pauses,
    /// Nodes with a different signature or key.
    Mismatch,
    /// Everything at once.
    All,
    /// A random mix per seed.
    Swarm,
}

impl FaultPreset {
    /// Every preset with its name.
    pub const ALL: [(&'static str, Self); 8] = [
        ("none", Self::None),
        ("network", Self::Network),
        ("partitions", Self::Partitions),
        ("crashes", Self::Crashes),
        ("pauses", Self::Pauses),
        ("mismatch", Self::Mismatch),
        ("all", Self::All),
        ("swarm", Self::Swarm),
    ];
}

impl fmt::Display for FaultPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Self::ALL
            .iter()
            .find(|(_, preset)| preset == self)
            .map(|(name, _)| *name)
            .unwrap_or("?");
        f.write_str(name)
    }
}

impl FromStr for FaultPreset {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, preset)| *preset)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(name, _)| *name).collect();
                format!("unknown fault preset {name:?}; one of {}", names.join(", "))
            })
    }
}

/// The most voters a simulated group holds.
pub const NODES_MAX: u64 = 255;

/// The most concurrent clients a simulation takes. Each has state of its own
/// for the whole run: one default seed with 100,000 clients took 229 s of
/// wall time here (0.13x real time), and 10^12 of them asked for 528 TB.
pub const CLIENTS_MAX: u64 = 100_000;

impl NetworkFaults {
    /// The first probability above [`ALWAYS`], by name: what a scenario
    /// written by hand may get wrong.
    pub fn out_of_range(&self) -> Option<(&'static str, PerMillion)> {
        [
            ("loss", self.loss),
            ("duplication", self.duplication),
            ("corruption", self.corruption),
            ("spike", self.spike),
            ("reordering", self.reordering),
        ]
        .into_iter()
        .find(|(_, rate)| *rate > ALWAYS)
    }
}

/// Everything a simulation run is made of, besides the machine and the workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimConfig {
    /// The root seed: every random choice of the run derives from it.
    pub seed: u64,
    /// How many voters.
    pub nodes: u64,
    /// How many concurrent clients.
    pub clients: u64,
    /// How long clients issue operations and faults are injected.
    pub duration: Duration,
    /// After `duration`: faults healed, clients finish what they started; then
    /// liveness is checked.
    pub quiet_period: Duration,
    /// The fault preset.
    pub faults: FaultPreset,
    /// The network's one-way latency range, without faults.
    pub latency_min: Duration,
    /// Upper bound (exclusive) of the latency range.
    pub latency_max: Duration,
    /// How long a client waits for one attempt before trying another node.
    pub attempt_timeout: Duration,
    /// How long a client keeps retrying an operation before recording it as
    /// indeterminate.
    pub operation_timeout: Duration,
    /// Per mille of operations that are reads; of those, per mille that are weak.
    pub read_per_mille: u32,
    /// Per mille of reads that are weak (local) rather than strong.
    pub weak_read_per_mille: u32,
    /// Client sessions each node keeps ([`NodeOptions::sessions_max`]): fewer
    /// than the clients, and sessions are forgotten and proposals refused as
    /// expired.
    ///
    /// [`NodeOptions::sessions_max`]: crate::raft::NodeOptions::sessions_max
    #[serde(default = "sessions_max_default")]
    pub sessions_max: usize,
    /// Keep every trace event in memory (for replay output), not only the hash
    /// and the last few.
    pub record_trace: bool,
    /// Planted bugs switched on in every node (feature `flaws`).
    #[cfg(feature = "flaws")]
    pub flaws: crate::raft::flaws::Flaws,
}

impl SimConfig {
    /// The defaults for `seed`: 5 nodes, 5 clients, 20 simulated seconds of
    /// swarm faults and 10 quiet ones.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            nodes: 5,
            clients: 5,
            duration: Duration::from_secs(20),
            quiet_period: Duration::from_secs(10),
            faults: FaultPreset::Swarm,
            latency_min: Duration::from_micros(500),
            latency_max: Duration::from_millis(5),
            attempt_timeout: Duration::from_millis(800),
            operation_timeout: Duration::from_secs(4),
            read_per_mille: 300,
            weak_read_per_mille: 200,
            sessions_max: sessions_max_default(),
            record_trace: false,
            #[cfg(feature = "flaws")]
            flaws: crate::raft::flaws::Flaws::NONE,
        }
    }
}

/// The engine's default [`SimConfig::sessions_max`] (a function, for serde).
pub(crate) fn sessions_max_default() -> usize {
    crate::raft::SESSIONS_MAX_DEFAULT
}

/// The quiet period of a second look at a run that failed liveness checks:
/// four times its own, and at least 20 s. A run that passes with it was only
/// slow to converge (a catch-up longer than its quiet period, say); one that
/// still fails is stuck, which is the bug.
pub fn second_look_quiet_period(quiet_period: Duration) -> Duration {
    (quiet_period * 4).max(Duration::from_secs(20))
}
