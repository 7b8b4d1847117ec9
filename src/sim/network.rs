//! The simulated network: per-message latency, loss, duplication, corruption and
//! latency spikes, and partitions as a set of blocked directed links.

use core::fmt;
use core::time::Duration;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::choices::{Choices, Component};
use super::config::{ALWAYS, NetworkFaults};
use crate::env::{Instant, chance, derive_entropy, uniform_u64};
use crate::id::PeerId;

/// The shape of a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionKind {
    /// Two random halves (the smaller may be a minority of one).
    Halves,
    /// One node cut off from everyone; the leader when `leader` is set.
    Isolate {
        /// Isolate the current leader rather than a random node.
        leader: bool,
    },
    /// Each node reaches only its two neighbours on a ring: every node sees a
    /// majority of 3 in 5, but no two majorities agree.
    Ring,
    /// Two halves joined through one bridge node that reaches both.
    Bridge,
    /// Messages from one node to another are dropped; the reverse direction works.
    OneWay,
}

impl fmt::Display for PartitionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Halves => f.write_str("halves"),
            Self::Isolate { leader: true } => f.write_str("isolate leader"),
            Self::Isolate { leader: false } => f.write_str("isolate node"),
            Self::Ring => f.write_str("majority ring"),
            Self::Bridge => f.write_str("bridge"),
            Self::OneWay => f.write_str("one-way link"),
        }
    }
}

/// What happens to one message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// When it arrives.
    pub arrival: Instant,
    /// Whether its bytes are corrupted on the way.
    pub corrupt: bool,
}

/// The deliveries of one message: none (lost), one, or two (duplicated).
/// Returned by value: a message has at most two, and a buffer to fill would
/// cost a take and a put back per message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fates {
    count: u8,
    deliveries: [Delivery; 2],
}

impl Fates {
    fn push(&mut self, delivery: Delivery) {
        self.deliveries[usize::from(self.count)] = delivery;
        self.count += 1;
    }

    /// The deliveries, in the order drawn.
    pub(crate) fn as_slice(&self) -> &[Delivery] {
        &self.deliveries[..usize::from(self.count)]
    }
}

/// One directed link's state.
struct Link {
    /// Its messages' fates.
    rng: Choices,
    /// When the last message that keeps the link's order arrives: the next
    /// one arrives no earlier.
    last_arrival: Instant,
}

/// The network model. Each directed link draws its messages' fates from a
/// stream of its own, so a message more or less on one link (as when
/// shrinking removes an operation) leaves every other link's timing alone.
pub(crate) struct Network {
    seed: u64,
    tape: Option<Arc<[u8]>>,
    /// Nodes: links are indexed `from * (nodes + 1) + to` (ids from 1).
    nodes: usize,
    /// For each link, one more than the place of its stream in `streams`; 0
    /// until the link first carries a message.
    links: Vec<u32>,
    /// The links used so far, in order of first use: the few links a stable
    /// group uses (those of its leader) sit together in memory, not spread
    /// over a table of every pair of 101 nodes.
    streams: Vec<Link>,
    /// Latencies of client requests and answers.
    clients: Choices,
    /// Least and greatest latency, in nanoseconds (as each draw wants them).
    latency_min: u64,
    latency_max: u64,
    faults: NetworkFaults,
    /// Directed links that drop everything.
    blocked: BTreeSet<(PeerId, PeerId)>,
}

impl Network {
    pub(crate) fn new(
        seed: u64,
        tape: Option<Arc<[u8]>>,
        nodes: usize,
        latency_min: Duration,
        latency_max: Duration,
    ) -> Self {
        Self {
            clients: Choices::with_tape(
                derive_entropy(seed, "network-clients"),
                tape.clone(),
                Component::Network,
            ),
            seed,
            tape,
            nodes,
            links: Vec::new(),
            streams: Vec::new(),
            latency_min: nanos(latency_min),
            latency_max: nanos(latency_max),
            faults: NetworkFaults::NONE,
            blocked: BTreeSet::new(),
        }
    }

