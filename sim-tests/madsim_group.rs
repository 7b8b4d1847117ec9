//! A quorate group on madsim nodes: the production runtime built with
//! `RUSTFLAGS="--cfg madsim"`, so tokio is madsim's (its TCP, time, executor
//! and intercepted entropy). The leader is killed and restarted through
//! madsim's handle while packets are lost; the history must be linearizable.
//!
//! Run with `make madsim`. `MADSIM_TEST_SEED=n` replays a seed (madsim prints
//! it on failure), `MADSIM_TEST_NUM=k` runs `k` seeds and
//! `MADSIM_TEST_CHECK_DETERMINISM=1` runs each seed twice and compares.
#![cfg(madsim)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use madsim::net::NetSim;
use madsim::runtime::Handle;
use quorate::check::history::{History, Operation, Outcome};
use quorate::check::models::{MachineInput, MachineOutput};
use quorate::check::{CheckOptions, Verdict, check};
use quorate::env::{Entropy, derive_entropy, uniform_duration, uniform_u64};
use quorate::examples::{KvCmd, KvQuery, KvStore};
use quorate::log::CrashOutcome;
use quorate::raft::{EntryOf, GroupConfig, NodeOptions, Role};
use quorate::runtime::{Backoff, Group, GroupError, RuntimeConfig, SharedLogStore};
use quorate::sim::jepsen::kv_history;
use quorate::{Consistency, GroupKey, PeerId};

type KvHistory = History<MachineInput<KvCmd, KvQuery>, MachineOutput<Option<String>>>;
type Registry = Arc<Mutex<BTreeMap<u64, Group<KvStore>>>>;

const NODES: u64 = 3;
const CLIENTS: u64 = 3;
const KEYS: u64 = 8;
const BOND_PORT: u16 = 7000;
/// How long clients issue operations (simulated).
const WORKLOAD: Duration = Duration::from_secs(10);

fn address(id: u64) -> IpAddr {
    // madsim's network is virtual: these addresses never reach a real one.
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8))
}

fn runtime_config(id: u64, seed: u64, incarnation: u64) -> RuntimeConfig {
    let peers = (1..=NODES)
        .filter(|peer| *peer != id)
        .map(|peer| (PeerId(peer), SocketAddr::new(address(peer), BOND_PORT)))
        .collect();
    let group = GroupConfig {
        heartbeat_interval: Duration::from_millis(20),
        election_timeout_min: Duration::from_millis(150),
        election_timeout_max: Duration::from_millis(300),
        ..GroupConfig::with_voter_count(NODES)
    };
    let mut config = RuntimeConfig::new(PeerId(id), group, GroupKey::from_secret("madsim"), peers);
    config.options = NodeOptions {
        proposal_timeout: Duration::from_millis(1000),
        query_timeout: Duration::from_millis(1000),
        ..NodeOptions::default()
    };
    config.backoff = Backoff {
        min: Duration::from_millis(10),
        max: Duration::from_millis(200),
    };
    config.call_timeout = Duration::from_millis(1500);
    config.bond_stall_timeout = Duration::from_millis(400);
    // Explicit, though madsim also intercepts getrandom: each incarnation
    // draws its own stream (fresh client id and nonces) from the test's seed.
    config.seed = Some(seed ^ (id << 32) ^ (incarnation << 48));
    config
}

/// Creates node `id`; its init runs again on every restart, from its disk.
fn add_node(handle: &Handle, id: u64, registry: &Registry) -> madsim::runtime::NodeHandle {
    let disk: SharedLogStore<EntryOf<KvStore>> = SharedLogStore::default();
    let incarnations = Arc::new(AtomicU64::new(0));
    let registry = registry.clone();
    let seed = handle.seed();
    handle
        .create_node()
        .name(format!("node{id}"))
        .ip(address(id))
        .init(move || {
            let disk = disk.clone();
            let registry = registry.clone();
            let incarnation = incarnations.fetch_add(1, Ordering::Relaxed) + 1;
            async move {
                disk.crash(CrashOutcome::LoseUnsynced);
                let config = runtime_config(id, seed, incarnation);
                let listen = SocketAddr::new(address(id), BOND_PORT);
                let group = quorate::runtime::start(config, listen, KvStore::default(), disk)
                    .await
                    .expect("the node starts");
                registry.lock().unwrap().insert(id, group);
                core::future::pending::<()>().await;
            }
        })
        .build()
}

