//! Mermaid `flowchart` text.

use crate::evidence::graph::{NodeStatus, ObservedGraph};

/// Mermaid labels: no quotes, brackets or pipes from the log survive.
fn label(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => "#quot;".to_string(),
            '<' => "#lt;".to_string(),
            '>' => "#gt;".to_string(),
            '|' => "#124;".to_string(),
            '(' => "#40;".to_string(),
            ')' => "#41;".to_string(),
            '[' => "#91;".to_string(),
            ']' => "#93;".to_string(),
            '{' => "#123;".to_string(),
            '}' => "#125;".to_string(),
            '`' => "#96;".to_string(),
            c if c.is_control() => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The graph as a Mermaid flowchart.
pub fn render(graph: &ObservedGraph) -> String {
    let mut out = String::from("flowchart LR\n");
    out.push_str(&format!("  %% {}\n", label(&graph.title)));
    out.push_str("  agent[\"Agent (sandboxed)\"]\n");
    out.push_str("  proxy[\"Egress proxy\"]\n");
    out.push_str(&format!(
        "  agent -->|\"{} allowed, {} blocked\"| proxy\n",
        graph.allowed, graph.denied
    ));
    for n in &graph.nodes {
        let mut text = format!("{}<br/>{}", label(&n.host), label(&n.region_label()));
        if n.status == NodeStatus::Denied {
            text.push_str("<br/>DENIED");
        }
        if let Some(note) = &n.note {
            text.push_str(&format!("<br/><i>{}</i>", label(note)));
        }
        out.push_str(&format!("  {}[\"{text}\"]\n", n.id));
        let arrow = match n.status {
            NodeStatus::Denied | NodeStatus::Unused => "-.->",
            NodeStatus::Deviation => "==>",
            _ => "-->",
        };
        out.push_str(&format!(
            "  proxy {arrow}|\"{}\"| {}\n",
            label(&n.edge_label()),
            n.id
        ));
    }
    out.push_str("  classDef allowed fill:#e8f5e9,stroke:#2e7d32,color:#1b5e20\n");
    out.push_str("  classDef mixed fill:#fff8e1,stroke:#8d6e00,color:#5d4037\n");
    out.push_str(
        "  classDef denied fill:#fdecea,stroke:#c62828,color:#8e0000,stroke-dasharray:4 3\n",
    );
    out.push_str(
        "  classDef deviation fill:#fff3e0,stroke:#e65100,color:#bf360c,stroke-width:3px\n",
    );
    out.push_str(
        "  classDef unused fill:#f5f5f5,stroke:#9e9e9e,color:#616161,stroke-dasharray:4 3\n",
    );
    for n in &graph.nodes {
        let class = match n.status {
            NodeStatus::Allowed => "allowed",
            NodeStatus::Mixed => "mixed",
            NodeStatus::Denied => "denied",
            NodeStatus::Deviation => "deviation",
            NodeStatus::Unused => "unused",
        };
        out.push_str(&format!("  class {} {class}\n", n.id));
    }
    out
}
