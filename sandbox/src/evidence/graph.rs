//! The observed data-flow graph: the agent, the proxy, and each destination with its flow
//! counts, bytes and region; denied destinations and (against an approved diagram) deviations
//! and approved-but-unused edges marked. The renderers in [`super::render`] draw it.

use serde::Serialize;

use super::conformance::Verification;
use super::summary::Summary;
use super::text::human_bytes;

/// How a destination is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Only allowed flows (and, with a diagram, all on approved edges).
    Allowed,
    /// Allowed and denied flows.
    Mixed,
    /// Only denied flows: a blocked destination.
    Denied,
    /// Allowed flows that deviate from the approved diagram.
    Deviation,
    /// An approved edge that carried no flow.
    Unused,
}

/// One destination box.
#[derive(Debug, Clone, Serialize)]
pub struct GraphNode {
    /// A stable identifier for the renderers (`d0`, `d1` ...).
    pub id: String,
    /// The host (or host pattern, for unused approved edges).
    pub host: String,
    /// Flow decisions.
    pub flows: u64,
    /// Allowed flows.
    pub allowed: u64,
    /// Denied flows.
    pub denied: u64,
    /// Bytes client → upstream.
    pub bytes_out: u64,
    /// Bytes upstream → client.
    pub bytes_in: u64,
    /// Regions logged.
    pub regions: Vec<String>,
    /// How it is drawn.
    pub status: NodeStatus,
    /// A short note (the deviation, or the approved edge's name and data category).
    pub note: Option<String>,
}

impl GraphNode {
    /// The edge label: flows, bytes and region.
    pub fn edge_label(&self) -> String {
        match self.status {
            NodeStatus::Unused => "approved, unused".to_string(),
            NodeStatus::Denied => format!("{} blocked", self.denied),
            _ => {
                let mut label = format!(
                    "{} flow{}, {} out / {} in",
                    self.allowed,
                    if self.allowed == 1 { "" } else { "s" },
                    human_bytes(self.bytes_out),
                    human_bytes(self.bytes_in)
                );
                if self.denied > 0 {
                    label.push_str(&format!(", {} blocked", self.denied));
                }
                label
            }
        }
    }

    /// The region line of the box.
    pub fn region_label(&self) -> String {
        if self.status == NodeStatus::Unused {
            return if self.regions.is_empty() {
                "approved for any region".to_string()
            } else {
                format!("approved regions: {}", self.regions.join(", "))
            };
        }
        if self.regions.is_empty() {
            "region: unknown".to_string()
        } else {
            format!("region: {}", self.regions.join(", "))
        }
    }
}

/// The whole picture.
#[derive(Debug, Clone, Serialize)]
pub struct ObservedGraph {
    /// A title.
    pub title: String,
    /// Allowed flows in total (agent → proxy).
    pub allowed: u64,
    /// Denied flows in total.
    pub denied: u64,
    /// Destinations, busiest first; unused approved edges last.
    pub nodes: Vec<GraphNode>,
}

impl ObservedGraph {
    /// The graph of what the log shows.
    pub fn from_summary(summary: &Summary) -> ObservedGraph {
        let mut dests: Vec<_> = summary.destinations.values().collect();
        dests.sort_by(|a, b| {
            (b.flows + b.tunnels)
                .cmp(&(a.flows + a.tunnels))
                .then(a.host.cmp(&b.host))
        });
        let nodes = dests
            .iter()
            .enumerate()
            .map(|(i, d)| GraphNode {
                id: format!("d{i}"),
                host: d.host.clone(),
                flows: d.flows,
                allowed: d.allowed,
                denied: d.denied,
                bytes_out: d.bytes_out,
                bytes_in: d.bytes_in,
                regions: if d.regions.is_empty() {
                    d.denied_regions.iter().cloned().collect()
                } else {
                    d.regions.iter().cloned().collect()
                },
                status: if d.allowed == 0 && d.tunnels == 0 && d.denied > 0 {
                    NodeStatus::Denied
                } else if d.denied > 0 {
                    NodeStatus::Mixed
                } else {
                    NodeStatus::Allowed
                },
                note: summary.push_note(&d.host),
            })
            .collect();
        ObservedGraph {
            title: "Observed data flows".to_string(),
            allowed: summary.destinations.values().map(|d| d.allowed).sum(),
            denied: summary.destinations.values().map(|d| d.denied).sum(),
            nodes,
        }
    }

    /// The graph with deviations highlighted and unused approved edges shown.
    pub fn from_verification(v: &Verification) -> ObservedGraph {
        let mut graph = ObservedGraph::from_summary(&v.summary);
        graph.title = format!("Observed data flows against \"{}\"", v.diagram);
        for node in &mut graph.nodes {
            let pushes = v.summary.push_note(&node.host);
            let note = if let Some(d) = v.deviations.iter().find(|d| d.host == node.host) {
                node.status = NodeStatus::Deviation;
                Some(d.why.clone())
            } else {
                v.edges
                    .iter()
                    .find(|e| e.hosts.contains(&node.host))
                    .map(|edge| format!("approved: {} ({})", edge.edge, edge.data))
            };
            node.note = match (note, pushes) {
                (Some(n), Some(p)) => Some(format!("{n}; {p}")),
                (n, p) => n.or(p),
            };
        }
        let first = graph.nodes.len();
        for (i, edge) in v
            .edges
            .iter()
            .filter(|e| e.flows == 0 && e.hosts.is_empty())
            .enumerate()
        {
            graph.nodes.push(GraphNode {
                id: format!("d{}", first + i),
                host: edge.host.clone(),
                flows: 0,
                allowed: 0,
                denied: 0,
                bytes_out: 0,
                bytes_in: 0,
                regions: edge.approved_regions.clone(),
                status: NodeStatus::Unused,
                note: Some(format!("approved: {} ({})", edge.edge, edge.data)),
            });
        }
        graph
    }
}
