//! Bonds over TCP: one connection per pair of peers, the handshake of
//! [`crate::bond`], then length-prefixed [`WireFrame::Raft`] frames, every frame
//! sealed with a checksum (see [`super::frame`]).
//!
//! The lower id dials, the higher accepts, so two peers never race two
//! connections. A dialer reconnects with capped exponential backoff and jitter.
//! Anything malformed (random bytes, an oversized length, a frame out of order)
//! closes that one connection; the node keeps serving. A refused bond is logged
//! once per peer and cause, not on every retry.

use core::fmt;
use core::time::Duration;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::frame::{self, FrameError, HANDSHAKE_FRAME_BYTES_MAX};
use super::transport::{Listener, ReadHalf, Stream, Transport, WriteHalf};
use crate::bond::{
    BondError, Handshake, HandshakeFrame, HandshakeStep, PROTOCOL_VERSION, WireFrame,
};
use crate::codec;
use crate::env::{Entropy, uniform_duration};
use crate::id::{GroupIdInputs, GroupKey, PeerId};
use crate::machine::Command;
use crate::raft::Message;

/// Messages queued for one peer; when full, new ones are dropped (Raft
/// retransmits what matters).
pub const PEER_OUTBOX_CAPACITY: usize = 4096;
/// Messages from all peers waiting for the node task; readers wait when full.
pub const NET_INBOX_CAPACITY: usize = 8192;
/// Messages written to a socket before it is flushed.
pub const WRITE_BATCH_MAX: usize = 256;
/// A handshake that takes longer is abandoned.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How a dialer reconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub min: Duration,
    /// The cap of the exponential growth.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            min: Duration::from_millis(20),
            max: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// The delay before attempt `failures + 1`: `min * 2^failures`, capped at
    /// `max`, then drawn uniformly from its upper half (jitter, so peers that
    /// lost each other at once do not retry in lockstep).
    pub fn delay(&self, failures: u32, rng: &mut Entropy) -> Duration {
        let exponent = failures.min(20);
        let base = self.min.saturating_mul(1 << exponent).min(self.max);
        uniform_duration(rng, base / 2, base.max(Duration::from_nanos(1)))
    }
}

/// Why a connection to a peer failed or was refused.
#[derive(Debug)]
pub enum LinkError {
    /// The handshake refused the bond.
    Bond(BondError),
    /// The stream failed, or carried bytes that are not our protocol.
    Frame(FrameError),
    /// The handshake did not finish in time.
    HandshakeTimeout,
    /// An accepted peer that should have been the one accepting (ids decide
    /// who dials), or that is not a member.
    WrongDirection(PeerId),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bond(error) => write!(f, "bond refused: {error}"),
            Self::Frame(error) => write!(f, "{error}"),
            Self::HandshakeTimeout => f.write_str("handshake timed out"),
            Self::WrongDirection(peer) => {
                write!(f, "{peer} dialed us but is not a lower-id member")
            }
        }
    }
}

impl std::error::Error for LinkError {}

impl From<FrameError> for LinkError {
    fn from(error: FrameError) -> Self {
        Self::Frame(error)
    }
}

impl From<io::Error> for LinkError {
    fn from(error: io::Error) -> Self {
        Self::Frame(FrameError::Io(error))
    }
}

/// A refused bond, as remembered for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BondFailure {
    /// The error.
    pub error: BondError,
    /// How many times in a row this same error happened.
    pub repeats: u64,
}

/// The last refused bond per peer (or per remote address when the peer never
/// said who it is): logs once per distinct cause.
#[derive(Debug, Default)]
pub struct BondLog {
    /// Per source, its last refusal and the number of the latest record of it.
    last: Mutex<BTreeMap<String, (BondFailure, u64)>>,
    /// Refusals recorded so far: numbers them, to order them against handshakes.
    records: AtomicU64,
}