    pub(crate) fn set_faults(&mut self, faults: NetworkFaults) {
        self.faults = faults;
    }

    /// The fates of one message sent from `from` to `to` at `now`: none
    /// (lost), one, or two (duplicated) deliveries. A message that does not
    /// overtake (see [`NetworkFaults::reordering`]) arrives no earlier than
    /// the one before it on the link.
    // Inlined into the one sender: 7 instructions fewer per event.
    #[inline(always)]
    pub(crate) fn route(&mut self, from: PeerId, to: PeerId, now: Instant) -> Fates {
        let mut fates = Fates::default();
        if self.blocked.contains(&(from, to)) {
            return fates;
        }
        let faults = self.faults;
        let (latency_min, latency_max) = (self.latency_min, self.latency_max);
        let link = self.link(from, to);
        let rng = &mut link.rng;
        if faults.loss > 0 && chance(rng, faults.loss) {
            return fates;
        }
        let copies = if faults.duplication > 0 && chance(rng, faults.duplication) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = uniform_u64(rng, latency_min, latency_max);
            if faults.spike > 0 && chance(rng, faults.spike) {
                let spike = uniform_u64(rng, 0, nanos(faults.spike_latency));
                delay = delay.saturating_add(spike);
            }
            let mut arrival = Instant::from_nanos(now.as_nanos().saturating_add(delay));
            let corrupt = faults.corruption > 0 && chance(rng, faults.corruption);
            let overtakes = match faults.reordering {
                0 => false,
                ALWAYS.. => true,
                rate => chance(rng, rate),
            };
            if !overtakes {
                arrival = arrival.max(link.last_arrival);
                link.last_arrival = arrival;
            }
            fates.push(Delivery { arrival, corrupt });
        }
        fates
    }

    /// The link `from -> to`.
    fn link(&mut self, from: PeerId, to: PeerId) -> &mut Link {
        let slot = (from.0 as usize) * (self.nodes + 1) + to.0 as usize;
        match self.links.get(slot) {
            Some(&stream) if stream != 0 => &mut self.streams[stream as usize - 1],
            _ => self.open_link(from, to, slot),
        }
    }

    /// Creates the link `from -> to` (at `slot` of `links`), with its stream.
    #[cold]
    #[inline(never)]
    fn open_link(&mut self, from: PeerId, to: PeerId, slot: usize) -> &mut Link {
        if self.links.len() <= slot {
            self.links.resize((self.nodes + 1) * (self.nodes + 1), 0);
        }
        self.streams.push(Link {
            rng: Choices::with_tape(
                derive_entropy(self.seed, &format!("link-{}-{}", from.0, to.0)),
                self.tape.clone(),
                Component::Network,
            ),
            last_arrival: Instant::ZERO,
        });
        self.links[slot] = u32::try_from(self.streams.len()).expect("fewer than 2^32 links");
        self.streams.last_mut().expect("just pushed")
    }

    /// A latency for client traffic (never lost: clients retry on their own).
    pub(crate) fn client_latency(&mut self) -> Duration {
        Duration::from_nanos(uniform_u64(
            &mut self.clients,
            self.latency_min,
            self.latency_max,
        ))
    }

    /// Flips one byte of a frame sent `from -> to`, at a position drawn from
    /// that link's stream.
    pub(crate) fn corrupt(&mut self, from: PeerId, to: PeerId, frame: &mut [u8]) {
        if frame.is_empty() {
            return;
        }
        let rng = &mut self.link(from, to).rng;
        let position = uniform_u64(rng, 0, frame.len() as u64) as usize;
        let flip = uniform_u64(rng, 1, 256) as u8;
        frame[position] ^= flip;
    }

    /// Installs a partition among `nodes`; `leader` is the current leader, if any.
    /// Its shape is drawn from `rng` (the fault's stream, so that adding or
    /// removing a partition leaves every message's fate as it was). Returns a
    /// description of the cut.
    pub(crate) fn partition(
        &mut self,
        kind: &PartitionKind,
        nodes: &[PeerId],
        leader: Option<PeerId>,
        rng: &mut Choices,
    ) -> String {
        self.blocked.clear();
        let count = nodes.len();
        if count < 2 {
            return "no partition (one node)".into();
        }
        let mut shuffled = nodes.to_vec();
        for position in (1..count).rev() {
            let other = uniform_u64(rng, 0, position as u64 + 1) as usize;
            shuffled.swap(position, other);
        }
        match kind {
            PartitionKind::Halves => {
                let split = uniform_u64(rng, 1, count as u64) as usize;
                let (left, right) = shuffled.split_at(split);
                self.cut_between(left, right);
                format!("halves {left:?} | {right:?}")
            }
            PartitionKind::Isolate {
                leader: isolate_leader,
            } => {
                let victim = if *isolate_leader {
                    leader.unwrap_or(shuffled[0])
                } else {
                    shuffled[0]
                };
                let rest: Vec<PeerId> = nodes
                    .iter()
                    .copied()
                    .filter(|node| *node != victim)
                    .collect();
                self.cut_between(&[victim], &rest);
                format!("isolate {victim}")
            }
            PartitionKind::Ring => {
                for (position, node) in shuffled.iter().enumerate() {
                    for (other_position, other) in shuffled.iter().enumerate() {
                        let distance = position.abs_diff(other_position);
                        let neighbours = distance <= 1 || distance == count - 1;
                        if !neighbours {
                            self.blocked.insert((*node, *other));
                        }
                    }
                }
                format!("ring {shuffled:?}")
            }
            PartitionKind::Bridge => {
                let bridge = shuffled[0];
                let rest = &shuffled[1..];
                let (left, right) = rest.split_at(rest.len() / 2);
                self.cut_between(left, right);
                format!("bridge {bridge} between {left:?} and {right:?}")
            }
            PartitionKind::OneWay => {
                let (from, to) = (shuffled[0], shuffled[1]);
                self.blocked.insert((from, to));
                format!("one-way drop {from} -> {to}")
            }
        }
    }

    fn cut_between(&mut self, left: &[PeerId], right: &[PeerId]) {
        for a in left {
            for b in right {
                self.blocked.insert((*a, *b));
                self.blocked.insert((*b, *a));
            }
        }
    }

    pub(crate) fn heal(&mut self) {
        self.blocked.clear();
    }
}

