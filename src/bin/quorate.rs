//! The `quorate` command line.
//!
//! Subcommands:
//! * `check`: linearizability of recorded histories (see
//!   [`quorate::check::cli`]).

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use quorate::check::cli::{CheckArgs, run_check};

/// quorate: replicated state machines tested by deterministic simulation.
#[derive(Debug, Parser)]
#[command(name = "quorate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check recorded histories for linearizability.
    Check(CheckArgs),
    /// Run the built-in key-value store as a replicated node with a Redis port.
    #[cfg(feature = "tokio")]
    Node(quorate::runtime::node_cli::NodeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The wall clock lives here, outside the library's deterministic code.
    let start = Instant::now();
    let clock = move || start.elapsed();
    let status = match &cli.command {
        #[cfg(feature = "tokio")]
        Command::Node(args) => i32::from(quorate::runtime::node_cli::run(args)),
        Command::Check(args) => {
            run_check(args, &clock, &mut std::io::stdout(), &mut std::io::stderr())
        }
    };
    ExitCode::from(u8::try_from(status).unwrap_or(2))
}
