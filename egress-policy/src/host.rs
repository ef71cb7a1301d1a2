//! Host names: normalisation (case, trailing dot, IDNA to punycode, IP literals) and the
//! host patterns of `[[network.allow]]` rules.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

/// A destination host after normalisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum Host {
    /// A DNS name: lowercase ASCII (punycode for IDNs), no trailing dot.
    Name(String),
    /// An IP literal (`192.0.2.1`, `[2001:db8::1]` or `2001:db8::1`).
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Why a host string is not a usable host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Empty, or only a dot.
    #[error("the host is empty")]
    Empty,
    /// IDNA (UTS 46) processing failed, or a character is not allowed in a host name.
    #[error("`{0}` is not a valid host name")]
    Invalid(String),
    /// The last label is numeric: some resolvers read `127.1` or `0x7f.1` as an IPv4
    /// address, others as a name. Refused as ambiguous.
    #[error("`{0}` looks like a non-canonical IPv4 address (numeric last label); write the address in dotted-quad form")]
    AmbiguousNumeric(String),
}

/// Normalise a host as a client or a contract wrote it: strip one trailing dot, parse IP
/// literals (brackets optional for IPv6), lowercase and convert IDNs to punycode (UTS 46).
pub fn normalize_host(raw: &str) -> Result<Host, HostError> {
    let trimmed = raw.strip_suffix('.').unwrap_or(raw);
    if trimmed.is_empty() {
        return Err(HostError::Empty);
    }
    if let Some(inner) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|ip| Host::Ip(IpAddr::V6(ip)))
            .map_err(|_| HostError::Invalid(raw.to_string()));
    }
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        if raw.ends_with('.') {
            // `192.0.2.1.` is not an IP literal in any URL parser we know; refuse it.
            return Err(HostError::Invalid(raw.to_string()));
        }
        return Ok(Host::Ip(ip));
    }
    if trimmed.chars().any(is_invisible) {
        // UTS 46 would silently drop it: the name a human reads in a log or a contract
        // would not be the name that is matched.
        return Err(HostError::Invalid(raw.escape_default().to_string()));
    }
    let ascii = idna::domain_to_ascii(trimmed).map_err(|_| HostError::Invalid(raw.to_string()))?;
    if ascii.is_empty() || ascii.len() > 253 {
        return Err(HostError::Invalid(raw.to_string()));
    }
    for label in ascii.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(HostError::Invalid(raw.to_string()));
        }
    }
    let last = ascii.rsplit('.').next().unwrap_or("");
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || (last.starts_with("0x") && last[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    if numeric {
        return Err(HostError::AmbiguousNumeric(raw.to_string()));
    }
    Ok(Host::Name(ascii))
}

/// Default-ignorable and format code points (soft hyphen, zero-width characters, bidi
/// controls, variation selectors, tags ...): invisible, and mapped to nothing or refused by
/// IDNA processing. A host containing one is refused.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}'
        | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFF8}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// The `host` of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum HostPattern {
    /// Exactly this (normalised) name.
    Exact(String),
    /// `*.suffix`: any name with at least one more label in front of `suffix`, never `suffix`
    /// itself. Stored without the `*.`.
    Wildcard(String),
    /// An IP literal: matches only a destination written as this same address, never a name
    /// that resolves to it.
    Ip(IpAddr),
}

/// Suffixes under which a wildcard would cover unrelated owners (public suffixes with two
/// labels). Not a full public-suffix list: a wildcard needs at least two labels after `*.`,
/// and these common two-label public suffixes are refused too.
const PUBLIC_SUFFIXES: &[&str] = &[
    "co.uk",
    "org.uk",
    "ac.uk",
    "gov.uk",
    "com.au",
    "net.au",
    "org.au",
    "co.jp",
    "ne.jp",
    "or.jp",
    "com.br",
    "com.cn",
    "com.mx",
    "co.nz",
    "co.in",
    "co.za",
    "com.tr",
    "com.tw",
    "github.io",
    "gitlab.io",
    "herokuapp.com",
    "pages.dev",
    "workers.dev",
    "vercel.app",
    "netlify.app",
    "appspot.com",
    "cloudfront.net",
    "azurewebsites.net",
    "amazonaws.com",
    "googleapis.com",
    "blob.core.windows.net",
    "s3.amazonaws.com",
];

