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
//! The first bucket in use is taken out whole when the queue reaches it, as a
//! sorted run, and its events pop from the run's end in O(1). A pop that
//! scanned its bucket's list for the earliest cost O(k) for k events in the
//! bucket: with thousands of clients, buckets hold tens of events, and the
//! scans were an eighth of all a run executed.
//!
//! A bucket lists at most [`BUCKET_EVENTS_MAX`] events, and the run takes at
//! most [`RUN_EVENTS_MAX`] pushed into its bucket while it drains; the rest go
//! to the heap, so a message storm (an engine bug that answers each message
//! with more than one) costs O(log n) an event, not O(n), and cannot stall
//! the run.

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

/// The most events pushed into the running bucket while it drains that the
/// run takes (each a sorted insert); more in its time go to the heap.
const RUN_EVENTS_MAX: usize = 256;

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

/// A bucket's list of near events: its first slot (or [`NONE`]) and its
/// length, side by side, as a push reads both: in two arrays of 16 KB each,
/// a push into a bucket not touched lately missed the cache twice.
#[derive(Clone, Copy)]
struct Bucket {
    head: u32,
    length: u32,
}

impl Bucket {
    const EMPTY: Self = Self {
        head: NONE,
        length: 0,
    };
}

/// An event's order and its slot, ordered reversed (the earliest is the
/// greatest): the max-heap of far events pops the earliest, and the running
/// bucket, sorted ascending, ends with it. Sorted by value, not as slot
/// indices into the slab, a comparison loads nothing from the slab.
#[derive(PartialEq, Eq)]
struct Ordered {
    time: Instant,
    sequence: u64,
    slot: u32,
}

impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ordered {
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
    /// divided by the bucket width), for `b` from `base` to `base + BUCKETS`.
    buckets: Vec<Bucket>,
    /// Bit `i % 64` of word `i / 64`: bucket `i` holds events.
    occupied: [u64; WORDS],
    /// The bucket number of the last event popped.
    base: u64,
    /// The time of the last event popped.
    last: Instant,
    /// Events in the buckets' lists.
    listed: usize,
    /// The events of bucket number `run_bucket`, taken out of its list when
    /// the queue reached it, latest first: the earliest is popped off the end.
    run: Vec<Ordered>,
    run_bucket: u64,
    far: BinaryHeap<Ordered>,
    sequence: u64,
}

