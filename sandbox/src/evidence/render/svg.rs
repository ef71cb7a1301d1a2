//! SVG, laid out and written here: the agent and the proxy on the left, one box per
//! destination on the right, edges coloured by what happened. Self-contained (no fonts, no
//! scripts, no external references), so it can be embedded in the HTML report.

use std::fmt::Write as _;

use crate::evidence::graph::{GraphNode, NodeStatus, ObservedGraph};

/// At most this many destination boxes are drawn; the rest are summed up in one box.
pub const MAX_BOXES: usize = 40;

const WIDTH: u32 = 960;
const TOP: u32 = 64;
const BOX_H: u32 = 84;
const GAP: u32 = 18;
const DEST_X: u32 = 540;
const DEST_W: u32 = 396;
const AGENT_X: u32 = 24;
const AGENT_W: u32 = 170;
const PROXY_X: u32 = 270;
const PROXY_W: u32 = 170;
const SIDE_H: u32 = 76;

/// XML text and attribute escaping; control characters are dropped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

struct Palette {
    fill: &'static str,
    stroke: &'static str,
    text: &'static str,
    dash: &'static str,
    width: &'static str,
    marker: &'static str,
}

fn palette(status: NodeStatus) -> Palette {
    match status {
        NodeStatus::Allowed => Palette {
            fill: "#e8f5e9",
            stroke: "#2e7d32",
            text: "#1b5e20",
            dash: "",
            width: "2",
            marker: "arrow-allowed",
        },
        NodeStatus::Mixed => Palette {
            fill: "#fff8e1",
            stroke: "#8d6e00",
            text: "#5d4037",
            dash: "",
            width: "2",
            marker: "arrow-mixed",
        },
        NodeStatus::Denied => Palette {
            fill: "#fdecea",
            stroke: "#c62828",
            text: "#8e0000",
            dash: "6 4",
            width: "2",
            marker: "arrow-denied",
        },
        NodeStatus::Deviation => Palette {
            fill: "#fff3e0",
            stroke: "#e65100",
            text: "#bf360c",
            dash: "",
            width: "4",
            marker: "arrow-deviation",
        },
        NodeStatus::Unused => Palette {
            fill: "#f5f5f5",
            stroke: "#9e9e9e",
            text: "#616161",
            dash: "4 4",
            width: "1.5",
            marker: "arrow-unused",
        },
    }
}

fn status_tag(status: NodeStatus) -> &'static str {
    match status {
        NodeStatus::Allowed => "ALLOWED",
        NodeStatus::Mixed => "ALLOWED + BLOCKED",
        NodeStatus::Denied => "DENIED",
        NodeStatus::Deviation => "DEVIATION",
        NodeStatus::Unused => "APPROVED, UNUSED",
    }
}

/// How many characters of the host fit beside the status tag (15px bold text is about 9.5px
/// per character, the 10px tag about 7px).
fn host_chars(status: NodeStatus) -> usize {
    let tag = status_tag(status).len() as u32 * 7;
    ((DEST_W - 28 - 16 - tag) * 10 / 95) as usize
}

fn dest_box(out: &mut String, n: &GraphNode, y: u32) {
    let p = palette(n.status);
    let _ = write!(
        out,
        r#"<g class="dest {cls}"><rect x="{DEST_X}" y="{y}" width="{DEST_W}" height="{BOX_H}" rx="10" fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}/>"#,
        cls = status_tag(n.status)
            .to_ascii_lowercase()
            .replace([' ', ',', '+'], "-"),
        fill = p.fill,
        stroke = p.stroke,
        width = p.width,
        dash = if p.dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{}""#, p.dash)
        },
    );
    let tx = DEST_X + 14;
    let _ = write!(
        out,
        r#"<text x="{tx}" y="{}" font-size="15" font-weight="700" fill="{}">{}</text>"#,
        y + 22,
        p.text,
        escape(&clip(&n.host, host_chars(n.status)))
    );
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" font-size="10" font-weight="700" fill="{}" text-anchor="end">{}</text>"#,
        DEST_X + DEST_W - 12,
        y + 21,
        p.stroke,
        status_tag(n.status)
    );
    let _ = write!(
        out,
        r##"<text x="{tx}" y="{}" font-size="12.5" fill="#263238">{}</text>"##,
        y + 42,
        escape(&clip(&n.edge_label(), 56))
    );
    let _ = write!(
        out,
        r##"<text x="{tx}" y="{}" font-size="12.5" fill="#455a64">{}</text>"##,
        y + 59,
        escape(&clip(&n.region_label(), 56))
    );
    if let Some(note) = &n.note {
        let _ = write!(
            out,
            r#"<text x="{tx}" y="{}" font-size="11.5" font-style="italic" fill="{}">{}</text>"#,
            y + 76,
            p.text,
            escape(&clip(note, 62))
        );
    }
    out.push_str("</g>");
}

