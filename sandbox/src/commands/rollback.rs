//! `sandbox rollback --drill LOG`: carries out the contract's rollback for a logged session in
//! a scratch copy of the workspace, in the sandbox, re-runs the checks that passed before the
//! session, and appends one `rollback_drill` record (duration, result, the pilot's 5 and 10
//! minute thresholds) to the same log.
//!
//! The drill makes two scratch copies of the workspace as it is now, outside it:
//! - the baseline: the session's own changes undone by the tool (`git reset --hard` to the
//!   HEAD before the session, the files the session created removed), then the `done` checks;
//!   the ones that pass there are the checks that passed before the session;
//! - the drill: the contract's `rollback` command, then the `done` checks.
//!
//! Both run through `sandbox run` with the session's contract, so the rollback and the checks
//! get the same file view and network policy as the agent had. The copies are removed after.
//! The rollback passes when its command exits 0 and every check that passed at the baseline
//! passes after it; the time is the drill's, rollback and checks.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use proxy::flowlog::{Event, Kind};
use proxy::{FlowLog, FlowRecord};
use serde_json::{json, Value};

use crate::evidence::chain::ChainStatus;
use crate::evidence::record::LogRecord;
use crate::evidence::scan::scan_file;

/// A rollback within this is a success for the pilot.
pub const SUCCESS_WITHIN: Duration = Duration::from_secs(5 * 60);
/// A rollback beyond this is a red flag.
pub const RED_FLAG_BEYOND: Duration = Duration::from_secs(10 * 60);

const EXAMPLES: &str = "\
Examples:
  # Drill the last session in the log (its contract's rollback, in a scratch copy):
  sandbox rollback --drill flows.jsonl
  # A given session, with the contract at a new place:
  sandbox rollback --drill flows.jsonl --session 3f2a... --contract tasks/fix.toml

A rollback text that is not a command (more than one line, not valid shell, or its first word
no program on PATH) is recorded as manual, with no time. Exit codes: 0 the rollback passed within 5 minutes; 1 it failed, took
longer, or is manual; 2 the drill could not be carried out.";

/// `sandbox rollback`
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The flow log of the session to drill; the drill's record is appended to it.
    #[arg(long, value_name = "LOG")]
    drill: PathBuf,
    /// The session id [default: the last `sandbox run` session in the log].
    #[arg(long, value_name = "ID")]
    session: Option<String>,
    /// The contract [default: the one the session recorded; its SHA-256 must match].
    #[arg(long, value_name = "FILE")]
    contract: Option<PathBuf>,
    /// Keep the scratch copies (their place is printed).
    #[arg(long)]
    keep: bool,
}

