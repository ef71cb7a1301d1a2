//! `sandbox verify`: every observed allowed flow against the approved data-flow diagram, and
//! its residency. Denied flows are blocked attempts (evidence the controls worked), not
//! deviations. A log whose chain is broken cannot verify.

use std::collections::{BTreeSet, HashMap};

use egress_policy::diagram::{ApprovedDiagram, EdgeMatch, ObservedFlow, ObservedKind};
use serde::Serialize;

use super::filter::Filter;
use super::record::{LogRecord, RecordRef};
use super::scan::{FileReport, Position};
use super::summary::{Summary, SummaryBuilder, MAX_OPEN_FLOWS};

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
    /// How many intercepted CONNECT tunnels (their requests are flows of their own).
    pub tunnels: u64,
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
    /// Who approved the diagram (`[diagram] approved_by`); empty means no approval recorded.
    pub approved_by: Vec<String>,
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
            if self.open.len() < MAX_OPEN_FLOWS {
                self.open.insert((record.session.clone(), flow_id), target);
            }
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
            } else {
                d.tunnels += 1;
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
            tunnels: u64::from(!counts_as_flow),
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
            approved_by: self.diagram.approved_by.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::chain::ChainStatus;
    use crate::evidence::record::TlsFacts;

    const DIAGRAM: &str = include_str!("../../tests/fixtures/diagram-conformance.toml");

    fn rec(event: &str, kind: &str, flow: u64, host: &str) -> LogRecord {
        LogRecord {
            ts: format!("2026-11-21T10:00:00.{flow:06}Z"),
            session: "s-1".into(),
            seq: flow,
            flow: Some(flow),
            event: event.into(),
            kind: kind.into(),
            decision: (event == "decision").then(|| "allow".to_string()),
            host: Some(host.into()),
            port: Some(443),
            region: Some("EU".into()),
            ..Default::default()
        }
    }

    fn request(flow: u64, host: &str, method: &str, path: &str) -> LogRecord {
        let mut r = rec("decision", "request", flow, host);
        r.method = Some(method.into());
        r.path = Some(path.into());
        r
    }

    fn end(flow: u64, kind: &str, out: u64, inn: u64) -> LogRecord {
        let mut r = rec("end", kind, flow, "ignored.example");
        r.host = None;
        r.bytes_out = Some(out);
        r.bytes_in = Some(inn);
        r
    }

    fn run(records: &[LogRecord]) -> Verification {
        let diagram = ApprovedDiagram::parse(DIAGRAM, "d.toml").unwrap();
        let mut b = VerificationBuilder::new(&diagram);
        for (i, r) in records.iter().enumerate() {
            b.add(
                Position {
                    file: "f",
                    line: i as u64 + 1,
                },
                r,
            );
        }
        b.finish(vec![FileReport {
            file: "f".into(),
            status: ChainStatus::Intact {
                records: records.len() as u64,
                head: String::new(),
            },
        }])
    }

    #[test]
    fn bytes_follow_flows_and_tunnels_are_containers() {
        let mut connect = rec("decision", "connect", 1, "api.eu.mistral.ai");
        connect.tls = Some(TlsFacts {
            intercepted: true,
            sni: None,
            alpn: None,
        });
        let v = run(&[
            connect,
            request(2, "api.eu.mistral.ai", "POST", "/v1/chat/completions"),
            end(2, "request", 10, 20),
            end(1, "connect", 1000, 2000),
        ]);
        assert_eq!(v.verdict, Verdict::Conforms);
        assert_eq!(v.allowed_flows, 1, "the CONNECT is a container, not a flow");
        assert_eq!(
            (v.edges[0].flows, v.edges[0].bytes_out, v.edges[0].bytes_in),
            (1, 10, 20)
        );
    }

    #[test]
    fn deviations_are_grouped_with_first_last_and_bytes() {
        let v = run(&[
            request(1, "upload.example", "PUT", "/x"),
            end(1, "request", 5, 1),
            request(2, "api.eu.mistral.ai", "POST", "/v1/chat/completions"),
            request(3, "upload.example", "PUT", "/x"),
            end(3, "request", 7, 1),
        ]);
        assert_eq!(v.verdict, Verdict::Deviates);
        assert_eq!(v.deviations.len(), 1);
        let d = &v.deviations[0];
        assert_eq!(d.observed_edge, "proxy -> upload.example:443 PUT /x");
        assert_eq!((d.flows, d.bytes_out, d.bytes_in), (2, 12, 2));
        assert_eq!((d.first.line, d.last.line), (1, 4));
        assert_eq!(v.conforming_flows, 1);
    }

    #[test]
    fn opaque_tunnels_need_an_unrestricted_edge_and_denials_never_deviate() {
        let mut tunnel = rec("decision", "tunnel", 1, "pinned.example");
        tunnel.region = None;
        let mut opaque_llm = rec("decision", "tunnel", 2, "api.eu.mistral.ai");
        opaque_llm.tls = Some(TlsFacts {
            intercepted: false,
            sni: None,
            alpn: None,
        });
        let mut denied = request(3, "evil.example", "POST", "/");
        denied.decision = Some("deny".into());
        let v = run(&[tunnel, opaque_llm, denied]);
        assert_eq!(v.deviations.len(), 1, "{:?}", v.deviations);
        assert!(v.deviations[0].why.contains("uninspected"));
        assert_eq!(v.summary.denials.len(), 1);
    }

    #[test]
    fn a_deviating_tunnel_counts_as_a_tunnel() {
        let mut connect = rec("decision", "connect", 1, "upload.example");
        connect.tls = Some(TlsFacts {
            intercepted: true,
            sni: None,
            alpn: None,
        });
        let v = run(&[connect, request(2, "upload.example", "PUT", "/x")]);
        assert_eq!(v.deviations.len(), 2);
        assert_eq!((v.deviations[0].flows, v.deviations[0].tunnels), (0, 1));
        assert_eq!((v.deviations[1].flows, v.deviations[1].tunnels), (1, 0));
        assert_eq!(v.allowed_flows, 1);
    }

    #[test]
    fn a_broken_or_missing_chain_cannot_verify() {
        let diagram = ApprovedDiagram::parse(DIAGRAM, "d.toml").unwrap();
        let v = VerificationBuilder::new(&diagram).finish(vec![FileReport {
            file: "f".into(),
            status: ChainStatus::Broken {
                line: 3,
                reason: "was modified".into(),
            },
        }]);
        assert_eq!(v.verdict, Verdict::CannotVerify);
        let v = VerificationBuilder::new(&diagram).finish(Vec::new());
        assert_eq!(v.verdict, Verdict::CannotVerify, "no file is no evidence");
    }

    #[test]
    fn too_many_deviation_groups_are_counted() {
        let records: Vec<LogRecord> = (0..(MAX_DEVIATIONS as u64 + 5))
            .map(|i| request(i + 1, "x.example", "GET", &format!("/{i}")))
            .collect();
        let v = run(&records);
        assert_eq!(v.deviations.len(), MAX_DEVIATIONS);
        assert_eq!(v.deviations_not_grouped, 5);
        assert_eq!(v.verdict, Verdict::Deviates);
    }
}
