//! `sandbox verify`: every observed allowed flow against the approved data-flow diagram, and
//! its residency. Denied flows are blocked attempts (evidence the controls worked), not
//! deviations. A log whose chain is broken cannot verify.

use std::collections::{BTreeSet, HashMap};

use egress_policy::diagram::{ApprovedDiagram, EdgeMatch, ObservedFlow, ObservedKind};
use serde::Serialize;

use super::filter::Filter;
use super::record::{LogRecord, RecordRef};
use super::scan::{FileReport, Position};
use super::summary::{Summary, SummaryBuilder};

/// At most this many deviation groups are kept; the rest are counted.
pub const MAX_DEVIATIONS: usize = 1000;

/// Use of one approved edge.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EdgeUse {
    /// The edge's name.
    pub edge: String,
    /// The node it goes to.
    pub to: String,
    /// The approved host pattern.
    pub host: String,
    /// The data category.
    pub data: String,
    /// Allowed flows it covered.
    pub flows: u64,
    /// Bytes client → upstream on those flows.
    pub bytes_out: u64,
    /// Bytes upstream → client on those flows.
    pub bytes_in: u64,
    /// Regions observed on it.
    pub regions: BTreeSet<String>,
    /// Hosts observed on it.
    pub hosts: BTreeSet<String>,
    /// The regions the edge allows (empty: any).
    pub approved_regions: Vec<String>,
}

/// What kind of deviation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviationKind {
    /// No approved edge covers the flow.
    MissingEdge,
    /// An edge covers it, but its region or jurisdiction is outside what the edge allows.
    Residency,
}

/// Allowed flows that the diagram does not approve, grouped by what was observed.
#[derive(Debug, Clone, Serialize)]
pub struct Deviation {
    /// Missing edge or residency.
    pub kind: DeviationKind,
    /// The edge that would be needed, e.g. `proxy -> upload.example:443 POST /v1/files`.
    pub observed_edge: String,
    /// The destination host.
    pub host: String,
    /// Why it does not conform.
    pub why: String,
    /// The approved edge for the same host that did not cover it, if any.
    pub nearest_edge: Option<String>,
    /// How many allowed flows.
    pub flows: u64,
    /// Bytes client → upstream.
    pub bytes_out: u64,
    /// Bytes upstream → client.
    pub bytes_in: u64,
    /// The region logged on the first flow.
    pub region: Option<String>,
    /// The jurisdiction logged on the first flow.
    pub jurisdiction: Option<String>,
    /// The first record.
    pub first: RecordRef,
    /// The last record.
    pub last: RecordRef,
}

/// The overall outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every allowed flow is on an approved edge and within its residency.
    Conforms,
    /// At least one deviation.
    Deviates,
    /// A file's chain is broken or unreadable: the log is not evidence.
    CannotVerify,
}

/// The result of checking logs against a diagram.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The verdict.
    pub verdict: Verdict,
    /// The diagram's title.
    pub diagram: String,
    /// Per approved edge, in diagram order.
    pub edges: Vec<EdgeUse>,
    /// Deviations, in order of first occurrence.
    pub deviations: Vec<Deviation>,
    /// Deviating records beyond the first [`MAX_DEVIATIONS`] groups: counted, not grouped.
    pub deviations_not_grouped: u64,
    /// Allowed flows checked.
    pub allowed_flows: u64,
    /// Allowed flows on approved edges and within residency.
    pub conforming_flows: u64,
    /// Sessions whose contract SHA-256 differs from the one the diagram was approved for
    /// (`[diagram] contract_sha256`): the approval does not cover them, so they deviate.
    pub contract_mismatches: Vec<(String, String)>,
    /// The summary of the same records (destinations, blocked attempts, sessions, chain).
    pub summary: Summary,
}

#[derive(Clone, Copy)]
enum Target {
    Edge(usize),
    Deviation(usize),
}

/// Builds a [`Verification`] one record at a time.
pub struct VerificationBuilder<'d> {
    diagram: &'d ApprovedDiagram,
    summary: SummaryBuilder,
    edges: Vec<EdgeUse>,
    deviations: Vec<Deviation>,
    deviation_index: HashMap<(DeviationKind, String), usize>,
    deviations_not_grouped: u64,
    open: HashMap<(String, u64), Target>,
    allowed_flows: u64,
    conforming_flows: u64,
}

fn observed_kind(record: &LogRecord) -> Option<ObservedKind> {
    match record.kind.as_str() {
        "request" => Some(ObservedKind::Request),
        "connect" if record.is_container() => Some(ObservedKind::InterceptedConnect),
        "connect" | "tunnel" | "tcp" | "udp" => Some(ObservedKind::Opaque),
        "dns" => Some(ObservedKind::Dns),
        _ => None,
    }
}

impl<'d> VerificationBuilder<'d> {
    /// A builder for `diagram`.
    pub fn new(diagram: &'d ApprovedDiagram) -> Self {
        let edges = diagram
            .edges
            .iter()
            .map(|e| EdgeUse {
                edge: e.name.clone(),
                to: e.to.clone(),
                host: e.host.to_string(),
                data: e.data.clone(),
                approved_regions: e.regions.clone(),
                ..Default::default()
            })
            .collect();
        VerificationBuilder {
            diagram,
            summary: SummaryBuilder::new(Filter::default()),
            edges,
            deviations: Vec::new(),
            deviation_index: HashMap::new(),
            deviations_not_grouped: 0,
            open: HashMap::new(),
            allowed_flows: 0,
            conforming_flows: 0,
        }
    }

