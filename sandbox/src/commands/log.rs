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
    /// Record that the last session of each log never ended (its supervisor was killed): one
    /// chained `session_recovered` record saying up to which record it is whole. `sandbox
    /// run` and `sandbox proxy` do this by themselves before they write to a log. Exit 0
    /// (also when there was nothing to recover), 2 when a log cannot be opened.
    Recover(RecoverArgs),
}

#[derive(Debug, clap::Args)]
struct RecoverArgs {
    /// Flow-log files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// Flow-log files (each is its own chain).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Also fail when a file is cut off at its end (a torn last line), when a session has no
    /// `session_end` and was not recovered as killed (the log was cut, or the session is still
    /// running), or when a session's end counts records the log does not hold.
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
        LogCommand::Recover(a) => recover(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sandbox log: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn recover(args: RecoverArgs) -> anyhow::Result<ExitCode> {
    for file in &args.files {
        match crate::recovery::recover_tail(file, "sandbox log recover")? {
            Some(r) => println!(
                "{}: session {} has no session_end: recorded as killed, whole up to its record {} ({})",
                file.display(),
                r.session,
                r.records,
                r.last_hash
            ),
            None => println!("{}: nothing to recover (its last session ended)", file.display()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the records of one session in one file say about its completeness.
#[derive(Debug, Default)]
struct SessionTally {
    /// A `session_start` was seen.
    started: bool,
    /// A `session_end` was seen.
    ended: bool,
    /// Recovered as killed, whole up to this many records.
    recovered: Option<u64>,
    /// Records seen.
    records: u64,
    /// The hash of its last record seen.
    last_hash: String,
    /// What does not add up (strict failures).
    faults: Vec<String>,
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    // Per file, per session: started, ended or recovered, and the record count, so that a log
    // cut after the fact is told from a killed session that was recovered.
    let mut tallies: BTreeMap<String, BTreeMap<String, SessionTally>> = BTreeMap::new();
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
        let sessions = tallies.entry(pos.file.to_string()).or_default();
        let detail = record.detail.clone().unwrap_or_default();
        if record.event == "session_recovered" {
            if let Some(target) = detail["session"].as_str() {
                let t = sessions.entry(target.to_string()).or_default();
                let claimed = detail["records"].as_u64().unwrap_or(0);
                if claimed != t.records
                    || detail["last_hash"].as_str() != Some(t.last_hash.as_str())
                {
                    t.faults.push(format!(
                        "was recovered as whole up to record {claimed}, but the log holds {} of its records before the recovery",
                        t.records
                    ));
                }
                t.recovered = Some(claimed);
            }
        }
        let t = sessions.entry(record.session.clone()).or_default();
        match record.event.as_str() {
            "session_start" => t.started = true,
            "session_end" => {
                t.ended = true;
                if let Some(before) = detail["records_before"].as_u64() {
                    if before != t.records {
                        t.faults.push(format!(
                            "ends counting {before} records before its end, but the log holds {}",
                            t.records
                        ));
                    }
                }
            }
            _ => {}
        }
        t.records += 1;
        t.last_hash = record.hash.clone();
    });
    let mut session_faults: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for (file, sessions) in &tallies {
        for (session, t) in sessions {
            for f in &t.faults {
                session_faults.push(format!("{file}: session {session} {f}"));
            }
            if t.started && !t.ended {
                match t.recovered {
                    Some(n) => notes.push(format!(
                        "{file}: session {session} was killed (no session_end); recovered: whole up to its record {n}"
                    )),
                    None => session_faults.push(format!(
                        "{file}: session {session} has no session_end record: the log was cut after it, or it is still running, or its supervisor was killed and the log was not recovered (`sandbox log recover {file}`)"
                    )),
                }
            }
        }
    }
    let missing_anchors: Vec<&String> = anchors
        .iter()
        .filter(|(_, found)| found.is_none())
        .map(|(a, _)| a)
        .collect();
    let failed = !missing_anchors.is_empty()
        || (args.strict && !session_faults.is_empty())
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
            "session_faults": session_faults,
            "killed_sessions": notes,
        });
        writeln!(stdout, "{}", serde_json::to_string_pretty(&value)?)
            .context("writing to stdout")?;
    } else {
        let style = Style::for_stdout();
        write!(stdout, "{}", render_chain(&style, &reports)).context("writing to stdout")?;
        let tone = if args.strict { Tone::Bad } else { Tone::Warn };
        for fault in &session_faults {
            let line = if args.strict {
                fault.clone()
            } else {
                format!("note: {fault}")
            };
            writeln!(stdout, "{}", style.paint(tone, &line)).context("writing to stdout")?;
        }
        for note in &notes {
            writeln!(stdout, "{}", style.paint(Tone::Warn, note)).context("writing to stdout")?;
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
