//! The run's trace: every event with its virtual time, node, term and role,
//! folded into a hash (equal seeds must give equal hashes), kept in a ring of the
//! last events for failure reports, optionally kept whole for replay, and emitted
//! through `tracing` with the virtual time as a field.

use core::fmt;

use super::fingerprint::Fingerprint;
use crate::env::{Instant, TimerKind};
use crate::id::PeerId;
use crate::log::{Index, Term};
use crate::raft::{MessageKind, Role};

/// How many trace events a failure report shows.
pub const TRACE_TAIL_EVENTS: usize = 40;

/// Slots in the ring that keeps the last events: a power of two, so that an
/// event's slot is its number masked, with no bounds check and no wrap test.
const RING: usize = TRACE_TAIL_EVENTS.next_power_of_two();

/// One trace event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    /// Virtual time.
    pub time: Instant,
    /// The node it concerns, if any.
    pub node: Option<PeerId>,
    /// That node's term after the event.
    pub term: Term,
    /// That node's role after the event.
    pub role: Option<Role>,
    /// What happened.
    pub what: What,
}

/// What a trace event records. Kept as data (not text) so that tracing a run
/// costs little; it is formatted only when shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// A message was delivered and accepted.
    Received {
        /// The sender.
        from: PeerId,
        /// The message's kind.
        message: MessageKind,
        /// When it was sent (virtual time). Not part of the trace hash: it
        /// follows from the events before.
        sent: Instant,
    },
    /// A frame failed to decode (corrupted) and was dropped by the receiver.
    Rejected {
        /// The sender.
        from: PeerId,
        /// Why the codec refused it.
        reason: &'static str,
    },
    /// A timer fired.
    Timer(TimerKind),
    /// The node's role or term changed.
    Role {
        /// The leader it follows, if known.
        leader: Option<PeerId>,
    },
    /// The node's commit index moved.
    Commit(Index),
    /// A client request reached the node.
    Request {
        /// The client.
        client: u64,
        /// A short description. Written only where it can be shown (a recorded
        /// trace, `tracing` at debug level, the tail of a report), as formatting
        /// every request would cost more than the rest of its event.
        operation: String,
        /// A fingerprint of the request (what the trace hash folds in, so the
        /// hash never depends on whether the text was written).
        digest: u64,
    },
    /// A fault was injected or healed.
    Fault(String),
    /// Anything else worth a line.
    Note(String),
}

impl What {
    /// What the trace hash folds in: a tag for the kind, two words, a name
    /// (why a frame was refused; empty for other kinds), and the text of a
    /// fault or note.
    fn words(&self) -> (u64, u64, u64, &'static str, Option<&str>) {
        match self {
            // The kind as a number: folding in its name's bytes cost 12
            // instructions more an event (most events are deliveries).
            Self::Received { from, message, .. } => (1, from.0, *message as u64, "", None),
            Self::Rejected { from, reason } => (2, from.0, 0, reason, None),
            Self::Timer(kind) => (3, kind.slot() as u64, 0, "", None),
            Self::Role { leader } => (4, leader.map_or(u64::MAX, |leader| leader.0), 0, "", None),
            Self::Commit(index) => (5, index.0, 0, "", None),
            Self::Request { client, digest, .. } => (6, *client, *digest, "", None),
            Self::Fault(text) => (7, 0, 0, "", Some(text)),
            Self::Note(text) => (8, 0, 0, "", Some(text)),
        }
    }
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Received { from, message, .. } => write!(f, "<- {from} {message}"),
            Self::Rejected { from, reason } => write!(f, "<- {from} rejected: {reason}"),
            Self::Timer(kind) => write!(f, "timer {kind:?}"),
            Self::Role {
                leader: Some(leader),
            } => write!(f, "role change, leader {leader}"),
            Self::Role { leader: None } => write!(f, "role change, no leader"),
            Self::Commit(index) => write!(f, "commit {index}"),
            Self::Request {
                client, operation, ..
            } => write!(f, "client {client}: {operation}"),
            Self::Fault(text) => write!(f, "FAULT {text}"),
            Self::Note(text) => f.write_str(text),
        }
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>12}", self.time.to_string())?;
        match (self.node, self.role) {
            (Some(node), Some(role)) => write!(f, " {node:>4} t{:<3} {role:<13}", self.term.0)?,
            (Some(node), None) => write!(f, " {node:>4} {:<18}", "down")?,
            _ => write!(f, " {:>4} {:<18}", "-", "")?,
        }
        write!(f, " {}", self.what)
    }
}

/// Collects the trace of one run.
pub struct Trace {
    /// Every event so far, folded in field by field.
    hasher: Fingerprint,
    events: u64,
    /// The last events: event number `n` (from 0) in slot `n % RING`, written
    /// in place (so recording moves an event once). Filled with empty notes
    /// at the start, so that a write never tests whether its slot is in use.
    ring: Box<[TraceEvent; RING]>,
    all: Option<Vec<TraceEvent>>,
    /// Running hash after each event, for locating the first divergence.
    checkpoints: Option<Vec<u64>>,
    /// Whether `tracing` shows events (at debug level for `quorate::sim`),
    /// asked once when the trace starts, as the subscriber is set by then.
    shown: bool,
    /// Whether any of `all`, `checkpoints` or `shown` asks for more than the
    /// hash and the tail: one test per event in place of three.
    extras: bool,
}

impl Trace {
    /// A trace that keeps every event if `record_all`, and per-event checkpoints
    /// if `checkpoints`.
    pub fn new(record_all: bool, checkpoints: bool) -> Self {
        let shown = tracing::enabled!(target: "quorate::sim", tracing::Level::DEBUG);
        Self {
            hasher: Fingerprint::new(0),
            events: 0,
            ring: Box::new(core::array::from_fn(|_| TraceEvent {
                time: Instant::ZERO,
                node: None,
                term: Term::ZERO,
                role: None,
                what: What::Note(String::new()),
            })),
            all: record_all.then(Vec::new),
            checkpoints: checkpoints.then(Vec::new),
            shown,
            extras: record_all || checkpoints || shown,
        }
    }

