//! The seam: everything that differs between a simulated and a real run.
//!
//! ```text
//!   clock    Instant: virtual time in the simulator, monotonic time in production;
//!            timers are (TimerKind, deadline) pairs the driver arms and fires
//!   network  Network::send(peer, bytes); received bytes come back as events
//!   entropy  a ChaCha8 stream handed in by the driver (seeded, or from the OS)
//!   storage  the Storage trait (crate::log), with its explicit sync point
//! ```
//!
//! The engine (`crate::raft`) touches none of these directly: it takes `now` and
//! its RNG as arguments and returns effects, and a driver (the simulator's world,
//! or the runtime's node task) turns effects into calls on an [`Env`]. Code in `raft/`, `machine/`, `log/`,
//! `sim/` and `check/` never reads real time or OS entropy.

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::id::PeerId;

/// A point in time, in nanoseconds since an arbitrary origin: the start of a
/// simulation, or the moment a production node started.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Self = Self(0);

    /// The instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(&self) -> u64 {
        self.0
    }

    /// The time elapsed since `earlier`, zero if `earlier` is later.
    pub fn saturating_since(&self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Self;

    fn add(self, duration: Duration) -> Self {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(nanos))
    }
}

impl Sub<Duration> for Instant {
    type Output = Self;

    fn sub(self, duration: Duration) -> Self {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        Self(self.0.saturating_sub(nanos))
    }
}

impl fmt::Display for Instant {
    /// Seconds with microsecond precision: `12.345678s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.0 / 1_000_000_000,
            (self.0 % 1_000_000_000) / 1_000
        )
    }
}

/// The timers an engine asks its driver to arm. A driver keeps at most one timer
/// per kind per node: arming a kind again replaces the earlier deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimerKind {
    /// A follower or candidate has waited long enough for a leader.
    Election,
    /// A leader's next heartbeat is due.
    Heartbeat,
    /// The earliest deadline of a pending proposal, query or catch-up request.
    Expiry,
}

impl TimerKind {
    /// Every kind, for drivers that keep a slot per kind.
    pub const ALL: [Self; 3] = [Self::Election, Self::Heartbeat, Self::Expiry];

    /// A dense index, for arrays with a slot per kind.
    pub const fn slot(self) -> usize {
        match self {
            Self::Election => 0,
            Self::Heartbeat => 1,
            Self::Expiry => 2,
        }
    }
}

/// The entropy source handed to an engine: ChaCha8, whose output stream is fixed
/// by its specification, so a seed means the same thing on every machine and
/// every version.
pub type Entropy = ChaCha8Rng;

/// An entropy stream from a 32-byte seed.
pub fn entropy_from_seed(seed: [u8; 32]) -> Entropy {
    ChaCha8Rng::from_seed(seed)
}

/// An independent entropy stream for `component`, derived from a root seed: adding
/// a component does not change the streams of the others.
pub fn derive_entropy(root_seed: u64, component: &str) -> Entropy {
    let mut hasher = blake3::Hasher::new_derive_key("quorate 2026 entropy stream v1");
    hasher.update(&root_seed.to_le_bytes());
    hasher.update(component.as_bytes());
    entropy_from_seed(*hasher.finalize().as_bytes())
}

/// A uniform draw from `low..high` (empty range: `low`), by Lemire's method with
/// rejection. Written here rather than taken from `rand`, whose algorithms may
/// change between versions and so change what a seed means.
pub fn uniform_u64<R: Rng + ?Sized>(rng: &mut R, low: u64, high: u64) -> u64 {
    if high <= low {
        return low;
    }
    let span = high - low;
    let mut product = u128::from(rng.next_u64()) * u128::from(span);
    // Lemire's rejection: a draw whose low half is below 2^64 mod span is
    // biased and redrawn. That bound is below `span`, so the division that
    // computes it is needed only when the low half is too.
    if (product as u64) < span {
        let threshold = span.wrapping_neg() % span;
        while (product as u64) < threshold {
            product = u128::from(rng.next_u64()) * u128::from(span);
        }
    }
    low + (product >> 64) as u64
}

/// A uniform duration in `low..high`, at nanosecond resolution.
pub fn uniform_duration<R: Rng + ?Sized>(rng: &mut R, low: Duration, high: Duration) -> Duration {
    let low_nanos = u64::try_from(low.as_nanos()).unwrap_or(u64::MAX);
    let high_nanos = u64::try_from(high.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(uniform_u64(rng, low_nanos, high_nanos))
}

/// True with probability `per_million / 1_000_000`.
pub fn chance<R: Rng + ?Sized>(rng: &mut R, per_million: u32) -> bool {
    uniform_u64(rng, 0, 1_000_000) < u64::from(per_million)
}

/// The clock of the seam.
pub trait Clock {
    /// The current time.
    fn now(&self) -> Instant;
}

/// The network of the seam: bytes out; bytes in arrive as events to the driver.
pub trait Network {
    /// Sends an encoded frame to `peer`. Delivery is not guaranteed.
    fn send(&mut self, peer: PeerId, frame: Vec<u8>);
}

/// The timer service of the seam.
pub trait Timers {
    /// Arms the timer of `kind` at `deadline`, replacing an earlier one of that kind.
    fn set_timer(&mut self, kind: TimerKind, deadline: Instant);
}

/// Everything a driver provides to one node.
pub trait Env: Clock + Network + Timers {}

impl<T: Clock + Network + Timers> Env for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_pinned_by_seed_and_component() {
        let a = derive_entropy(7, "network").next_u64();
        assert_eq!(a, derive_entropy(7, "network").next_u64());
        assert_ne!(a, derive_entropy(7, "node-1").next_u64());
        assert_ne!(a, derive_entropy(8, "network").next_u64());
    }

    #[test]
    fn uniform_draws_what_rejection_against_the_full_threshold_draws() {
        // The threshold's division is skipped when it cannot matter: the
        // draws, and so what every seed means, must be those of the plain
        // method. Spans near 2^63 reject about half of all draws.
        fn plain(rng: &mut Entropy, low: u64, high: u64) -> u64 {
            let span = high - low;
            let threshold = span.wrapping_neg() % span;
            loop {
                let product = u128::from(rng.next_u64()) * u128::from(span);
                if (product as u64) >= threshold {
                    return low + (product >> 64) as u64;
                }
            }
        }
        for span in [
            1,
            2,
            3,
            1000,
            1 << 40,
            (1 << 63) + 1,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let (mut ours, mut theirs) = (derive_entropy(3, "a"), derive_entropy(3, "a"));
            for _ in 0..2000 {
                assert_eq!(
                    uniform_u64(&mut ours, 5, 5u64.saturating_add(span)),
                    plain(&mut theirs, 5, 5u64.saturating_add(span)),
                    "span {span}"
                );
            }
        }
    }

    #[test]
    fn uniform_stays_in_range_and_covers_it() {
        let mut rng = derive_entropy(1, "test");
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let value = uniform_u64(&mut rng, 5, 15);
            assert!((5..15).contains(&value));
            seen[(value - 5) as usize] = true;
        }
        assert!(seen.iter().all(|&hit| hit));
        assert_eq!(uniform_u64(&mut rng, 3, 3), 3);
    }

    #[test]
    fn instants_saturate() {
        let t = Instant::from_nanos(5);
        assert_eq!(t - Duration::from_nanos(9), Instant::ZERO);
        assert_eq!(Instant::ZERO.saturating_since(t), Duration::ZERO);
        assert_eq!(Instant::from_nanos(1_500_000_000).to_string(), "1.500000s");
    }
}