impl BondLog {
    /// Records a refusal; logs it if it differs from the last one for `source`.
    fn record(&self, source: String, error: BondError) {
        let number = self.records.fetch_add(1, Ordering::Relaxed) + 1;
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        match last.get_mut(&source) {
            Some((failure, latest)) if failure.error == error => {
                failure.repeats += 1;
                *latest = number;
            }
            _ => {
                tracing::warn!(%source, "bond refused: {error}");
                last.insert(source, (BondFailure { error, repeats: 1 }, number));
            }
        }
    }

    /// A mark taken as a handshake begins, for [`clear`](Self::clear).
    fn mark(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// Forgets the last refusal of `source` once a bond that began at `mark`
    /// succeeded, unless it was recorded after the mark: that one came from
    /// another connection claiming the same peer (a second process with its
    /// id, or a misconfigured one) and still stands.
    fn clear(&self, source: &str, mark: u64) {
        if let Ok(mut last) = self.last.lock()
            && last.get(source).is_some_and(|(_, latest)| *latest <= mark)
        {
            last.remove(source);
        }
    }

    /// The last refusal per source.
    pub fn snapshot(&self) -> BTreeMap<String, BondFailure> {
        self.last
            .lock()
            .map(|last| {
                last.iter()
                    .map(|(source, (failure, _))| (source.clone(), failure.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What every connection task of one node shares.
pub(crate) struct NetContext {
    pub local: PeerId,
    pub key: GroupKey,
    pub inputs: GroupIdInputs,
    pub backoff: Backoff,
    pub bond_log: Arc<BondLog>,
    pub transport: Transport,
    /// A bond that wrote and read nothing back for this long is closed.
    pub stall_timeout: Duration,
    /// Handshake nonces: from this stream when the node is seeded (simulators),
    /// from the OS otherwise.
    pub nonces: Option<Mutex<Entropy>>,
}

impl NetContext {
    /// A fresh handshake nonce.
    fn nonce(&self) -> io::Result<[u8; 32]> {
        match &self.nonces {
            Some(nonces) => {
                let mut rng = nonces.lock().unwrap_or_else(|error| error.into_inner());
                Ok(seed_from(&mut rng))
            }
            None => os_nonce(),
        }
    }
}

/// The node task's side of the network: an outbox per peer.
pub(crate) struct Net<C> {
    outboxes: BTreeMap<PeerId, mpsc::Sender<Message<C>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl<C> Net<C> {
    /// Queues `message` for `to`; drops it if the peer's queue is full or the
    /// peer is unknown.
    pub fn send(&self, to: PeerId, message: Message<C>) {
        if let Some(outbox) = self.outboxes.get(&to)
            && outbox.try_send(message).is_err()
        {
            tracing::trace!(%to, "outbox full, message dropped");
        }
    }
}

impl<C> Drop for Net<C> {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn seed_from(rng: &mut Entropy) -> [u8; 32] {
    let mut seed = [0u8; 32];
    rand_core::Rng::fill_bytes(rng, &mut seed);
    seed
}

fn os_nonce() -> io::Result<[u8; 32]> {
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).map_err(|error| io::Error::other(error.to_string()))?;
    Ok(nonce)
}

/// Starts the listener and one link task per peer.
pub(crate) fn start<C: Command>(
    context: Arc<NetContext>,
    listener: Listener,
    peers: &BTreeMap<PeerId, SocketAddr>,
    inbox: mpsc::Sender<(PeerId, Message<C>)>,
    rng: &mut Entropy,
) -> Net<C> {
    let mut outboxes = BTreeMap::new();
    let mut accepted = BTreeMap::new();
    let mut tasks = Vec::new();
    for (&peer, &address) in peers {
        let (outbox_tx, outbox_rx) = mpsc::channel(PEER_OUTBOX_CAPACITY);
        outboxes.insert(peer, outbox_tx);
        let dial = (context.local < peer).then_some(address);
        let (accepted_tx, accepted_rx) = mpsc::channel(1);
        if dial.is_none() {
            accepted.insert(peer, accepted_tx);
        }
        let link = Link {
            context: context.clone(),
            peer,
            dial,
            outbox: outbox_rx,
            accepted: accepted_rx,
            inbox: inbox.clone(),
            rng: crate::env::entropy_from_seed(seed_from(rng)),
        };
        tasks.push(tokio::spawn(link.run()));
    }
    tasks.push(tokio::spawn(accept_loop::<C>(context, listener, accepted)));
    Net { outboxes, tasks }
}

/// Accepts connections, runs each handshake and hands bonded streams to the
/// peer's link task.
async fn accept_loop<C: Command>(
    context: Arc<NetContext>,
    listener: Listener,
    links: BTreeMap<PeerId, mpsc::Sender<Stream>>,
) {
    let links = Arc::new(links);
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!("accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let context = context.clone();
        let links = links.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            let mark = context.bond_log.mark();
            let result = tokio::time::timeout(
                HANDSHAKE_TIMEOUT,
                handshake::<C>(&context, &mut stream, None),
            )
            .await
            .unwrap_or(Err(LinkError::HandshakeTimeout));
            match result {
                Ok(peer) => match links.get(&peer) {
                    Some(link) if peer < context.local => {
                        context.bond_log.clear(&format!("peer {peer}"), mark);
                        let _ = link.send(stream).await;
                    }
                    _ => {
                        tracing::debug!(%remote, "{}", LinkError::WrongDirection(peer));
                    }
                },
                Err(error) => report(&context, &format!("address {}", remote.ip()), error),
            }
        });
    }
}

/// Logs a failed connection: refused bonds once per cause, the rest at debug.
fn report(context: &NetContext, source: &str, error: LinkError) {
    match error {
        LinkError::Bond(error) => {
            let source = match &error {
                BondError::WrongKey { peer }
                | BondError::Mismatch { peer, .. }
                | BondError::UnexpectedPeer { claimed: peer, .. } => format!("peer {peer}"),
                _ => source.to_owned(),
            };
            context.bond_log.record(source, error);
        }
        other => tracing::debug!(%source, "connection closed: {other}"),
    }
}

/// Runs the handshake of [`crate::bond`] over `stream`.
async fn handshake<C: Command>(
    context: &NetContext,
    stream: &mut Stream,
    expected: Option<PeerId>,
) -> Result<PeerId, LinkError> {
    let nonce = context.nonce()?;
    let (mut handshake, hello) = Handshake::start(
        context.local,
        expected,
        context.key.clone(),
        context.inputs,
        nonce,
    );
    send_handshake::<C>(stream, hello).await?;
    loop {
        let WireFrame::Handshake(frame) = read_handshake::<C>(stream).await? else {
            return Err(LinkError::Bond(BondError::Protocol(
                "a Raft frame before the bond",
            )));
        };
        match handshake.on_frame(frame) {
            Ok(HandshakeStep::Continue(frames)) => {
                for frame in frames {
                    send_handshake::<C>(stream, frame).await?;
                }
            }
            Ok(HandshakeStep::Bonded { frames, peer }) => {
                for frame in frames {
                    send_handshake::<C>(stream, frame).await?;
                }
                return Ok(peer);
            }
            Err(failure) => {
                if let Some(reason) = failure.refusal {
                    let _ = send_handshake::<C>(stream, HandshakeFrame::Refused { reason }).await;
                }
                let _ = stream.shutdown().await;
                return Err(LinkError::Bond(failure.error));
            }
        }
    }
}

/// Reads a frame of the handshake. Peers of protocol 3 and older sent their
/// frames unsealed: such a Hello fails the checksum, and is then read as sent,
/// so the bond fails naming both versions, not a checksum.
async fn read_handshake<C: Command>(stream: &mut Stream) -> Result<WireFrame<C>, LinkError> {
    let payload = frame::read_frame(stream, HANDSHAKE_FRAME_BYTES_MAX).await?;
    codec::unseal(&payload).map_err(|error| match codec::decode(&payload) {
        Ok(WireFrame::<C>::Handshake(HandshakeFrame::Hello { version, .. }))
            if version < PROTOCOL_VERSION =>
        {
            LinkError::Bond(BondError::Version {
                ours: PROTOCOL_VERSION,
                theirs: version,
            })
        }
        _ => LinkError::Frame(FrameError::Decode(error)),
    })
}

async fn send_handshake<C: Command>(stream: &mut Stream, frame: HandshakeFrame) -> io::Result<()> {
    let bytes = frame::encode_frame(&WireFrame::<C>::Handshake(frame))?;
    frame::write_frames(stream, &bytes).await
}

/// One peer's connection: dials (or waits for the peer to dial), reads into the
/// node's inbox, writes its outbox.
struct Link<C> {
    context: Arc<NetContext>,
    peer: PeerId,
    /// Where to dial, if this side dials.
    dial: Option<SocketAddr>,
    outbox: mpsc::Receiver<Message<C>>,
    accepted: mpsc::Receiver<Stream>,
    inbox: mpsc::Sender<(PeerId, Message<C>)>,
    rng: Entropy,
}

impl<C: Command> Link<C> {
    async fn run(mut self) {
        let mut failures = 0u32;
        let mut next: Option<Stream> = None;
        loop {
            let stream = match (next.take(), self.dial) {
                (Some(stream), _) => stream,
                (None, Some(address)) => match self.connect(address).await {
                    Some(stream) => {
                        failures = 0;
                        stream
                    }
                    None => {
                        let delay = self.context.backoff.delay(failures, &mut self.rng);
                        failures = failures.saturating_add(1);
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                },
                (None, None) => match self.accepted.recv().await {
                    Some(stream) => stream,
                    None => return,
                },
            };
            tracing::debug!(local = %self.context.local, peer = %self.peer, "bonded");
            next = self.serve(stream).await;
        }
    }

    /// Dials and bonds; `None` after a failure (already reported).
    async fn connect(&mut self, address: SocketAddr) -> Option<Stream> {
        let source = format!("peer {}", self.peer);
        let mut stream = match self.context.transport.connect(address).await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::trace!(%source, "dial failed: {error}");
                return None;
            }
        };
        let mark = self.context.bond_log.mark();
        let result = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            handshake::<C>(&self.context, &mut stream, Some(self.peer)),
        )
        .await
        .unwrap_or(Err(LinkError::HandshakeTimeout));
        match result {
            Ok(_) => {
                self.context.bond_log.clear(&source, mark);
                Some(stream)
            }
            Err(error) => {
                report(&self.context, &source, error);
                None
            }
        }
    }

    /// Serves one bonded connection until it fails or stalls; returns a newer
    /// accepted connection if one replaced it.
    async fn serve(&mut self, stream: Stream) -> Option<Stream> {
        let (reader, writer) = stream.into_split();
        let frames_read = Arc::new(AtomicU64::new(0));
        let mut reading = tokio::spawn(read_loop(
            reader,
            self.peer,
            self.inbox.clone(),
            frames_read.clone(),
        ));
        let mut writer = BufWriter::new(writer);
        let mut batch = Vec::new();
        let mut stall = StallWatch::default();
        let replacement = loop {
            let stall_deadline = stall.deadline(self.context.stall_timeout);
            // Biased, rare events first: the order never depends on tokio's
            // unseeded branch RNG, and a busy outbox cannot starve them.
            tokio::select! {
                biased;
                _ = &mut reading => break None,
                newer = self.accepted.recv(), if self.dial.is_none() => break newer,
                () = sleep_until_some(stall_deadline) => {
                    if !stall.answered(&frames_read) {
                        tracing::debug!(peer = %self.peer, "bond stalled: closed");
                        break None;
                    }
                }
                message = self.outbox.recv() => {
                    let Some(message) = message else { break None };
                    batch.push(message);
                    while batch.len() < WRITE_BATCH_MAX {
                        match self.outbox.try_recv() {
                            Ok(message) => batch.push(message),
                            Err(_) => break,
                        }
                    }
                    if let Err(error) = write_batch(&mut writer, &mut batch).await {
                        tracing::debug!(peer = %self.peer, "write failed: {error}");
                        break None;
                    }
                    stall.wrote(&frames_read);
                }
            }
        };
        reading.abort();
        replacement
    }
}

async fn write_batch<C: Command>(
    writer: &mut BufWriter<WriteHalf>,
    batch: &mut Vec<Message<C>>,
) -> io::Result<()> {
    let mut bytes = Vec::new();
    for message in batch.drain(..) {
        frame::push_message(&WireFrame::Raft(message), &mut bytes)?;
    }
    writer.write_all(&bytes).await?;
    writer.flush().await
}

async fn read_loop<C: Command>(
    reader: ReadHalf,
    peer: PeerId,
    inbox: mpsc::Sender<(PeerId, Message<C>)>,
    frames_read: Arc<AtomicU64>,
) {
    let mut reader = BufReader::new(reader);
    loop {
        let frame: WireFrame<C> =
            match frame::read_message(&mut reader, codec::FRAME_BYTES_MAX).await {
                Ok(frame) => frame,
                Err(error) => {
                    tracing::debug!(%peer, "connection closed: {error}");
                    return;
                }
            };
        frames_read.fetch_add(1, Ordering::Relaxed);
        match frame {
            WireFrame::Raft(message) => {
                if inbox.send((peer, message)).await.is_err() {
                    return;
                }
            }
            WireFrame::Handshake(_) => {
                tracing::debug!(%peer, "handshake frame on a bonded connection: closed");
                return;
            }
        }
    }
}

/// Notices a bond that swallows what it is sent: every Raft request has a
/// reply, so a write followed by silence for a whole timeout means the stream
/// is dead (a peer gone without a reset; under turmoil, a segment dropped by a
/// partition, after which the stream never delivers again).
#[derive(Debug, Default)]
struct StallWatch {
    /// When the oldest write not yet followed by a read went out, and how many
    /// frames had been read then.
    unanswered: Option<(tokio::time::Instant, u64)>,
}

impl StallWatch {
    fn wrote(&mut self, frames_read: &AtomicU64) {
        if self.unanswered.is_none() {
            let read = frames_read.load(Ordering::Relaxed);
            self.unanswered = Some((tokio::time::Instant::now(), read));
        }
    }

    fn deadline(&self, timeout: Duration) -> Option<tokio::time::Instant> {
        self.unanswered.map(|(since, _)| since + timeout)
    }

    /// At the deadline: whether something was read since the write (then the
    /// watch restarts at the next write).
    fn answered(&mut self, frames_read: &AtomicU64) -> bool {
        let Some((_, read_before)) = self.unanswered.take() else {
            return true;
        };
        frames_read.load(Ordering::Relaxed) > read_before
    }
}

async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => core::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bond_clears_only_the_refusals_recorded_before_it_began() {
        let log = BondLog::default();
        let wrong_key = || BondError::WrongKey { peer: PeerId(1) };
        log.record("peer n1".into(), wrong_key());
        let mark = log.mark();
        // Another connection claiming n1 is refused while n1's bond runs.
        log.record("peer n1".into(), wrong_key());
        log.clear("peer n1", mark);
        let failures = log.snapshot();
        assert_eq!(failures["peer n1"].repeats, 2, "{failures:?}");
        // A bond begun after the last refusal clears it.
        log.clear("peer n1", log.mark());
        assert!(log.snapshot().is_empty());
    }
}