impl<E> EventQueue<E> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            buckets: vec![Bucket::EMPTY; BUCKETS],
            occupied: [0; WORDS],
            base: 0,
            last: Instant::ZERO,
            listed: 0,
            run: Vec::new(),
            run_bucket: 0,
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
        if bucket == self.run_bucket && !self.run.is_empty() {
            // Into the bucket being drained: its run, in order (or, if that
            // is full, the heap).
            if self.run.len() < RUN_EVENTS_MAX {
                self.insert_into_run(Ordered {
                    time,
                    sequence: self.sequence,
                    slot: index,
                });
                return;
            }
        } else if bucket - self.base < BUCKETS as u64
            && self.buckets[ring].length < BUCKET_EVENTS_MAX
        {
            let list = &mut self.buckets[ring];
            self.slots[index as usize].next = list.head;
            list.head = index;
            list.length += 1;
            self.occupied[ring / 64] |= 1 << (ring % 64);
            self.listed += 1;
            return;
        }
        self.far.push(Ordered {
            time,
            sequence: self.sequence,
            slot: index,
        });
    }

    /// Events waiting.
    pub(crate) fn len(&self) -> usize {
        self.listed + self.run.len() + self.far.len()
    }

    /// Puts an event of the running bucket in its place in the run.
    #[cold]
    #[inline(never)]
    fn insert_into_run(&mut self, event: Ordered) {
        let at = self.run.partition_point(|queued| *queued < event);
        self.run.insert(at, event);
    }

    /// Every event waiting, in no particular order (for reports).
    pub(crate) fn events(&self) -> impl Iterator<Item = &E> {
        self.slots.iter().filter_map(|slot| slot.event.as_ref())
    }

    pub(crate) fn pop(&mut self) -> Option<(Instant, E)> {
        // The run's bucket comes before every listed one, unless it was taken
        // out ahead of `base` and a far event popped before it since: events
        // pushed after that one may be listed in buckets before the run's.
        if self.run.is_empty() || (self.base < self.run_bucket && self.listed > 0) {
            self.take_first_bucket();
        }
        let take_near = match (self.run.last(), self.far.peek()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            // Reversed order: the greater is the earlier.
            (Some(near), Some(far)) => near > far,
        };
        let index = if take_near {
            self.run.pop().expect("chosen above").slot
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

    /// Takes the first listed bucket out of the wheel into the run, sorted,
    /// if it comes before the run's bucket (or the run is empty).
    fn take_first_bucket(&mut self) {
        let Some(ring) = self.first_listed() else {
            return;
        };
        let head = self.buckets[ring].head;
        let bucket = self.slots[head as usize].time.as_nanos() >> BUCKET_SHIFT;
        if !self.run.is_empty() {
            if bucket > self.run_bucket {
                return;
            }
            // Rare: an earlier bucket than the running one. Its events go back
            // to their list's place in the wheel, and the earlier one runs.
            self.return_run();
        }
        let mut slot = head;
        while slot != NONE {
            let queued = &self.slots[slot as usize];
            self.run.push(Ordered {
                time: queued.time,
                sequence: queued.sequence,
                slot,
            });
            slot = queued.next;
        }
        self.listed -= self.buckets[ring].length as usize;
        self.buckets[ring] = Bucket::EMPTY;
        self.occupied[ring / 64] &= !(1 << (ring % 64));
        self.run_bucket = bucket;
        self.run.sort_unstable();
    }

    /// Puts the run's events back into their bucket's list.
    #[cold]
    #[inline(never)]
    fn return_run(&mut self) {
        let ring = (self.run_bucket % BUCKETS as u64) as usize;
        for Ordered { slot: index, .. } in self.run.drain(..) {
            let list = &mut self.buckets[ring];
            self.slots[index as usize].next = list.head;
            list.head = index;
            list.length += 1;
            self.listed += 1;
        }
        self.occupied[ring / 64] |= 1 << (ring % 64);
    }

    /// The first bucket (its place in the ring) that lists events. Buckets
    /// hold bucket numbers `base..base + BUCKETS` only, so it is the first
    /// occupied one from `base` on, around the ring.
    fn first_listed(&self) -> Option<usize> {
        if self.listed == 0 {
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
            .expect("a listed event is in some bucket");
        Some(ring)
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
        assert!(queue.buckets.iter().all(|bucket| bucket.length == 0));
    }

    /// A far event popped before the running bucket's events lets later
    /// pushes list events earlier than the run: they still pop first.
    #[test]
    fn an_event_listed_before_the_running_bucket_pops_first() {
        let at = |bucket: u64| Instant::from_nanos(bucket << BUCKET_SHIFT);
        let mut queue = EventQueue::new();
        queue.push(at(5_000), "far"); // beyond the wheel's reach from 0
        queue.push(at(1_000), "near");
        assert_eq!(queue.pop().map(|(_, event)| event), Some("near"));
        queue.push(at(5_003), "listed"); // within reach now
        // Taking bucket 5003 out as the run, the far event still comes first.
        assert_eq!(queue.pop().map(|(_, event)| event), Some("far"));
        assert_eq!(queue.run_bucket, 5_003);
        queue.push(at(5_001), "earlier than the run");
        let rest: Vec<&str> = std::iter::from_fn(|| queue.pop().map(|(_, event)| event)).collect();
        assert_eq!(rest, ["earlier than the run", "listed"]);
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
