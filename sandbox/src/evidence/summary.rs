//! `sandbox log summary`: streams records into per-destination, per-denial and per-session
//! aggregates. Memory is bounded by the number of distinct destinations, denial groups and
//! sessions (and open flows), never by the number of records.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::filter::Filter;
use super::record::{LogRecord, RecordRef};
use super::scan::{FileReport, Position};
use super::sessions::SessionInfo;
use super::text::{human_bytes, table, Cell, Style, Tone};

/// At most this many distinct paths are kept per destination; the rest are counted.
pub const MAX_PATHS_PER_DESTINATION: usize = 50;
/// At most this many denial groups are kept; the rest are counted.
pub const MAX_DENIAL_GROUPS: usize = 1000;
/// At most this many allowed flows are remembered while waiting for their `end` record (for
/// `end` records that do not repeat the host); beyond that their bytes are attributed only
/// when the `end` record names its host.
pub const MAX_OPEN_FLOWS: usize = 262_144;

/// Everything observed for one destination host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Destination {
    /// The destination host (or address, or `(none)`).
    pub host: String,
    /// Ports seen.
    pub ports: BTreeSet<u16>,
    /// Flow decisions (allowed intercepted CONNECTs are counted as tunnels, not flows).
    pub flows: u64,
    /// Allowed flow decisions.
    pub allowed: u64,
    /// Denied decisions.
    pub denied: u64,
    /// Allowed intercepted CONNECT tunnels (their requests are the flows).
    pub tunnels: u64,
    /// Body or tunnel bytes client → upstream, from `end` records.
    pub bytes_out: u64,
    /// Body or tunnel bytes upstream → client, from `end` records.
    pub bytes_in: u64,
    /// Flows per method.
    pub methods: BTreeMap<String, u64>,
    /// Flows per path (at most [`MAX_PATHS_PER_DESTINATION`]).
    pub paths: BTreeMap<String, u64>,
    /// Flows whose path was not kept because of the cap.
    pub other_paths: u64,
    /// Regions logged on allowed flows (where data actually went).
    pub regions: BTreeSet<String>,
    /// Regions logged on denied flows (where data would have gone).
    pub denied_regions: BTreeSet<String>,
    /// Jurisdictions logged for this destination.
    pub jurisdictions: BTreeSet<String>,
    /// Allowed flows logged without a region.
    pub unknown_region: u64,
    /// First record time.
    pub first: Option<String>,
    /// Last record time.
    pub last: Option<String>,
}

/// Denials of one (host, rule, reason) group.
#[derive(Debug, Clone, Serialize)]
pub struct DenialGroup {
    /// The destination host.
    pub host: String,
    /// The rule that denied (null: no rule matched).
    pub rule: Option<String>,
    /// The engine's reason.
    pub reason: String,
    /// How many times.
    pub count: u64,
    /// Status codes returned to the client.
    pub statuses: BTreeSet<u16>,
    /// An example `METHOD path` (or the kind for non-HTTP flows).
    pub example: String,
    /// The first such record.
    pub first: RecordRef,
    /// The last such record.
    pub last: RecordRef,
}

/// The result of a summary pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// The chain status of each file.
    pub files: Vec<FileReport>,
    /// Records read (all files, before filtering).
    pub records: u64,
    /// Records that passed the filters.
    pub matched: u64,
    /// Per destination host.
    pub destinations: BTreeMap<String, Destination>,
    /// Denials grouped by host, rule and reason.
    pub denials: Vec<DenialGroup>,
    /// Denial groups beyond [`MAX_DENIAL_GROUPS`], counted only.
    pub denials_not_grouped: u64,
    /// Per session.
    pub sessions: BTreeMap<String, SessionInfo>,
    /// `end` records without a matching `decision` record.
    pub orphan_ends: u64,
    /// Allowed flows without an `end` record (still open when the log stopped).
    pub unfinished_flows: u64,
    /// Allowed flows not remembered because [`MAX_OPEN_FLOWS`] were open at once.
    pub flows_not_tracked: u64,
    /// Git pushes per destination host and ref (`ref_update` records).
    pub pushes: BTreeMap<String, BTreeMap<String, RefPushes>>,
}

