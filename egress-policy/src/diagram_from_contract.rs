//! A starting point for the approved diagram, generated from a contract: one external node
//! per allow rule, one edge per rule with its host, port, methods and paths, and the region
//! and jurisdiction the catalog (or the rule's attestation) gives. A human reviews, names the
//! data categories, and approves it; generating it approves nothing.

use std::fmt::Write as _;

use crate::contract::{Protocol, Residency, Rule};
use crate::host::HostPattern as RuleHost;
use crate::policy::Policy;

/// Converts an anchored contract path regex into diagram path globs, when it can be done
/// exactly or by widening only within one segment (`[^/]+` becomes `*`). Returns `None` for
/// regexes that have no such glob form.
pub fn regex_to_globs(regex: &str) -> Option<Vec<String>> {
    let body = regex.strip_prefix('^').unwrap_or(regex);
    let body = body.strip_suffix('$').unwrap_or(body);
    let mut alternatives = vec![String::new()];
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let next = *chars.get(i + 1)?;
                if next.is_ascii_alphanumeric() {
                    return None; // \d, \w, \s ...
                }
                alternatives.iter_mut().for_each(|a| a.push(next));
                i += 2;
            }
            '[' => {
                let close = chars[i..].iter().position(|&c| c == ']')? + i;
                let class: String = chars[i + 1..close].iter().collect();
                if !class.starts_with("^/") {
                    return None;
                }
                let quant = chars.get(close + 1).copied();
                if !matches!(quant, Some('+') | Some('*')) {
                    return None;
                }
                alternatives.iter_mut().for_each(|a| a.push('*'));
                i = close + 2;
            }
            '.' => {
                match chars.get(i + 1) {
                    Some('*') | Some('+') if i + 2 == chars.len() => {
                        // `.*` at the very end: the rest of the path.
                        for a in &mut alternatives {
                            if a.ends_with('/') {
                                a.push_str("**");
                            } else {
                                return None;
                            }
                        }
                        i += 2;
                    }
                    _ => return None,
                }
            }
            '(' => {
                let close = chars[i..].iter().position(|&c| c == ')')? + i;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.strip_prefix("?:").unwrap_or(&inner);
                if inner.chars().any(|c| "()[]\\.*+?{}^$".contains(c)) {
                    return None;
                }
                let options: Vec<&str> = inner.split('|').collect();
                alternatives = alternatives
                    .iter()
                    .flat_map(|a| options.iter().map(move |o| format!("{a}{o}")))
                    .collect();
                if alternatives.len() > 16 {
                    return None;
                }
                i = close + 1;
            }
            '*' | '+' | '?' | '{' | '}' | '|' | '^' | '$' | ')' | ']' => return None,
            other => {
                alternatives.iter_mut().for_each(|a| a.push(other));
                i += 1;
            }
        }
    }
    if alternatives.iter().any(|a| !a.starts_with('/')) {
        return None;
    }
    Some(alternatives)
}