#[allow(clippy::too_many_arguments)]
fn side_box(
    out: &mut String,
    x: u32,
    w: u32,
    y: u32,
    title: &str,
    sub: &str,
    fill: &str,
    stroke: &str,
) {
    let _ = write!(
        out,
        r##"<g><rect x="{x}" y="{y}" width="{w}" height="{SIDE_H}" rx="12" fill="{fill}" stroke="{stroke}" stroke-width="2"/><text x="{cx}" y="{ty}" font-size="16" font-weight="700" fill="#1a237e" text-anchor="middle">{title}</text><text x="{cx}" y="{sy}" font-size="12" fill="#37474f" text-anchor="middle">{sub}</text></g>"##,
        cx = x + w / 2,
        ty = y + 32,
        sy = y + 52,
        title = escape(title),
        sub = escape(sub),
    );
}

/// The graph as a standalone SVG document.
pub fn render(graph: &ObservedGraph) -> String {
    let mut nodes: Vec<GraphNode> = graph.nodes.iter().take(MAX_BOXES).cloned().collect();
    if graph.nodes.len() > MAX_BOXES {
        let rest = &graph.nodes[MAX_BOXES..];
        nodes.push(GraphNode {
            id: "more".to_string(),
            host: format!("+{} more destinations", rest.len()),
            flows: rest.iter().map(|n| n.flows).sum(),
            allowed: rest.iter().map(|n| n.allowed).sum(),
            denied: rest.iter().map(|n| n.denied).sum(),
            bytes_out: rest.iter().map(|n| n.bytes_out).sum(),
            bytes_in: rest.iter().map(|n| n.bytes_in).sum(),
            regions: Vec::new(),
            status: if rest.iter().any(|n| n.status == NodeStatus::Deviation) {
                NodeStatus::Deviation
            } else {
                NodeStatus::Mixed
            },
            note: Some("see the evidence table".to_string()),
        });
    }
    let count = nodes.len().max(1) as u32;
    let column_h = count * BOX_H + (count - 1) * GAP;
    let legend_y = TOP + column_h + 36;
    let height = legend_y + 36;
    let mid = TOP + column_h / 2;
    let side_y = mid.saturating_sub(SIDE_H / 2).max(TOP);
    let side_mid = side_y + SIDE_H / 2;

    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif" role="img" aria-label="{}">"#,
        escape(&graph.title)
    );
    out.push_str("<defs>");
    for status in [
        NodeStatus::Allowed,
        NodeStatus::Mixed,
        NodeStatus::Denied,
        NodeStatus::Deviation,
        NodeStatus::Unused,
    ] {
        let p = palette(status);
        let _ = write!(
            out,
            r#"<marker id="{}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{}"/></marker>"#,
            p.marker, p.stroke
        );
    }
    out.push_str(r##"<marker id="arrow-agent" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#3949ab"/></marker>"##);
    out.push_str("</defs>");
    let _ = write!(
        out,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/><text x="24" y="34" font-size="18" font-weight="700" fill="#1a237e">{}</text>"##,
        escape(&clip(&graph.title, 90))
    );

    side_box(
        &mut out,
        AGENT_X,
        AGENT_W,
        side_y,
        "Agent",
        "sandboxed",
        "#e3f2fd",
        "#1565c0",
    );
    side_box(
        &mut out,
        PROXY_X,
        PROXY_W,
        side_y,
        "Egress proxy",
        "hash-chained flow log",
        "#ede7f6",
        "#4527a0",
    );
    let _ = write!(
        out,
        r##"<line x1="{}" y1="{side_mid}" x2="{}" y2="{side_mid}" stroke="#3949ab" stroke-width="2.5" marker-end="url(#arrow-agent)"/><text x="{}" y="{}" font-size="11.5" fill="#37474f" text-anchor="middle">{} allowed</text><text x="{}" y="{}" font-size="11.5" fill="#c62828" text-anchor="middle">{} blocked</text>"##,
        AGENT_X + AGENT_W,
        PROXY_X - 4,
        (AGENT_X + AGENT_W + PROXY_X) / 2,
        side_mid - 8,
        graph.allowed,
        (AGENT_X + AGENT_W + PROXY_X) / 2,
        side_mid + 18,
        graph.denied
    );

    if nodes.is_empty() {
        let _ = write!(
            out,
            r##"<text x="{DEST_X}" y="{}" font-size="14" fill="#607d8b">No flows in the log.</text>"##,
            TOP + 40
        );
    }
    for (i, n) in nodes.iter().enumerate() {
        let y = TOP + i as u32 * (BOX_H + GAP);
        let p = palette(n.status);
        let start_x = PROXY_X + PROXY_W;
        let end_y = y + BOX_H / 2;
        let cx = (start_x + DEST_X) / 2;
        let _ = write!(
            out,
            r#"<path d="M{start_x},{side_mid} C{cx},{side_mid} {cx},{end_y} {},{end_y}" fill="none" stroke="{}" stroke-width="{}"{} marker-end="url(#{})"/>"#,
            DEST_X - 3,
            p.stroke,
            p.width,
            if p.dash.is_empty() {
                String::new()
            } else {
                format!(r#" stroke-dasharray="{}""#, p.dash)
            },
            p.marker
        );
        dest_box(&mut out, n, y);
    }

    let mut x = 24;
    for status in [
        NodeStatus::Allowed,
        NodeStatus::Mixed,
        NodeStatus::Denied,
        NodeStatus::Deviation,
        NodeStatus::Unused,
    ] {
        let p = palette(status);
        let label = match status {
            NodeStatus::Allowed => "allowed",
            NodeStatus::Mixed => "allowed and blocked",
            NodeStatus::Denied => "blocked (denied)",
            NodeStatus::Deviation => "deviation from the approved diagram",
            NodeStatus::Unused => "approved, unused",
        };
        let _ = write!(
            out,
            r##"<rect x="{x}" y="{}" width="16" height="12" rx="3" fill="{}" stroke="{}" stroke-width="1.5"/><text x="{}" y="{}" font-size="12" fill="#37474f">{label}</text>"##,
            legend_y - 10,
            p.fill,
            p.stroke,
            x + 22,
            legend_y
        );
        x += 30 + label.len() as u32 * 7;
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, status: NodeStatus) -> GraphNode {
        GraphNode {
            id: "d0".into(),
            host: host.into(),
            flows: 3,
            allowed: 3,
            denied: 0,
            bytes_out: 2048,
            bytes_in: 10,
            regions: vec!["EU".into()],
            status,
            note: None,
        }
    }

    #[test]
    fn log_text_is_escaped() {
        let g = ObservedGraph {
            title: "t".into(),
            allowed: 3,
            denied: 0,
            nodes: vec![node("<script>alert(1)</script>&\"", NodeStatus::Deviation)],
        };
        let svg = render(&g);
        assert!(!svg.contains("<script"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("DEVIATION"));
    }

    #[test]
    fn many_destinations_are_capped() {
        let nodes = (0..100)
            .map(|i| node(&format!("h{i}.example"), NodeStatus::Allowed))
            .collect();
        let g = ObservedGraph {
            title: "t".into(),
            allowed: 300,
            denied: 0,
            nodes,
        };
        let svg = render(&g);
        assert_eq!(svg.matches("class=\"dest ").count(), MAX_BOXES + 1);
        assert!(svg.contains("+60 more destinations"));
    }
}
