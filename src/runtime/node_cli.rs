//! `quorate node`: the built-in [`KvStore`] as a replicated node with a RESP2
//! client port.
//!
//! ```text
//! quorate node --id 1 --listen 127.0.0.1:7001 --resp 127.0.0.1:6381 \
//!     --peer 2=127.0.0.1:7002 --peer 3=127.0.0.1:7003 --key s3cret --data /tmp/q1
//! ```
//!
//! SIGINT or SIGTERM stops it cleanly: the RESP port stops accepting, the node
//! task finishes the flush it is in (so every acknowledged write is on disk)
//! and stops, and the process exits with status 0.

use core::time::Duration;
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use tokio::net::TcpListener;

use super::file_log::{FileLogOptions, FileLogStore};
use super::node::{RuntimeConfig, start};
use super::resp;
use crate::examples::KvStore;
use crate::id::{GroupKey, PeerId};
use crate::raft::GroupConfig;

/// The arguments of `quorate node`.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// This node's id (a positive integer, unique in the group).
    #[arg(long)]
    pub id: u64,
    /// Where to listen for the other nodes' bonds.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Another voter and its bond address, as ID=HOST:PORT; repeat per peer.
    #[arg(long = "peer", value_parser = parse_peer)]
    pub peers: Vec<(u64, SocketAddr)>,
    /// The group secret every node shares.
    #[arg(long)]
    pub key: String,
    /// The directory of this node's log.
    #[arg(long)]
    pub data: PathBuf,
    /// Where to serve Redis clients (RESP2).
    #[arg(long)]
    pub resp: SocketAddr,
    /// Skip fsync (benchmarks only: a machine crash may lose acknowledged writes).
    #[arg(long)]
    pub no_fsync: bool,
    /// Heartbeat interval in milliseconds (all nodes must agree).
    #[arg(long, default_value_t = 50)]
    pub heartbeat_ms: u64,
    /// Shortest election timeout in milliseconds (all nodes must agree).
    #[arg(long, default_value_t = 300)]
    pub election_min_ms: u64,
    /// Longest election timeout in milliseconds (all nodes must agree).
    #[arg(long, default_value_t = 600)]
    pub election_max_ms: u64,
}

/// Parses `ID=HOST:PORT`.
fn parse_peer(text: &str) -> Result<(u64, SocketAddr), String> {
    let (id, address) = text
        .split_once('=')
        .ok_or_else(|| format!("expected ID=HOST:PORT, got {text:?}"))?;
    let id = id
        .parse()
        .map_err(|_| format!("peer id {id:?} is not a number"))?;
    let address = address
        .to_socket_addrs()
        .map_err(|error| format!("peer address {address:?}: {error}"))?
        .next()
        .ok_or_else(|| format!("peer address {address:?} resolves to nothing"))?;
    Ok((id, address))
}

/// How long the runtime may take to wind down its remaining tasks (open RESP
/// connections, bonds) once the node task has stopped.
#[cfg_attr(madsim, allow(dead_code))]
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the node until SIGINT or SIGTERM (status 0) or a failure (status 1).
pub fn run(args: &NodeArgs) -> u8 {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("quorate node: cannot start the tokio runtime: {error}");
            return 1;
        }
    };
    let result = runtime.block_on(serve(args));
    // madsim's runtime has no `shutdown_timeout`.
    #[cfg(not(madsim))]
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    #[cfg(madsim)]
    drop(runtime);
    match result {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("quorate node: {message}");
            1
        }
    }
}

/// Resolves with the signal's name at the first SIGINT or SIGTERM. The
/// handlers are installed when this is called, so a signal that arrives while
/// the node starts is not lost.
#[cfg(all(unix, not(madsim)))]
fn shutdown_signal() -> std::io::Result<impl Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    })
}

/// Resolves at the first Ctrl-C (madsim simulates only that signal).
#[cfg(any(not(unix), madsim))]
fn shutdown_signal() -> std::io::Result<impl Future<Output = &'static str>> {
    Ok(async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            Err(_) => core::future::pending().await,
        }
    })
}

async fn serve(args: &NodeArgs) -> Result<(), String> {
    let id = PeerId(args.id);
    let peers: BTreeMap<PeerId, SocketAddr> = args
        .peers
        .iter()
        .map(|(peer, address)| (PeerId(*peer), *address))
        .collect();
    let group = GroupConfig {
        heartbeat_interval: Duration::from_millis(args.heartbeat_ms),
        election_timeout_min: Duration::from_millis(args.election_min_ms),
        election_timeout_max: Duration::from_millis(args.election_max_ms),
        ..GroupConfig::new(peers.keys().copied().chain([id]))
    };
    let mut config = RuntimeConfig::new(id, group, GroupKey::from_secret(&args.key), peers);
    config.blocking_sync = !args.no_fsync;
    let options = FileLogOptions {
        fsync: !args.no_fsync,
        ..FileLogOptions::default()
    };
    let shutdown = shutdown_signal().map_err(|error| format!("signal handlers: {error}"))?;
    let storage = FileLogStore::open(&args.data, options).map_err(|error| error.to_string())?;
    let group = start(config, args.listen, KvStore::default(), storage)
        .await
        .map_err(|error| error.to_string())?;
    let listener = match TcpListener::bind(args.resp).await {
        Ok(listener) => listener,
        Err(error) => {
            group.terminate().await;
            return Err(format!("RESP port {}: {error}", args.resp));
        }
    };
    tracing::info!(node = %id, listen = %args.listen, resp = %args.resp, "node started");
    // `serve` never returns; dropping it on a signal closes the RESP listener.
    let signal = tokio::select! {
        () = resp::serve(listener, group.clone()) => "the RESP server stopping",
        signal = shutdown => signal,
    };
    tracing::info!(node = %id, "{signal}: shutting down");
    group.terminate().await;
    tracing::info!(node = %id, "node stopped");
    Ok(())
}