/// Cloud domains under which anyone can create names (buckets, functions, gateways, apps,
/// pages): a wildcard at *or below* them (`*.eu-central-1.amazonaws.com` covers
/// `attacker-bucket.s3.eu-central-1.amazonaws.com`) reaches other tenants.
const MULTI_TENANT: &[&str] = &[
    "amazonaws.com",
    "on.aws",
    "cloudfront.net",
    "googleapis.com",
    "appspot.com",
    "run.app",
    "cloudfunctions.net",
    "web.app",
    "firebaseapp.com",
    "core.windows.net",
    "azurewebsites.net",
    "azurestaticapps.net",
    "azure-api.net",
    "azureedge.net",
    "cloudapp.net",
    "cloudapp.azure.com",
    "trafficmanager.net",
    "github.io",
    "githubusercontent.com",
    "gitlab.io",
    "herokuapp.com",
    "pages.dev",
    "workers.dev",
    "r2.dev",
    "vercel.app",
    "netlify.app",
    "fly.dev",
    "onrender.com",
    "ngrok.io",
    "ngrok-free.app",
    "hf.space",
];

impl HostPattern {
    /// Parse a contract's `host` value. Refuses `*`, `*.com`, `a*.b`, `*.co.uk` and the like.
    pub fn parse(raw: &str) -> Result<HostPattern, String> {
        if let Some(rest) = raw.strip_prefix("*.") {
            if rest.contains('*') {
                return Err(format!("`{raw}`: only one leading `*.` is allowed"));
            }
            let host = normalize_host(rest).map_err(|e| e.to_string())?;
            return match host {
                Host::Ip(_) => Err(format!("`{raw}`: a wildcard cannot precede an IP address")),
                Host::Name(n) => {
                    if !n.contains('.') {
                        Err(format!(
                            "`{raw}` would match every name under a top-level domain; name at least two labels after `*.` (e.g. `*.example.com`)"
                        ))
                    } else if PUBLIC_SUFFIXES.contains(&n.as_str()) {
                        Err(format!(
                            "`{raw}` would match names of unrelated owners (`{n}` is a public suffix); name the exact hosts"
                        ))
                    } else if let Some(shared) = MULTI_TENANT
                        .iter()
                        .find(|m| n == **m || n.ends_with(&format!(".{m}")))
                    {
                        Err(format!(
                            "`{raw}` would match names that anyone can create under `{shared}` (buckets, functions, apps of other tenants); name the exact hosts"
                        ))
                    } else {
                        Ok(HostPattern::Wildcard(n))
                    }
                }
            };
        }
        if raw.contains('*') {
            return Err(format!(
                "`{raw}`: `*` is only allowed as a whole leading label (`*.example.com`)"
            ));
        }
        if raw.contains(':') && !raw.starts_with('[') && raw.parse::<IpAddr>().is_err() {
            return Err(format!(
                "`{raw}`: write the port in `port = ...`, not in `host`"
            ));
        }
        match normalize_host(raw).map_err(|e| e.to_string())? {
            Host::Name(n) => Ok(HostPattern::Exact(n)),
            Host::Ip(ip) => Ok(HostPattern::Ip(ip)),
        }
    }

    /// Does this pattern match the normalised host?
    pub fn matches(&self, host: &Host) -> bool {
        match (self, host) {
            (HostPattern::Exact(p), Host::Name(n)) => p == n,
            (HostPattern::Wildcard(suffix), Host::Name(n)) => n
                .strip_suffix(suffix.as_str())
                .is_some_and(|front| front.len() > 1 && front.ends_with('.')),
            (HostPattern::Ip(p), Host::Ip(ip)) => canonical_ip(*p) == canonical_ip(*ip),
            _ => false,
        }
    }

    /// `true` for `*.` patterns.
    pub fn is_wildcard(&self) -> bool {
        matches!(self, HostPattern::Wildcard(_))
    }

