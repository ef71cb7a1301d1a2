//! The HTML report for the gate meeting: one self-contained page (inline CSS and SVG, no
//! scripts, no external references) with the verdict, the sessions, the diagram, the evidence
//! per destination, residency, the denials and the hash-chain status.

use std::fmt::Write as _;

use egress_policy::catalog::region_is_eu;
use egress_policy::diagram::ApprovedDiagram;

use super::chain::ChainStatus;
use super::conformance::{DeviationKind, Verdict, Verification};
use super::graph::ObservedGraph;
use super::render::svg;
use super::text::human_bytes;

/// Each table shows at most this many rows; the rest are counted in a note (the full data is
/// in `sandbox verify --json` and `sandbox log summary --json`).
pub const MAX_ROWS: usize = 500;

fn more_rows(out: &mut String, total: usize) {
    if total > MAX_ROWS {
        let _ = write!(
            out,
            "<p class=\"note\">{} more rows not shown; <code>sandbox verify --json</code> has them all.</p>",
            total - MAX_ROWS
        );
    }
}

pub(super) fn esc(text: &str) -> String {
    svg::escape(text)
}

/// A path, escaped, that may break after each `/` (and nowhere else).
pub(super) fn path_html(path: &str) -> String {
    esc(path).replace('/', "/<wbr>")
}

/// Paths (and methods) listed in one destination cell; the rest are counted.
const LISTED_PER_CELL: usize = 5;

/// A path for a table cell: up to 48 characters whole (breaking after `/`); a longer one
/// keeps its start and end around an ellipsis, with the whole path as the hover title.
fn short_path(path: &str) -> String {
    let n = path.chars().count();
    if n <= 48 {
        return path_html(path);
    }
    let head: String = path.chars().take(20).collect();
    let tail: String = path.chars().skip(n - 26).collect();
    format!(
        r#"<span class="trunc" title="{}">{}&hellip;{}</span>"#,
        esc(path),
        path_html(&head),
        path_html(&tail)
    )
}

/// `text` escaped; longer than `max` characters it is cut with an ellipsis and the whole
/// value is the hover title.
pub(super) fn trunc(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return esc(text);
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!(
        r#"<span class="trunc" title="{}">{}&hellip;</span>"#,
        esc(text),
        esc(&cut)
    )
}

const STYLE: &str = r#"
:root { --ink:#1c2833; --muted:#5d6d7e; --line:#e5e8ec; --good:#1e7e34; --good-bg:#e8f5e9; --bad:#b71c1c; --bad-bg:#fdecea; --warn:#8d6e00; --warn-bg:#fff8e1; --accent:#283593; }
* { box-sizing: border-box; }
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--ink); background: #f4f6f8; line-height: 1.45; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 28px 48px; }
header h1 { margin: 0 0 4px; font-size: 26px; color: var(--accent); }
header p { margin: 0; color: var(--muted); }
.verdict { margin: 20px 0; padding: 18px 22px; border-radius: 12px; font-size: 20px; font-weight: 700; border: 2px solid; }
.verdict small { display: block; font-size: 14px; font-weight: 400; margin-top: 4px; }
.verdict.conforms { color: var(--good); background: var(--good-bg); border-color: var(--good); }
.verdict.deviates, .verdict.cannot_verify { color: var(--bad); background: var(--bad-bg); border-color: var(--bad); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin: 0 0 8px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
.card b { display: block; font-size: 22px; }
.card span { color: var(--muted); font-size: 13px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 12px; padding: 18px 20px; margin-top: 18px; overflow-x: auto; }
.trunc { cursor: help; border-bottom: 1px dotted var(--muted); }
code.id { white-space: nowrap; }
td.cmd { min-width: 16ch; }
details summary { cursor: pointer; }
details[open] summary { margin-bottom: 4px; }
code.path { word-break: normal; overflow-wrap: normal; }
table.fixed { table-layout: fixed; }
table.dims th:nth-child(1) { width: 12%; } table.dims th:nth-child(2) { width: 9%; } table.dims th:nth-child(3) { width: 20%; } table.dims th:nth-child(4) { width: 31%; } table.dims th:nth-child(5) { width: 28%; }
table.devs th:nth-child(1) { width: 10%; } table.devs th:nth-child(2) { width: 25%; } table.devs th:nth-child(3) { width: 19%; } table.devs th:nth-child(4) { width: 13%; } table.devs th:nth-child(5) { width: 6%; } table.devs th:nth-child(6) { width: 9%; } table.devs th:nth-child(7) { width: 18%; }
table.fixed td { overflow: hidden; }
tr.dim-fail td:first-child { border-left: 4px solid var(--bad); } tr.dim-pass td:first-child { border-left: 4px solid var(--good); } tr.dim-not-measured td:first-child { border-left: 4px solid var(--warn); }
section h2 { margin: 0 0 12px; font-size: 18px; color: var(--accent); }
section p.note { color: var(--muted); margin: 0 0 10px; font-size: 14px; }
table { width: 100%; border-collapse: collapse; font-size: 13.5px; }
th { text-align: left; color: var(--muted); font-weight: 600; border-bottom: 2px solid var(--line); padding: 6px 8px; }
td { border-bottom: 1px solid var(--line); padding: 6px 8px; vertical-align: top; overflow-wrap: anywhere; }
td.ts, span.ts { white-space: nowrap; font-size: 12.5px; color: var(--muted); }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; white-space: nowrap; }
.pill.good { color: var(--good); background: var(--good-bg); }
.pill.bad { color: var(--bad); background: var(--bad-bg); }
.pill.warn { color: var(--warn); background: var(--warn-bg); }
.diagram { overflow-x: auto; }
.diagram svg { max-width: 100%; height: auto; display: block; margin: 0 auto; }
footer { color: var(--muted); font-size: 13px; margin-top: 22px; }
"#;

