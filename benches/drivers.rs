//! The same 5-node kv workload for 20 simulated seconds, no faults, under
//! quorate's own simulator and under turmoil (the production runtime over
//! turmoil's TCP). `make bench-drivers` runs this, then the madsim half
//! (`benches/drivers_madsim.rs`, built with `--cfg madsim`), and prints one
//! table of ratios.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant as WallClock};

use quorate::env::derive_entropy;
use quorate::examples::KvStore;
use quorate::raft::EntryOf;
use quorate::runtime::{Group, SharedLogStore, Transport};
use quorate::sim::workload::KvWorkload;
use quorate::sim::{FaultPreset, SimConfig, Simulation};

mod drivers_common;
use drivers_common::{
    BOND_PORT, CLIENTS, NODES, SIMULATED, one_operation, print_result, runtime_config,
};

const SEED: u64 = 1;

fn quorate_simulator() {
    let config = SimConfig {
        nodes: NODES,
        clients: CLIENTS,
        duration: SIMULATED,
        // A short quiet period: enough for the final checks to pass.
        quiet_period: Duration::from_secs(1),
        faults: FaultPreset::None,
        ..SimConfig::new(SEED)
    };
    let started = WallClock::now();
    let report = Simulation::new(config, KvStore::default, KvWorkload::default()).run();
    let wall = started.elapsed();
    assert!(report.passed(), "{}", report.failure_text());
    print_result(
        "quorate-sim",
        report.stats.simulated,
        wall,
        report.operations.1 as u64,
        Some(report.stats.messages_sent),
    );
}

fn node_name(id: u64) -> String {
    format!("node{id}")
}

fn turmoil() {
    let mut sim = turmoil::Builder::new()
        .rng_seed(SEED)
        .simulation_duration(SIMULATED + Duration::from_secs(30))
        .min_message_latency(Duration::from_micros(500))
        .max_message_latency(Duration::from_millis(5))
        .build();
    let registry: Rc<RefCell<BTreeMap<u64, Group<KvStore>>>> = Rc::default();
    let completed = Rc::new(RefCell::new(0u64));
    for id in 1..=NODES {
        let registry = registry.clone();
        sim.host(node_name(id), move || {
            let registry = registry.clone();
            async move {
                let mut config = runtime_config(id, SEED, |peer| {
                    SocketAddr::new(turmoil::lookup(node_name(peer)), BOND_PORT)
                });
                config.transport = Transport::Turmoil;
                let disk: SharedLogStore<EntryOf<KvStore>> = SharedLogStore::default();
                let listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, BOND_PORT));
                let group =
                    quorate::runtime::start(config, listen, KvStore::default(), disk).await?;
                registry.borrow_mut().insert(id, group);
                core::future::pending::<()>().await;
                Ok(())
            }
        });
    }
    for client in 0..CLIENTS {
        let registry = registry.clone();
        let completed = completed.clone();
        sim.client(format!("client{client}"), async move {
            let mut rng = derive_entropy(SEED, &format!("bench client {client}"));
            let mut written = 0;
            while turmoil::sim_elapsed().unwrap_or_default() < SIMULATED {
                let node = 1 + client % NODES;
                let group = registry.borrow().get(&node).cloned();
                match group {
                    Some(group) => {
                        if one_operation(&group, &mut rng, client, &mut written).await {
                            *completed.borrow_mut() += 1;
                        }
                    }
                    None => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            Ok(())
        });
    }
    let started = WallClock::now();
    sim.run().expect("the turmoil simulation runs");
    let wall = started.elapsed();
    let operations = *completed.borrow();
    print_result("turmoil", sim.elapsed(), wall, operations, None);
}

fn main() {
    quorate_simulator();
    turmoil();
}