    /// Could this pattern match every host that `other` matches?
    pub fn covers(&self, other: &HostPattern) -> bool {
        match other {
            HostPattern::Exact(n) => self.matches(&Host::Name(n.clone())),
            HostPattern::Ip(ip) => self.matches(&Host::Ip(*ip)),
            HostPattern::Wildcard(s) => match self {
                HostPattern::Wildcard(mine) => s == mine || s.ends_with(&format!(".{mine}")),
                _ => false,
            },
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(n) => f.write_str(n),
            HostPattern::Wildcard(s) => write!(f, "*.{s}"),
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            HostPattern::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// IPv4-mapped IPv6 addresses compare equal to their IPv4 address.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Host {
        normalize_host(s).unwrap()
    }

    #[test]
    fn names_are_lowercased_without_trailing_dot() {
        assert_eq!(
            name("API.Eu.Mistral.AI."),
            Host::Name("api.eu.mistral.ai".into())
        );
        assert_eq!(normalize_host("."), Err(HostError::Empty));
        assert_eq!(normalize_host(""), Err(HostError::Empty));
        assert!(normalize_host("a..b").is_err());
        assert!(normalize_host("example.com..").is_err());
    }

    #[test]
    fn idna_is_converted_to_punycode() {
        assert_eq!(
            name("bücher.example"),
            Host::Name("xn--bcher-kva.example".into())
        );
        assert_eq!(
            name("BÜCHER.example"),
            Host::Name("xn--bcher-kva.example".into())
        );
        // fullwidth letters fold to ASCII under UTS 46
        assert_eq!(name("ａｐｉ.example"), Host::Name("api.example".into()));
    }

    #[test]
    fn bad_characters_are_refused() {
        for bad in [
            "a b.example",
            "a/b.example",
            "a_b.example",
            "-a.example",
            "a@b.example",
            "a%2eb.example",
        ] {
            assert!(normalize_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ip_literals_are_parsed_and_numeric_names_refused() {
        assert_eq!(name("192.0.2.1"), Host::Ip("192.0.2.1".parse().unwrap()));
        assert_eq!(
            name("[2001:db8::1]"),
            Host::Ip("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            name("2001:DB8::1"),
            Host::Ip("2001:db8::1".parse().unwrap())
        );
        for ambiguous in [
            "127.1",
            "0x7f.0.0.1",
            "2130706433",
            "1.2.3.4.5",
            "example.0x10",
        ] {
            assert!(
                matches!(
                    normalize_host(ambiguous),
                    Err(HostError::AmbiguousNumeric(_))
                ),
                "{ambiguous}"
            );
        }
        assert!(normalize_host("192.0.2.1.").is_err());
    }

    #[test]
    fn wildcard_matches_subdomains_at_any_depth_but_not_the_apex() {
        let p = HostPattern::parse("*.Example.COM").unwrap();
        assert!(p.matches(&name("a.example.com")));
        assert!(p.matches(&name("a.b.example.com")));
        assert!(p.matches(&name("A.EXAMPLE.COM.")));
        assert!(!p.matches(&name("example.com")));
        assert!(!p.matches(&name("badexample.com")));
        assert!(!p.matches(&name("example.com.evil.example")));
    }

    #[test]
    fn exact_patterns_match_only_the_name() {
        let p = HostPattern::parse("api.eu.mistral.ai").unwrap();
        assert!(p.matches(&name("API.EU.MISTRAL.AI.")));
        assert!(!p.matches(&name("x.api.eu.mistral.ai")));
        assert!(!p.matches(&name("api.eu.mistral.ai.evil.example")));
        let idn = HostPattern::parse("bücher.example").unwrap();
        assert!(idn.matches(&name("xn--bcher-kva.example")));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "*",
            "*.",
            "*.com",
            "a*.b.com",
            "*.*.example.com",
            "api.*.com",
            "*.co.uk",
            "*.amazonaws.com",
            "*.192.0.2.1",
            "example.com:443",
            "",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ip_patterns_match_only_literally() {
        let p = HostPattern::parse("192.0.2.7").unwrap();
        assert!(p.matches(&Host::Ip("192.0.2.7".parse().unwrap())));
        assert!(p.matches(&Host::Ip("::ffff:192.0.2.7".parse().unwrap())));
        assert!(!p.matches(&Host::Ip("192.0.2.8".parse().unwrap())));
        assert!(!p.matches(&name("host.example")));
        let v6 = HostPattern::parse("[2001:db8::7]").unwrap();
        assert!(v6.matches(&name("[2001:DB8:0::7]")));
        // a name pattern never matches an IP destination
        assert!(!HostPattern::parse("api.example.com")
            .unwrap()
            .matches(&Host::Ip("192.0.2.7".parse().unwrap())));
    }

    #[test]
    fn covers_detects_overlap() {
        let w = HostPattern::parse("*.example.com").unwrap();
        assert!(w.covers(&HostPattern::parse("a.example.com").unwrap()));
        assert!(w.covers(&HostPattern::parse("*.a.example.com").unwrap()));
        assert!(!w.covers(&HostPattern::parse("example.com").unwrap()));
    }
}
