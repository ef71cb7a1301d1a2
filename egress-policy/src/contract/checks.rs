//! Validation rules the reader applies to single values: OTLP endpoints, environment names,
//! sensitive-looking variables, addresses a rule may never name, and the EU alternative to
//! suggest for a provider.

pub(super) fn eu_alternative(provider: &str) -> String {
    match provider {
        "OpenAI" | "OpenAI data residency" => "use `eu.api.openai.com` with an EU data-residency project".into(),
        "Mistral" => "use `api.eu.mistral.ai`".into(),
        "AWS Bedrock" | "AWS Bedrock (OpenAI-compatible)" => "use an EU region such as eu-central-1, eu-west-1, eu-west-3 or eu-north-1".into(),
        "Google Vertex AI" => "use a regional EU endpoint such as `europe-west4-aiplatform.googleapis.com` or `aiplatform.eu.rep.googleapis.com`".into(),
        "Anthropic" => "Anthropic's API has no EU inference option: reach Claude through Bedrock in an EU region (`eu.` profile) or Vertex in an EU region".into(),
        "OpenRouter" => "eu.openrouter.ai routes to UK and Swiss providers too; it is not EU-only".into(),
        _ => "remove the rule, or use a provider endpoint inside the EU".into(),
    }
}

pub(super) fn parse_int(s: &str, radix: u32) -> Option<i64> {
    let cleaned: String = s.chars().filter(|c| *c != '_').collect();
    let digits = match radix {
        16 => cleaned.trim_start_matches("0x"),
        8 => cleaned.trim_start_matches("0o"),
        2 => cleaned.trim_start_matches("0b"),
        _ => cleaned.as_str(),
    };
    i64::from_str_radix(digits, radix).ok()
}

/// Addresses that `decide_addresses` never dials (metadata, loopback, link-local, ...).
pub(super) fn never_dialled(ip: std::net::IpAddr) -> bool {
    use crate::addr::AddrClass;
    crate::addr::is_metadata(ip)
        || matches!(
            crate::addr::classify(ip),
            AddrClass::Loopback
                | AddrClass::LinkLocal
                | AddrClass::Unspecified
                | AddrClass::Multicast
                | AddrClass::Broadcast
        )
}

/// Private (RFC 1918, fc00::/7, fec0::/10) and CGNAT addresses: reachable only through the
/// operator's `--connect-to`, never through a contract rule (issue 3).
pub(super) fn is_internal(ip: std::net::IpAddr) -> bool {
    use crate::addr::AddrClass;
    matches!(
        crate::addr::classify(ip),
        AddrClass::Private | AddrClass::Cgnat
    )
}

pub(super) fn valid_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

pub(super) fn looks_sensitive(name: &str) -> bool {
    let u = name.to_ascii_uppercase();
    [
        "KEY",
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "AUTH",
        "COOKIE",
        "SESSION",
    ]
    .iter()
    .any(|w| u.contains(w))
}

pub(super) fn validate_otlp(u: &str) -> Result<(), &'static str> {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .ok_or("the scheme must be http or https")?;
    let authority = rest.split('/').next().unwrap_or("");
    if rest.contains('?') || rest.contains('#') {
        return Err("no query or fragment");
    }
    if authority.contains('@') {
        return Err("no user information");
    }
    let (host, port) = if let Some(end) = authority.strip_prefix('[').and_then(|a| a.find(']')) {
        let host = &authority[..end + 2];
        (host, authority[end + 2..].strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    crate::host::normalize_host(host).map_err(|_| "the host is not valid")?;
    if let Some(p) = port {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or("the port is not valid")?;
    }
    Ok(())
}

/// `true` for an AWS region name (`eu-central-1`, `us-gov-west-1`, `ap-southeast-2`).
pub(super) fn is_aws_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// The AWS region named by a label of `host` (`bedrock-runtime.eu-central-1.amazonaws.com`),
/// for SigV4's signing scope; the first such label counts.
pub(crate) fn aws_region_of_host(host: &str) -> Option<String> {
    if !host.ends_with(".amazonaws.com") && !host.ends_with(".api.aws") {
        return None;
    }
    host.split('.')
        .find(|l| is_aws_region(l))
        .map(str::to_string)
}
