//! The event queue: events ordered by (virtual time, sequence number), so ties
//! never depend on allocation addresses or hash order.
//!
//! A timing wheel in front of a heap. Virtual time never goes back, and most
//! events (deliveries, heartbeats) fall due within milliseconds, so the wheel
//! files them by time into buckets of 2^[`BUCKET_SHIFT`] ns, a ring of
//! [`BUCKETS`] of them, in O(1); a pop takes the smallest event of the first
//! bucket in use, found through a bitmap. Events beyond the wheel's reach at
//! the time they are pushed (election timers, faults, deadlines) wait in a
//! binary heap, and each pop takes whichever of the two comes first. A
//! binary heap alone sifted through O(log n) unpredictable comparisons per
//! event: a tenth of a simulated event's cost.
//!
//! Events live in one slab, reused last-freed first, and a bucket is a list
//! threaded through it: the events in flight stay in a few hot cache lines,
//! where a `Vec` per bucket spread them over thousands of allocations, each
//! cold again by the time the wheel came round to it.
//!
//! A pop scans its bucket's list, so a bucket holds at most
//! [`BUCKET_EVENTS_MAX`] events and the rest go to the heap: a message storm
//! (an engine bug that answers each message with more than one) then costs
//! O(log n) an event, where unbounded lists cost O(n) and stalled the run.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::env::Instant;

/// log2 of a bucket's width in nanoseconds (16.4 µs): narrow enough that few
/// events share one, as a pop scans its bucket (the answers to a leader of 101
/// nodes come back together).
const BUCKET_SHIFT: u32 = 14;

/// Buckets in the ring: together they reach 67 ms ahead of the last pop.
const BUCKETS: usize = 4096;

/// The most events a bucket lists; more in its time go to the heap.
const BUCKET_EVENTS_MAX: u32 = 64;

/// Each bucket's bit in `occupied`.
const WORDS: usize = BUCKETS / 64;

/// The end of a bucket's list.
const NONE: u32 = u32::MAX;

/// An event in the slab, with its place in the order.
struct Slot<E> {
    time: Instant,
    sequence: u64,
    /// The next event of the same bucket (near events only).
    next: u32,
    /// `None` while the slot is free.
    event: Option<E>,
}

impl<E> Slot<E> {
    fn order(&self) -> (Instant, u64) {
        (self.time, self.sequence)
    }
}

/// A far event in the heap: its order and its slot, ordered reversed so the
/// max-heap pops the earliest.
#[derive(PartialEq, Eq)]
struct Far {
    time: Instant,
    sequence: u64,
    slot: u32,
}

impl PartialOrd for Far {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Far {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.sequence).cmp(&(self.time, self.sequence))
    }
}

/// A priority queue of events by time; events at equal times pop in the order
/// they were pushed. Pushing an event earlier than the last one popped is a
/// bug in the caller and panics.
pub(crate) struct EventQueue<E> {
    /// Every queued event, near or far, and free slots.
    slots: Vec<Slot<E>>,
    /// Free slots, the last freed on top.
    free: Vec<u32>,
    /// Bucket `b % BUCKETS` lists the near events of bucket number `b` (time
    /// divided by the bucket width), for `b` from `base` to `base + BUCKETS`:
    /// the first slot of each list, or [`NONE`].
    heads: Vec<u32>,
    /// How many events each bucket lists.
    lengths: Vec<u32>,
    /// Bit `i % 64` of word `i / 64`: bucket `i` holds events.
    occupied: [u64; WORDS],
    /// The bucket number of the last event popped.
    base: u64,
    /// The time of the last event popped.
    last: Instant,
    near: usize,
    far: BinaryHeap<Far>,
    sequence: u64,
}