    /// Takes in one verified record.
    pub fn add(&mut self, pos: Position<'_>, record: &LogRecord) {
        self.summary.add(pos, record);
        if record.is_end() {
            let Some(flow) = record.flow else { return };
            let Some(target) = self.open.remove(&(record.session.clone(), flow)) else {
                return;
            };
            if record.kind == "connect" && record.tls.as_ref().is_none_or(|t| t.intercepted) {
                return;
            }
            let (out, inn) = (record.bytes_out.unwrap_or(0), record.bytes_in.unwrap_or(0));
            match target {
                Target::Edge(i) => {
                    self.edges[i].bytes_out += out;
                    self.edges[i].bytes_in += inn;
                }
                Target::Deviation(i) => {
                    self.deviations[i].bytes_out += out;
                    self.deviations[i].bytes_in += inn;
                }
            }
            return;
        }
        if !record.is_decision() || !record.is_allowed() {
            return;
        }
        let Some(kind) = observed_kind(record) else {
            return;
        };
        let host = record
            .host
            .clone()
            .or_else(|| record.addr.clone())
            .unwrap_or_else(|| "(none)".to_string());
        let flow = ObservedFlow {
            kind,
            host: &host,
            port: record.port,
            method: record.method.as_deref(),
            path: record.path.as_deref(),
            region: record.region.as_deref(),
            jurisdiction: record.jurisdiction.as_deref(),
        };
        let counts_as_flow = kind != ObservedKind::InterceptedConnect;
        if counts_as_flow {
            self.allowed_flows += 1;
        }
        let target = match self.diagram.match_flow(&flow) {
            EdgeMatch::Approved(edge) => {
                let i = self
                    .diagram
                    .edges
                    .iter()
                    .position(|e| std::ptr::eq(e, edge))
                    .unwrap_or(0);
                let used = &mut self.edges[i];
                if counts_as_flow {
                    used.flows += 1;
                    self.conforming_flows += 1;
                }
                if let Some(r) = &record.region {
                    used.regions.insert(r.clone());
                }
                used.hosts.insert(host.clone());
                Some(Target::Edge(i))
            }
            EdgeMatch::OutsideResidency { edge, problem } => self.deviation(
                pos,
                record,
                DeviationKind::Residency,
                &host,
                problem,
                Some(edge.name.clone()),
                counts_as_flow,
            ),
            EdgeMatch::NoEdge { nearest, why } => self.deviation(
                pos,
                record,
                DeviationKind::MissingEdge,
                &host,
                why,
                nearest.map(|e| e.name.clone()),
                counts_as_flow,
            ),
        };
        if let (Some(target), Some(flow_id)) = (target, record.flow) {
            self.open.insert((record.session.clone(), flow_id), target);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn deviation(
        &mut self,
        pos: Position<'_>,
        record: &LogRecord,
        kind: DeviationKind,
        host: &str,
        why: String,
        nearest_edge: Option<String>,
        counts_as_flow: bool,
    ) -> Option<Target> {
        let port = record.port.map_or_else(String::new, |p| format!(":{p}"));
        let what = match (&record.method, &record.path) {
            (Some(m), Some(p)) => format!(" {m} {p}"),
            (Some(m), None) => format!(" {m}"),
            _ => format!(" ({})", record.kind),
        };
        let observed_edge = format!("proxy -> {host}{port}{what}");
        let here = RecordRef {
            file: pos.file.to_string(),
            line: pos.line,
            ts: record.ts.clone(),
            session: record.session.clone(),
            seq: record.seq,
        };
        let key = (kind, observed_edge.clone());
        if let Some(&i) = self.deviation_index.get(&key) {
            let d = &mut self.deviations[i];
            if counts_as_flow {
                d.flows += 1;
            }
            d.last = here;
            return Some(Target::Deviation(i));
        }
        if self.deviations.len() >= MAX_DEVIATIONS {
            self.deviations_not_grouped += 1;
            return None;
        }
        self.deviation_index.insert(key, self.deviations.len());
        self.deviations.push(Deviation {
            kind,
            observed_edge,
            host: host.to_string(),
            why,
            nearest_edge,
            flows: u64::from(counts_as_flow),
            bytes_out: 0,
            bytes_in: 0,
            region: record.region.clone(),
            jurisdiction: record.jurisdiction.clone(),
            first: here.clone(),
            last: here,
        });
        Some(Target::Deviation(self.deviations.len() - 1))
    }

    /// The verification, given the files' chain status.
    pub fn finish(self, files: Vec<FileReport>) -> Verification {
        let chain_ok = !files.is_empty() && files.iter().all(|f| f.status.is_trustworthy());
        let summary = self.summary.finish(files);
        let contract_mismatches = match &self.diagram.contract_sha256 {
            Some(expected) => summary
                .sessions
                .values()
                .filter_map(|s| {
                    s.contract_sha256
                        .as_ref()
                        .filter(|sha| !sha.eq_ignore_ascii_case(expected))
                        .map(|sha| (s.session.clone(), sha.clone()))
                })
                .collect(),
            None => Vec::new(),
        };
        let verdict = if !chain_ok {
            Verdict::CannotVerify
        } else if self.deviations.is_empty()
            && self.deviations_not_grouped == 0
            && contract_mismatches.is_empty()
        {
            Verdict::Conforms
        } else {
            Verdict::Deviates
        };
        Verification {
            verdict,
            diagram: self.diagram.title.clone(),
            edges: self.edges,
            deviations: self.deviations,
            deviations_not_grouped: self.deviations_not_grouped,
            allowed_flows: self.allowed_flows,
            conforming_flows: self.conforming_flows,
            contract_mismatches,
            summary,
        }
    }
}
