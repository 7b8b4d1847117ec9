//! The event queue: events ordered by (virtual time, sequence number), so ties
//! never depend on allocation addresses or hash order.
//!
//! A timing wheel in front of a heap. Virtual time never goes back, and most
//! events (deliveries, heartbeats) fall due within milliseconds, so the wheel
//! files them by time into buckets of [`BUCKET_NANOS`], a ring of
//! [`BUCKETS`] of them, in O(1); a pop takes the smallest event of the first
//! bucket in use, found through a bitmap. Events beyond the wheel's reach at
//! the time they are pushed (election timers, faults, deadlines) wait in a
//! binary heap, and each pop takes whichever of the two comes first. A
//! binary heap alone sifted through O(log n) unpredictable comparisons per
//! event: a tenth of a simulated event's cost.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::env::Instant;

/// log2 of a bucket's width in nanoseconds (32.8 µs).
const BUCKET_SHIFT: u32 = 15;

/// Buckets in the ring: together they reach 67 ms ahead of the last pop.
const BUCKETS: usize = 2048;

/// Each bucket's bit in `occupied`.
const WORDS: usize = BUCKETS / 64;

/// An event with its place in the order.
struct Queued<E> {
    time: Instant,
    sequence: u64,
    event: E,
}

impl<E> Queued<E> {
    fn order(&self) -> (Instant, u64) {
        (self.time, self.sequence)
    }
}

/// A far event in the heap: ordered reversed, so the max-heap pops the earliest.
struct Far<E>(Queued<E>);

impl<E> PartialEq for Far<E> {
    fn eq(&self, other: &Self) -> bool {
        self.0.sequence == other.0.sequence
    }
}

impl<E> Eq for Far<E> {}

impl<E> PartialOrd for Far<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Far<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.order().cmp(&self.0.order())
    }
}

/// A priority queue of events by time; events at equal times pop in the order
/// they were pushed. Pushing an event earlier than the last one popped is a
/// bug in the caller and panics.
pub(crate) struct EventQueue<E> {
    /// Bucket `b % BUCKETS` holds the near events of bucket number `b` (time
    /// divided by the bucket width), for `b` from `base` to `base + BUCKETS`.
    wheel: Vec<Vec<Queued<E>>>,
    /// Bit `i % 64` of word `i / 64`: bucket `i` holds events.
    occupied: [u64; WORDS],
    /// The bucket number of the last event popped.
    base: u64,
    /// The time of the last event popped.
    last: Instant,
    near: usize,
    far: BinaryHeap<Far<E>>,
    sequence: u64,
}

impl<E> EventQueue<E> {
    pub(crate) fn new() -> Self {
        Self {
            wheel: (0..BUCKETS).map(|_| Vec::new()).collect(),
            occupied: [0; WORDS],
            base: 0,
            last: Instant::ZERO,
            near: 0,
            far: BinaryHeap::new(),
            sequence: 0,
        }
    }

    pub(crate) fn push(&mut self, time: Instant, event: E) {
        assert!(
            time >= self.last,
            "event at {time} pushed after one at {} was taken",
            self.last
        );
        self.sequence += 1;
        let queued = Queued {
            time,
            sequence: self.sequence,
            event,
        };
        let bucket = time.as_nanos() >> BUCKET_SHIFT;
        if bucket - self.base < BUCKETS as u64 {
            let slot = (bucket % BUCKETS as u64) as usize;
            self.wheel[slot].push(queued);
            self.occupied[slot / 64] |= 1 << (slot % 64);
            self.near += 1;
        } else {
            self.far.push(Far(queued));
        }
    }

    /// Events waiting.
    pub(crate) fn len(&self) -> usize {
        self.near + self.far.len()
    }

    pub(crate) fn pop(&mut self) -> Option<(Instant, E)> {
        let near = self.first_near();
        let take_near = match (near, self.far.peek()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((slot, position)), Some(far)) => {
                self.wheel[slot][position].order() < far.0.order()
            }
        };
        let queued = if take_near {
            let (slot, position) = near.expect("chosen above");
            let bucket = &mut self.wheel[slot];
            let queued = bucket.swap_remove(position);
            if bucket.is_empty() {
                self.occupied[slot / 64] &= !(1 << (slot % 64));
            }
            self.near -= 1;
            queued
        } else {
            self.far.pop().expect("peeked above").0
        };
        self.last = queued.time;
        self.base = queued.time.as_nanos() >> BUCKET_SHIFT;
        Some((queued.time, queued.event))
    }

    /// The earliest near event: its bucket and its position there. Buckets
    /// hold bucket numbers `base..base + BUCKETS` only, so the first occupied
    /// one after `base` (around the ring) holds the earliest.
    fn first_near(&self) -> Option<(usize, usize)> {
        if self.near == 0 {
            return None;
        }
        let start = (self.base % BUCKETS as u64) as usize;
        let slot = (0..=WORDS)
            .find_map(|step| {
                let word = (start / 64 + step) % WORDS;
                let mut bits = self.occupied[word];
                if step == 0 {
                    bits &= u64::MAX << (start % 64);
                } else if step == WORDS {
                    // Back at the start word: the buckets before `start`.
                    bits &= !(u64::MAX << (start % 64));
                }
                (bits != 0).then(|| word * 64 + bits.trailing_zeros() as usize)
            })
            .expect("a near event is in some bucket");
        let bucket = &self.wheel[slot];
        let position = (0..bucket.len())
            .min_by_key(|&position| bucket[position].order())
            .expect("an occupied bucket holds events");
        Some((slot, position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pops_by_time_then_by_push_order() {
        let mut queue = EventQueue::new();
        queue.push(Instant::from_nanos(5), "late");
        queue.push(Instant::from_nanos(1), "first");
        queue.push(Instant::from_nanos(1), "second");
        queue.push(Instant::from_nanos(10_000_000_000), "far");
        let order: Vec<&str> = std::iter::from_fn(|| queue.pop().map(|(_, event)| event)).collect();
        assert_eq!(order, ["first", "second", "late", "far"]);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    #[should_panic(expected = "pushed after one at")]
    fn refuses_an_event_in_the_past() {
        let mut queue = EventQueue::new();
        queue.push(Instant::from_nanos(5), ());
        queue.pop();
        queue.push(Instant::from_nanos(4), ());
    }

    proptest! {
        /// Against a sorted model: any interleaving of pushes (never before the
        /// last pop) and pops gives the same events in the same order.
        #[test]
        fn matches_a_sorted_model(steps in prop::collection::vec((0u64..1 << 40, 0u8..4), 1..400)) {
            let mut queue = EventQueue::new();
            let mut model: Vec<(u64, u64)> = Vec::new();
            let mut now = 0;
            let mut pushed = 0;
            for (delay, pops) in steps {
                // Delays of every magnitude (within a bucket, across the ring,
                // beyond it), and many ties.
                let time = now + (delay >> (delay % 41));
                pushed += 1;
                queue.push(Instant::from_nanos(time), pushed);
                model.push((time, pushed));
                for _ in 0..pops {
                    model.sort_unstable();
                    let expected = (!model.is_empty()).then(|| model.remove(0));
                    let got = queue.pop().map(|(time, event)| (time.as_nanos(), event));
                    prop_assert_eq!(got, expected);
                    if let Some((time, _)) = got {
                        now = time;
                    }
                    prop_assert_eq!(queue.len(), model.len());
                }
            }
            model.sort_unstable();
            for expected in model {
                prop_assert_eq!(queue.pop().map(|(time, event)| (time.as_nanos(), event)), Some(expected));
            }
            prop_assert!(queue.pop().is_none());
        }
    }
}
