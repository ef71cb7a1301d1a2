//! `sandbox report FILE... --approved DIAGRAM -o report.html`: the gate meeting's page.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use time::format_description::well_known::Rfc3339;

use crate::commands::verify::{load_diagram, verify_files};
use crate::evidence::conformance::Verdict;
use crate::evidence::report;

/// `sandbox report`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Flow-log files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The approved data-flow diagram.
    #[arg(long, value_name = "DIAGRAM")]
    approved: PathBuf,
    /// Where to write the HTML page.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: PathBuf,
}

/// Runs `sandbox report`. Exit 0 when the page was written and the logs conform, 1 when it
/// was written and they deviate or cannot be verified, 2 when it could not be written.
pub fn run(args: Args) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sandbox report: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(args: Args) -> anyhow::Result<ExitCode> {
    let diagram = load_diagram(&args.approved)?;
    let v = verify_files(&diagram, &args.files);
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default();
    let html = report::render(&v, &diagram, &now);
    std::fs::write(&args.output, html)
        .with_context(|| format!("cannot write the report to {}", args.output.display()))?;
    let verdict = match v.verdict {
        Verdict::Conforms => "conforms",
        Verdict::Deviates => "DEVIATES",
        Verdict::CannotVerify => "CANNOT VERIFY (broken hash chain)",
    };
    println!("wrote {}: verdict {verdict}", args.output.display());
    Ok(if v.verdict == Verdict::Conforms {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
