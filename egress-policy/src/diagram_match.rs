//! Matching one observed, allowed flow against the approved edges of a diagram: is there an
//! edge for its host, port, method and path, and does its region and jurisdiction stay within
//! what that edge allows?

use super::{ApprovedDiagram, ApprovedEdge};
use crate::region::Region;

/// How much of a flow the proxy could see, which decides what an edge must approve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservedKind {
    /// An HTTP request (inside an intercepted tunnel or plain): host, port, method and path
    /// are all checked.
    Request,
    /// An intercepted CONNECT tunnel: the requests inside it are logged and checked on their
    /// own, so the tunnel itself needs an edge for its host and port only.
    InterceptedConnect,
    /// Bytes the proxy could not inspect (a passthrough TLS tunnel, raw TCP or UDP): only an
    /// edge that approves any method and any path covers it.
    Opaque,
    /// A DNS lookup: the name must be covered by some edge's host pattern; residency is not
    /// checked because the query goes to the resolver, not to the provider.
    Dns,
}

/// The facts of an observed flow, as the flow log records them.
#[derive(Debug, Clone, Copy)]
pub struct ObservedFlow<'a> {
    /// What kind of flow it is.
    pub kind: ObservedKind,
    /// The normalised destination host.
    pub host: &'a str,
    /// The destination port, when logged.
    pub port: Option<u16>,
    /// The HTTP method, for requests.
    pub method: Option<&'a str>,
    /// The path without query, for requests.
    pub path: Option<&'a str>,
    /// The region the proxy logged for the flow (its `region` field, read with
    /// [`Region::from_field`](crate::Region::from_field) for this flow's host).
    pub region: Option<&'a str>,
    /// The jurisdiction the proxy logged for the flow.
    pub jurisdiction: Option<&'a str>,
}

/// The outcome of matching one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeMatch<'d> {
    /// An approved edge covers the flow, residency included.
    Approved(&'d ApprovedEdge),
    /// An edge covers host, port, method and path, but the flow's region or jurisdiction is
    /// not one the edge allows (or is unknown while the edge restricts it).
    OutsideResidency {
        /// The edge that covers everything but residency.
        edge: &'d ApprovedEdge,
        /// What does not conform, e.g. `region "us-east-1" is not in [EU]`.
        problem: String,
    },
    /// No approved edge covers the flow.
    NoEdge {
        /// An edge for the same host whose method, path or port did not match, if any.
        nearest: Option<&'d ApprovedEdge>,
        /// Why, in one line.
        why: String,
    },
}

/// Case-insensitive (ASCII) glob where `*` matches any run of bytes. Linear in practice
/// (at most pattern × value steps), whatever the number of `*`.
pub fn glob_matches(pattern: &str, value: &str) -> bool {
    let (p, v) = (pattern.as_bytes(), value.as_bytes());
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, vi));
            pi += 1;
        } else if pi < p.len() && p[pi].eq_ignore_ascii_case(&v[vi]) {
            pi += 1;
            vi += 1;
        } else if let Some((star_pi, star_vi)) = star {
            // Let the last `*` swallow one more byte and retry from there.
            pi = star_pi + 1;
            vi = star_vi + 1;
            star = Some((star_pi, star_vi + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// `true` for paths that could mean something other than what they look like to a prefix or
/// wildcard match: dot segments, encoded dots or slashes, backslashes, NUL, empty segments.
fn ambiguous_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains("%2e")
        || lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains("%00")
        || path.contains('\\')
        || path.contains('\0')
        || path.contains("//")
        || path.split('/').any(|s| s == "." || s == "..")
}

/// Matches `path` against a validated path pattern: `*` covers one segment (or part of one),
/// a final `**` covers the rest.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    if pattern == path {
        return true;
    }
    if !pattern.contains('*') || !path.starts_with('/') || ambiguous_path(path) {
        return false;
    }
    let pat: Vec<&str> = pattern.split('/').collect();
    let segs: Vec<&str> = path.split('/').collect();
    for (i, p) in pat.iter().enumerate() {
        if *p == "**" && i == pat.len() - 1 {
            return segs.len() >= i;
        }
        match segs.get(i) {
            Some(s) if glob_matches(p, s) => {}
            _ => return false,
        }
    }
    pat.len() == segs.len()
}

