//! `sandbox diagram`: draw what actually happened (Mermaid, DOT or SVG), or generate a
//! starting point for the approved diagram from a contract.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::ValueEnum;
use egress_policy::diagram::from_contract::diagram_toml_from_policy;
use egress_policy::{PathContext, Policy};

use crate::commands::verify::{load_diagram, verify_files};
use crate::evidence::graph::ObservedGraph;
use crate::evidence::render;
use crate::evidence::scan::scan_files;
use crate::evidence::summary::SummaryBuilder;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Mermaid flowchart text.
    Mermaid,
    /// Graphviz DOT text.
    Dot,
    /// SVG, rendered without any external tool.
    Svg,
}

/// `sandbox diagram`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Flow-log files to draw.
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "mermaid")]
    format: Format,
    /// Highlight deviations from this approved diagram, and show its unused edges.
    #[arg(long, value_name = "DIAGRAM")]
    approved: Option<PathBuf>,
    /// Instead of drawing a log: print a starting-point approved diagram (TOML) for this
    /// contract, for legal and security to review and approve.
    #[arg(long, value_name = "CONTRACT", conflicts_with_all = ["files", "approved"])]
    from_contract: Option<PathBuf>,
    /// Write to this file instead of stdout.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
}

/// Runs `sandbox diagram`.
pub fn run(args: Args) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sandbox diagram: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn from_contract(path: &PathBuf) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the contract {}", path.display()))?;
    let workspace = std::env::current_dir().context("cannot determine the current directory")?;
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    let policy = Policy::parse(
        &text,
        &path.display().to_string(),
        &PathContext { workspace, home },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
    .context("the contract is invalid; `sandbox check` explains each problem")?;
    Ok(diagram_toml_from_policy(
        &policy,
        &path.display().to_string(),
    ))
}

fn run_inner(args: Args) -> anyhow::Result<ExitCode> {
    let mut chain_ok = true;
    let text = if let Some(contract) = &args.from_contract {
        from_contract(contract)?
    } else {
        if args.files.is_empty() {
            bail!("name the flow-log files to draw, or use --from-contract CONTRACT");
        }
        let graph = match &args.approved {
            Some(path) => {
                let diagram = load_diagram(path)?;
                let v = verify_files(&diagram, &args.files);
                chain_ok = v.summary.files.iter().all(|f| f.status.is_trustworthy());
                ObservedGraph::from_verification(&v)
            }
            None => {
                let mut builder = SummaryBuilder::new(Default::default());
                let files = scan_files(&args.files, |pos, record| builder.add(pos, &record));
                let summary = builder.finish(files);
                chain_ok = summary.files.iter().all(|f| f.status.is_trustworthy());
                ObservedGraph::from_summary(&summary)
            }
        };
        match args.format {
            Format::Mermaid => render::mermaid::render(&graph),
            Format::Dot => render::dot::render(&graph),
            Format::Svg => render::svg::render(&graph),
        }
    };
    match &args.output {
        Some(path) => std::fs::write(path, &text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .context("writing to stdout")?,
    }
    if !chain_ok {
        eprintln!("sandbox diagram: warning: a log's hash chain is broken or unreadable; run `sandbox log verify` (only records before the break are drawn)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
