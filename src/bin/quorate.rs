//! The `quorate` command line.
//!
//! Subcommands:
//! * `explore`: a simulation campaign over many seeds (see
//!   [`quorate::cli::explore`]);
//! * `replay`: one seed or scenario file, with its readable trace;
//! * `shrink`: a failing seed, scenario or fuzzer input, reduced to a minimal
//!   scenario (see [`quorate::cli::shrink`]);
//! * `timeline`: one run as a self-contained HTML timeline;
//! * `merge`: the JSON summaries of a sharded campaign as one report (see
//!   [`quorate::campaign`]);
//! * `check`: linearizability of recorded histories (see
//!   [`quorate::check::cli`]);
//! * `node` (feature `tokio`): a replicated key-value node with a Redis port.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use quorate::campaign::{MergeArgs, run_merge};
use quorate::check::cli::{CheckArgs, run_check};
use quorate::cli::explore::{ExploreArgs, ReplayArgs, run_explore, run_replay};
use quorate::cli::shrink::{ShrinkArgs, run_shrink};
use quorate::cli::timeline::{TimelineArgs, run_timeline};

/// quorate: replicated state machines tested by deterministic simulation.
#[derive(Debug, Parser)]
#[command(name = "quorate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a simulation campaign over many seeds.
    Explore(ExploreArgs),
    /// Run one seed (or scenario file) and print its trace.
    Replay(ReplayArgs),
    /// Reduce a failing seed, scenario or fuzzer input to a minimal scenario.
    Shrink(ShrinkArgs),
    /// Write one run as a self-contained HTML timeline.
    Timeline(TimelineArgs),
    /// Combine the JSON summaries of a sharded campaign into one report.
    Merge(MergeArgs),
    /// Check recorded histories for linearizability.
    Check(CheckArgs),
    /// Run the built-in key-value store as a replicated node with a Redis port.
    #[cfg(feature = "tokio")]
    Node(quorate::runtime::node_cli::NodeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Explore(_) | Command::Replay(_) | Command::Shrink(_) | Command::Timeline(_)
    ) {
        // RUST_LOG=quorate=debug shows the simulated trace, virtual time as a field.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .without_time()
            .init();
    }
    // The wall clock lives here, outside the library's deterministic code.
    let start = Instant::now();
    let clock = move || start.elapsed();
    let status = match &cli.command {
        #[cfg(feature = "tokio")]
        Command::Node(args) => i32::from(quorate::runtime::node_cli::run(args)),
        Command::Explore(args) => run_explore(
            args,
            &clock,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
            std::io::stderr().is_terminal(),
        ),
        Command::Merge(args) => run_merge(args, &mut std::io::stdout(), &mut std::io::stderr()),
        Command::Replay(args) => run_replay(args, &mut std::io::stdout()),
        Command::Shrink(args) => run_shrink(args, &mut std::io::stdout()),
        Command::Timeline(args) => run_timeline(args, &mut std::io::stdout()),
        Command::Check(args) => {
            run_check(args, &clock, &mut std::io::stdout(), &mut std::io::stderr())
        }
    };
    ExitCode::from(u8::try_from(status).unwrap_or(2))
}
