//! Runtime throughput: a 3-node KvStore group on loopback in one process,
//! committed commands per second and p50/p99 latency of `Group::execute` at
//! 1, 16 and 256 concurrent clients, with fsync on and off.
//!
//! `cargo bench --features tokio --bench runtime` (or `make bench-runtime`).
//! `QUORATE_BENCH_SECONDS` sets the length of each run (default 3).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use quorate::GroupKey;
use quorate::PeerId;
use quorate::examples::{KvCmd, KvStore};
use quorate::raft::{GroupConfig, NodeOptions};
use quorate::runtime::{FileLogOptions, FileLogStore, Group, RuntimeConfig};
use tokio::net::TcpListener;

const CLIENT_COUNTS: [usize; 3] = [1, 16, 256];

struct Run {
    clients: usize,
    fsync: bool,
    commits_per_second: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    unacknowledged: usize,
}

async fn start_cluster(dir: &Path, fsync: bool) -> BTreeMap<PeerId, Group<KvStore>> {
    let mut listeners = BTreeMap::new();
    for id in 1..=3 {
        listeners.insert(PeerId(id), TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addresses: BTreeMap<PeerId, SocketAddr> = listeners
        .iter()
        .map(|(id, listener)| (*id, listener.local_addr().unwrap()))
        .collect();
    let mut groups = BTreeMap::new();
    for (id, listener) in listeners {
        let peers = addresses
            .iter()
            .filter(|(peer, _)| **peer != id)
            .map(|(peer, address)| (*peer, *address))
            .collect();
        let group_config = GroupConfig {
            heartbeat_interval: Duration::from_millis(20),
            election_timeout_min: Duration::from_millis(100),
            election_timeout_max: Duration::from_millis(200),
            ..GroupConfig::with_voter_count(3)
        };
        let mut config =
            RuntimeConfig::new(id, group_config, GroupKey::from_secret("bench"), peers);
        config.options = NodeOptions::default();
        config.blocking_sync = fsync;
        let options = FileLogOptions {
            fsync,
            ..FileLogOptions::default()
        };
        let storage = FileLogStore::open(dir.join(id.to_string()), options).unwrap();
        let group =
            quorate::runtime::start_with_listener(config, listener, KvStore::default(), storage)
                .unwrap();
        groups.insert(id, group);
    }
    groups
}

async fn run(clients: usize, fsync: bool, seconds: u64) -> Run {
    let dir = std::env::temp_dir().join(format!(
        "quorate-bench-runtime-{}-{clients}-{fsync}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let groups = start_cluster(&dir, fsync).await;
    let leader = groups[&PeerId(1)].when().leader_elected().await.unwrap();
    let group = groups[&leader].clone();
    // Warm up the bonds and the leader's term.
    group
        .execute(KvCmd::Put {
            key: "warm".into(),
            value: "up".into(),
        })
        .await
        .unwrap();
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let group = group.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            let mut n = 0u64;
            while Instant::now() < end {
                let command = KvCmd::Put {
                    key: format!("k{client}-{}", n % 64),
                    value: n.to_string(),
                };
                let started = Instant::now();
                match group.execute(command).await {
                    Ok(_) => latencies.push(started.elapsed()),
                    Err(_) => failures += 1,
                }
                n += 1;
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut unacknowledged = 0;
    for task in tasks {
        let (mut client_latencies, failures) = task.await.unwrap();
        latencies.append(&mut client_latencies);
        unacknowledged += failures;
    }
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    let result = Run {
        clients,
        fsync,
        commits_per_second: latencies.len() as f64 / seconds as f64,
        latency_ms_p50: percentile(0.50),
        latency_ms_p99: percentile(0.99),
        unacknowledged,
    };
    drop(group);
    for (_, group) in groups {
        group.terminate().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn main() {
    let seconds: u64 = std::env::var("QUORATE_BENCH_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "runtime bench: 3 nodes on loopback, one process, {} worker threads, {seconds} s per run",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:>7} {:>6} {:>12} {:>9} {:>9} {:>8}",
        "clients", "fsync", "commits/s", "p50 ms", "p99 ms", "failed"
    );
    for fsync in [true, false] {
        for clients in CLIENT_COUNTS {
            let result = runtime.block_on(run(clients, fsync, seconds));
            println!(
                "{:>7} {:>6} {:>12.0} {:>9.3} {:>9.3} {:>8}",
                result.clients,
                if result.fsync { "on" } else { "off" },
                result.commits_per_second,
                result.latency_ms_p50,
                result.latency_ms_p99,
                result.unacknowledged
            );
        }
    }
}
