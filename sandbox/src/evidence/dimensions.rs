//! The pilot's seven evidence dimensions, judged from what the logs hold: security posture,
//! maintainability, developer adoption, data flow, CI fit, review quality and rollback
//! feasibility. Each is pass, fail or not measured, with the threshold it was judged by, the
//! evidence in one sentence, and the sessions that failed it. Over many logs the totals are
//! per dimension (a pilot has many sessions). The thresholds are in `docs/pilot-guide.md`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::conformance::{Verdict, Verification};
use super::sessions::SessionInfo;

/// At most this many lines changed (added plus removed) per session for a change to count as
/// reviewable in one sitting.
pub const MAX_REVIEWABLE_LINES: u64 = 400;
/// A rollback drill within this many seconds is a success.
pub const ROLLBACK_SUCCESS_S: f64 = 300.0;
/// A rollback drill beyond this many seconds is a red flag.
pub const ROLLBACK_RED_FLAG_S: f64 = 600.0;

/// How a dimension was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every session with evidence met the threshold.
    Pass,
    /// At least one did not.
    Fail,
    /// The logs hold no evidence for it.
    NotMeasured,
}

impl Status {
    /// `pass`, `fail`, `not measured`.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::NotMeasured => "not measured",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Dimension {
    /// The dimension's name.
    pub name: &'static str,
    /// Pass, fail or not measured.
    pub status: Status,
    /// What the status was judged by.
    pub threshold: String,
    /// The evidence, in a sentence or two.
    pub evidence: String,
    /// Sessions that failed it, with why.
    pub failed: Vec<(String, String)>,
    /// For a dimension the tool cannot measure: what to collect instead.
    pub collect: Option<String>,
}

fn status_of(measured: usize, failed: &[(String, String)]) -> Status {
    if measured == 0 {
        Status::NotMeasured
    } else if failed.is_empty() {
        Status::Pass
    } else {
        Status::Fail
    }
}

/// `sandbox run` and `sandbox proxy` sessions (those with a `session_start`).
fn sessions(v: &Verification) -> Vec<&SessionInfo> {
    v.summary
        .sessions
        .values()
        .filter(|s| s.has_start)
        .collect()
}

/// The kind of a denial, from its reason.
fn denial_kind(reason: &str) -> &'static str {
    let r = reason.to_ascii_lowercase();
    if r.contains("secret") || r.contains("credential") {
        "secret in the request"
    } else if r.contains("residency") || r.contains("outside the eu") || r.contains("region") {
        "residency"
    } else if r.contains("private") || r.contains("metadata") || r.contains("loopback") {
        "private or metadata address"
    } else {
        "not allowed by the contract"
    }
}