/// The 27 member states of the EU (ISO 3166-1 alpha-2), for `jurisdictions = ["EU"]`.
const EU_MEMBER_STATES: &[&str] = &[
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
];

/// A `jurisdictions` entry: `EU` covers the EU itself and each member state; anything else
/// is a glob.
fn jurisdiction_allowed(entry: &str, jurisdiction: &str) -> bool {
    if entry.eq_ignore_ascii_case("eu") {
        return jurisdiction.eq_ignore_ascii_case("eu")
            || EU_MEMBER_STATES
                .iter()
                .any(|c| c.eq_ignore_ascii_case(jurisdiction));
    }
    glob_matches(entry, jurisdiction)
}

fn residency_problem(edge: &ApprovedEdge, flow: &ObservedFlow<'_>) -> Option<String> {
    let check = |what: &str,
                 allowed: &[String],
                 value: Option<&str>,
                 covers: &dyn Fn(&str, &str) -> bool|
     -> Option<String> {
        if allowed.is_empty() {
            return None;
        }
        match value {
            Some(v) if allowed.iter().any(|a| covers(a, v)) => None,
            Some(v) => Some(format!("{what} \"{v}\" is not in [{}]", allowed.join(", "))),
            None => Some(format!(
                "{what} is unknown but the edge allows only [{}]",
                allowed.join(", ")
            )),
        }
    };
    // A `regions` entry judges the typed region the decision recorded: `EU` covers every
    // region and geography inside the EU, a glob covers a geography only where it covers
    // every region the geography may route to (see `Region::covered_by`).
    let region_allowed = |entry: &str, field: &str| {
        Region::from_field(field, flow.host).covered_by(entry, glob_matches)
    };
    check("region", &edge.regions, flow.region, &region_allowed).or_else(|| {
        check(
            "jurisdiction",
            &edge.jurisdictions,
            flow.jurisdiction,
            &jurisdiction_allowed,
        )
    })
}