/// `duration` in nanoseconds, at most `u64::MAX` (585 years).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::{ALWAYS, PerMillion};

    /// The arrival times of `count` messages sent 100 µs apart on one link.
    fn arrivals(reordering: PerMillion, count: u64) -> Vec<Instant> {
        let mut network = Network::new(
            5,
            None,
            2,
            Duration::from_micros(500),
            Duration::from_millis(5),
        );
        network.set_faults(NetworkFaults {
            reordering,
            ..NetworkFaults::NONE
        });
        (0..count)
            .map(|sent| {
                let now = Instant::ZERO + Duration::from_micros(100 * sent);
                let fates = network.route(PeerId(1), PeerId(2), now);
                assert_eq!(fates.as_slice().len(), 1, "nothing is lost");
                fates.as_slice()[0].arrival
            })
            .collect()
    }

    fn overtaken(arrivals: &[Instant]) -> usize {
        arrivals.windows(2).filter(|pair| pair[1] < pair[0]).count()
    }

    #[test]
    fn a_link_keeps_its_order_unless_reordering_is_on() {
        assert_eq!(overtaken(&arrivals(0, 1000)), 0);
        // Latencies of 0.5 to 5 ms, 0.1 ms apart: most pairs could swap.
        let always = overtaken(&arrivals(ALWAYS, 1000));
        let some = overtaken(&arrivals(100_000, 1000));
        assert!(always > 300, "{always} of 999 overtaken");
        assert!(some > 0 && some < always / 2, "{some} against {always}");
    }
}
