//! The `sandbox` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run an AI coding agent in a kernel-enforced sandbox whose only way out is a
/// TLS-terminating egress proxy that enforces the task's prompt contract and logs every flow.
#[derive(Debug, Parser)]
#[command(name = "sandbox", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check and summarise flow logs.
    Log(sandbox::commands::log::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Log(args) => sandbox::commands::log::run(args),
    }
}