impl ApprovedDiagram {
    /// Finds the approved edge for an observed, allowed flow, and checks its residency.
    pub fn match_flow<'d>(&'d self, flow: &ObservedFlow<'_>) -> EdgeMatch<'d> {
        let host_edges: Vec<&ApprovedEdge> = self
            .edges
            .iter()
            .filter(|e| e.host.matches(flow.host))
            .collect();
        if host_edges.is_empty() {
            return EdgeMatch::NoEdge {
                nearest: None,
                why: format!("no approved edge for host {}", flow.host),
            };
        }
        if flow.kind == ObservedKind::Dns {
            return EdgeMatch::Approved(host_edges[0]);
        }
        let port_edges: Vec<&ApprovedEdge> = host_edges
            .iter()
            .copied()
            .filter(|e| flow.port.is_none_or(|p| e.ports.contains(&p)))
            .collect();
        if port_edges.is_empty() {
            return EdgeMatch::NoEdge {
                nearest: Some(host_edges[0]),
                why: format!(
                    "port {} of {} is not approved",
                    flow.port.map_or_else(|| "?".to_string(), |p| p.to_string()),
                    flow.host
                ),
            };
        }
        let covering: Vec<&ApprovedEdge> = port_edges
            .iter()
            .copied()
            .filter(|e| match flow.kind {
                ObservedKind::InterceptedConnect | ObservedKind::Dns => true,
                ObservedKind::Opaque => e.methods.is_none() && e.paths.is_empty(),
                ObservedKind::Request => {
                    let method_ok = match (&e.methods, flow.method) {
                        (None, _) => true,
                        (Some(list), Some(m)) => list.iter().any(|a| a.eq_ignore_ascii_case(m)),
                        (Some(_), None) => false,
                    };
                    let path_ok = e.paths.is_empty()
                        || flow
                            .path
                            .is_some_and(|p| e.paths.iter().any(|pat| path_matches(pat, p)));
                    method_ok && path_ok
                }
            })
            .collect();
        if covering.is_empty() {
            let why = match flow.kind {
                ObservedKind::Opaque => format!(
                    "an uninspected tunnel to {} cannot prove the method and path restrictions of its edge",
                    flow.host
                ),
                _ => format!(
                    "{} {} on {} is not an approved method and path",
                    flow.method.unwrap_or("?"),
                    flow.path.unwrap_or("?"),
                    flow.host
                ),
            };
            return EdgeMatch::NoEdge {
                nearest: Some(port_edges[0]),
                why,
            };
        }
        let mut first_problem = None;
        for edge in &covering {
            match residency_problem(edge, flow) {
                None => return EdgeMatch::Approved(edge),
                Some(problem) => {
                    if first_problem.is_none() {
                        first_problem = Some((*edge, problem));
                    }
                }
            }
        }
        let (edge, problem) = first_problem.expect("covering is not empty");
        EdgeMatch::OutsideResidency { edge, problem }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ApprovedDiagram;
    use super::*;

    const DIAGRAM: &str = include_str!("../tests/fixtures/diagram-match.toml");

    fn diagram() -> ApprovedDiagram {
        ApprovedDiagram::parse(DIAGRAM, "d.toml").unwrap()
    }

    fn request<'a>(
        host: &'a str,
        method: &'a str,
        path: &'a str,
        region: Option<&'a str>,
    ) -> ObservedFlow<'a> {
        ObservedFlow {
            kind: ObservedKind::Request,
            host,
            port: Some(443),
            method: Some(method),
            path: Some(path),
            region,
            jurisdiction: Some("FR"),
        }
    }

    fn approved(m: &EdgeMatch<'_>) -> bool {
        matches!(m, EdgeMatch::Approved(_))
    }

    #[test]
    fn approved_request_matches_its_edge() {
        let d = diagram();
        let m = d.match_flow(&request(
            "api.eu.mistral.ai",
            "POST",
            "/v1/chat/completions",
            Some("EU"),
        ));
        assert!(matches!(m, EdgeMatch::Approved(e) if e.to == "mistral"));
    }

    #[test]
    fn other_method_path_port_or_host_is_no_edge() {
        let d = diagram();
        for flow in [
            request(
                "api.eu.mistral.ai",
                "GET",
                "/v1/chat/completions",
                Some("EU"),
            ),
            request(
                "api.eu.mistral.ai",
                "POST",
                "/v1/chat/completions/x",
                Some("EU"),
            ),
            request("api.mistral.ai", "POST", "/v1/chat/completions", Some("EU")),
            request(
                "api.eu.mistral.ai.evil.example",
                "POST",
                "/v1/chat/completions",
                Some("EU"),
            ),
        ] {
            assert!(
                matches!(d.match_flow(&flow), EdgeMatch::NoEdge { .. }),
                "{flow:?}"
            );
        }
        let mut flow = request(
            "api.eu.mistral.ai",
            "POST",
            "/v1/chat/completions",
            Some("EU"),
        );
        flow.port = Some(8443);
        assert!(
            matches!(d.match_flow(&flow), EdgeMatch::NoEdge { why, .. } if why.contains("port 8443"))
        );
    }

    #[test]
    fn residency_outside_the_edge_is_reported() {
        let d = diagram();
        let m = d.match_flow(&request(
            "api.eu.mistral.ai",
            "POST",
            "/v1/chat/completions",
            Some("US"),
        ));
        assert!(
            matches!(&m, EdgeMatch::OutsideResidency { problem, .. } if problem.contains("\"US\"")),
            "{m:?}"
        );
        let m = d.match_flow(&request(
            "api.eu.mistral.ai",
            "POST",
            "/v1/chat/completions",
            None,
        ));
        assert!(
            matches!(&m, EdgeMatch::OutsideResidency { problem, .. } if problem.contains("unknown")),
            "{m:?}"
        );
        let mut flow = request(
            "api.eu.mistral.ai",
            "POST",
            "/v1/chat/completions",
            Some("eu"),
        );
        flow.jurisdiction = Some("US");
        assert!(matches!(
            d.match_flow(&flow),
            EdgeMatch::OutsideResidency { .. }
        ));
    }

    #[test]
    fn globs() {
        assert!(glob_matches("eu-*", "EU-west-3"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
        assert!(glob_matches("*:rawPredict", "claude:rawPredict"));
        assert!(!glob_matches("*:rawPredict", "claude:rawPredictX"));
        assert!(!glob_matches("eu-*", "us-east-1"));
        assert!(glob_matches("é*", "é1"));
        // Many stars against a long non-matching value stays fast.
        let value = "a".repeat(20_000);
        assert!(!glob_matches("*a*a*a*a*a*a*a*a*b", &value));
    }

    fn region_allowed(entry: &str, region: &str) -> bool {
        Region::from_field(region, "api.example.com").covered_by(entry, glob_matches)
    }

    #[test]
    fn eu_covers_eu_regions_and_member_states_only() {
        assert!(region_allowed("EU", "eu-west-3"));
        assert!(region_allowed("eu", "europe-west4"));
        assert!(region_allowed("EU", "EU"));
        assert!(
            !region_allowed("EU", "eu-west-2"),
            "London is not in the EU"
        );
        assert!(
            !region_allowed("EU", "europe-west6"),
            "Zurich is not in the EU"
        );
        assert!(!region_allowed("EU", "global"));
        assert!(!region_allowed("EU", "us-east-1"));
        assert!(jurisdiction_allowed("EU", "FR"));
        assert!(jurisdiction_allowed("EU", "de"));
        assert!(!jurisdiction_allowed("EU", "US"));
        assert!(!jurisdiction_allowed("EU", "CH"));
        assert!(!jurisdiction_allowed("EU", "GB"));
    }

    #[test]
    fn wildcard_paths_refuse_traversal_and_encodings() {
        let d = diagram();
        let host = "bedrock-runtime.eu-west-3.amazonaws.com";
        assert!(approved(&d.match_flow(&request(
            host,
            "POST",
            "/model/mistral.large/invoke",
            Some("eu-west-3")
        ))));
        assert!(approved(&d.match_flow(&request(
            host,
            "POST",
            "/v2/a/b/c",
            Some("eu-west-3")
        ))));
        assert!(!approved(&d.match_flow(&request(
            host,
            "POST",
            "/model/a/b/invoke",
            Some("eu-west-3")
        ))));
        assert!(!approved(&d.match_flow(&request(
            host,
            "POST",
            "/model/x/invoke",
            Some("us-east-1")
        ))));
        for bad in [
            "/v2/../admin",
            "/v2/%2e%2e/admin",
            "/v2/%2E%2E/admin",
            "/model/..%2fadmin/invoke",
            "/v2/a\\..\\b",
            "/v2//x",
            "/model/./invoke",
        ] {
            assert!(
                !approved(&d.match_flow(&request(host, "POST", bad, Some("eu-west-3")))),
                "{bad}"
            );
        }
    }

    #[test]
    fn connect_dns_and_opaque_tunnels() {
        let d = diagram();
        let mut flow = request("api.eu.mistral.ai", "CONNECT", "", Some("EU"));
        flow.kind = ObservedKind::InterceptedConnect;
        flow.method = None;
        flow.path = None;
        assert!(approved(&d.match_flow(&flow)));
        flow.kind = ObservedKind::Opaque;
        assert!(
            matches!(d.match_flow(&flow), EdgeMatch::NoEdge { why, .. } if why.contains("uninspected"))
        );
        let mut reg = flow;
        reg.host = "static.crates.example";
        reg.region = None;
        assert!(approved(&d.match_flow(&reg)));
        reg.host = "crates.example";
        assert!(!approved(&d.match_flow(&reg)));
        let mut dns = flow;
        dns.kind = ObservedKind::Dns;
        dns.region = None;
        dns.port = None;
        assert!(approved(&d.match_flow(&dns)));
        dns.host = "evil.example";
        assert!(!approved(&d.match_flow(&dns)));
    }
}
