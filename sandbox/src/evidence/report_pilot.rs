//! The report's pilot sections: the seven-dimension table ([`super::dimensions`]), and per
//! session the statement of active layers, the done checks, the git changes and the rollback
//! drill.

use std::fmt::Write as _;

use super::dimensions::{Dimension, Status};
use super::report::{esc, path_html, pill, trunc, MAX_ROWS};
use super::sessions::SessionInfo;

fn status_pill(s: Status) -> String {
    let class = match s {
        Status::Pass => "good",
        Status::Fail => "bad",
        Status::NotMeasured => "warn",
    };
    pill(class, s.label())
}

/// The seven-dimension table, with the sessions that failed each dimension.
pub fn dimensions_section(dims: &[Dimension], sessions: usize) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<section id=\"dimensions\"><h2>Pilot evidence: seven dimensions</h2><p class=\"note\">Judged over {sessions} session{} from the logs alone; each against the threshold shown (docs/pilot-guide.md). Not measured: the logs hold no evidence for it.</p><table class=\"fixed dims\"><tr><th>Dimension</th><th>Status</th><th>Threshold</th><th>Evidence</th><th>Sessions that failed</th></tr>",
        if sessions == 1 { "" } else { "s" }
    );
    for d in dims {
        let failed = if d.failed.is_empty() {
            "&ndash;".to_string()
        } else {
            let mut cell: Vec<String> = d
                .failed
                .iter()
                .take(10)
                .map(|(s, why)| format!("<code class=\"id\">{}</code> {}", trunc(s, 20), esc(why)))
                .collect();
            if d.failed.len() > 10 {
                cell.push(format!("&hellip; {} more", d.failed.len() - 10));
            }
            cell.join("<br>")
        };
        let collect = d.collect.as_deref().map_or_else(String::new, |c| {
            format!("<br><small>To collect: {}</small>", esc(c))
        });
        let _ = write!(
            out,
            "<tr class=\"dim-{}\"><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}{collect}</td><td>{failed}</td></tr>",
            match d.status {
                Status::Pass => "pass",
                Status::Fail => "fail",
                Status::NotMeasured => "not-measured",
            },
            esc(d.name),
            status_pill(d.status),
            esc(&d.threshold),
            esc(&d.evidence),
        );
    }
    out.push_str("</table></section>");
    out
}

fn layers_cell(s: &SessionInfo) -> String {
    let Some(layers) = &s.layers else {
        return pill("warn", "not stated");
    };
    let list: Vec<&serde_json::Value> = layers["list"].as_array().into_iter().flatten().collect();
    let state = |l: &serde_json::Value| l["state"].as_str().unwrap_or("?").to_string();
    let not_enforced: Vec<String> = list
        .iter()
        .filter(|l| state(l) != "enforced")
        .map(|l| {
            let class = if state(l) == "off" { "warn" } else { "bad" };
            pill(
                class,
                &format!("{} {}", l["layer"].as_str().unwrap_or("?"), state(l)),
            )
        })
        .collect();
    let head = match s.layers_full() {
        Some(true) => pill(
            "good",
            &format!(
                "{} of {} layers in force",
                list.len() - not_enforced.len(),
                list.len()
            ),
        ),
        _ => pill("bad", "weakened"),
    };
    let details: Vec<String> = list
        .iter()
        .map(|l| {
            format!(
                "<b>{}</b> {}: {}",
                esc(l["layer"].as_str().unwrap_or("?")),
                esc(&state(l)),
                esc(l["detail"].as_str().unwrap_or(""))
            )
        })
        .collect();
    format!(
        "<details><summary>{head}</summary><small>{}</small></details>{}",
        details.join("<br>"),
        not_enforced.join(" ")
    )
}

