//! Drawing an [`ObservedGraph`](super::graph::ObservedGraph): Mermaid and Graphviz DOT text,
//! and SVG rendered here in Rust (no external tool).

pub mod dot;
pub mod mermaid;
pub mod svg;
