//! Under `--cfg madsim`, OS entropy (`getrandom`, which seeds the runtime's
//! ChaCha streams when `RuntimeConfig::seed` is `None`, and std's hash maps)
//! and real-time reads come from madsim: the same seed gives the same bytes,
//! and an hour of simulated sleep passes on the system clock too.
#![cfg(madsim)]

use std::time::{Duration, SystemTime};

use madsim::Config;
use madsim::runtime::Runtime;

/// What a run observes: OS entropy, hash map order, system-clock elapsed.
///
/// Each run gets a fresh thread, as madsim's own determinism check does: std
/// keeps per-thread hash keys that move on with every map, so two runs on one
/// thread would see two orders even from madsim's intercepted entropy.
fn observe(seed: u64) -> ([u8; 16], Vec<u64>, Duration) {
    std::thread::spawn(move || observe_in_this_thread(seed))
        .join()
        .expect("the run panicked")
}

fn observe_in_this_thread(seed: u64) -> ([u8; 16], Vec<u64>, Duration) {
    Runtime::with_seed_and_config(seed, Config::default()).block_on(async {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).unwrap();
        let map: std::collections::HashMap<u64, ()> = (0..32).map(|key| (key, ())).collect();
        let before = SystemTime::now();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let elapsed = SystemTime::now().duration_since(before).unwrap();
        (bytes, map.into_keys().collect(), elapsed)
    })
}

#[test]
fn entropy_hash_order_and_clock_come_from_the_seed() {
    let first = observe(7);
    let again = observe(7);
    let other = observe(8);
    assert_eq!(first, again, "seed 7 observed two different worlds");
    assert_ne!(first.0, other.0, "seeds 7 and 8 drew the same OS entropy");
    assert!(
        first.2 >= Duration::from_secs(3600) && first.2 < Duration::from_secs(3601),
        "the system clock is not madsim's: {:?} passed during an hour of simulated sleep",
        first.2
    );
}