fn checks_cell(s: &SessionInfo) -> String {
    if s.checks.is_empty() {
        return match &s.checks_skipped {
            Some(why) => pill("warn", &format!("skipped: {why}")),
            None if s.checks_listed == Some(0) => "none listed".to_string(),
            None => "&ndash;".to_string(),
        };
    }
    s.checks
        .iter()
        .map(|c| {
            let p = if c.passed {
                pill("good", "pass")
            } else if c.timed_out {
                pill("bad", "timed out")
            } else {
                pill("bad", &format!("exit {}", c.exit_code.unwrap_or(-1)))
            };
            format!(
                "{p} <code>{}</code> <span class=\"ts\">{:.1} s</span>",
                trunc(&c.command, 40),
                c.duration_ms.unwrap_or(0.0) / 1000.0
            )
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

fn changes_cell(s: &SessionInfo) -> String {
    let Some(c) = &s.changes else {
        return "&ndash;".to_string();
    };
    if c["git"].as_bool() != Some(true) {
        return "no git repository".to_string();
    }
    let mut cell = format!(
        "{} commit(s), {} file(s), +{} &minus;{}",
        c["commit_count"].as_u64().unwrap_or(0),
        c["files_changed"].as_u64().unwrap_or(0),
        c["lines_added"].as_u64().unwrap_or(0),
        c["lines_removed"].as_u64().unwrap_or(0)
    );
    if let Some(b) = c["after"]["branch"].as_str() {
        let _ = write!(cell, " on <code>{}</code>", trunc(b, 30));
    }
    if c["history_rewritten"].as_bool() == Some(true) {
        let _ = write!(cell, "<br>{}", pill("bad", "history rewritten"));
    }
    let out = s.out_of_scope();
    if !out.is_empty() {
        let _ = write!(
            cell,
            "<br>{} {}",
            pill("bad", "out of scope"),
            out.iter()
                .take(5)
                .map(|p| format!("<code class=\"path\">{}</code>", path_html(p)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    cell
}

fn drill_cell(s: &SessionInfo) -> String {
    let Some(d) = s.drills.last() else {
        return "not drilled".to_string();
    };
    if d["kind"].as_str() == Some("manual") {
        return pill("warn", "manual: no time");
    }
    let secs = d["total_ms"].as_f64().unwrap_or(0.0) / 1000.0;
    let class = match d["result"].as_str() {
        Some("success") => "good",
        Some("slow") if !d["red_flag"].as_bool().unwrap_or(false) => "warn",
        _ => "bad",
    };
    format!(
        "{} {secs:.1} s<br><small>{}</small>",
        pill(class, d["result"].as_str().unwrap_or("?")),
        esc(d["judgement"].as_str().unwrap_or(""))
    )
}

/// Per session: the layers in force, the done checks, the changes and the rollback drill.
pub fn session_evidence_section(sessions: &[&SessionInfo]) -> String {
    let mut out = String::from(
        "<section id=\"session-evidence\"><h2>Per session: layers, checks, changes, rollback</h2><p class=\"note\">What each session's own records state: the protections in force at its start, its done checks, what it changed in git (no content), and its rollback drill against the 5 and 10 minute thresholds.</p>",
    );
    if sessions.is_empty() {
        out.push_str("<p class=\"note\">No session records in the log.</p></section>");
        return out;
    }
    out.push_str("<table><tr><th>Session</th><th>Layers in force</th><th>Done checks</th><th>Changes</th><th>Rollback drill</th></tr>");
    for s in sessions.iter().take(MAX_ROWS) {
        let _ = write!(
            out,
            "<tr><td><code class=\"id\">{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            trunc(&s.session, 20),
            s.task_id
                .as_deref()
                .map_or_else(String::new, |t| format!("<br><small>{}</small>", esc(t))),
            layers_cell(s),
            checks_cell(s),
            changes_cell(s),
            drill_cell(s),
        );
    }
    out.push_str("</table></section>");
    out
}

/// Git pushes per destination and ref: updates let through and refused, with the reason.
pub fn pushes_section(summary: &super::summary::Summary) -> String {
    let mut out = String::from(
        "<section id=\"pushes\"><h2>Git pushes per ref</h2><p class=\"note\">Every ref update of every git push the proxy read (smart HTTP), against the contract's <code>[git] push</code>: a push with one refused ref is refused whole.</p>",
    );
    if summary.pushes.is_empty() {
        out.push_str("<p>None.</p></section>");
        return out;
    }
    out.push_str("<table><tr><th>Destination</th><th>Ref</th><th>Let through</th><th>Refused</th><th>Why refused</th></tr>");
    let mut rows = 0;
    for (host, refs) in &summary.pushes {
        for (name, p) in refs {
            rows += 1;
            if rows > MAX_ROWS {
                continue;
            }
            let _ = write!(
                out,
                "<tr><td><b>{}</b></td><td><code class=\"path\">{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(host),
                path_html(name),
                p.allowed,
                if p.refused > 0 { pill("bad", &p.refused.to_string()) } else { "0".to_string() },
                p.why.as_deref().map_or_else(|| "&ndash;".to_string(), esc),
            );
        }
    }
    out.push_str("</table></section>");
    out
}
