//! The approved data-flow diagram: the nodes (the agent, the proxy, each external system) and
//! the edges that legal and security approved before the pilot, parsed from TOML with
//! `file:line:col` errors.
//!
//! The format is documented in `docs/data-flow-diagram.md`. Matching an observed flow against
//! the approved edges lives in [`matching`] (re-exported here); it is pure like the rest of
//! this crate.

use std::fmt;

use serde::Deserialize;
use serde_spanned::Spanned;

#[path = "diagram_match.rs"]
pub mod matching;

#[path = "diagram_from_contract.rs"]
pub mod from_contract;

pub use matching::{EdgeMatch, ObservedFlow, ObservedKind};

/// What a node of the diagram stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// The sandboxed coding agent.
    Agent,
    /// The egress proxy every flow passes through.
    Proxy,
    /// An external system the proxy talks to (an LLM provider, a registry, a forge ...).
    External,
}

impl NodeKind {
    /// The spelling used in the TOML file.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Agent => "agent",
            NodeKind::Proxy => "proxy",
            NodeKind::External => "external",
        }
    }
}

/// One box of the diagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The identifier edges refer to (`[a-z0-9_-]+`).
    pub id: String,
    /// What the node is.
    pub kind: NodeKind,
    /// The human label (defaults to the id).
    pub label: String,
}

/// A destination host pattern: an exact name, or `*.suffix` for any name below `suffix` (one
/// or more labels, never `suffix` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this normalised host.
    Exact(String),
    /// Any host that ends with `.` + this suffix.
    AnySubdomainOf(String),
}

impl HostPattern {
    /// `true` when `host` (already normalised by the proxy; compared case-insensitively,
    /// without a trailing dot) is covered by this pattern.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match self {
            HostPattern::Exact(exact) => host == *exact,
            HostPattern::AnySubdomainOf(suffix) => host
                .strip_suffix(suffix.as_str())
                .and_then(|prefix| prefix.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.ends_with('.')),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(host) => f.write_str(host),
            HostPattern::AnySubdomainOf(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

/// An approved edge: data of one category may go from `from` to `to`, to hosts matching
/// `host`, on these ports, with these methods and paths, and only to these regions and
/// jurisdictions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedEdge {
    /// The name used in reports (`name = "..."`, or `"<to>: <host>"`).
    pub name: String,
    /// The node the data leaves from (default `proxy`).
    pub from: String,
    /// The node the data goes to.
    pub to: String,
    /// The destination host pattern.
    pub host: HostPattern,
    /// The approved destination ports (default `[443]`).
    pub ports: Vec<u16>,
    /// The approved methods, uppercase; `None` means any method (`methods = ["*"]` or omitted).
    pub methods: Option<Vec<String>>,
    /// The approved path patterns; empty means any path. `*` matches within one segment, a
    /// final `**` matches the rest of the path.
    pub paths: Vec<String>,
    /// The data category that flows on this edge (`source code and prompts`, ...).
    pub data: String,
    /// Allowed regions (case-insensitive, `*` wildcards); empty means any region.
    pub regions: Vec<String>,
    /// Allowed jurisdictions (case-insensitive, `*` wildcards); empty means any.
    pub jurisdictions: Vec<String>,
    /// Free text (`note = "..."`), e.g. the ticket that approved the edge.
    pub note: Option<String>,
    /// The line of the `[[edge]]` table in the diagram file.
    pub line: usize,
}

/// A parsed, validated approved data-flow diagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedDiagram {
    /// The title of the diagram.
    pub title: String,
    /// Who approved it (free text, e.g. `"legal: A. Person, 2026-11-02"`).
    pub approved_by: Vec<String>,
    /// The SHA-256 of the prompt contract the diagram was derived from, when known.
    pub contract_sha256: Option<String>,
    /// Every node, in file order.
    pub nodes: Vec<Node>,
    /// Every approved edge, in file order.
    pub edges: Vec<ApprovedEdge>,
}

