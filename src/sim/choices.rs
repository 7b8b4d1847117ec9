//! Where the simulator's decisions come from: the seeded ChaCha stream of each
//! component, or a fuzzer's input bytes (a "tape") in front of it.
//!
//! With a tape, the top byte of every draw is the next tape byte of that
//! component, so libFuzzer's coverage guidance steers which fault comes next,
//! which message is late or lost and when a client retries; the low bytes, and
//! every draw once the tape is used up, come from the seeded stream. So every
//! input, even an empty one, is a valid run, and the same input is the same run.
//!
//! The tape is dealt out byte by byte to the components in turn (byte `i` goes
//! to component `i % COMPONENTS`), so each component reads its own bytes in its
//! own order: a scenario that spells out the fault schedule replays the other
//! components' choices unchanged.

use core::convert::Infallible;
use std::sync::Arc;

use rand_core::{Rng, TryRng};

use crate::env::Entropy;

/// The components that read a tape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// The fault plan and schedule, drawn before the run.
    FaultSchedule = 0,
    /// Decisions taken as faults fire (which node, what a crash loses).
    FaultRuntime = 1,
    /// Per-message latency, loss, duplication, corruption; partition shapes.
    Network = 2,
    /// Client start times, think times and retry targets.
    Clients = 3,
}

/// How many components share a tape.
pub const COMPONENTS: usize = 4;

/// A source of choices: a seeded stream, with an optional tape in front.
#[derive(Debug, Clone)]
pub struct Choices {
    seeded: Entropy,
    tape: Option<Arc<[u8]>>,
    /// The next tape byte of this component.
    next: usize,
}

impl Choices {
    /// Choices from the seeded stream only.
    pub fn seeded(seeded: Entropy) -> Self {
        Self {
            seeded,
            tape: None,
            next: 0,
        }
    }

    /// Choices from `tape` (this component's share of it), then `seeded`.
    pub fn with_tape(seeded: Entropy, tape: Option<Arc<[u8]>>, component: Component) -> Self {
        Self {
            seeded,
            tape,
            next: component as usize,
        }
    }

    /// Replaces the seeded stream, keeping the place on the tape: a fault's
    /// decisions come from a stream of its own, so removing one fault (as
    /// shrinking does) leaves the others' decisions as they were.
    pub fn reseed(&mut self, seeded: Entropy) {
        self.seeded = seeded;
    }

    fn tape_byte(&mut self) -> Option<u8> {
        let byte = *self.tape.as_ref()?.get(self.next)?;
        self.next += COMPONENTS;
        Some(byte)
    }
}

impl TryRng for Choices {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        // Only the high half of a u64 draw: uniform draws read its top bits.
        Ok((self.try_next_u64()? >> 32) as u32)
    }

    // Out of line: inlined, the ChaCha block refill (with its SSE2 fallback,
    // never run where AVX2 is) lands inside every caller, and the network's
    // routing grew by 12 KB for it. The call costs less than that did: the
    // simulator runs 3 instructions fewer per event without it.
    #[inline(never)]
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let low = self.seeded.next_u64();
        Ok(match self.tape_byte() {
            Some(byte) => (u64::from(byte) << 56) | (low >> 8),
            None => low,
        })
    }

    fn try_fill_bytes(&mut self, destination: &mut [u8]) -> Result<(), Infallible> {
        for chunk in destination.chunks_mut(8) {
            let bytes = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{derive_entropy, uniform_u64};

    #[test]
    fn without_a_tape_choices_are_the_seeded_stream() {
        let mut choices = Choices::seeded(derive_entropy(7, "network"));
        let mut plain = derive_entropy(7, "network");
        for _ in 0..100 {
            assert_eq!(
                uniform_u64(&mut choices, 0, 1000),
                uniform_u64(&mut plain, 0, 1000)
            );
        }
    }

    #[test]
    fn a_tape_steers_each_component_with_its_own_bytes() {
        // Component 2 reads bytes 2, 6, ...: 0x00 then 0xff.
        let tape: Arc<[u8]> = Arc::from(vec![9, 9, 0x00, 9, 9, 9, 0xff, 9]);
        let mut choices =
            Choices::with_tape(derive_entropy(1, "network"), Some(tape), Component::Network);
        assert_eq!(uniform_u64(&mut choices, 0, 4), 0);
        assert_eq!(uniform_u64(&mut choices, 0, 4), 3);
        // Then the seeded stream, as if there were no tape.
        let mut seeded = derive_entropy(1, "network");
        seeded.next_u64();
        seeded.next_u64();
        assert_eq!(
            uniform_u64(&mut choices, 0, 1_000_000),
            uniform_u64(&mut seeded, 0, 1_000_000)
        );
    }
}