fn node_id(rule: &Rule, taken: &[String]) -> String {
    let mut id: String = rule
        .name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    if id.is_empty() || id == "agent" || id == "proxy" {
        id = format!("ext-{id}");
    }
    let base = id.clone();
    let mut n = 2;
    while taken.contains(&id) {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The TOML text of a diagram derived from `policy` (see `docs/data-flow-diagram.md`).
/// `contract_file` is only mentioned in comments.
pub fn diagram_toml_from_policy(policy: &Policy, contract_file: &str) -> String {
    let contract = policy.contract();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Approved data-flow diagram: a STARTING POINT generated from {contract_file}."
    );
    let _ = writeln!(
        out,
        "# Review every edge, name its data category, narrow what you can, then record"
    );
    let _ = writeln!(
        out,
        "# who approved it in `approved_by`. Format: docs/data-flow-diagram.md"
    );
    out.push('\n');
    out.push_str("[diagram]\n");
    let _ = writeln!(
        out,
        "title = {}",
        toml_string(&format!(
            "{}: {}",
            contract.task.id, contract.task.objective
        ))
    );
    out.push_str("approved_by = []   # e.g. [\"legal: A. Person, 2026-11-02\", \"security: B. Person, 2026-11-02\"]\n");
    let _ = writeln!(out, "contract_sha256 = {}", toml_string(&policy.sha256()));
    out.push_str("\n[[node]]\nid = \"agent\"\nkind = \"agent\"\n");
    let _ = writeln!(
        out,
        "label = {}",
        toml_string(&format!(
            "Coding agent (class {:?}, sandboxed)",
            contract.task.class
        ))
    );
    out.push_str(
        "\n[[node]]\nid = \"proxy\"\nkind = \"proxy\"\nlabel = \"Egress proxy (flow log)\"\n",
    );

    let mut ids: Vec<String> = Vec::new();
    for rule in &contract.network.allow {
        let id = node_id(rule, &ids);
        ids.push(id.clone());
        let provider = rule.placement.as_ref().map(|p| p.provider);
        let label = match provider {
            Some(p) => format!("{p} ({})", rule.host),
            None => rule.host.to_string(),
        };
        let _ = write!(
            out,
            "\n[[node]]\nid = {}\nkind = \"external\"\nlabel = {}\n",
            toml_string(&id),
            toml_string(&label)
        );
    }

    let eu = contract.network.residency == Some(Residency::Eu);
    for (rule, id) in contract.network.allow.iter().zip(&ids) {
        out.push_str("\n[[edge]]\n");
        let _ = writeln!(out, "name = {}", toml_string(&rule.name));
        let _ = writeln!(out, "to = {}", toml_string(id));
        let host = match &rule.host {
            RuleHost::Ip(_) => rule.host.to_string().trim_matches(['[', ']']).to_string(),
            other => other.to_string(),
        };
        let _ = writeln!(out, "host = {}", toml_string(&host));
        if rule.port != 443 {
            let _ = writeln!(out, "ports = [{}]", rule.port);
        }
        let opaque = rule.protocol == Protocol::Tcp || !rule.intercept;
        if let Some(methods) = &rule.methods {
            if opaque {
                out.push_str("# the contract lists methods, but this rule is not inspected (passthrough/tcp)\n");
            } else {
                let _ = writeln!(out, "methods = {}", toml_list(methods));
            }
        }
        if !rule.paths.is_empty() && !opaque {
            let mut globs = Vec::new();
            let mut unconvertible = Vec::new();
            for p in &rule.paths {
                match regex_to_globs(&p.source) {
                    Some(g) => globs.extend(g),
                    None => unconvertible.push(p.source.clone()),
                }
            }
            for source in &unconvertible {
                let _ = writeln!(
                    out,
                    "# contract path regex {} has no glob form: approving any path; narrow by hand",
                    toml_string(source)
                );
            }
            if unconvertible.is_empty() {
                let _ = writeln!(out, "paths = {}", toml_list(&globs));
            }
        }
        out.push_str("data = \"TODO: name the data category (e.g. source code and prompts)\"\n");
        let region = rule.region.clone().or_else(|| {
            let placed = rule.placement.as_ref()?.region.as_ref()?;
            Some(placed.field().to_string())
        });
        match (&region, eu) {
            (_, true) => out.push_str("regions = [\"EU\"]\n"),
            (Some(r), false) => {
                let _ = writeln!(out, "regions = {}", toml_list(std::slice::from_ref(r)));
            }
            (None, false) => out.push_str("# region unknown: the catalog cannot place this host\n"),
        }
        if let Some(p) = &rule.placement {
            let _ = writeln!(
                out,
                "jurisdictions = {}",
                toml_list(&[p.jurisdiction.to_string()])
            );
        }
    }
    // The supervisor's own flows: minting Google access tokens for `google-oauth` rules.
    let minting: Vec<&str> = contract
        .network
        .allow
        .iter()
        .filter(|r| matches!(r.inject, Some(crate::contract::Inject::GoogleOauth { .. })))
        .map(|r| r.name.as_str())
        .collect();
    if !minting.is_empty() {
        let _ = write!(
            out,
            "\n# The supervisor mints Google OAuth access tokens for {} (no source code goes here;\n# a key file naming another token_uri needs its host instead).\n",
            minting.join(", ")
        );
        out.push_str("[[node]]\nid = \"google-oauth\"\nkind = \"external\"\nlabel = \"Google OAuth token endpoint\"\n");
        out.push_str("\n[[edge]]\nname = \"access tokens for Vertex AI\"\nto = \"google-oauth\"\nhost = \"oauth2.googleapis.com\"\nmethods = [\"POST\"]\npaths = [\"/token\"]\n");
        out.push_str("data = \"TODO: name the data category (e.g. source code and prompts)\"\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_become_globs_or_nothing() {
        assert_eq!(
            regex_to_globs("^/v1/chat/completions$").unwrap(),
            ["/v1/chat/completions"]
        );
        assert_eq!(
            regex_to_globs("^/v1/projects/[^/]+/models/[^/:]+:(rawPredict|streamRawPredict)$")
                .unwrap(),
            [
                "/v1/projects/*/models/*:rawPredict",
                "/v1/projects/*/models/*:streamRawPredict"
            ]
        );
        assert_eq!(regex_to_globs("^/v2/.*$").unwrap(), ["/v2/**"]);
        assert_eq!(regex_to_globs("^/a\\.b$").unwrap(), ["/a.b"]);
        for bad in [
            "^/v1/.*x$",
            "^/v\\d+$",
            "^/a?$",
            "^/(a(b))$",
            "^v1$",
            "^/x[abc]$",
            "^/a.b$",
        ] {
            assert!(regex_to_globs(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn generated_diagrams_parse_for_every_example_contract() {
        let ctx = crate::PathContext {
            workspace: "/work/ws".into(),
            home: "/home/dev".into(),
        };
        for (name, text) in [
            (
                "eu-vertex-claude.toml",
                include_str!("../../examples/eu-vertex-claude.toml"),
            ),
            (
                "eu-mistral-bedrock.toml",
                include_str!("../../examples/eu-mistral-bedrock.toml"),
            ),
            (
                "class-b-feature.toml",
                include_str!("../../examples/class-b-feature.toml"),
            ),
        ] {
            let policy = Policy::parse(text, name, &ctx).unwrap_or_else(|e| panic!("{name}: {e}"));
            let toml = diagram_toml_from_policy(&policy, name);
            // Unreviewed, it is refused; with its data categories named, it parses.
            let unreviewed = crate::diagram::ApprovedDiagram::parse(&toml, "generated.toml");
            assert!(
                unreviewed.is_err_and(|e| e.message.contains("still TODO")),
                "{name}"
            );
            let reviewed = toml.replace(
                "TODO: name the data category (e.g. source code and prompts)",
                "source code and prompts",
            );
            let diagram = crate::diagram::ApprovedDiagram::parse(&reviewed, "generated.toml")
                .unwrap_or_else(|e| panic!("{name}: {e}\n{toml}"));
            assert_eq!(
                diagram.edges.len(),
                policy.contract().network.allow.len(),
                "{toml}"
            );
            assert_eq!(
                diagram.contract_sha256.as_deref(),
                Some(policy.sha256().as_str())
            );
        }
    }
}
