//! What the turmoil and madsim drivers share: the runtime config, the kv
//! workload (the mix of `quorate::sim::workload::KvWorkload` with
//! `SimConfig::new`'s 30% reads) and the result line `benches/drivers.sh`
//! reads.

use std::net::SocketAddr;
use std::time::Duration;

use quorate::env::{Entropy, uniform_duration, uniform_u64};
use quorate::examples::{KvCmd, KvQuery, KvStore};
use quorate::raft::{GroupConfig, NodeOptions};
use quorate::runtime::{Backoff, Group, RuntimeConfig};
use quorate::{Consistency, GroupKey, PeerId};

/// Voters, as in the simulator's default.
pub const NODES: u64 = 5;
/// Closed-loop clients, as in the simulator's default.
pub const CLIENTS: u64 = 5;
/// Simulated seconds of workload.
pub const SIMULATED: Duration = Duration::from_secs(20);
/// Keys of the workload, as `KvWorkload`'s.
const KEYS: u64 = 10;
/// The bond port of every node.
pub const BOND_PORT: u16 = 7000;

/// Node `id`'s config, with bonds to `address(peer)`.
pub fn runtime_config(id: u64, seed: u64, address: impl Fn(u64) -> SocketAddr) -> RuntimeConfig {
    let peers = (1..=NODES)
        .filter(|peer| *peer != id)
        .map(|peer| (PeerId(peer), address(peer)))
        .collect();
    let group = GroupConfig::with_voter_count(NODES);
    let mut config = RuntimeConfig::new(PeerId(id), group, GroupKey::from_secret("bench"), peers);
    config.options = NodeOptions::default();
    config.backoff = Backoff {
        min: Duration::from_millis(10),
        max: Duration::from_millis(200),
    };
    config.call_timeout = Duration::from_secs(2);
    config.seed = Some(seed ^ (id << 32));
    config
}

/// One operation of the kv mix through `group`, then the simulator's client
/// think time (0 to 10 ms); whether it succeeded.
pub async fn one_operation(
    group: &Group<KvStore>,
    rng: &mut Entropy,
    client: u64,
    written: &mut u64,
) -> bool {
    let succeeded = operation(group, rng, client, written).await;
    let think = uniform_duration(rng, Duration::ZERO, Duration::from_millis(10));
    tokio::time::sleep(think).await;
    succeeded
}

async fn operation(
    group: &Group<KvStore>,
    rng: &mut Entropy,
    client: u64,
    written: &mut u64,
) -> bool {
    let key = uniform_u64(rng, 0, KEYS).to_string();
    if uniform_u64(rng, 0, 1000) < 300 {
        let consistency = if uniform_u64(rng, 0, 1000) < 200 {
            Consistency::Weak
        } else {
            Consistency::Strong
        };
        return group.query(KvQuery::Get { key }, consistency).await.is_ok();
    }
    *written += 1;
    let value = format!("{client}.{written} ");
    let command = if uniform_u64(rng, 0, 4) == 0 {
        KvCmd::Put { key, value }
    } else {
        KvCmd::Append { key, value }
    };
    group.execute(command).await.is_ok()
}

/// The line `benches/drivers.sh` reads: driver, simulated seconds, wall
/// seconds, operations completed, messages (`-` when the driver cannot count).
pub fn print_result(
    driver: &str,
    simulated: Duration,
    wall: Duration,
    operations: u64,
    messages: Option<u64>,
) {
    let messages = messages.map_or_else(|| "-".to_owned(), |count| count.to_string());
    println!(
        "DRIVER {driver} {:.3} {:.6} {operations} {messages}",
        simulated.as_secs_f64(),
        wall.as_secs_f64()
    );
}
