//! Transports: the byte streams bonds run over, chosen per node when it is
//! built ([`RuntimeConfig::transport`](super::RuntimeConfig::transport)), never
//! by a global switch.
//!
//! * [`Transport::Tcp`]: tokio's TCP in production. Built with
//!   `RUSTFLAGS="--cfg madsim"`, `tokio` is madsim-tokio and the same variant
//!   runs over madsim's simulated TCP.
//! * [`Transport::Turmoil`] (cargo feature `turmoil`): turmoil's simulated TCP,
//!   for a node that runs on a turmoil host, so a group can be dropped into an
//!   existing turmoil `Sim` and its partitions, holds and crashes reach the
//!   production network path (handshake, framing, reconnects).
//!
//! # What the simulators do not control
//!
//! Turmoil makes the network and time deterministic: a seed
//! (`turmoil::Builder::rng_seed`) drives latency and loss, every host's tokio
//! runtime is paused and advanced by the simulation, so `tokio::time` (every
//! timer, timeout and [`Instant`](tokio::time::Instant) the runtime reads) is
//! virtual. It does not control:
//!
//! * **tokio's scheduler randomness.** tokio picks the branch order of an
//!   unbiased `select!` from a per-thread RNG seeded from the OS; turmoil can
//!   seed it only when tokio is built with `--cfg tokio_unstable`. quorate's
//!   runtime uses `biased;` in every `select!` (rare events first, so none
//!   starves), so its own choices do not depend on that RNG.
//! * **OS entropy.** Production nodes seed their ChaCha streams, client ids and
//!   handshake nonces from `getrandom`. Under a simulator, set
//!   [`RuntimeConfig::seed`](super::RuntimeConfig::seed): every random draw of
//!   the node then derives from it (never in production: nonces would be
//!   predictable).
//! * **Hash map iteration order.** std reseeds `RandomState` per process; the
//!   runtime iterates only `BTreeMap`s and `Vec`s.
//! * **Real time.** `std::time::Instant::now` and `SystemTime::now` are not
//!   virtual under turmoil; the runtime reads time only through `tokio::time`.
//! * **tokio's task ids.** turmoil crashes a host by dropping its runtime,
//!   which shuts the host's tasks down shard by shard, a task's shard picked
//!   by its id, and ids come from one counter for the whole process. The
//!   order in which a crashed node's sockets close, and so turmoil's draws of
//!   link latency after the crash, depend on how many tasks the process
//!   spawned before: two runs of a seed in one process agree only if they
//!   start at the same task id modulo the shard count (4 for a current-thread
//!   runtime). A fresh process always does; a harness that runs several
//!   simulations in one process calls [`align_tokio_task_ids`] before each
//!   (as `sim-tests/turmoil_group.rs` does), with no other thread spawning
//!   tasks meanwhile.
//! * **Real I/O.** A `FileLogStore` touches the real disk; turmoil tests use
//!   [`InMemoryLogStore`](crate::log::InMemoryLogStore) kept across a host's
//!   incarnations, crashed with [`CrashOutcome`](crate::log::CrashOutcome).
//!
//! madsim (`--cfg madsim`) goes further: its executor is single-threaded and
//! seeded, and it intercepts `getrandom` and the clock for the whole process
//! (`sim-tests/madsim_entropy.rs` checks both), so
//! `MADSIM_TEST_CHECK_DETERMINISM` can run a seed twice and compare. One gap
//! remains there: tokio's `watch` channel parks each waiter in one of eight
//! slots chosen by tokio's thread RNG, which is seeded from a process-wide
//! counter, so two runs in one process wake waiters in different orders. The
//! runtime's retry pause therefore does not wait on the status watch under
//! madsim (it sleeps out its backoff); [`When`](super::When) watchers still do,
//! so a madsim test that uses them replays only in a fresh process
//! (`MADSIM_TEST_SEED`).
//!
//! # A turmoil caveat: dropped segments stall a stream
//!
//! turmoil's TCP does not retransmit: a segment dropped by a `partition`
//! leaves the receiver waiting for it forever, even after `repair`. A bond
//! therefore closes itself when it wrote and read nothing back for
//! [`RuntimeConfig::bond_stall_timeout`](super::RuntimeConfig::bond_stall_timeout)
//! (every Raft request has a reply), and the dialer reconnects. Over real TCP
//! the same rule ends a bond to a peer that vanished without a reset.

use core::pin::Pin;
use core::task::{Context, Poll};
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The reading half of a bonded stream.
pub(crate) type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a bonded stream.
pub(crate) type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// How a node's bonds reach its peers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Transport {
    /// tokio's TCP (madsim's simulated TCP under `--cfg madsim`).
    #[default]
    Tcp,
    /// turmoil's simulated TCP; the node must run on a turmoil host.
    #[cfg(feature = "turmoil")]
    Turmoil,
}

impl Transport {
    /// Binds a listener for bonds on `address`.
    ///
    /// # Errors
    ///
    /// The transport's bind error.
    pub async fn bind(self, address: SocketAddr) -> io::Result<Listener> {
        match self {
            Self::Tcp => Ok(Listener::Tcp(tokio::net::TcpListener::bind(address).await?)),
            #[cfg(feature = "turmoil")]
            Self::Turmoil => Ok(Listener::Turmoil(
                turmoil::net::TcpListener::bind(address).await?,
            )),
        }
    }