fn security(v: &Verification) -> Dimension {
    let all = sessions(v);
    let mut failed = Vec::new();
    let mut stated = 0;
    for s in &all {
        match s.layers_full() {
            Some(true) => stated += 1,
            Some(false) => {
                stated += 1;
                failed.push((
                    s.session.clone(),
                    "ran with weakened protections".to_string(),
                ));
            }
            None => {}
        }
        let out = s.out_of_scope();
        if !out.is_empty() {
            failed.push((
                s.session.clone(),
                format!(
                    "changed files outside the contract's scope: {}",
                    out.join(", ")
                ),
            ));
        }
        if s.quarantined > 0 {
            failed.push((
                s.session.clone(),
                format!(
                    "the agent created {} protected path(s) (hooks, CI config), moved aside",
                    s.quarantined
                ),
            ));
        }
    }
    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    for g in &v.summary.denials {
        *by_kind.entry(denial_kind(&g.reason)).or_default() += g.count;
    }
    let denials = if by_kind.is_empty() {
        "no denied attempts".to_string()
    } else {
        by_kind
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let secrets = by_kind.get("secret in the request").copied().unwrap_or(0);
    let checks_ran = all.iter().any(|s| !s.checks.is_empty());
    let mut controls = vec![
        "3 input and output filtering (secret scanning)",
        "4 least privilege (kernel sandbox, default-deny egress)",
    ];
    if checks_ran {
        controls.insert(0, "2 output validated (done checks)");
    }
    Dimension {
        name: "Security posture",
        status: status_of(stated, &failed),
        threshold: "every session with all layers in force, no change outside the contract's scope, no planted hook or CI file".to_string(),
        evidence: format!(
            "{stated} of {} sessions stated their layers, {} in full; denied attempts: {denials}; secrets found in requests: {secrets}; OWASP LLM01 mitigations evidenced: {} of 7 ({})",
            all.len(),
            all.iter().filter(|s| s.layers_full() == Some(true)).count(),
            controls.len(),
            controls.join("; "),
        ),
        failed,
        collect: None,
    }
}

fn maintainability(v: &Verification) -> Dimension {
    let mut failed = Vec::new();
    let mut measured = 0;
    let mut lines = 0;
    let mut files = 0;
    for s in sessions(v) {
        let Some(n) = s.changed_lines() else { continue };
        measured += 1;
        lines += n;
        files += s
            .changes
            .as_ref()
            .and_then(|c| c["files_changed"].as_u64())
            .unwrap_or(0);
        if n > MAX_REVIEWABLE_LINES {
            failed.push((
                s.session.clone(),
                format!("{n} lines changed (more than {MAX_REVIEWABLE_LINES})"),
            ));
        }
    }
    Dimension {
        name: "Maintainability",
        status: status_of(measured, &failed),
        threshold: format!(
            "at most {MAX_REVIEWABLE_LINES} lines changed (added + removed) per session"
        ),
        evidence: if measured == 0 {
            "no session recorded its git changes".to_string()
        } else {
            format!("{measured} sessions changed {files} files and {lines} lines in all")
        },
        failed,
        collect: None,
    }
}

fn adoption(v: &Verification) -> Dimension {
    let all = sessions(v);
    let mut users: Vec<&str> = all.iter().filter_map(|s| s.user.as_deref()).collect();
    users.sort_unstable();
    users.dedup();
    Dimension {
        name: "Developer adoption",
        status: Status::NotMeasured,
        threshold: "the pilot's own adoption target".to_string(),
        evidence: format!(
            "this tool cannot measure adoption; for context: {} sessions by {} user(s)",
            all.len(),
            users.len()
        ),
        failed: Vec::new(),
        collect: Some(
            "active developers per week, sessions per developer, tasks finished without rework, and a short survey at day 15 and day 30".to_string(),
        ),
    }
}

fn data_flow(v: &Verification) -> Dimension {
    let (status, evidence) = match v.verdict {
        Verdict::Conforms => (
            Status::Pass,
            format!(
                "all {} allowed flows on approved edges and regions; {} attempts blocked",
                v.allowed_flows,
                v.summary.denials.iter().map(|g| g.count).sum::<u64>()
            ),
        ),
        Verdict::Deviates => (
            Status::Fail,
            format!(
                "{} of {} allowed flows off the approved diagram ({} deviations)",
                v.allowed_flows - v.conforming_flows,
                v.allowed_flows,
                v.deviations.len()
            ),
        ),
        Verdict::CannotVerify => (
            Status::Fail,
            "a log's hash chain is broken: the logs are not evidence".to_string(),
        ),
    };
    let mut per_session: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for d in &v.deviations {
        per_session
            .entry(d.first.session.clone())
            .or_insert_with(|| (0, d.host.clone()))
            .0 += 1;
    }
    let failed = per_session
        .into_iter()
        .map(|(session, (n, host))| (session, format!("{n} deviation(s): {host}")))
        .collect();
    Dimension {
        name: "Data flow",
        status,
        threshold: "every allowed flow on an approved edge, within its regions; hash chain intact"
            .to_string(),
        evidence,
        failed,
        collect: None,
    }
}

fn ci_fit(v: &Verification) -> Dimension {
    let mut failed = Vec::new();
    let mut measured = 0;
    let (mut run, mut passed) = (0, 0);
    for s in sessions(v) {
        if let Some(why) = &s.checks_skipped {
            if s.checks.is_empty() {
                failed.push((s.session.clone(), format!("done checks not run: {why}")));
                measured += 1;
                continue;
            }
        }
        if s.checks.is_empty() {
            continue;
        }
        measured += 1;
        run += s.checks.len();
        let bad: Vec<&str> = s
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.command.as_str())
            .collect();
        passed += s.checks.len() - bad.len();
        if !bad.is_empty() {
            failed.push((s.session.clone(), format!("failed: {}", bad.join("; "))));
        }
    }
    Dimension {
        name: "CI fit",
        status: status_of(measured, &failed),
        threshold: "every done check of every session passes in the sandbox".to_string(),
        evidence: if measured == 0 {
            "no session ran done checks".to_string()
        } else {
            format!("{passed} of {run} done checks passed over {measured} sessions")
        },
        failed,
        collect: None,
    }
}