impl<E> EventQueue<E> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            heads: vec![NONE; BUCKETS],
            lengths: vec![0; BUCKETS],
            occupied: [0; WORDS],
            base: 0,
            last: Instant::ZERO,
            near: 0,
            far: BinaryHeap::new(),
            sequence: 0,
        }
    }

    // Inlined into its callers, which build the event in place: through a
    // call it was moved twice more (21 instructions of a simulated event's
    // 3,178). `pop`, called from one place, gained nothing inlined.
    #[inline(always)]
    pub(crate) fn push(&mut self, time: Instant, event: E) {
        assert!(
            time >= self.last,
            "event at {time} pushed after one at {} was taken",
            self.last
        );
        self.sequence += 1;
        let slot = Slot {
            time,
            sequence: self.sequence,
            next: NONE,
            event: Some(event),
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index as usize] = slot;
                index
            }
            None => {
                self.slots.push(slot);
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 events in flight")
            }
        };
        let bucket = time.as_nanos() >> BUCKET_SHIFT;
        let ring = (bucket % BUCKETS as u64) as usize;
        if bucket - self.base < BUCKETS as u64 && self.lengths[ring] < BUCKET_EVENTS_MAX {
            self.slots[index as usize].next = self.heads[ring];
            self.heads[ring] = index;
            self.lengths[ring] += 1;
            self.occupied[ring / 64] |= 1 << (ring % 64);
            self.near += 1;
        } else {
            self.far.push(Far {
                time,
                sequence: self.sequence,
                slot: index,
            });
        }
    }

    /// Events waiting.
    pub(crate) fn len(&self) -> usize {
        self.near + self.far.len()
    }

    /// Every event waiting, in no particular order (for reports).
    pub(crate) fn events(&self) -> impl Iterator<Item = &E> {
        self.slots.iter().filter_map(|slot| slot.event.as_ref())
    }

    pub(crate) fn pop(&mut self) -> Option<(Instant, E)> {
        let near = self.first_near();
        let take_near = match (near, self.far.peek()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((_, slot, _)), Some(far)) => {
                self.slots[slot as usize].order() < (far.time, far.sequence)
            }
        };
        let index = if take_near {
            let (ring, slot, previous) = near.expect("chosen above");
            let next = self.slots[slot as usize].next;
            if previous == NONE {
                self.heads[ring] = next;
            } else {
                self.slots[previous as usize].next = next;
            }
            self.lengths[ring] -= 1;
            if self.heads[ring] == NONE {
                self.occupied[ring / 64] &= !(1 << (ring % 64));
            }
            self.near -= 1;
            slot
        } else {
            self.far.pop().expect("peeked above").slot
        };
        self.free.push(index);
        let slot = &mut self.slots[index as usize];
        let event = slot.event.take().expect("a queued slot holds its event");
        self.last = slot.time;
        self.base = slot.time.as_nanos() >> BUCKET_SHIFT;
        Some((slot.time, event))
    }

    /// The earliest near event: its bucket, its slot and the slot before it in
    /// the bucket's list ([`NONE`] if first). Buckets hold bucket numbers
    /// `base..base + BUCKETS` only, so the first occupied one after `base`
    /// (around the ring) holds the earliest.
    fn first_near(&self) -> Option<(usize, u32, u32)> {
        if self.near == 0 {
            return None;
        }
        let start = (self.base % BUCKETS as u64) as usize;
        let ring = (0..=WORDS)
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
        let mut best = (self.heads[ring], NONE);
        let (mut previous, mut slot) = (best.0, self.slots[best.0 as usize].next);
        while slot != NONE {
            if self.slots[slot as usize].order() < self.slots[best.0 as usize].order() {
                best = (slot, previous);
            }
            previous = slot;
            slot = self.slots[slot as usize].next;
        }
        Some((ring, best.0, best.1))
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
    fn a_crowded_bucket_overflows_to_the_heap_in_order() {
        let mut queue = EventQueue::new();
        // Many events in one bucket's time, pushed out of time order.
        let count = 10 * BUCKET_EVENTS_MAX as u64;
        for number in 0..count {
            queue.push(Instant::from_nanos(1_000 + (number * 7) % 13), number);
        }
        assert!(queue.far.len() >= (count - u64::from(BUCKET_EVENTS_MAX)) as usize);
        let mut waiting: Vec<u64> = queue.events().copied().collect();
        waiting.sort_unstable();
        assert_eq!(
            waiting,
            (0..count).collect::<Vec<_>>(),
            "events() lists each once"
        );
        let mut popped = Vec::new();
        while let Some((time, number)) = queue.pop() {
            popped.push((time, number));
        }
        let mut expected = popped.clone();
        expected.sort_by_key(|&(time, number)| (time, number));
        assert_eq!(popped.len() as u64, count);
        assert_eq!(popped, expected, "by time, then by push order");
        assert!(queue.lengths.iter().all(|&length| length == 0));
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
