//! `sandbox log verify` and `sandbox log summary`: the flow log's hash chain, and what flowed
//! where.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::evidence::chain::ChainStatus;
use crate::evidence::filter::{parse_time_bound, Filter};
use crate::evidence::scan::scan_files;
use crate::evidence::summary::{render_chain, SummaryBuilder};
use crate::evidence::text::{Style, Tone};

/// `sandbox log ...`
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Check the hash chain of flow-log files. Exit 0 when every file is intact (or only cut
    /// off at its end by a crash, unless --strict), 1 when any record was edited, deleted,
    /// inserted or reordered (the first bad line is named).
    Verify(VerifyArgs),
    /// Per destination: flows, allowed and denied, bytes, methods and paths, region and
    /// jurisdiction; then the denials and the sessions. Streams any number of records. Exit 1
    /// when a log's chain is broken (only the records before the break are counted).
    Summary(SummaryArgs),
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// Flow-log files (each is its own chain).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Treat a file cut off at its end (truncated) as not intact.
    #[arg(long)]
    strict: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// A record hash known from elsewhere (the head reported at session end, or the last
    /// `sandbox.log.hash` the OpenTelemetry collector received). The verified chains must
    /// contain it; otherwise records were removed or the log was rewritten. Repeatable.
    #[arg(long, value_name = "HASH")]
    anchor: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct SummaryArgs {
    /// Flow-log files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Machine-readable output (JSON).
    #[arg(long)]
    json: bool,
    /// Only denied flows.
    #[arg(long)]
    denied: bool,
    /// Only flows to this host (exact, or a `*` glob such as `*.mistral.ai`).
    #[arg(long)]
    host: Option<String>,
    /// Only this session (`s-` and 16 hex digits).
    #[arg(long)]
    session: Option<String>,
    /// Only records at or after this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    since: Option<String>,
    /// Only records at or before this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    until: Option<String>,
}

/// Runs `sandbox log`.
pub fn run(args: Args) -> ExitCode {
    let result = match args.command {
        LogCommand::Verify(a) => verify(a),
        LogCommand::Summary(a) => summary(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sandbox log: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    // Sessions that started but never ended, per file: a hint that records may be missing
    // at the end even when the chain itself is intact.
    let mut open_sessions: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    let mut anchors: BTreeMap<String, Option<String>> = BTreeMap::new();
    for anchor in &args.anchor {
        let a = anchor.trim().to_ascii_lowercase();
        if a.len() != 64 || !a.bytes().all(|b| b.is_ascii_hexdigit()) {
            anyhow::bail!("--anchor {anchor} is not a record hash (64 hex digits)");
        }
        anchors.insert(a, None);
    }
    let reports = scan_files(&args.files, |pos, record| {
        if let Some(found) = anchors.get_mut(&record.hash) {
            *found = Some(format!("{}:{}", pos.file, pos.line));
        }
        let sessions = open_sessions.entry(pos.file.to_string()).or_default();
        match record.event.as_str() {
            "session_start" => {
                sessions.insert(record.session.clone(), true);
            }
            "session_end" => {
                sessions.insert(record.session.clone(), false);
            }
            _ => {}
        }
    });
    let missing_anchors: Vec<&String> = anchors
        .iter()
        .filter(|(_, found)| found.is_none())
        .map(|(a, _)| a)
        .collect();
    let failed = !missing_anchors.is_empty()
        || reports.iter().any(|r| match r.status {
            ChainStatus::Intact { .. } => false,
            ChainStatus::Truncated { .. } => args.strict,
            ChainStatus::Broken { .. } | ChainStatus::Unreadable { .. } => true,
        });
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let value = serde_json::json!({
            "intact": !failed,
            "files": reports,
            "anchors": anchors,
        });
        writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)
            .context("writing to stdout")?;
    } else {
        let style = Style::for_stdout();
        write!(stdout, "{}", render_chain(&style, &reports)).context("writing to stdout")?;
        for (file, sessions) in &open_sessions {
            for (session, open) in sessions {
                if *open {
                    writeln!(
                        stdout,
                        "{}",
                        style.paint(
                            Tone::Warn,
                            &format!("{file}: note: session {session} has no session_end record (still running, crashed, or its last records are missing)")
                        )
                    )
                    .context("writing to stdout")?;
                }
            }
        }
        for (anchor, found) in &anchors {
            let line = match found {
                Some(at) => style.paint(Tone::Good, &format!("anchor {anchor}: found at {at}")),
                None => style.paint(
                    Tone::Bad,
                    &format!("anchor {anchor}: NOT FOUND: the record it names was removed, or the log was rewritten"),
                ),
            };
            writeln!(stdout, "{line}").context("writing to stdout")?;
        }
        let verdict = if failed {
            style.paint(Tone::Bad, "NOT INTACT")
        } else {
            style.paint(Tone::Good, "intact")
        };
        writeln!(stdout, "{verdict}").context("writing to stdout")?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn summary(args: SummaryArgs) -> anyhow::Result<ExitCode> {
    let bound = |b: &Option<String>| -> anyhow::Result<Option<String>> {
        b.as_deref()
            .map(parse_time_bound)
            .transpose()
            .context("in --since/--until")
    };
    let filter = Filter {
        denied_only: args.denied,
        host: args.host.map(|h| h.to_ascii_lowercase()),
        session: args.session,
        since: bound(&args.since)?,
        until: bound(&args.until)?,
    };
    let mut builder = SummaryBuilder::new(filter);
    let files = scan_files(&args.files, |pos, record| builder.add(pos, &record));
    let chain_ok = files.iter().all(|f| f.status.is_trustworthy());
    let summary = builder.finish(files);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &summary).context("writing JSON to stdout")?;
        writeln!(stdout).context("writing to stdout")?;
    } else {
        write!(stdout, "{}", summary.render_text(&Style::for_stdout()))
            .context("writing to stdout")?;
    }
    Ok(if chain_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