/// A diagram file that cannot be used, with the position of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct DiagramError {
    /// The file name as given to [`ApprovedDiagram::parse`].
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// What is wrong and what to do.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiagram {
    diagram: Option<RawMeta>,
    #[serde(default)]
    node: Vec<Spanned<RawNode>>,
    #[serde(default)]
    edge: Vec<Spanned<RawEdge>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    title: Option<String>,
    #[serde(default)]
    approved_by: Vec<String>,
    contract_sha256: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: Spanned<String>,
    kind: Spanned<String>,
    label: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEdge {
    name: Option<String>,
    from: Option<Spanned<String>>,
    to: Spanned<String>,
    host: Spanned<String>,
    ports: Option<Vec<Spanned<i64>>>,
    methods: Option<Vec<Spanned<String>>>,
    paths: Option<Vec<Spanned<String>>>,
    data: Spanned<String>,
    regions: Option<Vec<Spanned<String>>>,
    jurisdictions: Option<Vec<Spanned<String>>>,
    note: Option<String>,
}

/// Turns byte offsets into `file:line:col` errors.
struct Locator<'a> {
    file: &'a str,
    text: &'a str,
}

impl Locator<'_> {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    fn error_at(&self, offset: usize, message: impl Into<String>) -> DiagramError {
        let (line, col) = self.line_col(offset);
        DiagramError {
            file: self.file.to_string(),
            line,
            col,
            message: message.into(),
        }
    }

    fn error<T>(&self, spanned: &Spanned<T>, message: impl Into<String>) -> DiagramError {
        self.error_at(spanned.span().start, message)
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A host label character set check for patterns: letters, digits, `-`, `.` (punycode for
/// Unicode names), or an IP literal (digits, `.`, `:`, `[`, `]`).
fn valid_host_text(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'))
        && !host.starts_with('.')
        && !host.contains("..")
}

fn parse_host_pattern(
    loc: &Locator<'_>,
    raw: &Spanned<String>,
) -> Result<HostPattern, DiagramError> {
    let text = raw
        .get_ref()
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if text == "*" || text == "*." || text.is_empty() {
        return Err(loc.error(
            raw,
            "an approved edge must name its destination: use an exact host or `*.domain`, never a bare `*`",
        ));
    }
    if let Some(suffix) = text.strip_prefix("*.") {
        if suffix.contains('*') || !valid_host_text(suffix) || !suffix.contains('.') {
            return Err(loc.error(
                raw,
                format!("host pattern `{text}`: `*.` must be followed by a domain with at least two labels (e.g. `*.example.com`)"),
            ));
        }
        return Ok(HostPattern::AnySubdomainOf(suffix.to_string()));
    }
    if !valid_host_text(&text) {
        return Err(loc.error(
            raw,
            format!("host pattern `{text}` is not a host name: use lowercase letters, digits, `-` and `.` (punycode for Unicode names), or `*.domain`"),
        ));
    }
    Ok(HostPattern::Exact(text))
}

fn parse_path_pattern(loc: &Locator<'_>, raw: &Spanned<String>) -> Result<String, DiagramError> {
    let text = raw.get_ref();
    if text == "*" || text == "/**" {
        return Ok("/**".to_string());
    }
    if !text.starts_with('/') {
        return Err(loc.error(raw, format!("path pattern `{text}` must start with `/`")));
    }
    if text.contains('?') || text.contains('#') {
        return Err(loc.error(
            raw,
            format!("path pattern `{text}` contains `?` or `#`: the log records paths without the query string, so approve the path only"),
        ));
    }
    for (index, segment) in text.split('/').enumerate().skip(1) {
        if segment == "**" && index != text.split('/').count() - 1 {
            return Err(loc.error(
                raw,
                format!("path pattern `{text}`: `**` is only allowed as the last segment"),
            ));
        }
        if segment.contains("**") && segment != "**" {
            return Err(loc.error(
                raw,
                format!("path pattern `{text}`: `**` must be a whole segment"),
            ));
        }
        if segment == "." || segment == ".." {
            return Err(loc.error(
                raw,
                format!("path pattern `{text}` contains a `.` or `..` segment"),
            ));
        }
    }
    Ok(text.clone())
}

fn parse_residency_list(
    loc: &Locator<'_>,
    what: &str,
    raw: Option<Vec<Spanned<String>>>,
) -> Result<Vec<String>, DiagramError> {
    let mut out = Vec::new();
    for item in raw.unwrap_or_default() {
        let text = item.get_ref().trim();
        if text.is_empty() || text == "*" {
            return Err(loc.error(
                &item,
                format!("{what} entry `{text}` approves nothing specific: omit `{what}` to allow any, or name the allowed values"),
            ));
        }
        out.push(text.to_string());
    }
    Ok(out)
}

impl ApprovedDiagram {
    /// Parses and validates a diagram. `file` is only used in error messages.
    ///
    /// Every problem is reported as `file:line:col: message`: unknown keys, a node kind that
    /// does not exist, duplicate node ids, an edge to a node that is not declared, a bare `*`
    /// host, bad ports, methods or paths, and a diagram without exactly one agent and one
    /// proxy node.
    pub fn parse(text: &str, file: &str) -> Result<ApprovedDiagram, DiagramError> {
        let loc = Locator { file, text };
        let raw: RawDiagram = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            loc.error_at(offset, e.message().trim_end().to_string())
        })?;

        let meta = raw.diagram;
        let mut contract_sha256 = None;
        let mut title = String::from("Approved data-flow diagram");
        let mut approved_by = Vec::new();
        if let Some(meta) = meta {
            if let Some(t) = meta.title {
                title = t;
            }
            approved_by = meta.approved_by;
            if let Some(sha) = meta.contract_sha256 {
                let value = sha.get_ref().to_ascii_lowercase();
                if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(loc.error(
                        &sha,
                        "contract_sha256 must be 64 hex digits (the SHA-256 of the contract file)",
                    ));
                }
                contract_sha256 = Some(value);
            }
        }

        let mut nodes: Vec<Node> = Vec::new();
        for spanned in &raw.node {
            let raw_node = spanned.get_ref();
            let id = raw_node.id.get_ref().clone();
            if !valid_id(&id) {
                return Err(loc.error(
                    &raw_node.id,
                    format!("node id `{id}` must be 1-64 of a-z, 0-9, `-`, `_`"),
                ));
            }
            if nodes.iter().any(|n| n.id == id) {
                return Err(loc.error(&raw_node.id, format!("node id `{id}` is declared twice")));
            }
            let kind = match raw_node.kind.get_ref().as_str() {
                "agent" => NodeKind::Agent,
                "proxy" => NodeKind::Proxy,
                "external" => NodeKind::External,
                other => {
                    return Err(loc.error(
                        &raw_node.kind,
                        format!(
                            "node kind `{other}` is unknown: use `agent`, `proxy` or `external`"
                        ),
                    ))
                }
            };
            let label = raw_node.label.clone().unwrap_or_else(|| id.clone());
            nodes.push(Node { id, kind, label });
        }
        for kind in [NodeKind::Agent, NodeKind::Proxy] {
            let count = nodes.iter().filter(|n| n.kind == kind).count();
            if count != 1 {
                return Err(loc.error_at(
                    0,
                    format!(
                        "the diagram must declare exactly one node of kind `{}` (found {count}): add `[[node]] id = \"{}\" kind = \"{}\"`",
                        kind.as_str(),
                        kind.as_str(),
                        kind.as_str()
                    ),
                ));
            }
        }
        let proxy_id = nodes
            .iter()
            .find(|n| n.kind == NodeKind::Proxy)
            .map(|n| n.id.clone())
            .unwrap_or_default();

        let mut edges = Vec::new();
        for spanned in raw.edge {
            let (line, _) = loc.line_col(spanned.span().start);
            let raw_edge = spanned.into_inner();
            let node_ref = |name: &Spanned<String>| -> Result<String, DiagramError> {
                let id = name.get_ref();
                if nodes.iter().any(|n| n.id == *id) {
                    Ok(id.clone())
                } else {
                    Err(loc.error(
                        name,
                        format!("edge refers to node `{id}`, which no `[[node]]` declares"),
                    ))
                }
            };
            let from = match &raw_edge.from {
                Some(from) => node_ref(from)?,
                None => proxy_id.clone(),
            };
            let to = node_ref(&raw_edge.to)?;
            if nodes
                .iter()
                .any(|n| n.id == to && n.kind != NodeKind::External)
            {
                return Err(loc.error(
                    &raw_edge.to,
                    format!("edge goes to `{to}`, which is not an `external` node"),
                ));
            }
            let host = parse_host_pattern(&loc, &raw_edge.host)?;
            let ports = match raw_edge.ports {
                None => vec![443],
                Some(list) => {
                    let mut ports = Vec::new();
                    for port in list {
                        let value = *port.get_ref();
                        match u16::try_from(value) {
                            Ok(p) if p != 0 => ports.push(p),
                            _ => {
                                return Err(loc.error(
                                    &port,
                                    format!("port {value} is not a TCP port (1-65535)"),
                                ))
                            }
                        }
                    }
                    if ports.is_empty() {
                        return Err(loc.error_at(
                            line_start_offset(text, line),
                            "`ports = []` approves nothing: omit it for 443 or list the ports",
                        ));
                    }
                    ports
                }
            };
            let methods = match raw_edge.methods {
                None => None,
                Some(list) => {
                    let mut methods = Vec::new();
                    let mut any = false;
                    for method in list {
                        let m = method.get_ref().trim().to_ascii_uppercase();
                        if m == "*" {
                            any = true;
                        } else if m.is_empty()
                            || !m
                                .bytes()
                                .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
                        {
                            return Err(loc.error(
                                &method,
                                format!("method `{}` is not an HTTP method", method.get_ref()),
                            ));
                        } else {
                            methods.push(m);
                        }
                    }
                    if any {
                        None
                    } else if methods.is_empty() {
                        return Err(loc.error_at(line_start_offset(text, line), "`methods = []` approves nothing: omit it for any method or list the methods"));
                    } else {
                        Some(methods)
                    }
                }
            };
            let mut paths = Vec::new();
            for path in raw_edge.paths.unwrap_or_default() {
                paths.push(parse_path_pattern(&loc, &path)?);
            }
            let data = raw_edge.data.get_ref().trim().to_string();
            if data.is_empty() {
                return Err(loc.error(&raw_edge.data, "`data` must name the category of data on this edge (e.g. \"source code and prompts\")"));
            }
            if data.to_ascii_uppercase().starts_with("TODO") {
                return Err(loc.error(
                    &raw_edge.data,
                    "`data` is still TODO: a generated diagram approves nothing; name the data category of this edge, review it and record the approval in `approved_by`",
                ));
            }
            let regions = parse_residency_list(&loc, "regions", raw_edge.regions)?;
            let jurisdictions =
                parse_residency_list(&loc, "jurisdictions", raw_edge.jurisdictions)?;
            let name = raw_edge.name.unwrap_or_else(|| format!("{to}: {host}"));
            edges.push(ApprovedEdge {
                name,
                from,
                to,
                host,
                ports,
                methods,
                paths,
                data,
                regions,
                jurisdictions,
                note: raw_edge.note,
                line,
            });
        }

        Ok(ApprovedDiagram {
            title,
            approved_by,
            contract_sha256,
            nodes,
            edges,
        })
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// The byte offset of the start of 1-based `line` in `text`.
fn line_start_offset(text: &str, line: usize) -> usize {
    if line <= 1 {
        return 0;
    }
    text.match_indices('\n')
        .nth(line - 2)
        .map_or(text.len(), |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = include_str!("../tests/fixtures/diagram-good.toml");

    #[test]
    fn parses_a_complete_diagram() {
        let d = ApprovedDiagram::parse(GOOD, "d.toml").unwrap();
        assert_eq!(d.title, "Pilot");
        assert_eq!(d.nodes.len(), 3);
        let e = &d.edges[0];
        assert_eq!(e.from, "proxy");
        assert_eq!(e.host, HostPattern::Exact("api.eu.mistral.ai".into()));
        assert_eq!(e.methods, Some(vec!["POST".to_string()]));
        assert_eq!(e.ports, vec![443]);
        assert_eq!(e.name, "mistral: api.eu.mistral.ai");
        assert_eq!(e.line, 19);
    }

    fn err(text: &str) -> DiagramError {
        ApprovedDiagram::parse(text, "d.toml").unwrap_err()
    }

    #[test]
    fn edge_to_undeclared_node_names_its_position() {
        let text = GOOD.replace("to = \"mistral\"", "to = \"openai\"");
        let e = err(&text);
        assert_eq!((e.line, e.col), (20, 6), "{e}");
        assert!(e.to_string().starts_with("d.toml:20:6: "), "{e}");
        assert!(e.message.contains("openai"));
    }

    #[test]
    fn unknown_keys_and_syntax_errors_have_positions() {
        let e = err(&GOOD.replace("data = ", "dta = "));
        assert!(e.message.contains("dta"), "{e}");
        assert!(e.line >= 19, "{e}");
        let e = err("[[node]\nid = 1");
        assert_eq!(e.line, 1, "{e}");
    }

    #[test]
    fn unreviewed_generated_edges_are_refused() {
        let e = err(&GOOD.replace(
            "data = \"source code and prompts\"",
            "data = \"TODO: name the data category\"",
        ));
        assert_eq!(e.line, 24, "{e}");
        assert!(e.message.contains("still TODO"), "{e}");
    }

    #[test]
    fn bare_wildcards_are_refused() {
        for bad in ["*", "*.", "*.com", "a.*.com", "evil..com", "a b.com"] {
            let e = err(&GOOD.replace("api.eu.mistral.ai", bad));
            assert_eq!(e.line, 21, "{bad}: {e}");
        }
        let e = err(&GOOD.replace("regions = [\"EU\"]", "regions = [\"*\"]"));
        assert_eq!(e.line, 25, "{e}");
    }

    #[test]
    fn requires_one_agent_and_one_proxy() {
        let e = err(&GOOD.replace("kind = \"agent\"", "kind = \"external\""));
        assert!(e.message.contains("agent"), "{e}");
        let e = err(&GOOD.replace("kind = \"proxy\"", "kind = \"agent\""));
        assert!(
            e.message.contains("agent") || e.message.contains("proxy"),
            "{e}"
        );
    }

    #[test]
    fn bad_ports_methods_paths() {
        assert!(err(&GOOD.replace("data =", "ports = [0]\ndata ="))
            .message
            .contains("port"));
        assert!(err(&GOOD.replace("data =", "ports = [70000]\ndata ="))
            .message
            .contains("port"));
        assert!(err(&GOOD.replace("[\"post\"]", "[\"PO ST\"]"))
            .message
            .contains("method"));
        assert!(err(&GOOD.replace("[\"post\"]", "[]"))
            .message
            .contains("approves nothing"));
        assert!(err(&GOOD.replace("/v1/chat/completions", "v1"))
            .message
            .contains("start with"));
        assert!(err(&GOOD.replace("/v1/chat/completions", "/v1/**/x"))
            .message
            .contains("last segment"));
        assert!(err(&GOOD.replace("/v1/chat/completions", "/v1/../x"))
            .message
            .contains(".."));
        assert!(err(&GOOD.replace("/v1/chat/completions", "/v1?x=1"))
            .message
            .contains("query"));
    }

    #[test]
    fn non_ascii_before_an_error_counts_characters() {
        let text = GOOD
            .replace("title = \"Pilot\"", "title = \"Pilöt ✓\"")
            .replace("to = \"mistral\"", "to = \"nope\"");
        let e = err(&text);
        assert_eq!((e.line, e.col), (20, 6));
    }

    #[test]
    fn host_patterns() {
        let sub = HostPattern::AnySubdomainOf("example.com".into());
        assert!(sub.matches("a.example.com"));
        assert!(sub.matches("A.B.Example.COM."));
        assert!(!sub.matches("example.com"));
        assert!(!sub.matches("evilexample.com"));
        assert!(!sub.matches("example.com.evil.example"));
        assert!(!sub.matches(".example.com"));
        let exact = HostPattern::Exact("api.eu.mistral.ai".into());
        assert!(exact.matches("API.eu.mistral.ai."));
        assert!(!exact.matches("api.eu.mistral.ai.evil.example"));
        assert!(!exact.matches("xapi.eu.mistral.ai"));
    }
}
