//! `sandbox init`: writes a commented contract that runs one coding agent, from its preset
//! (`egress_policy::agents`). `sandbox check` accepts it as written.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use egress_policy::agents::{self, InitRequest, Provider};

/// Arguments of `sandbox init`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
With no --agent on a terminal it asks; with no terminal it takes the defaults (claude, its
default provider, class B) and says so. The real keys stay on the host, in the variables the
CLI itself documents (ANTHROPIC_API_KEY, OPENAI_API_KEY, GEMINI_API_KEY, MISTRAL_API_KEY,
AZURE_OPENAI_API_KEY, AWS credentials, Google application default credentials): the proxy puts
them on the requests, the agent gets a placeholder.

Examples:
  # Claude Code with data kept in the EU (Bedrock, eu. inference profiles):
  sandbox init --agent claude --residency eu -o task.toml && sandbox check task.toml
  # Codex on OpenAI's EU endpoint, Gemini CLI on Vertex AI in europe-west4:
  sandbox init --agent codex --residency eu -o codex.toml
  sandbox init --agent gemini --provider vertex --residency eu -o gemini.toml
  # Then:
  sandbox run --contract task.toml -- claude -p \"fix the failing test\"")]
pub struct Args {
    /// The agent: claude, codex, gemini, aider, opencode.
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// The model provider: anthropic, bedrock, vertex, openai, azure, mistral, gemini
    /// [default: the agent's own; under --residency eu its first EU-capable one].
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// `eu`: only endpoints that keep data in the EU (refused when the agent cannot).
    #[arg(long, value_name = "eu")]
    pub residency: Option<String>,
    /// The task's scope class: A (docs, tests, formatting), B (feature code), C (restricted).
    #[arg(long, value_name = "A|B|C", default_value = "B")]
    pub class: String,
    /// The Azure OpenAI resource (NAME of NAME.openai.azure.com), for --provider azure.
    #[arg(long, value_name = "NAME")]
    pub azure_resource: Option<String>,
    /// Where to write the contract [default: print it].
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

/// Runs `sandbox init`.
pub fn run(args: Args) -> ExitCode {
    match init(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sandbox init: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn ask(question: &str, default: &str) -> Result<String> {
    eprint!("{question} [{default}]: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let answer = line.trim();
    Ok(if answer.is_empty() {
        default.to_owned()
    } else {
        answer.to_owned()
    })
}

fn init(mut args: Args) -> Result<()> {
    if args.agent.is_none() {
        if std::io::stdin().is_terminal() {
            args.agent = Some(ask(
                &format!("agent ({})", agents::names().join(", ")),
                "claude",
            )?);
            if args.residency.is_none() {
                let eu = ask("keep data in the EU? (yes/no)", "yes")?;
                if eu.starts_with('y') {
                    args.residency = Some("eu".into());
                }
            }
        } else {
            eprintln!("sandbox init: no --agent and no terminal to ask: using claude, its default provider, class B");
            args.agent = Some("claude".into());
        }
    }
    let agent = args.agent.clone().unwrap_or_default();
    let eu = match args.residency.as_deref() {
        None => false,
        Some(r) if r.eq_ignore_ascii_case("eu") => true,
        Some(other) => bail!("--residency {other}: only `eu` is supported"),
    };
    let provider = match &args.provider {
        None => None,
        Some(p) => Some(Provider::parse(p).with_context(|| {
            format!(
                "--provider {p}: not a provider; one of: {}",
                Provider::ALL.map(|p| p.name()).join(", ")
            )
        })?),
    };
    let class = match args.class.to_ascii_uppercase().as_str() {
        c @ ("A" | "B" | "C") => c.chars().next().unwrap_or('B'),
        other => bail!("--class {other}: one of A, B, C"),
    };
    let cli_dirs = agents::preset(&agent)
        .map(|p| installed_outside_system_dirs(p.command))
        .unwrap_or_default();
    let req = InitRequest {
        agent,
        provider,
        eu,
        class,
        azure_resource: args.azure_resource.clone(),
        cli_dirs: cli_dirs.iter().map(|d| d.display().to_string()).collect(),
    };
    let rendered = agents::render_contract(&req)?;
    if let Some(why) = &rendered.chosen_because {
        eprintln!("sandbox init: provider {}: {why}", rendered.provider.name());
    }
    for d in &cli_dirs {
        eprintln!(
            "sandbox init: the CLI is installed in {}, outside the system directories: made readable inside",
            d.display()
        );
    }
    match &args.output {
        None => print!("{}", rendered.text),
        Some(path) => {
            if path.exists() && !args.force {
                bail!("{} exists; pass --force to overwrite it", path.display());
            }
            std::fs::write(path, &rendered.text)
                .with_context(|| format!("write {}", path.display()))?;
            eprintln!(
                "sandbox init: wrote {}; check it with `sandbox check {}`",
                path.display(),
                path.display()
            );
        }
    }
    Ok(())
}

/// The installation directory of `command` when it lies outside the system directories (an
/// npm prefix under `$HOME`): the package's directory, which the agent must be able to read
/// and execute.
fn installed_outside_system_dirs(command: &str) -> Vec<PathBuf> {
    let Some(path) = std::env::var_os("PATH") else {
        return Vec::new();
    };
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(command);
        let Ok(real) = std::fs::canonicalize(&candidate) else {
            continue;
        };
        if egress_policy::files::SYSTEM_DIRS
            .iter()
            .any(|d| real.starts_with(d))
            || real.starts_with("/usr")
        {
            return Vec::new();
        }
        // `.../lib/node_modules/<pkg>/bin/x` or `.../bin/x`: the prefix holds both.
        let prefix = real
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == "node_modules"))
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .or_else(|| real.parent().and_then(Path::parent).map(Path::to_path_buf));
        return prefix.into_iter().collect();
    }
    Vec::new()
}