pub(super) fn pill(class: &str, text: &str) -> String {
    format!(r#"<span class="pill {class}">{}</span>"#, esc(text))
}

/// `2026-11-21T10:04:05.123456Z` as `2026-11-21 10:04:05.123` (UTC).
fn short_ts(ts: &str) -> String {
    match (ts.len(), ts.get(..10), ts.get(10..11), ts.get(11..23)) {
        (27, Some(date), Some("T"), Some(time)) if ts.ends_with('Z') => format!("{date} {time}"),
        _ => ts.to_string(),
    }
}

fn ts_cell(ts: Option<&str>) -> String {
    ts.map_or_else(
        || "&ndash;".to_string(),
        |t| format!(r#"<span class="ts">{}</span>"#, esc(&short_ts(t))),
    )
}

/// Where a record is: `file:line`, its time and session sequence number.
fn record_cell(r: &super::record::RecordRef) -> String {
    format!(
        r#"<code class="path">{}:{}</code><br><span class="ts">{}</span> <span class="ts">seq {}</span>"#,
        path_html(&r.file),
        r.line,
        esc(&short_ts(&r.ts)),
        r.seq
    )
}

/// The regions of a destination: where allowed flows went, or, for a destination that was
/// only denied, where they would have gone.
fn region_text(d: &super::summary::Destination) -> String {
    let join = |set: &std::collections::BTreeSet<String>| {
        esc(&set.iter().cloned().collect::<Vec<_>>().join(", "))
    };
    if !d.regions.is_empty() {
        join(&d.regions)
    } else if !d.denied_regions.is_empty() {
        format!("{} <small>(denied)</small>", join(&d.denied_regions))
    } else {
        "unknown".to_string()
    }
}

/// Enforcement per feature (older logs without a statement of layers), in one line: how many
/// are enforced, the others named, and every feature in an expandable list.
fn enforcement_text(features: &std::collections::BTreeMap<String, String>) -> String {
    let enforced = features
        .values()
        .filter(|l| l.as_str() == "enforced")
        .count();
    let others: Vec<String> = features
        .iter()
        .filter(|(k, l)| l.as_str() != "enforced" && k.as_str() != "landlock_abi")
        .map(|(k, l)| format!("{k}: {l}"))
        .collect();
    let head = if others.is_empty() {
        pill("good", &format!("{enforced} enforced"))
    } else {
        pill(
            "warn",
            &format!("{enforced} enforced, {} not", others.len()),
        )
    };
    let list: Vec<String> = features
        .iter()
        .map(|(k, l)| format!("{}: {}", esc(k), trunc(l, 40)))
        .collect();
    format!(
        "<details><summary>{head}</summary><small>{}</small></details>",
        list.join("<br>")
    )
}

fn opt(text: Option<&str>) -> String {
    text.map_or_else(|| "&ndash;".to_string(), esc)
}

/// The report page. `generated_at` is shown in the header; `files` names the logs.
pub fn render(v: &Verification, diagram: &ApprovedDiagram, generated_at: &str) -> String {
    let s = &v.summary;
    let blocked: u64 = s.denials.iter().map(|g| g.count).sum();
    let bytes_out: u64 = s.destinations.values().map(|d| d.bytes_out).sum();
    let bytes_in: u64 = s.destinations.values().map(|d| d.bytes_in).sum();
    let chain_ok = s.files.iter().all(|f| f.status.is_intact());
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Data-flow evidence: {}</title><style>{STYLE}</style></head><body><main>"#,
        esc(&diagram.title)
    );
    let _ = write!(
        out,
        "<header><h1>Data-flow evidence</h1><p>Approved diagram: <b>{}</b> &middot; {} log file{} &middot; generated {}</p></header>",
        esc(&diagram.title),
        s.files.len(),
        if s.files.len() == 1 { "" } else { "s" },
        esc(generated_at)
    );

    let (class, head, detail) = match v.verdict {
        Verdict::Conforms => (
            "conforms",
            "Verdict: CONFORMS".to_string(),
            format!(
                "All {} allowed flows ran on approved edges, within their approved regions and jurisdictions. {} attempts were blocked by the proxy.",
                v.allowed_flows, blocked
            ),
        ),
        Verdict::Deviates => (
            "deviates",
            "Verdict: DEVIATES".to_string(),
            format!(
                "{} of {} allowed flows are not covered by the approved diagram ({}{} deviation{}){}.",
                v.allowed_flows - v.conforming_flows,
                v.allowed_flows,
                if v.deviations_not_grouped > 0 { "more than " } else { "" },
                v.deviations.len(),
                if v.deviations.len() == 1 { "" } else { "s" },
                if v.contract_mismatches.is_empty() { "" } else { "; sessions ran under a contract the diagram was not approved for" }
            ),
        ),
        Verdict::CannotVerify => (
            "cannot_verify",
            "Verdict: CANNOT VERIFY".to_string(),
            "A log's hash chain is broken or unreadable: the log is not evidence. See the hash-chain section.".to_string(),
        ),
    };
    let _ = write!(
        out,
        r#"<div class="verdict {class}" id="verdict">{}<small>{}</small>{}</div>"#,
        esc(&head),
        esc(&detail),
        if v.approved_by.is_empty() {
            "<small>Warning: the diagram records no approval (<code>approved_by</code> is empty).</small>"
        } else {
            ""
        }
    );

    let _ = write!(
        out,
        r#"<div class="cards"><div class="card"><b>{}</b><span>allowed flows</span></div><div class="card"><b>{}</b><span>blocked attempts</span></div><div class="card"><b>{}{}</b><span>deviations</span></div><div class="card"><b>{}</b><span>destinations</span></div><div class="card"><b>{}</b><span>sent (out)</span></div><div class="card"><b>{}</b><span>received (in)</span></div><div class="card"><b>{}</b><span>hash chain</span></div></div>"#,
        v.allowed_flows,
        blocked,
        v.deviations.len(),
        if v.deviations_not_grouped > 0 {
            "+"
        } else {
            ""
        },
        s.destinations.len(),
        human_bytes(bytes_out),
        human_bytes(bytes_in),
        if chain_ok {
            "intact"
        } else if v.verdict == Verdict::CannotVerify {
            "BROKEN"
        } else {
            "truncated"
        }
    );

    // The pilot's seven dimensions.
    let run_sessions = s.sessions.values().filter(|x| x.has_start).count();
    out.push_str(&super::report_pilot::dimensions_section(
        &super::dimensions::judge(v),
        run_sessions,
    ));

    // Sessions.
    out.push_str("<section id=\"sessions\"><h2>Sessions, contracts and classes</h2>");
    if s.sessions.is_empty() {
        out.push_str("<p class=\"note\">No session records in the log.</p>");
    } else {
        out.push_str("<table><tr><th>Session</th><th>Started &ndash; ended</th><th>Command</th><th>Contract</th><th>Class</th><th>User</th><th>Flows (denied)</th><th>Exit</th><th>Protections</th></tr>");
        for x in s.sessions.values().take(MAX_ROWS) {
            let contract = match (&x.contract, &x.contract_sha256) {
                (Some(c), Some(h)) => format!(
                    "<code class=\"path\">{}</code><br><code>{}</code>",
                    short_path(c),
                    trunc(h, 12)
                ),
                (Some(c), None) => format!("<code class=\"path\">{}</code>", short_path(c)),
                (None, Some(h)) => format!("<code>{}</code>", trunc(h, 12)),
                (None, None) => "&ndash;".to_string(),
            };
            let contract_flag = match (&diagram.contract_sha256, &x.contract_sha256) {
                (Some(expected), Some(actual)) if !expected.eq_ignore_ascii_case(actual) => {
                    format!("<br>{}", pill("bad", "not approved"))
                }
                (Some(_), Some(_)) => format!("<br>{}", pill("good", "approved")),
                _ => String::new(),
            };
            let exit = match x.exit_code {
                Some(0) => pill("good", "0"),
                Some(c) => pill("warn", &c.to_string()),
                None if !x.has_end => pill("warn", "no end record"),
                None => "&ndash;".to_string(),
            };
            let exit = match x.sandbox_exit_code {
                Some(code) if Some(code) != x.exit_code => {
                    format!("{exit}<br><small>run: {code}</small>")
                }
                _ => exit,
            };
            let protections = match x.layers_full() {
                Some(true) => pill("good", "all in force"),
                Some(false) => pill("bad", "weakened"),
                None if x.enforcement.is_empty() => "&ndash;".to_string(),
                None => enforcement_text(&x.enforcement),
            };
            let _ = write!(
                out,
                "<tr><td><code class=\"id\">{}</code></td><td>{}<br>{}</td><td class=\"cmd\"><code>{}</code></td><td>{contract}{contract_flag}</td><td>{}</td><td>{}</td><td class=\"num\">{} ({})</td><td>{exit}</td><td>{protections}</td></tr>",
                trunc(&x.session, 20),
                ts_cell(x.started.as_deref()),
                ts_cell(x.ended.as_deref()),
                x.command.as_deref().map_or_else(|| "&ndash;".to_string(), |c| trunc(c, 48)),
                opt(x.class.as_deref()),
                opt(x.user.as_deref()),
                x.decisions,
                x.denied,
            );
        }
        out.push_str("</table>");
        more_rows(&mut out, s.sessions.len());
    }
    out.push_str("</section>");
    let with_start: Vec<_> = s.sessions.values().filter(|x| x.has_start).collect();
    out.push_str(&super::report_pilot::session_evidence_section(&with_start));

    // Diagram.
    let graph = ObservedGraph::from_verification(v);
    let _ = write!(
        out,
        "<section id=\"diagram\"><h2>What actually happened</h2><p class=\"note\">Every destination the agent reached or tried to reach through the proxy, against the approved diagram. Deviations are orange, blocked destinations red, approved edges that carried nothing grey.</p><div class=\"diagram\">{}</div></section>",
        svg::render(&graph)
    );

    // Deviations.
    if !v.deviations.is_empty() {
        out.push_str("<section id=\"deviations\"><h2>Deviations</h2><table class=\"fixed devs\"><tr><th>Kind</th><th>Observed edge</th><th>Why</th><th>Nearest approved edge</th><th>Flows</th><th>Out / in</th><th>First and last record</th></tr>");
        for d in v.deviations.iter().take(MAX_ROWS) {
            let kind = match d.kind {
                DeviationKind::MissingEdge => pill("bad", "missing edge"),
                DeviationKind::Residency => pill("bad", "residency"),
            };
            let _ = write!(
                out,
                "<tr><td>{kind}</td><td><code class=\"path\">{}</code></td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}<br>{}</td><td>{}<br>{}</td></tr>",
                short_path(&d.observed_edge),
                esc(&d.why),
                d.nearest_edge.as_deref().map_or_else(|| "&ndash;".to_string(), |e| format!("<code class=\"path\">{}</code>", path_html(e))),
                if d.tunnels > 0 && d.flows == 0 {
                    format!("{} tunnel{}", d.tunnels, if d.tunnels == 1 { "" } else { "s" })
                } else {
                    d.flows.to_string()
                },
                human_bytes(d.bytes_out),
                human_bytes(d.bytes_in),
                record_cell(&d.first),
                record_cell(&d.last),
            );
        }
        out.push_str("</table>");
        more_rows(&mut out, v.deviations.len());
        out.push_str("</section>");
    }

    // Evidence per destination.
    out.push_str("<section id=\"destinations\"><h2>Evidence per destination</h2><table><tr><th>Destination</th><th>Status</th><th>Flows (allowed / denied)</th><th>Out / in</th><th>Methods</th><th>Paths</th><th>Region, jurisdiction</th><th>First &ndash; last</th></tr>");
    let mut dests: Vec<_> = s.destinations.values().collect();
    dests.sort_by(|a, b| {
        (b.flows + b.tunnels)
            .cmp(&(a.flows + a.tunnels))
            .then(a.host.cmp(&b.host))
    });
    let dest_count = dests.len();
    for d in dests.into_iter().take(MAX_ROWS) {
        let status = if v.deviations.iter().any(|x| x.host == d.host) {
            pill("bad", "deviation")
        } else if let Some(edge) = v.edges.iter().find(|e| e.hosts.contains(&d.host)) {
            format!(
                "{}<br><small>{}</small>",
                pill("good", "approved edge"),
                esc(&edge.edge)
            )
        } else if d.allowed == 0 && d.denied > 0 {
            pill("warn", "blocked")
        } else {
            "&ndash;".to_string()
        };
        let list = |m: &std::collections::BTreeMap<String, u64>| {
            m.iter()
                .take(LISTED_PER_CELL)
                .map(|(k, n)| format!("<code class=\"path\">{}</code>&nbsp;({n})", short_path(k)))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let mut paths = list(&d.paths);
        let more = d.paths.len().saturating_sub(LISTED_PER_CELL) as u64 + d.other_paths;
        if more > 0 {
            let _ = write!(paths, "<br>&hellip; {more} more");
        }
        let _ = write!(
            out,
            "<tr><td><b>{}</b></td><td>{status}</td><td class=\"num\">{} ({} / {})</td><td class=\"num\">{}<br>{}</td><td>{}</td><td>{}</td><td>{}<br><small>{}</small></td><td>{}<br>{}</td></tr>",
            esc(&d.host),
            d.flows,
            d.allowed,
            d.denied,
            human_bytes(d.bytes_out),
            human_bytes(d.bytes_in),
            list(&d.methods),
            if paths.is_empty() { "&ndash;".to_string() } else { paths },
            region_text(d),
            if d.jurisdictions.is_empty() { "&ndash;".to_string() } else { esc(&d.jurisdictions.iter().cloned().collect::<Vec<_>>().join(", ")) },
            ts_cell(d.first.as_deref()),
            ts_cell(d.last.as_deref()),
        );
    }
    out.push_str("</table>");
    more_rows(&mut out, dest_count);
    out.push_str("</section>");

    // Residency.
    out.push_str("<section id=\"residency\"><h2>Residency compliance</h2><p class=\"note\">Where the data of allowed flows went, as logged by the proxy from its catalog or the rule's attestation, against the regions each approved edge allows.</p><table><tr><th>Destination</th><th>Allowed flows</th><th>Regions</th><th>In the EU</th><th>Within the approved edge</th></tr>");
    let mut eu_flows = 0u64;
    let mut allowed_total = 0u64;
    let mut residency_rows = 0usize;
    for d in s.destinations.values().filter(|d| d.allowed > 0) {
        allowed_total += d.allowed;
        residency_rows += 1;
        let in_eu = !d.regions.is_empty()
            && d.unknown_region == 0
            && d.regions.iter().all(|r| region_is_eu(r));
        if in_eu {
            eu_flows += d.allowed;
        }
        if residency_rows > MAX_ROWS {
            continue;
        }
        let residency_deviation = v
            .deviations
            .iter()
            .any(|x| x.host == d.host && x.kind == DeviationKind::Residency);
        let missing = v
            .deviations
            .iter()
            .any(|x| x.host == d.host && x.kind == DeviationKind::MissingEdge);
        let _ = write!(
            out,
            "<tr><td><b>{}</b></td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.host),
            d.allowed,
            if d.regions.is_empty() {
                "unknown".to_string()
            } else {
                esc(&d.regions.iter().cloned().collect::<Vec<_>>().join(", "))
            },
            if in_eu {
                pill("good", "yes")
            } else if d.regions.is_empty() {
                pill("warn", "unknown")
            } else {
                pill("bad", "no")
            },
            if residency_deviation {
                pill("bad", "outside")
            } else if missing {
                pill("bad", "no approved edge")
            } else {
                pill("good", "yes")
            },
        );
    }
    let _ = write!(
        out,
        "</table><p class=\"note\" style=\"margin-top:10px\">{eu_flows} of {allowed_total} allowed flows went to regions inside the EU.</p>"
    );
    more_rows(&mut out, residency_rows);
    out.push_str("</section>");

    // Denials.
    let _ = write!(
        out,
        "<section id=\"denials\"><h2>Blocked attempts ({blocked})</h2><p class=\"note\">Denied by the proxy before any byte left: evidence that the controls worked, not deviations.</p>"
    );
    if s.denials.is_empty() {
        out.push_str("<p>None.</p>");
    } else {
        out.push_str("<table><tr><th>Destination</th><th>Count</th><th>Rule</th><th>Reason</th><th>Example</th><th>Status</th><th>First</th><th>Last</th></tr>");
        for g in s.denials.iter().take(MAX_ROWS) {
            let _ = write!(
                out,
                "<tr><td><b>{}</b></td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&g.host),
                g.count,
                g.rule.as_deref().map_or_else(|| "<i>default deny</i>".to_string(), esc),
                esc(&g.reason),
                esc(&g.example),
                g.statuses.iter().map(u16::to_string).collect::<Vec<_>>().join(", "),
                ts_cell(Some(&g.first.ts)),
                ts_cell(Some(&g.last.ts)),
            );
        }
        out.push_str("</table>");
        more_rows(&mut out, s.denials.len());
    }
    out.push_str("</section>");

    out.push_str(&super::report_pilot::pushes_section(s));

    // Hash chain.
    out.push_str("<section id=\"chain\"><h2>Hash-chain status</h2><p class=\"note\">Each record carries SHA-256(previous hash &#8214; record): an edit, deletion, insertion or reordering breaks the chain at that line. Compare the head hash with the one reported at session end.</p><table><tr><th>File</th><th>Status</th><th>Records</th><th>Head hash / first bad line</th></tr>");
    for f in &s.files {
        let (status, records, detail) = match &f.status {
            ChainStatus::Intact { records, head } => (
                pill("good", "intact"),
                records.to_string(),
                format!("<code>{}</code>", esc(head)),
            ),
            ChainStatus::Truncated {
                records,
                line,
                head,
            } => (
                pill("warn", "truncated (crash, not forged)"),
                records.to_string(),
                format!("cut off at line {line}; head <code>{}</code>", esc(head)),
            ),
            ChainStatus::Broken { line, reason } => (
                pill("bad", "NOT INTACT"),
                "&ndash;".to_string(),
                format!("line {line} {}", esc(reason)),
            ),
            ChainStatus::Unreadable { reason } => (
                pill("bad", "unreadable"),
                "&ndash;".to_string(),
                esc(reason),
            ),
        };
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{status}</td><td class=\"num\">{records}</td><td>{detail}</td></tr>",
            esc(&f.file)
        );
    }
    out.push_str("</table></section>");

    let approvers = if diagram.approved_by.is_empty() {
        "not recorded in the diagram".to_string()
    } else {
        esc(&diagram.approved_by.join("; "))
    };
    let _ = write!(
        out,
        "<footer>Approved by: {approvers}.{} Generated by <code>sandbox report</code>; reproduce with <code>sandbox verify --approved</code> on the same files.</footer></main></body></html>",
        diagram
            .contract_sha256
            .as_deref()
            .map_or_else(String::new, |h| format!(" Approved for contract <code>{}</code>.", esc(h)))
    );
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_shorten_without_panicking_on_odd_input() {
        assert_eq!(
            short_ts("2026-11-21T10:04:05.123456Z"),
            "2026-11-21 10:04:05.123"
        );
        // 27 bytes, `T` at byte 10, but a multi-byte character across byte 23.
        let odd = "2026-11-21T10:04:05.12é45Z";
        assert_eq!(odd.len(), 27);
        assert_eq!(short_ts(odd), odd);
        assert_eq!(short_ts("yesterday"), "yesterday");
    }
}