/// Runs `sandbox rollback`.
pub fn run(args: Args) -> ExitCode {
    match drill(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sandbox rollback: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// What the log says about the drilled session.
#[derive(Debug, Default)]
struct Drilled {
    session: String,
    workspace: Option<PathBuf>,
    contract_path: Option<PathBuf>,
    contract_sha256: Option<String>,
    changes: Option<Value>,
}

fn read_session(log: &Path, wanted: Option<&str>) -> Result<Drilled> {
    let mut sessions: Vec<Drilled> = Vec::new();
    let report = scan_file(log, &mut |_, r: LogRecord| {
        let Some(d) = &r.detail else { return };
        match r.event.as_str() {
            "session_start" if d.get("workspace").is_some() => sessions.push(Drilled {
                session: r.session.clone(),
                workspace: d["workspace"].as_str().map(PathBuf::from),
                contract_path: d["contract_path"].as_str().map(PathBuf::from),
                contract_sha256: d["contract_sha256"].as_str().map(str::to_string),
                changes: None,
            }),
            "changes" => {
                if let Some(s) = sessions.iter_mut().find(|s| s.session == r.session) {
                    s.changes = Some(d.clone());
                }
            }
            _ => {}
        }
    });
    match &report.status {
        ChainStatus::Intact { .. } => {}
        ChainStatus::Truncated { line, .. } => {
            eprintln!(
                "sandbox rollback: note: {} is cut off at line {line} (read up to there)",
                log.display()
            );
        }
        other => bail!(
            "{} is not an intact flow log ({other:?}); `sandbox log verify` says where it breaks",
            log.display()
        ),
    }
    let found = match wanted {
        Some(id) => sessions.into_iter().rev().find(|s| s.session == id),
        None => sessions.pop(),
    };
    found.ok_or_else(|| match wanted {
        Some(id) => anyhow::anyhow!("no `sandbox run` session {id} in {}", log.display()),
        None => anyhow::anyhow!("no `sandbox run` session in {}", log.display()),
    })
}

/// Is `text` a command: one line that the shell parses (`sh -n`) and whose first word is a
/// program on PATH (or a path to one)? Prose such as "git revert the agent's commits" fails
/// the parse (an open quote) and is a manual rollback.
fn is_command(text: &str) -> bool {
    looks_like_command(text)
        && Command::new("sh")
            .args(["-n", "-c", text])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

fn looks_like_command(text: &str) -> bool {
    let text = text.trim();
    if text.is_empty() || text.contains('\n') {
        return false;
    }
    let Some(first) = text.split_whitespace().next() else {
        return false;
    };
    if first.contains('/') {
        return Path::new(first).is_file();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|dir| dir.join(first).is_file()))
        .unwrap_or(false)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .context("run cp -a")?;
    if !status.success() {
        bail!("cp -a {} {} failed", from.display(), to.display());
    }
    Ok(())
}

/// One `sandbox run` of `script` with the contract in `workspace`; its log is `log`.
fn sandboxed(contract: &Path, workspace: &Path, log: &Path, script: &str) -> Result<i32> {
    let exe = std::env::current_exe().context("find the sandbox binary")?;
    let status = Command::new(exe)
        .arg("run")
        .arg("--contract")
        .arg(contract)
        .arg("--workspace")
        .arg(workspace)
        .arg("--log")
        .arg(log)
        .arg("--agent-exit-code")
        .args(["--", "sh", "-c", script])
        .current_dir(workspace)
        .stdin(Stdio::null())
        .status()
        .context("run sandbox run")?;
    Ok(status.code().unwrap_or(128))
}

/// The `check` records of a drill's own log: (command, passed).
fn checks_of(log: &Path) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    scan_file(log, &mut |_, r: LogRecord| {
        if r.event == "check" {
            if let Some(d) = &r.detail {
                out.push((
                    d["command"].as_str().unwrap_or_default().to_string(),
                    d["passed"].as_bool() == Some(true),
                ));
            }
        }
    });
    out
}

/// The script that undoes the session's own changes: back to the HEAD before it, and the
/// files it created (untracked, not there before) removed.
fn baseline_script(changes: &Value) -> Option<String> {
    if changes.get("git")?.as_bool() != Some(true) {
        return None;
    }
    let head = changes["before"]["head"].as_str()?;
    if !head.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut script = format!("git -c core.hooksPath=/dev/null reset -q --hard {head}");
    for f in changes["files"].as_array().into_iter().flatten() {
        if f["untracked"].as_bool() == Some(true) && f["dirty_before"].as_bool() != Some(true) {
            if let Some(p) = f["path"].as_str() {
                script.push_str(&format!(" && rm -f -- {}", shell_quote(p)));
            }
        }
    }
    Some(script)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn judgement(total: Duration) -> (&'static str, bool) {
    if total <= SUCCESS_WITHIN {
        ("within 5 minutes: success", false)
    } else if total <= RED_FLAG_BEYOND {
        (
            "over 5 minutes: not a success (a red flag beyond 10)",
            false,
        )
    } else {
        ("over 10 minutes: red flag", true)
    }
}

fn drill(args: &Args) -> Result<bool> {
    let target = read_session(&args.drill, args.session.as_deref())?;
    let contract = match (&args.contract, &target.contract_path) {
        (Some(c), _) => c.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) => bail!(
            "session {} ran without a contract file: pass --contract",
            target.session
        ),
    };
    let source = std::fs::read_to_string(&contract)
        .with_context(|| format!("cannot read the contract {}", contract.display()))?;
    let workspace = target
        .workspace
        .clone()
        .context("the session recorded no workspace")?;
    let ctx = egress_policy::PathContext {
        workspace: workspace.clone(),
        home: std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/nonexistent")),
    };
    let policy = egress_policy::Policy::parse(&source, &contract.display().to_string(), &ctx)
        .map_err(|e| anyhow::anyhow!("the contract {} is invalid:\n{e}", contract.display()))?;
    let sha = policy.sha256();
    let contract_matches = target.contract_sha256.as_deref() == Some(sha.as_str());
    if !contract_matches && args.contract.is_none() {
        bail!(
            "the contract {} changed since session {} (SHA-256 {sha}, the log says {}): pass \
             --contract to drill with this one anyway",
            contract.display(),
            target.session,
            target.contract_sha256.as_deref().unwrap_or("nothing")
        );
    }
    let rollback = policy.contract().task.rollback.clone().unwrap_or_default();
    let mut detail = json!({
        "session": target.session,
        "contract": contract.display().to_string(),
        "contract_sha256": sha,
        "contract_matches_session": contract_matches,
        "rollback": rollback,
        "thresholds_s": {"success_within": SUCCESS_WITHIN.as_secs(), "red_flag_beyond": RED_FLAG_BEYOND.as_secs()},
    });
    let passed;
    if !is_command(&rollback) {
        eprintln!(
            "sandbox rollback: the contract's rollback is not a command (`{rollback}`): recorded as manual, with no time"
        );
        detail["kind"] = json!("manual");
        detail["result"] = json!("manual");
        passed = false;
    } else {
        passed = carry_out(args, &target, &contract, &workspace, &rollback, &mut detail)?;
    }
    // Each drill is a session of its own (its records number from 1), about `target`.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let id = format!(
        "drill-{}-{:x}{nanos:08x}",
        target.session,
        std::process::id()
    );
    let log = FlowLog::open(&args.drill, &id)
        .with_context(|| format!("open {} to append the drill", args.drill.display()))?;
    let mut rec = FlowRecord::new(Event::RollbackDrill, Kind::Session);
    rec.duration_ms = detail["total_ms"].as_f64();
    rec.detail = Some(detail);
    log.append(rec)
        .context("append the rollback_drill record")?;
    log.sync().context("flush the flow log")?;
    Ok(passed)
}