/// The ref updates of pushes to one ref, from `ref_update` records.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RefPushes {
    /// Updates let through.
    pub allowed: u64,
    /// Updates refused (the whole push was refused).
    pub refused: u64,
    /// The last refusal's reason.
    pub why: Option<String>,
}

/// At most this many refs are remembered per host; further ones are not listed.
pub const MAX_REFS_PER_HOST: usize = 200;

impl Summary {
    /// One line per host for the diagrams: `pushed refs/heads/pilot/x (2); refused
    /// refs/heads/main (1)`.
    pub fn push_note(&self, host: &str) -> Option<String> {
        let refs = self.pushes.get(host)?;
        let pushed: Vec<String> = refs
            .iter()
            .filter(|(_, p)| p.allowed > 0)
            .map(|(r, p)| format!("{r} ({})", p.allowed))
            .collect();
        let refused: Vec<String> = refs
            .iter()
            .filter(|(_, p)| p.refused > 0)
            .map(|(r, p)| format!("{r} ({})", p.refused))
            .collect();
        let mut parts = Vec::new();
        if !pushed.is_empty() {
            parts.push(format!("pushed {}", pushed.join(", ")));
        }
        if !refused.is_empty() {
            parts.push(format!("refused {}", refused.join(", ")));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Builds a [`Summary`] one record at a time.
#[derive(Debug, Default)]
pub struct SummaryBuilder {
    filter: Filter,
    summary: Summary,
    denial_index: HashMap<(String, Option<String>, String), usize>,
    open_flows: HashMap<(String, u64), String>,
}

/// A record's destination key.
pub fn destination_of(record: &LogRecord) -> String {
    record
        .host
        .clone()
        .or_else(|| record.addr.clone())
        .unwrap_or_else(|| "(none)".to_string())
}

fn record_ref(pos: Position<'_>, record: &LogRecord) -> RecordRef {
    RecordRef {
        file: pos.file.to_string(),
        line: pos.line,
        ts: record.ts.clone(),
        session: record.session.clone(),
        seq: record.seq,
    }
}

impl SummaryBuilder {
    /// A builder that keeps only what `filter` admits.
    pub fn new(filter: Filter) -> SummaryBuilder {
        SummaryBuilder {
            filter,
            ..Default::default()
        }
    }

    /// Takes in one verified record.
    pub fn add(&mut self, pos: Position<'_>, record: &LogRecord) {
        self.summary.records += 1;
        if record.is_session() {
            if self.filter.admits_time_and_session(record) {
                self.summary.matched += 1;
                // A drill is its own session's record about an earlier session.
                let drilled = (record.event == "rollback_drill")
                    .then(|| record.detail.as_ref()?.get("session")?.as_str())
                    .flatten()
                    .map(str::to_string);
                match drilled {
                    Some(target) => self
                        .summary
                        .sessions
                        .entry(target.clone())
                        .or_insert_with(|| SessionInfo {
                            session: target,
                            ..Default::default()
                        })
                        .observe(record),
                    None => self.session(record).observe(record),
                }
            }
            return;
        }
        if record.is_end() {
            let key = (record.session.clone(), record.flow.unwrap_or(u64::MAX));
            let opened = self.open_flows.remove(&key);
            let host = record.host.clone().or(opened.clone());
            if opened.is_none() && record.flow.is_some() {
                self.summary.orphan_ends += 1;
            }
            let Some(host) = host else { return };
            if record.kind == "connect" || !self.filter.admits_flow(record, Some(&host)) {
                return;
            }
            self.summary.matched += 1;
            let dest = self.destination(&host);
            dest.bytes_out += record.bytes_out.unwrap_or(0);
            dest.bytes_in += record.bytes_in.unwrap_or(0);
            return;
        }
        if record.event == "ref_update" {
            if self.filter.admits_flow(record, record.host.as_deref()) {
                self.summary.matched += 1;
                self.ref_update(record);
            }
            return;
        }
        if !record.is_decision() {
            return;
        }
        let host = destination_of(record);
        if record.is_allowed() {
            if let Some(flow) = record.flow {
                if self.open_flows.len() < MAX_OPEN_FLOWS {
                    self.open_flows
                        .insert((record.session.clone(), flow), host.clone());
                } else {
                    self.summary.flows_not_tracked += 1;
                }
            }
        }
        if !self.filter.admits_flow(record, Some(&host)) {
            return;
        }
        self.summary.matched += 1;
        self.session(record).observe(record);
        let dest = self.destination(&host);
        if let Some(port) = record.port {
            dest.ports.insert(port);
        }
        dest.first.get_or_insert_with(|| record.ts.clone());
        dest.last = Some(record.ts.clone());
        if record.is_container() {
            dest.tunnels += 1;
        } else {
            dest.flows += 1;
            if record.is_allowed() {
                dest.allowed += 1;
            }
            if record.is_denied() {
                dest.denied += 1;
            }
            let method = record
                .method
                .clone()
                .unwrap_or_else(|| record.kind.to_uppercase());
            *dest.methods.entry(method).or_default() += 1;
            if let Some(path) = &record.path {
                if let Some(n) = dest.paths.get_mut(path) {
                    *n += 1;
                } else if dest.paths.len() < MAX_PATHS_PER_DESTINATION {
                    dest.paths.insert(path.clone(), 1);
                } else {
                    dest.other_paths += 1;
                }
            }
        }
        if record.is_allowed() {
            match &record.region {
                Some(r) => {
                    dest.regions.insert(r.clone());
                }
                None => dest.unknown_region += 1,
            }
        } else if let Some(r) = &record.region {
            dest.denied_regions.insert(r.clone());
        }
        if let Some(j) = &record.jurisdiction {
            dest.jurisdictions.insert(j.clone());
        }
        if record.is_denied() {
            self.denial(pos, record, host);
        }
    }

    fn session(&mut self, record: &LogRecord) -> &mut SessionInfo {
        self.summary
            .sessions
            .entry(record.session.clone())
            .or_insert_with(|| SessionInfo::new(record))
    }

    fn ref_update(&mut self, record: &LogRecord) {
        let Some(refname) = record
            .detail
            .as_ref()
            .and_then(|d| d.get("ref"))
            .and_then(|r| r.as_str())
        else {
            return;
        };
        let refs = self
            .summary
            .pushes
            .entry(destination_of(record))
            .or_default();
        if !refs.contains_key(refname) && refs.len() >= MAX_REFS_PER_HOST {
            return;
        }
        let entry = refs.entry(refname.to_string()).or_default();
        if record.is_allowed() {
            entry.allowed += 1;
        } else {
            entry.refused += 1;
            entry.why = record.reason.clone();
        }
    }

    fn destination(&mut self, host: &str) -> &mut Destination {
        self.summary
            .destinations
            .entry(host.to_string())
            .or_insert_with(|| Destination {
                host: host.to_string(),
                ..Default::default()
            })
    }

    fn denial(&mut self, pos: Position<'_>, record: &LogRecord, host: String) {
        let reason = record
            .reason
            .clone()
            .unwrap_or_else(|| "(no reason logged)".to_string());
        let key = (host, record.rule.clone(), reason);
        let here = record_ref(pos, record);
        if let Some(&i) = self.denial_index.get(&key) {
            let group = &mut self.summary.denials[i];
            group.count += 1;
            group.last = here;
            if let Some(s) = record.status {
                group.statuses.insert(s);
            }
            return;
        }
        if self.summary.denials.len() >= MAX_DENIAL_GROUPS {
            self.summary.denials_not_grouped += 1;
            return;
        }
        let example = match (&record.method, &record.path) {
            (Some(m), Some(p)) => format!("{m} {p}"),
            (Some(m), None) => m.clone(),
            _ => record.kind.clone(),
        };
        self.denial_index
            .insert(key.clone(), self.summary.denials.len());
        self.summary.denials.push(DenialGroup {
            host: key.0,
            rule: key.1,
            reason: key.2,
            count: 1,
            statuses: record.status.into_iter().collect(),
            example,
            first: here.clone(),
            last: here,
        });
    }

    /// The summary, with the files' chain status.
    pub fn finish(mut self, files: Vec<FileReport>) -> Summary {
        self.summary.files = files;
        self.summary.unfinished_flows = self.open_flows.len() as u64;
        self.summary
    }
}

fn join_counts(map: &BTreeMap<String, u64>, limit: usize) -> String {
    let mut items: Vec<(&String, &u64)> = map.iter().collect();
    items.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut parts: Vec<String> = items
        .iter()
        .take(limit)
        .map(|(k, n)| format!("{k} ({n})"))
        .collect();
    if items.len() > limit {
        parts.push(format!("+{} more", items.len() - limit));
    }
    parts.join(", ")
}

fn join_set(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "-".to_string()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// One line per file: intact, truncated or broken, with the first bad line.
pub fn render_chain(style: &Style, files: &[FileReport]) -> String {
    use super::chain::ChainStatus;
    let mut out = String::new();
    for f in files {
        let line = match &f.status {
            ChainStatus::Intact { records, head } => style.paint(
                Tone::Good,
                &format!("{}: intact, {records} records, head {head}", f.file),
            ),
            ChainStatus::Truncated { records, line, head } => style.paint(
                Tone::Warn,
                &format!(
                    "{}: truncated at line {line} (cut off, e.g. by a crash; not forged): {records} intact records before it, head {head}",
                    f.file
                ),
            ),
            ChainStatus::Broken { line, reason } => style.paint(
                Tone::Bad,
                &format!("{}:{line}: NOT INTACT: line {line} {reason}", f.file),
            ),
            ChainStatus::Unreadable { reason } => {
                style.paint(Tone::Bad, &format!("{}: NOT INTACT: {reason}", f.file))
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

impl Summary {
    /// The human report: destinations, denials, sessions, chain status.
    pub fn render_text(&self, style: &Style) -> String {
        let mut out = String::new();
        out.push_str(&style.paint(Tone::Bold, "Destinations"));
        out.push('\n');
        let mut dests: Vec<&Destination> = self.destinations.values().collect();
        dests.sort_by(|a, b| {
            (b.flows + b.tunnels)
                .cmp(&(a.flows + a.tunnels))
                .then(a.host.cmp(&b.host))
        });
        let rows: Vec<Vec<Cell>> = dests
            .iter()
            .map(|d| {
                let mut paths = join_counts(&d.paths, 4);
                if d.other_paths > 0 {
                    paths.push_str(&format!(", +{} flows on other paths", d.other_paths));
                }
                let region = if d.unknown_region > 0 {
                    format!("{} (+{} unknown)", join_set(&d.regions), d.unknown_region)
                } else if d.regions.is_empty() && !d.denied_regions.is_empty() {
                    format!("({} denied)", join_set(&d.denied_regions))
                } else {
                    join_set(&d.regions)
                };
                vec![
                    Cell::text(&d.host),
                    Cell::num(d.flows),
                    Cell::num(d.allowed).tone(if d.allowed > 0 {
                        Tone::Good
                    } else {
                        Tone::Plain
                    }),
                    Cell::num(d.denied).tone(if d.denied > 0 { Tone::Bad } else { Tone::Plain }),
                    Cell::num(human_bytes(d.bytes_out)),
                    Cell::num(human_bytes(d.bytes_in)),
                    Cell::text(join_counts(&d.methods, 4)),
                    Cell::text(if paths.is_empty() {
                        "-".to_string()
                    } else {
                        paths
                    }),
                    Cell::text(region).tone(if d.unknown_region > 0 {
                        Tone::Warn
                    } else {
                        Tone::Plain
                    }),
                    Cell::text(join_set(&d.jurisdictions)),
                ]
            })
            .collect();
        if rows.is_empty() {
            out.push_str("(no flows)\n");
        } else {
            out.push_str(&table(
                style,
                &[
                    "HOST",
                    "FLOWS",
                    "ALLOWED",
                    "DENIED",
                    "OUT",
                    "IN",
                    "METHODS",
                    "PATHS",
                    "REGION",
                    "JURISDICTION",
                ],
                &rows,
            ));
        }

        out.push('\n');
        out.push_str(&style.paint(Tone::Bold, "Denials"));
        out.push('\n');
        if self.denials.is_empty() {
            out.push_str("(none)\n");
        } else {
            let rows: Vec<Vec<Cell>> = self
                .denials
                .iter()
                .map(|g| {
                    vec![
                        Cell::text(&g.host),
                        Cell::num(g.count).tone(Tone::Bad),
                        Cell::text(g.rule.as_deref().unwrap_or("(default deny)")),
                        Cell::text(&g.reason),
                        Cell::text(&g.example),
                        Cell::text(&g.first.ts),
                    ]
                })
                .collect();
            out.push_str(&table(
                style,
                &["HOST", "COUNT", "RULE", "REASON", "EXAMPLE", "FIRST"],
                &rows,
            ));
            if self.denials_not_grouped > 0 {
                out.push_str(&format!(
                    "(+{} denials in further groups not shown)\n",
                    self.denials_not_grouped
                ));
            }
        }

        out.push('\n');
        out.push_str(&style.paint(Tone::Bold, "Sessions"));
        out.push('\n');
        if self.sessions.is_empty() {
            out.push_str("(none)\n");
        } else {
            let rows: Vec<Vec<Cell>> = self
                .sessions
                .values()
                .map(|s| {
                    let exit = match s.exit_code {
                        Some(c) => Cell::num(c).tone(if c == 0 { Tone::Good } else { Tone::Warn }),
                        None if !s.has_end => Cell::text("(no end)").tone(Tone::Warn),
                        None => Cell::text("-"),
                    };
                    vec![
                        Cell::text(&s.session),
                        Cell::text(s.started.as_deref().unwrap_or("-")),
                        Cell::text(clip(s.command.as_deref().unwrap_or("-"), COMMAND_WIDTH)),
                        Cell::text(s.contract.as_deref().unwrap_or("-")),
                        Cell::text(
                            s.contract_sha256
                                .as_deref()
                                .map_or("-".to_string(), |h| h.chars().take(16).collect()),
                        ),
                        Cell::text(s.class.as_deref().unwrap_or("-")),
                        Cell::num(s.decisions),
                        Cell::num(s.denied),
                        exit,
                    ]
                })
                .collect();
            out.push_str(&table(
                style,
                &[
                    "SESSION",
                    "STARTED",
                    "COMMAND",
                    "CONTRACT",
                    "CONTRACT SHA-256",
                    "CLASS",
                    "DECISIONS",
                    "DENIED",
                    "EXIT",
                ],
                &rows,
            ));
        }
        out.push('\n');
        out.push_str(&style.paint(Tone::Bold, "Hash chain"));
        out.push('\n');
        out.push_str(&render_chain(style, &self.files));
        out.push_str(&format!(
            "{} records read, {} matched the filters",
            self.records, self.matched
        ));
        if self.unfinished_flows > 0 {
            out.push_str(&format!(
                ", {} allowed flows have no end record",
                self.unfinished_flows
            ));
        }
        out.push('\n');
        out
    }
}

/// Widest command shown in the text table; `--json` keeps the whole command line.
const COMMAND_WIDTH: usize = 60;

/// `text` cut to at most `width` characters, with `…` marking the cut.
fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clip_keeps_short_text_and_marks_a_cut() {
        assert_eq!(clip("claude", 60), "claude");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(
            clip("ééééé", 3).chars().count(),
            3,
            "counts characters, not bytes"
        );
    }
}
