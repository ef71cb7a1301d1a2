//! Graphviz DOT text.

use crate::evidence::graph::{NodeStatus, ObservedGraph};

/// A DOT double-quoted string.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The graph as a DOT digraph.
pub fn render(graph: &ObservedGraph) -> String {
    let mut out = String::from("digraph flows {\n");
    out.push_str(&format!(
        "  label={};\n  labelloc=t;\n",
        quote(&graph.title)
    ));
    out.push_str("  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n");
    out.push_str(
        "  agent [label=\"Agent (sandboxed)\", fillcolor=\"#e3f2fd\", color=\"#1565c0\"];\n",
    );
    out.push_str("  proxy [label=\"Egress proxy\", fillcolor=\"#ede7f6\", color=\"#4527a0\"];\n");
    out.push_str(&format!(
        "  agent -> proxy [label={}];\n",
        quote(&format!(
            "{} allowed, {} blocked",
            graph.allowed, graph.denied
        ))
    ));
    for n in &graph.nodes {
        let (fill, color, style) = match n.status {
            NodeStatus::Allowed => ("#e8f5e9", "#2e7d32", "solid"),
            NodeStatus::Mixed => ("#fff8e1", "#8d6e00", "solid"),
            NodeStatus::Denied => ("#fdecea", "#c62828", "dashed"),
            NodeStatus::Deviation => ("#fff3e0", "#e65100", "bold"),
            NodeStatus::Unused => ("#f5f5f5", "#9e9e9e", "dashed"),
        };
        let mut text = format!("{}\n{}", n.host, n.region_label());
        if n.status == NodeStatus::Denied {
            text.push_str("\nDENIED");
        }
        if let Some(note) = &n.note {
            text.push('\n');
            text.push_str(note);
        }
        out.push_str(&format!(
            "  {} [label={}, fillcolor=\"{fill}\", color=\"{color}\"];\n",
            n.id,
            quote(&text)
        ));
        out.push_str(&format!(
            "  proxy -> {} [label={}, color=\"{color}\", style={style}];\n",
            n.id,
            quote(&n.edge_label())
        ));
    }
    out.push_str("}\n");
    out
}
