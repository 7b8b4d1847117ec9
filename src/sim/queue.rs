//! The event queue: events ordered by (virtual time, sequence number), so ties
//! never depend on allocation addresses or hash order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::env::Instant;

/// An event with its place in the order.
struct Scheduled<E> {
    time: Instant,
    sequence: u64,
    event: E,
}

impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, other: &Self) -> bool {
        self.sequence == other.sequence
    }
}

impl<E> Eq for Scheduled<E> {}

impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Scheduled<E> {
    /// Reversed, so the max-heap pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.sequence).cmp(&(self.time, self.sequence))
    }
}

/// A priority queue of events by time; events at equal times pop in the order
/// they were pushed.
pub(crate) struct EventQueue<E> {
    heap: BinaryHeap<Scheduled<E>>,
    sequence: u64,
}

impl<E> EventQueue<E> {
    pub(crate) fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            sequence: 0,
        }
    }

    pub(crate) fn push(&mut self, time: Instant, event: E) {
        self.sequence += 1;
        self.heap.push(Scheduled {
            time,
            sequence: self.sequence,
            event,
        });
    }

    pub(crate) fn pop(&mut self) -> Option<(Instant, E)> {
        self.heap
            .pop()
            .map(|scheduled| (scheduled.time, scheduled.event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_by_push_order() {
        let mut queue = EventQueue::new();
        queue.push(Instant::from_nanos(5), "late");
        queue.push(Instant::from_nanos(1), "first");
        queue.push(Instant::from_nanos(1), "second");
        let order: Vec<&str> = std::iter::from_fn(|| queue.pop().map(|(_, event)| event)).collect();
        assert_eq!(order, ["first", "second", "late"]);
    }
}