/// Makes the two scratch copies, runs the baseline and the drill, and fills `detail`.
fn carry_out(
    args: &Args,
    target: &Drilled,
    contract: &Path,
    workspace: &Path,
    rollback: &str,
    detail: &mut Value,
) -> Result<bool> {
    let scratch = std::env::temp_dir().join(format!(
        "sandbox-drill-{}-{}",
        target.session.chars().take(16).collect::<String>(),
        std::process::id()
    ));
    if workspace.starts_with(&scratch) || scratch.starts_with(workspace) {
        bail!(
            "the scratch directory {} overlaps the workspace",
            scratch.display()
        );
    }
    std::fs::create_dir_all(&scratch)
        .with_context(|| format!("create the scratch directory {}", scratch.display()))?;
    let result = (|| -> Result<bool> {
        // The baseline: what passed before the session.
        let baseline_checks = match target.changes.as_ref().and_then(baseline_script) {
            Some(script) => {
                let ws = scratch.join("baseline");
                copy_tree(workspace, &ws)?;
                eprintln!(
                    "sandbox rollback: baseline (the session's changes undone) in {}",
                    ws.display()
                );
                let code = sandboxed(contract, &ws, &scratch.join("baseline.jsonl"), &script)?;
                if code != 0 {
                    bail!(
                        "could not rebuild the state before the session (`{script}` exited {code})"
                    );
                }
                Some(checks_of(&scratch.join("baseline.jsonl")))
            }
            None => None,
        };
        let ws = scratch.join("drill");
        copy_tree(workspace, &ws)?;
        eprintln!("sandbox rollback: drill `{rollback}` in {}", ws.display());
        let started = Instant::now();
        let code = sandboxed(contract, &ws, &scratch.join("drill.jsonl"), rollback)?;
        let total = started.elapsed();
        let after = checks_of(&scratch.join("drill.jsonl"));
        let must_pass: Vec<&String> = match &baseline_checks {
            Some(base) => base.iter().filter(|(_, ok)| *ok).map(|(c, _)| c).collect(),
            None => after.iter().map(|(c, _)| c).collect(),
        };
        let regressions: Vec<&String> = must_pass
            .iter()
            .copied()
            .filter(|c| !after.iter().any(|(a, ok)| a == *c && *ok))
            .collect();
        let (judged, red_flag) = judgement(total);
        let ok = code == 0 && regressions.is_empty();
        let in_time = total <= SUCCESS_WITHIN;
        detail["kind"] = json!("command");
        detail["exit_code"] = json!(code);
        detail["total_ms"] = json!(total.as_secs_f64() * 1000.0);
        detail["baseline"] = match &baseline_checks {
            Some(b) => json!(b
                .iter()
                .map(|(c, ok)| json!({"command": c, "passed": ok}))
                .collect::<Vec<_>>()),
            None => json!(null),
        };
        detail["baseline_note"] = json!(if baseline_checks.is_some() {
            "the checks that passed with the session's changes undone by the tool"
        } else {
            "no git record of the session: every check must pass after the rollback"
        });
        detail["checks_after"] = json!(after
            .iter()
            .map(|(c, ok)| json!({"command": c, "passed": ok}))
            .collect::<Vec<_>>());
        detail["regressions"] = json!(regressions);
        detail["judgement"] = json!(judged);
        detail["red_flag"] = json!(red_flag);
        detail["result"] = json!(if ok && in_time {
            "success"
        } else if ok {
            "slow"
        } else {
            "failed"
        });
        eprintln!(
            "sandbox rollback: {} in {:.1} s ({judged}){}",
            if ok {
                "rolled back, checks pass"
            } else {
                "the rollback FAILED"
            },
            total.as_secs_f64(),
            if regressions.is_empty() {
                String::new()
            } else {
                format!(
                    "; failing again after it: {}",
                    regressions
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        Ok(ok && in_time)
    })();
    if args.keep {
        eprintln!(
            "sandbox rollback: kept the scratch copies in {}",
            scratch.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_program_on_path_is_a_command() {
        assert!(is_command("git revert --no-edit HEAD"));
        assert!(is_command("sh -c 'git reset --hard HEAD~1'"));
        assert!(!is_command("Revert the commit and tell the team."));
        assert!(!is_command(""));
        assert!(!is_command("git revert\nthen push"));
        assert!(!is_command("./no-such-script.sh"));
        assert!(!is_command(
            "git revert the agent's commits on pilot/agent-suggestions"
        ));
    }

    #[test]
    fn thresholds() {
        assert_eq!(
            judgement(Duration::from_secs(30)).0,
            "within 5 minutes: success"
        );
        assert!(!judgement(Duration::from_secs(400)).1);
        assert!(judgement(Duration::from_secs(601)).1);
    }

    #[test]
    fn baseline_undoes_the_session_and_quotes_paths() {
        let changes = json!({
            "git": true,
            "before": {"head": "0123abcd"},
            "files": [
                {"path": "new file's.txt", "untracked": true, "dirty_before": false},
                {"path": "old.txt", "untracked": true, "dirty_before": true},
                {"path": "src.rs", "untracked": false}
            ]
        });
        assert_eq!(
            baseline_script(&changes).unwrap(),
            "git -c core.hooksPath=/dev/null reset -q --hard 0123abcd && rm -f -- 'new file'\\''s.txt'"
        );
        assert_eq!(baseline_script(&json!({"git": false})), None);
        assert_eq!(
            baseline_script(&json!({"git": true, "before": {"head": "x; rm -rf /"}})),
            None
        );
    }
}
