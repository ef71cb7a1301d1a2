//! `sandbox explain <contract> <METHOD> <URL>`: what the policy would decide for one request.

use std::path::PathBuf;
use std::process::ExitCode;

use egress_policy::url::split_absolute;
use egress_policy::{Decision, Host, Policy, RequestFacts, Target};

use super::check::{load, report_invalid, LoadError};

/// `sandbox explain`
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Decide one request against a contract, exactly as the proxy would (host, port, \
scheme, method, path without the query, ambiguous paths, residency facts in the path, secrets in the URL).\n\n\
Prints `allow` or `deny` on the first line, then the rule, the reason and the region.\n\n\
Exit status: 0 allow, 1 deny, 2 error (invalid contract, bad URL or method).",
    after_help = "Examples:\n  sandbox explain examples/eu-mistral-bedrock.toml POST https://api.eu.mistral.ai/v1/chat/completions\n  sandbox explain contract.toml GET 'https://bedrock-runtime.eu-central-1.amazonaws.com/model/eu.anthropic.claude-sonnet-4-5-20250929-v1:0/converse'"
)]
pub struct Args {
    /// The contract file.
    pub contract: PathBuf,
    /// The HTTP method as sent (case-sensitive: POST, GET, ...).
    pub method: String,
    /// The absolute URL (http:// or https://).
    pub url: String,
    /// The workspace the contract's relative paths resolve in [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

fn print(d: &Decision) {
    println!("{}", if d.is_allowed() { "allow" } else { "deny" });
    println!("rule: {}", d.rule.as_deref().unwrap_or("none"));
    println!("reason: {}", d.reason);
    let mut region = match &d.region {
        Some(r) if d.region_attested => format!("region: {} (attested by the rule)", r.describe()),
        Some(r) => format!("region: {}", r.describe()),
        None => "region: unknown".to_string(),
    };
    if let Some(j) = &d.jurisdiction {
        region.push_str(&format!(", jurisdiction {j}"));
    }
    if let Some(p) = &d.provider {
        region.push_str(&format!(", provider {p}"));
    }
    println!("{region}");
}

/// The decision for one request: the CONNECT gate, the address check for IP literals, then
/// the request itself (unless the tunnel is passed through unopened).
pub fn decide(policy: &Policy, method: &str, url: &str) -> anyhow::Result<Decision> {
    let parts = split_absolute(url)?;
    if method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
    {
        anyhow::bail!("`{method}` is not an HTTP method");
    }
    let connect = policy.decide_connect(Target {
        scheme: parts.scheme,
        host: &parts.host,
        port: parts.port,
    });
    if !connect.is_allowed() {
        return Ok(connect);
    }
    if let Ok(Host::Ip(ip)) = egress_policy::host::normalize_host(&parts.host) {
        let d = policy.decide_addresses(&parts.host, &[ip]);
        if !d.is_allowed() {
            return Ok(d);
        }
    }
    if !connect.intercept {
        let mut d = connect;
        d.reason.push_str("; the request itself is not inspected");
        return Ok(d);
    }
    Ok(policy.decide_request(&RequestFacts {
        method,
        scheme: parts.scheme,
        host: &parts.host,
        port: parts.port,
        path_and_query: &parts.path_and_query,
        headers: &[],
    }))
}

/// Runs `sandbox explain`.
pub fn run(args: Args) -> ExitCode {
    let policy = match load(&args.contract, args.workspace.as_deref()) {
        Ok(p) => p,
        Err(LoadError::Invalid(e)) => {
            report_invalid(&e);
            return ExitCode::from(2);
        }
        Err(LoadError::Usage(e)) => {
            eprintln!("sandbox explain: {e:#}");
            return ExitCode::from(2);
        }
    };
    match decide(&policy, &args.method, &args.url) {
        Ok(d) => {
            print(&d);
            if d.is_allowed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("sandbox explain: {e:#}");
            ExitCode::from(2)
        }
    }
}