fn now_nanos(start: tokio::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn next_input(rng: &mut Entropy, client: u64, written: &mut u64) -> MachineInput<KvCmd, KvQuery> {
    let key = uniform_u64(rng, 0, KEYS).to_string();
    if uniform_u64(rng, 0, 10) < 4 {
        return MachineInput::Query(KvQuery::Get { key });
    }
    *written += 1;
    let value = format!("{client}.{written} ");
    MachineInput::Command(KvCmd::Append { key, value })
}

async fn perform(
    group: &Group<KvStore>,
    input: &MachineInput<KvCmd, KvQuery>,
    start: tokio::time::Instant,
) -> Outcome<MachineOutput<Option<String>>> {
    match input {
        MachineInput::Command(command) => match group.execute(command.clone()).await {
            Ok(_) => Outcome::Returned {
                time: now_nanos(start),
                output: MachineOutput::Applied,
            },
            Err(GroupError::Offline | GroupError::NotLeader { .. } | GroupError::Busy) => {
                Outcome::Failed {
                    time: now_nanos(start),
                }
            }
            Err(_) => Outcome::Indeterminate {
                time: Some(now_nanos(start)),
            },
        },
        MachineInput::Query(query) => match group.query(query.clone(), Consistency::Strong).await {
            Ok(answer) => Outcome::Returned {
                time: now_nanos(start),
                output: MachineOutput::Answer(answer.result),
            },
            Err(_) => Outcome::Failed {
                time: now_nanos(start),
            },
        },
    }
}

/// One client: operations through the Group handle of a random node until
/// the workload ends.
async fn client(
    client: u64,
    seed: u64,
    registry: Registry,
    start: tokio::time::Instant,
) -> KvHistory {
    let mut rng = derive_entropy(seed, &format!("madsim client {client}"));
    let mut history = KvHistory::new();
    let mut written = 0;
    while start.elapsed() < WORKLOAD {
        let node = 1 + uniform_u64(&mut rng, 0, NODES);
        let group = registry.lock().unwrap().get(&node).cloned();
        if let Some(group) = group {
            let input = next_input(&mut rng, client, &mut written);
            let call = now_nanos(start);
            let outcome = perform(&group, &input, start).await;
            history.push(Operation {
                client,
                input,
                call,
                outcome,
            });
        }
        let pause = uniform_duration(&mut rng, Duration::ZERO, Duration::from_millis(20));
        tokio::time::sleep(pause).await;
    }
    history
}

fn leader(registry: &Registry) -> Option<u64> {
    let groups = registry.lock().unwrap();
    groups
        .values()
        .map(Group::status)
        .find(|status| status.running && status.role == Role::Leader)
        .map(|status| status.id.0)
}

/// Checks the history against the kv model: each key on its own (every
/// operation touches one key), a state's strings counted against the
/// search's memory bound, and the appends cut off by a leader kill that no
/// read saw left out. With the generic model of the store, which tried each
/// of those at every later step, seed 38 kept over 20 GiB of cache and many
/// seeds left keys undecided.
fn check_kv(history: &KvHistory) -> Verdict {
    let (model, history) = kv_history(history).expect("only gets, puts and appends");
    check(&model, &history, &CheckOptions::default(), &|| false).verdict
}

#[madsim::test]
async fn three_nodes_linearizable_with_leader_kills_and_packet_loss() {
    let handle = Handle::current();
    let seed = handle.seed();
    NetSim::current().update_config(|config| {
        config.packet_loss_rate = 0.02;
        config.send_latency = Duration::from_millis(1)..Duration::from_millis(5);
    });
    let registry: Registry = Arc::default();
    let nodes: BTreeMap<u64, _> = (1..=NODES)
        .map(|id| (id, add_node(&handle, id, &registry)))
        .collect();
    let clients_node = handle
        .create_node()
        .name("clients")
        .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)))
        .build();
    let start = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|id| clients_node.spawn(client(id, seed, registry.clone(), start)))
        .collect();

    let mut faults = Vec::new();
    for round in 0..3 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let Some(victim) = leader(&registry) else {
            faults.push(format!("round {round}: no leader to kill"));
            continue;
        };
        handle.kill(nodes[&victim].id());
        faults.push(format!("{:?} kill leader node{victim}", start.elapsed()));
        tokio::time::sleep(Duration::from_millis(800)).await;
        handle.restart(nodes[&victim].id());
        faults.push(format!("{:?} restart node{victim}", start.elapsed()));
    }

    let mut history = KvHistory::new();
    for task in tasks {
        history.operations.extend(task.await.unwrap().operations);
    }
    let ok = history
        .operations
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Returned { .. }))
        .count();
    let verdict = check_kv(&history);
    println!(
        "seed {seed}: {} ops, {ok} ok; faults {faults:?}; verdict {verdict:?}; net {:?}",
        history.len(),
        NetSim::current().stat(),
    );
    assert_eq!(
        verdict,
        Verdict::Linearizable,
        "seed {seed}: faults {faults:?}; replay with MADSIM_TEST_SEED={seed} make madsim"
    );
    assert!(
        ok >= 50,
        "seed {seed}: only {ok} operations completed; replay with MADSIM_TEST_SEED={seed} make madsim"
    );
}
