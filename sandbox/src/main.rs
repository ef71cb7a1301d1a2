//! The `sandbox` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run an AI coding agent in a kernel-enforced sandbox whose only way out is a
/// TLS-terminating egress proxy that enforces the task's prompt contract and logs every flow.
#[derive(Debug, Parser)]
#[command(
    name = "sandbox",
    version,
    about,
    long_about = None,
    after_help = "\
Examples:
  # What this kernel lets `run` enforce, and how to fix what is missing:
  sandbox doctor
  # Validate a contract and see what it allows; ask about one request:
  sandbox check examples/eu-mistral-bedrock.toml
  sandbox explain examples/eu-mistral-bedrock.toml GET https://api.openai.com/v1/models
  # Wrap an agent (the exit code is the agent's):
  sandbox run --contract examples/eu-mistral-bedrock.toml -- claude
  # The evidence: the log's hash chain, conformance to the approved diagram, the gate report:
  sandbox log verify flows.jsonl
  sandbox verify --approved dataflow.toml flows.jsonl
  sandbox report flows.jsonl --approved dataflow.toml -o report.html

Docs: docs/quickstart.md, docs/contract.md, docs/threat-model.md, docs/pilot-guide.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an agent in the sandbox: namespaces + Landlock + seccomp, network only via the proxy.
    Run(sandbox::commands::run::Args),
    #[command(
        about = "Validate a prompt contract and summarise what it allows (exit 0 valid, 1 invalid)"
    )]
    Check(sandbox::commands::check::Args),
    #[command(
        about = "Decide one request against a contract: allow or deny, the rule, the reason, the region"
    )]
    Explain(sandbox::commands::explain::Args),
    /// Report what this kernel lets `sandbox run` enforce, and how to fix what is missing.
    Doctor(sandbox::commands::doctor::Args),
    /// Run the egress proxy alone: TLS-terminating, contract-enforcing, every flow logged.
    Proxy(sandbox::commands::proxy::Args),
    /// Check and summarise flow logs.
    Log(sandbox::commands::log::Args),
    /// Check flow logs against the approved data-flow diagram and residency (exit 0 conforms, 1 deviates).
    Verify(sandbox::commands::verify::Args),
    /// Draw the observed data flows (mermaid, dot, svg), or generate a diagram from a contract.
    Diagram(sandbox::commands::diagram::Args),
    /// Write the self-contained HTML evidence page for the pilot's gate meeting.
    Report(sandbox::commands::report::Args),
}

/// The exit code of `sandbox run`'s own failures (usage included), as distinct from the agent's
/// exit codes, following `env`, `timeout` and `chroot`.
const RUN_SETUP_FAILURE: u8 = 125;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let informational = matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            );
            if informational {
                return ExitCode::SUCCESS;
            }
            // `sandbox run` reserves every code below 125 for the agent.
            let is_run = std::env::args_os().nth(1).is_some_and(|a| a == "run");
            return ExitCode::from(if is_run { RUN_SETUP_FAILURE } else { 2 });
        }
    };
    match cli.command {
        Command::Check(args) => sandbox::commands::check::run(args),
        Command::Explain(args) => sandbox::commands::explain::run(args),
        Command::Log(args) => sandbox::commands::log::run(args),
        Command::Verify(args) => sandbox::commands::verify::run(args),
        Command::Diagram(args) => sandbox::commands::diagram::run(args),
        Command::Report(args) => sandbox::commands::report::run(args),
        Command::Run(args) => sandbox::commands::run::run(args),
        Command::Doctor(args) => sandbox::commands::doctor::run(args),
        Command::Proxy(args) => sandbox::commands::proxy::run(args),
    }
}
