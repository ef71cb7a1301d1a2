//! `sandbox verify --approved DIAGRAM FILE...`: does every observed allowed flow run on an
//! approved edge of the data-flow diagram, within its region and jurisdiction?

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use egress_policy::diagram::ApprovedDiagram;

use crate::evidence::conformance::{DeviationKind, Verdict, Verification, VerificationBuilder};
use crate::evidence::scan::scan_files;
use crate::evidence::summary::render_chain;
use crate::evidence::text::{human_bytes, sanitize, table, Cell, Style, Tone};

/// `sandbox verify`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The approved data-flow diagram (TOML, see docs/data-flow-diagram.md).
    #[arg(long, value_name = "DIAGRAM")]
    approved: PathBuf,
    /// Flow-log files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Reads and parses an approved diagram, with `file:line:col` errors.
pub fn load_diagram(path: &Path) -> anyhow::Result<ApprovedDiagram> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the approved diagram {}", path.display()))?;
    ApprovedDiagram::parse(&text, &path.display().to_string())
        .context("the approved diagram is invalid; fix it (format: docs/data-flow-diagram.md)")
}

/// Checks `files` against `diagram` in one streaming pass.
pub fn verify_files(diagram: &ApprovedDiagram, files: &[PathBuf]) -> Verification {
    let mut builder = VerificationBuilder::new(diagram);
    let reports = scan_files(files, |pos, record| builder.add(pos, &record));
    builder.finish(reports)
}

/// Runs `sandbox verify`.
pub fn run(args: Args) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sandbox verify: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(args: Args) -> anyhow::Result<ExitCode> {
    let diagram = load_diagram(&args.approved)?;
    let v = verify_files(&diagram, &args.files);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &v).context("writing JSON to stdout")?;
        writeln!(stdout).context("writing to stdout")?;
    } else {
        write!(stdout, "{}", render_text(&v, &Style::for_stdout())).context("writing to stdout")?;
    }
    Ok(match v.verdict {
        Verdict::Conforms => ExitCode::SUCCESS,
        Verdict::Deviates | Verdict::CannotVerify => ExitCode::from(1),
    })
}