    /// Connects to `address`.
    pub(crate) async fn connect(self, address: SocketAddr) -> io::Result<Stream> {
        match self {
            Self::Tcp => Ok(Stream::tcp(tokio::net::TcpStream::connect(address).await?)),
            #[cfg(feature = "turmoil")]
            Self::Turmoil => Ok(Stream::turmoil(
                turmoil::net::TcpStream::connect(address).await?,
            )),
        }
    }
}

/// A bound listener of some [`Transport`].
pub enum Listener {
    /// A tokio (or, under `--cfg madsim`, madsim) TCP listener.
    Tcp(tokio::net::TcpListener),
    /// A turmoil TCP listener.
    #[cfg(feature = "turmoil")]
    Turmoil(turmoil::net::TcpListener),
}

impl Listener {
    /// The transport this listener belongs to; the node dials with the same.
    pub fn transport(&self) -> Transport {
        match self {
            Self::Tcp(_) => Transport::Tcp,
            #[cfg(feature = "turmoil")]
            Self::Turmoil(_) => Transport::Turmoil,
        }
    }

    /// The address it listens on.
    ///
    /// # Errors
    ///
    /// The transport's error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Tcp(listener) => listener.local_addr(),
            #[cfg(feature = "turmoil")]
            Self::Turmoil(listener) => listener.local_addr(),
        }
    }

    /// Accepts one connection.
    pub(crate) async fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        match self {
            Self::Tcp(listener) => {
                let (stream, remote) = listener.accept().await?;
                Ok((Stream::tcp(stream), remote))
            }
            #[cfg(feature = "turmoil")]
            Self::Turmoil(listener) => {
                let (stream, remote) = listener.accept().await?;
                Ok((Stream::turmoil(stream), remote))
            }
        }
    }
}

impl core::fmt::Debug for Listener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Listener")
            .field("transport", &self.transport())
            .field("address", &self.local_addr().ok())
            .finish()
    }
}

impl From<tokio::net::TcpListener> for Listener {
    fn from(listener: tokio::net::TcpListener) -> Self {
        Self::Tcp(listener)
    }
}

#[cfg(feature = "turmoil")]
impl From<turmoil::net::TcpListener> for Listener {
    fn from(listener: turmoil::net::TcpListener) -> Self {
        Self::Turmoil(listener)
    }
}

/// How many task ids [`align_tokio_task_ids`] keeps the same, modulo: a
/// power of two above the shard count of a current-thread runtime's task
/// list (4).
#[cfg(feature = "turmoil")]
pub const TASK_ID_PERIOD: u64 = 64;

/// Spawns throwaway tokio tasks until the process's next task id is a
/// multiple of [`TASK_ID_PERIOD`], and returns how many it spawned.
///
/// For a harness that runs several turmoil simulations in one process: call
/// it before each (outside any runtime), so that each starts at the same task
/// id modulo the shard count, and crashed hosts shut their tasks down in the
/// same order (see the module's notes). Holds only while no other thread
/// spawns tokio tasks. A fresh process needs none of it.
///
/// # Errors
///
/// If tokio's task ids do not print as numbers (a tokio that changed how
/// [`tokio::task::Id`] displays): nothing is then aligned.
///
/// # Panics
///
/// If called inside a tokio runtime (it runs one of its own).
#[cfg(feature = "turmoil")]
pub fn align_tokio_task_ids() -> Result<u64, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|error| format!("no tokio runtime to align task ids with: {error}"))?;
    runtime.block_on(async {
        // The probe takes an id; the next task takes the one after it.
        let probe = tokio::spawn(async { tokio::task::id() })
            .await
            .map_err(|error| format!("the probe task failed: {error}"))?;
        let id: u64 = probe
            .to_string()
            .parse()
            .map_err(|_| format!("tokio's task id {probe} is not a number"))?;
        let next = id + 1;
        let missing = (TASK_ID_PERIOD - next % TASK_ID_PERIOD) % TASK_ID_PERIOD;
        for _ in 0..missing {
            tokio::spawn(async {})
                .await
                .map_err(|error| format!("a throwaway task failed: {error}"))?;
        }
        Ok(missing)
    })
}

/// A connected byte stream, already split so reading and writing can move to
/// different tasks once bonded.
pub(crate) struct Stream {
    reader: ReadHalf,
    writer: WriteHalf,
}

impl Stream {
    fn tcp(stream: tokio::net::TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        // madsim's TcpStream has no owned halves; tokio's generic split shares
        // it behind a lock, which costs nothing that matters in a simulation.
        #[cfg(madsim)]
        let (reader, writer) = tokio::io::split(stream);
        #[cfg(not(madsim))]
        let (reader, writer) = stream.into_split();
        Self {
            reader: Box::new(reader),
            writer: Box::new(writer),
        }
    }

    #[cfg(feature = "turmoil")]
    fn turmoil(stream: turmoil::net::TcpStream) -> Self {
        let (reader, writer) = stream.into_split();
        Self {
            reader: Box::new(reader),
            writer: Box::new(writer),
        }
    }

    /// The two halves.
    pub(crate) fn into_split(self) -> (ReadHalf, WriteHalf) {
        (self.reader, self.writer)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(context, buffer)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.writer).poll_write(context, bytes)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_shutdown(context)
    }
}