fn review_quality(v: &Verification) -> Dimension {
    let mut failed = Vec::new();
    let mut measured = 0;
    let mut commits = 0;
    for s in sessions(v) {
        let Some(c) = &s.changes else { continue };
        if c["git"].as_bool() != Some(true) {
            continue;
        }
        measured += 1;
        commits += c["commit_count"].as_u64().unwrap_or(0);
        if c["history_rewritten"].as_bool() == Some(true) {
            failed.push((
                s.session.clone(),
                "rewrote history (HEAD is not a descendant of the HEAD before)".to_string(),
            ));
        }
        let out = s.out_of_scope();
        if !out.is_empty() {
            failed.push((
                s.session.clone(),
                format!("out of scope: {}", out.join(", ")),
            ));
        }
        if let Some(n) = s.changed_lines() {
            if n > MAX_REVIEWABLE_LINES {
                failed.push((
                    s.session.clone(),
                    format!("{n} lines: too large to review well"),
                ));
            }
        }
    }
    Dimension {
        name: "Review quality",
        status: status_of(measured, &failed),
        threshold: format!(
            "changes within scope, history not rewritten, at most {MAX_REVIEWABLE_LINES} lines per session"
        ),
        evidence: if measured == 0 {
            "no session recorded its git changes".to_string()
        } else {
            format!(
                "{measured} sessions, {commits} agent commits; the human review itself is recorded outside this tool (class B and C need one)"
            )
        },
        failed,
        collect: Some("the reviewer's verdict per change, and the defects found in review".to_string()),
    }
}

fn rollback(v: &Verification) -> Dimension {
    let mut failed = Vec::new();
    let mut measured = 0;
    let mut manual = 0;
    let mut times = Vec::new();
    for s in v.summary.sessions.values() {
        let Some(d) = s.drills.last() else { continue };
        if d["kind"].as_str() == Some("manual") {
            manual += 1;
            failed.push((
                s.session.clone(),
                "rollback is manual: not drillable, no time".to_string(),
            ));
            continue;
        }
        measured += 1;
        let secs = d["total_ms"].as_f64().unwrap_or(f64::MAX) / 1000.0;
        times.push(secs);
        if d["result"].as_str() == Some("failed") {
            failed.push((
                s.session.clone(),
                format!("the rollback failed after {secs:.1} s"),
            ));
        } else if secs > ROLLBACK_RED_FLAG_S {
            failed.push((
                s.session.clone(),
                format!("{secs:.0} s: red flag (over 10 minutes)"),
            ));
        } else if secs > ROLLBACK_SUCCESS_S {
            failed.push((s.session.clone(), format!("{secs:.0} s: over 5 minutes")));
        }
    }
    let worst = times.iter().copied().fold(0.0_f64, f64::max);
    Dimension {
        name: "Rollback feasibility",
        status: status_of(measured + manual, &failed),
        threshold: "a drilled rollback passes within 5 minutes (beyond 10 minutes: red flag)"
            .to_string(),
        evidence: if measured + manual == 0 {
            "no rollback drill in the logs (run `sandbox rollback --drill LOG`)".to_string()
        } else {
            format!("{measured} drilled, {manual} manual; slowest {worst:.1} s")
        },
        failed,
        collect: None,
    }
}

/// The seven dimensions, in the governance model's order.
pub fn judge(v: &Verification) -> Vec<Dimension> {
    vec![
        security(v),
        maintainability(v),
        adoption(v),
        data_flow(v),
        ci_fit(v),
        review_quality(v),
        rollback(v),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denial_kinds_from_reasons() {
        assert_eq!(
            denial_kind("the request carries a secret (aws-access-key)"),
            "secret in the request"
        );
        assert_eq!(
            denial_kind("no rule allows x.example (deny by default)"),
            "not allowed by the contract"
        );
        assert_eq!(
            denial_kind("region us-east-1 is outside the EU"),
            "residency"
        );
    }

    #[test]
    fn status_needs_evidence() {
        assert_eq!(status_of(0, &[]), Status::NotMeasured);
        assert_eq!(status_of(2, &[]), Status::Pass);
        assert_eq!(status_of(2, &[("s".into(), "why".into())]), Status::Fail);
    }
}