/// The human report of a verification.
pub fn render_text(v: &Verification, style: &Style) -> String {
    let mut out = String::new();
    let heading = |out: &mut String, text: &str| {
        out.push_str(&style.paint(Tone::Bold, text));
        out.push('\n');
    };
    if v.approved_by.is_empty() {
        out.push_str(&style.paint(
            Tone::Warn,
            "warning: the diagram records no approval ([diagram] approved_by is empty)\n",
        ));
        out.push('\n');
    }
    heading(&mut out, "Hash chain");
    out.push_str(&render_chain(style, &v.summary.files));

    out.push('\n');
    heading(
        &mut out,
        &format!("Approved edges ({})", sanitize(&v.diagram)),
    );
    let rows: Vec<Vec<Cell>> = v
        .edges
        .iter()
        .map(|e| {
            vec![
                Cell::text(&e.edge),
                Cell::text(&e.data),
                Cell::num(e.flows).tone(if e.flows > 0 { Tone::Good } else { Tone::Plain }),
                Cell::num(human_bytes(e.bytes_out)),
                Cell::num(human_bytes(e.bytes_in)),
                Cell::text(if e.regions.is_empty() {
                    "-".to_string()
                } else {
                    e.regions.iter().cloned().collect::<Vec<_>>().join(", ")
                }),
            ]
        })
        .collect();
    out.push_str(&table(
        style,
        &["EDGE", "DATA", "FLOWS", "OUT", "IN", "REGIONS SEEN"],
        &rows,
    ));

    out.push('\n');
    heading(
        &mut out,
        &format!(
            "Deviations ({}{})",
            v.deviations.len(),
            if v.deviations_not_grouped > 0 {
                " groups shown, more not grouped"
            } else {
                ""
            }
        ),
    );
    if v.deviations.is_empty() {
        out.push_str("(none)\n");
    }
    for (i, d) in v.deviations.iter().enumerate() {
        let kind = match d.kind {
            DeviationKind::MissingEdge => "MISSING EDGE",
            DeviationKind::Residency => "RESIDENCY",
        };
        out.push_str(&style.paint(
            Tone::Bad,
            &format!("{}. {kind}: {}", i + 1, sanitize(&d.observed_edge)),
        ));
        out.push('\n');
        out.push_str(&format!("   why: {}\n", sanitize(&d.why)));
        if let Some(edge) = &d.nearest_edge {
            out.push_str(&format!("   nearest approved edge: {}\n", sanitize(edge)));
        }
        let count = if d.tunnels > 0 && d.flows == 0 {
            format!(
                "tunnels: {} (CONNECT; the requests inside are listed on their own)",
                d.tunnels
            )
        } else {
            format!("flows: {}", d.flows)
        };
        out.push_str(&format!(
            "   {count}, bytes out {} ({}), in {} ({}), region {}, jurisdiction {}\n",
            d.bytes_out,
            human_bytes(d.bytes_out),
            d.bytes_in,
            human_bytes(d.bytes_in),
            sanitize(d.region.as_deref().unwrap_or("unknown")),
            sanitize(d.jurisdiction.as_deref().unwrap_or("unknown")),
        ));
        out.push_str(&format!("   first: {}\n", sanitize(&d.first.to_string())));
        out.push_str(&format!("   last:  {}\n", sanitize(&d.last.to_string())));
    }
    if v.deviations_not_grouped > 0 {
        out.push_str(&format!(
            "(+{} further deviating flows not grouped)\n",
            v.deviations_not_grouped
        ));
    }
    for (session, sha) in &v.contract_mismatches {
        out.push_str(&style.paint(
            Tone::Bad,
            &format!(
                "CONTRACT: session {} ran under contract {} but the diagram was approved for another contract\n",
                sanitize(session),
                sanitize(sha)
            ),
        ));
    }

    out.push('\n');
    heading(
        &mut out,
        "Blocked attempts (denied by the proxy: evidence the controls worked, not deviations)",
    );
    if v.summary.denials.is_empty() {
        out.push_str("(none)\n");
    } else {
        let rows: Vec<Vec<Cell>> = v
            .summary
            .denials
            .iter()
            .map(|g| {
                vec![
                    Cell::text(&g.host),
                    Cell::num(g.count),
                    Cell::text(g.rule.as_deref().unwrap_or("(default deny)")),
                    Cell::text(&g.reason),
                ]
            })
            .collect();
        out.push_str(&table(style, &["HOST", "COUNT", "RULE", "REASON"], &rows));
    }

    out.push('\n');
    let residency = v
        .deviations
        .iter()
        .filter(|d| d.kind == DeviationKind::Residency)
        .map(|d| d.flows)
        .sum::<u64>();
    heading(&mut out, "Residency");
    out.push_str(&format!(
        "{} allowed flows checked; {} outside the region or jurisdiction of their edge\n",
        v.allowed_flows, residency
    ));

    out.push('\n');
    let blocked: u64 = v.summary.denials.iter().map(|g| g.count).sum();
    let verdict = match v.verdict {
        Verdict::Conforms => style.paint(
            Tone::Good,
            &format!(
                "VERDICT: CONFORMS: {} allowed flows, all on approved edges and within residency; {} blocked attempts",
                v.allowed_flows, blocked
            ),
        ),
        Verdict::Deviates => style.paint(
            Tone::Bad,
            &format!(
                "VERDICT: DEVIATES: {} of {} allowed flows are not covered by the approved diagram ({}{} deviations){}",
                v.allowed_flows - v.conforming_flows,
                v.allowed_flows,
                if v.deviations_not_grouped > 0 { "more than " } else { "" },
                v.deviations.len(),
                if v.contract_mismatches.is_empty() { "" } else { "; sessions ran under an unapproved contract" }
            ),
        ),
        Verdict::CannotVerify => style.paint(
            Tone::Bad,
            "VERDICT: CANNOT VERIFY: a log's hash chain is broken or unreadable, so it is not evidence",
        ),
    };
    out.push_str(&verdict);
    out.push('\n');
    out
}
