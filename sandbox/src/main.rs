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
  # A contract for a coding agent, with data kept in the EU:
  sandbox init --agent claude --residency eu -o task.toml
  # Validate a contract and see what it allows; ask about one request:
  sandbox check examples/eu-mistral-bedrock.toml
  sandbox explain examples/eu-mistral-bedrock.toml GET https://api.openai.com/v1/models
  # Wrap an agent (the exit code is the agent's):
  sandbox run --contract examples/eu-mistral-bedrock.toml -- claude
  # The evidence: the log's hash chain, conformance to the approved diagram, the gate report:
  sandbox log verify flows.jsonl
  sandbox verify --approved dataflow.toml flows.jsonl
  sandbox report flows.jsonl --approved dataflow.toml -o report.html
  # The rollback drill of the last session (its contract's rollback, in a scratch copy):
  sandbox rollback --drill flows.jsonl

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
    /// Write a commented contract that runs a coding agent (claude, codex, gemini, aider, opencode).
    Init(sandbox::commands::init::Args),
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
    /// Drill a session's rollback in a scratch copy of its workspace, timed against the pilot's thresholds.
    Rollback(sandbox::commands::rollback::Args),
}

/// The exit code of `sandbox run`'s own failures (usage included), as distinct from the agent's
/// exit codes, following `env`, `timeout` and `chroot`.
const RUN_SETUP_FAILURE: u8 = 125;

/// `sandbox run`'s arguments parsed against a command tree that holds only `run`: building the
/// whole tree (every subcommand's arguments) is a measurable part of the start-up of
/// `sandbox run -- true`. Anything but a clean parse (help, version, a usage error) gives
/// `None`, and the caller parses again with the whole tree, so every message is its own.
fn run_args_fast<I, T>(argv: I) -> Option<sandbox::commands::run::Args>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{Args, FromArgMatches};
    let argv: Vec<std::ffi::OsString> = argv.into_iter().map(Into::into).collect();
    if argv.get(1)? != "run" {
        return None;
    }
    let run = sandbox::commands::run::Args::augment_args(clap::Command::new("run"));
    let matches = clap::Command::new("sandbox")
        .subcommand(run)
        .try_get_matches_from(argv)
        .ok()?;
    let (_, sub) = matches.subcommand()?;
    sandbox::commands::run::Args::from_arg_matches(sub).ok()
}

fn main() -> ExitCode {
    if let Some(args) = run_args_fast(std::env::args_os()) {
        return sandbox::commands::run::run(args);
    }
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
        Command::Init(args) => sandbox::commands::init::run(args),
        Command::Explain(args) => sandbox::commands::explain::run(args),
        Command::Log(args) => sandbox::commands::log::run(args),
        Command::Verify(args) => sandbox::commands::verify::run(args),
        Command::Diagram(args) => sandbox::commands::diagram::run(args),
        Command::Report(args) => sandbox::commands::report::run(args),
        Command::Rollback(args) => sandbox::commands::rollback::run(args),
        Command::Run(args) => sandbox::commands::run::run(args),
        Command::Doctor(args) => sandbox::commands::doctor::run(args),
        Command::Proxy(args) => sandbox::commands::proxy::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The short parse agrees with the whole tree on every `run` command line it accepts, and
    /// accepts none that the whole tree refuses (those fall back to the whole tree's message).
    #[test]
    fn the_run_fast_path_parses_exactly_as_the_whole_tree() {
        let lines: &[&[&str]] = &[
            &["sandbox", "run", "--", "true"],
            &["sandbox", "run", "true"],
            &[
                "sandbox",
                "run",
                "--contract",
                "c.toml",
                "--workspace",
                "w",
                "--",
                "sh",
                "-c",
                "x",
            ],
            &[
                "sandbox",
                "run",
                "--log=l",
                "--best-effort",
                "--connect-to",
                "a:1:127.0.0.1:2",
                "--",
                "ls",
                "-la",
            ],
            &[
                "sandbox",
                "run",
                "--upstream-ca",
                "a.pem",
                "--upstream-ca",
                "b.pem",
                "--",
                "curl",
                "--help",
            ],
            &["sandbox", "run", "ls", "--contract", "x"],
            &["sandbox", "run"],
            &["sandbox", "run", "--help"],
            &["sandbox", "run", "-h"],
            &["sandbox", "run", "--version"],
            &["sandbox", "run", "--no-such-flag", "--", "true"],
            &["sandbox", "run", "--contract"],
            &["sandbox", "check", "c.toml"],
            &["sandbox", "--version"],
            &["sandbox"],
        ];
        let mut accepted = 0;
        for line in lines {
            let whole = Cli::try_parse_from(line.iter());
            match run_args_fast(line.iter()) {
                Some(fast) => {
                    accepted += 1;
                    let Ok(Cli {
                        command: Command::Run(full),
                    }) = whole
                    else {
                        panic!("{line:?}: the fast path accepted what the whole tree refuses");
                    };
                    assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{line:?}");
                }
                None => assert!(
                    !matches!(
                        whole,
                        Ok(Cli {
                            command: Command::Run(_)
                        })
                    ),
                    "{line:?}: a valid run command line missed the fast path"
                ),
            }
        }
        // The first six lines, and `--version` and `--no-such-flag` taken as the agent's
        // command (the command accepts hyphen values), as the whole tree takes them.
        assert_eq!(accepted, 8, "run lines accepted");
    }
}
