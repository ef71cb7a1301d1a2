//! DNS decisions for the sandbox's own resolver (transparent capture, issue 6).
//!
//! The resolver inside the sandbox never forwards a query: it answers an allowed name with a
//! synthetic address that routes back into the capture, and every other name with NXDOMAIN.
//! This module decides which names are "allowed": a name is answered only when some rule
//! would let a connection to it through ([`Policy::decide_connect`] on the rule's own port),
//! so a name the contract could never allow is refused before any other lookup happens.

use crate::decision::{Decision, Scheme, Target, Verdict};
use crate::host::{normalize_host, Host};
use crate::policy::Policy;

/// The query types the resolver answers with an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressType {
    /// `A` (IPv4).
    V4,
    /// `AAAA` (IPv6).
    V6,
}

/// Decides whether the resolver may answer `qname` (as the client sent it: any case, maybe a
/// trailing dot). Allowed when at least one rule naming the host would allow a connection to
/// it on that rule's port; the decision of the first such rule is returned. IP literals and
/// invalid names are denied: there is nothing to resolve, and an IP-looking query is either a
/// mistake or a probe.
pub fn decide_name(policy: &Policy, qname: &str) -> Decision {
    let host = match normalize_host(qname) {
        Ok(Host::Name(n)) => Host::Name(n),
        Ok(Host::Ip(ip)) => {
            return deny(format!(
                "`{ip}` is an IP literal, not a name; the sandbox resolver answers only names a rule allows"
            ))
        }
        Err(e) => return deny(format!("invalid DNS name: {e}")),
    };
    let mut first_denial: Option<Decision> = None;
    for rule in &policy.contract().network.allow {
        if !rule.host.matches(&host) {
            continue;
        }
        let scheme = rule.schemes.first().copied().unwrap_or(Scheme::Https);
        let d = policy.decide_connect(Target {
            scheme,
            host: qname,
            port: rule.port,
        });
        if d.is_allowed() {
            return Decision {
                reason: format!(
                    "{host} may be resolved: rule `{}` allows it on port {} (synthetic address; the proxy resolves the real one)",
                    rule.name, rule.port
                ),
                ..d
            };
        }
        first_denial.get_or_insert(d);
    }
    first_denial.unwrap_or_else(|| {
        deny(format!(
            "no rule allows {host} on any port (deny by default); NXDOMAIN"
        ))
    })
}

fn deny(reason: String) -> Decision {
    Decision {
        verdict: Verdict::Deny,
        rule: None,
        reason,
        region: None,
        jurisdiction: None,
        provider: None,
        region_attested: false,
        intercept: true,
        body_check: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::PathContext;
    use std::path::PathBuf;

    fn policy(src: &str) -> Policy {
        let ctx = PathContext {
            workspace: PathBuf::from("/work/ws"),
            home: PathBuf::from("/home/u"),
        };
        Policy::parse(src, "test.toml", &ctx).expect("valid contract")
    }

    const CONTRACT: &str = include_str!("../tests/fixtures/contract-dns.toml");

    #[test]
    fn allowed_names_any_case_and_trailing_dot() {
        let p = policy(CONTRACT);
        for q in ["api.eu.mistral.ai", "API.EU.Mistral.AI.", "git.example.eu"] {
            let d = decide_name(&p, q);
            assert!(d.is_allowed(), "{q}: {}", d.reason);
        }
        assert_eq!(
            decide_name(&p, "git.example.eu").rule.as_deref(),
            Some("git-ssh")
        );
    }

    #[test]
    fn names_no_rule_allows_are_denied() {
        let p = policy(CONTRACT);
        for q in [
            "blocked.example",
            "api.eu.mistral.ai.attacker.example",
            "x.api.eu.mistral.ai",
            "mistral.ai",
            // data smuggled in labels never matches an exact rule
            "aGVsbG8gd29ybGQ.api.eu.mistral.ai",
            "",
            ".",
            "192.0.2.1",
            "::1",
            "a..b",
            // a homograph (Cyrillic а) is punycode, not the allowed name
            "\u{430}pi.eu.mistral.ai",
            "api.eu.mistral.ai..",
            // what the resolver's wire parser makes of binary labels
            "api\\000.eu.mistral.ai",
            "api.eu.mistral.ai\\046attacker.example",
            "api eu.mistral.ai",
        ] {
            let d = decide_name(&p, q);
            assert_eq!(d.verdict, Verdict::Deny, "{q} must be denied");
        }
    }

    #[test]
    fn a_secret_in_a_label_is_denied_even_under_a_wildcard() {
        let p = policy(
            r#"
version = 1
[task]
id = "t"
class = "B"
objective = "test"
[[network.allow]]
name = "wild"
host = "*.example.com"
region = "eu-west-1"
"#,
        );
        assert!(decide_name(&p, "ok.example.com").is_allowed());
        let d = decide_name(&p, "AKIAIOSFODNN7EXAMPLE.example.com");
        assert_eq!(d.verdict, Verdict::Deny, "{}", d.reason);
    }
}
