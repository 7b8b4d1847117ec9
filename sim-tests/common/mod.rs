//! Shared set-up for the simulation tests.

#![allow(dead_code)]

use std::time::Duration;

use quorate::sim::{FaultPreset, SimConfig};

/// A configuration for `seed`: `nodes` voters, `faults`, 10 simulated seconds
/// of load and 10 of quiet (short enough for CI, long enough for several
/// elections and hundreds of operations).
pub fn config(seed: u64, nodes: u64, faults: FaultPreset) -> SimConfig {
    let mut config = SimConfig::new(seed);
    config.nodes = nodes;
    config.faults = faults;
    config.duration = Duration::from_secs(10);
    config.quiet_period = Duration::from_secs(10);
    config
}