    /// Whether every event is shown or kept whole (recorded for replay, or
    /// `tracing` at debug level), so its text is needed now.
    pub fn wants_text(&self) -> bool {
        self.all.is_some() || self.shown
    }

    /// Records an event.
    // Always inlined: the event is built in place rather than passed through
    // memory (7 instructions fewer per event).
    #[inline(always)]
    pub fn record(&mut self, event: TraceEvent) {
        let slot = self.events as usize % RING;
        self.events += 1;
        let (kind, first, second, name, text) = event.what.words();
        let role = event.role.map_or(9, |role| role as u64);
        // A name is folded in as words (every reason a frame is refused for is
        // short), or as a fingerprint of its own if long, marked by a length no
        // short one has.
        let (name, length) = match Fingerprint::short_text(name.as_bytes()) {
            Some(words) => (words, name.len() as u64),
            None => ([Fingerprint::of_bytes(name.as_bytes()), 0, 0], 0xffff),
        };
        // `second` is zero for the kinds that have a name, and the name's
        // third word zero for the kinds that do not: they share a lane.
        self.hasher.eight([
            event.time.as_nanos(),
            event.node.map_or(u64::MAX, |node| node.0),
            event.term.0,
            length << 16 | role << 8 | kind,
            first,
            second ^ name[2],
            name[0],
            name[1],
        ]);
        if let Some(text) = text {
            self.hasher.bytes(text.as_bytes());
        }
        if self.extras {
            self.record_extras(&event);
        }
        self.ring[slot] = event;
    }

    /// What [`record`](Self::record) does for a replay or a comparison: the
    /// checkpoint, the `tracing` line, the whole event. Out of line, as a
    /// campaign wants none of it.
    #[inline(never)]
    fn record_extras(&mut self, event: &TraceEvent) {
        if let Some(checkpoints) = &mut self.checkpoints {
            checkpoints.push(self.hasher.value());
        }
        if self.shown {
            tracing::debug!(target: "quorate::sim", time = %event.time, "{event}");
        }
        if let Some(all) = &mut self.all {
            all.push(event.clone());
        }
    }

    /// How many events were recorded.
    pub fn len(&self) -> u64 {
        self.events
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// The hash of everything recorded, as 16 hex digits.
    pub fn hash(&self) -> String {
        format!("{:016x}", self.hasher.value())
    }

    /// The last events recorded.
    pub fn tail(&self) -> Vec<TraceEvent> {
        let kept = self.events.min(TRACE_TAIL_EVENTS as u64);
        (self.events - kept..self.events)
            .map(|number| self.ring[number as usize % RING].clone())
            .collect()
    }

    /// Every event, if recorded.
    pub fn events(&self) -> Option<&[TraceEvent]> {
        self.all.as_deref()
    }

    /// The per-event checkpoints, if kept.
    pub fn checkpoints(&self) -> Option<&[u64]> {
        self.checkpoints.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `number`th event of a run mixing every kind, with and without text.
    fn event(number: u64) -> TraceEvent {
        let what = match number % 7 {
            0 => What::Fault(format!("fault {number}")),
            1 => What::Received {
                from: PeerId(number % 3 + 1),
                message: MessageKind::AppendEntries,
                sent: Instant::from_nanos(number),
            },
            2 => What::Request {
                client: number,
                operation: if number.is_multiple_of(2) {
                    format!("request {number}")
                } else {
                    String::new()
                },
                digest: number * 31,
            },
            3 => What::Note(format!("note {number}")),
            4 => What::Commit(Index(number)),
            5 => What::Role {
                leader: Some(PeerId(2)),
            },
            _ => What::Rejected {
                from: PeerId(1),
                reason: "checksum",
            },
        };
        TraceEvent {
            time: Instant::from_nanos(number * 1_000),
            node: (!number.is_multiple_of(5)).then_some(PeerId(number % 5)),
            term: Term(number / 10),
            role: (!number.is_multiple_of(4)).then_some(Role::Follower),
            what,
        }
    }

    #[test]
    fn the_tail_is_the_last_events_whole_and_in_order() {
        for count in [0, 1, 7, TRACE_TAIL_EVENTS as u64, 41, 100, 333] {
            let mut trace = Trace::new(true, false);
            for number in 1..=count {
                trace.record(event(number));
            }
            let all = trace.events().expect("recorded");
            let last = &all[all.len().saturating_sub(TRACE_TAIL_EVENTS)..];
            assert_eq!(trace.tail(), last, "after {count} events");
        }
    }

    /// Two traces of one delivery each hash alike only if the messages are of
    /// one kind: the hash folds in the kind, not its name.
    #[test]
    fn the_hash_tells_every_message_kind_apart() {
        let hash = |message| {
            let mut trace = Trace::new(false, false);
            trace.record(TraceEvent {
                time: Instant::from_nanos(5),
                node: Some(PeerId(1)),
                term: Term(2),
                role: Some(Role::Follower),
                what: What::Received {
                    from: PeerId(2),
                    message,
                    sent: Instant::ZERO,
                },
            });
            trace.hash()
        };
        let hashes: std::collections::BTreeSet<String> =
            MessageKind::ALL.into_iter().map(hash).collect();
        assert_eq!(hashes.len(), MessageKind::ALL.len(), "{hashes:?}");
        assert_eq!(hash(MessageKind::CatchUp), hash(MessageKind::CatchUp));
    }
}
