//! The madsim half of `make bench-drivers`: the same 5-node kv workload as
//! `benches/drivers.rs`, the production runtime on madsim nodes. Only
//! meaningful when built with `RUSTFLAGS="--cfg madsim"`.

#[cfg(madsim)]
mod drivers_common;

#[cfg(madsim)]
fn main() {
    use std::collections::BTreeMap;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant as WallClock};

    use drivers_common::{
        BOND_PORT, CLIENTS, NODES, SIMULATED, one_operation, print_result, runtime_config,
    };
    use madsim::net::NetSim;
    use madsim::runtime::{Handle, Runtime};
    use quorate::env::derive_entropy;
    use quorate::examples::KvStore;
    use quorate::raft::EntryOf;
    use quorate::runtime::{Group, SharedLogStore};

    const SEED: u64 = 1;
    fn address(id: u64) -> IpAddr {
        // madsim's network is virtual: no packet leaves the process.
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8))
    }

    let runtime = Runtime::with_seed_and_config(SEED, madsim::Config::default());
    let wall_started = WallClock::now();
    let (simulated, operations, messages) = runtime.block_on(async {
        NetSim::current().update_config(|config| {
            config.send_latency = Duration::from_micros(500)..Duration::from_millis(5);
        });
        let handle = Handle::current();
        let registry: Arc<Mutex<BTreeMap<u64, Group<KvStore>>>> = Arc::default();
        for id in 1..=NODES {
            let registry = registry.clone();
            handle
                .create_node()
                .name(format!("node{id}"))
                .ip(address(id))
                .init(move || {
                    let registry = registry.clone();
                    async move {
                        let config = runtime_config(id, SEED, |peer| {
                            SocketAddr::new(address(peer), BOND_PORT)
                        });
                        let disk: SharedLogStore<EntryOf<KvStore>> = SharedLogStore::default();
                        let listen = SocketAddr::new(address(id), BOND_PORT);
                        let group =
                            quorate::runtime::start(config, listen, KvStore::default(), disk)
                                .await
                                .expect("the node starts");
                        registry.lock().unwrap().insert(id, group);
                        core::future::pending::<()>().await;
                    }
                })
                .build();
        }
        let clients = handle
            .create_node()
            .name("clients")
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)))
            .build();
        let completed = Arc::new(AtomicU64::new(0));
        let start = tokio::time::Instant::now();
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let registry = registry.clone();
                let completed = completed.clone();
                clients.spawn(async move {
                    let mut rng = derive_entropy(SEED, &format!("bench client {client}"));
                    let mut written = 0;
                    while start.elapsed() < SIMULATED {
                        let node = 1 + client % NODES;
                        let group = registry.lock().unwrap().get(&node).cloned();
                        match group {
                            Some(group) => {
                                if one_operation(&group, &mut rng, client, &mut written).await {
                                    completed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            None => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a client finishes");
        }
        (
            start.elapsed(),
            completed.load(Ordering::Relaxed),
            NetSim::current().stat().msg_count,
        )
    });
    print_result(
        "madsim",
        simulated,
        wall_started.elapsed(),
        operations,
        Some(messages),
    );
}

#[cfg(not(madsim))]
fn main() {
    eprintln!("drivers_madsim: build with RUSTFLAGS=\"--cfg madsim\" (make bench-drivers)");
}
