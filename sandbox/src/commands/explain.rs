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
With a body (`--body FILE` or `-d TEXT`), what the proxy checks in request bodies is checked too: \
a git push's ref updates (the raw `git-receive-pack` request), a GitHub GraphQL document or review. \
A request whose body the proxy would check, given without one, is decided on an empty body.\n\n\
Exit status: 0 allow, 1 deny, 2 error (invalid contract, bad URL, method or body file).",
    after_help = "Examples:\n  sandbox explain examples/eu-mistral-bedrock.toml POST https://api.eu.mistral.ai/v1/chat/completions\n  sandbox explain contract.toml GET 'https://bedrock-runtime.eu-central-1.amazonaws.com/model/eu.anthropic.claude-sonnet-4-5-20250929-v1:0/converse'\n  sandbox explain contract.toml POST https://api.github.com/graphql -d '{\"query\":\"mutation { mergePullRequest(input: {pullRequestId: \\\"x\\\"}) { clientMutationId } }\"}'\n  sandbox explain contract.toml POST https://github.com/o/r.git/git-receive-pack --body push.bin"
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
    /// The request body, from a file (`-` for standard input).
    #[arg(long, value_name = "FILE", conflicts_with = "data")]
    pub body: Option<PathBuf>,
    /// The request body, as text.
    #[arg(short = 'd', long = "data", value_name = "TEXT")]
    pub data: Option<String>,
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
pub fn decide(
    policy: &Policy,
    method: &str,
    url: &str,
    body: Option<&[u8]>,
) -> anyhow::Result<Decision> {
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
    let facts = RequestFacts {
        method,
        scheme: parts.scheme,
        host: &parts.host,
        port: parts.port,
        path_and_query: &parts.path_and_query,
        headers: &[],
    };
    let d = policy.decide_request(&facts);
    let Some(check) = d.body_check.clone() else {
        return Ok(d);
    };
    Ok(decide_body(policy, &check, d, body.unwrap_or_default()))
}

/// The request decision `d` refined by the body check the proxy would make.
fn decide_body(
    policy: &Policy,
    check: &egress_policy::forge::BodyCheck,
    mut d: Decision,
    body: &[u8],
) -> Decision {
    use egress_policy::forge::BodyVerdict;
    match policy.decide_body(check, body, true) {
        BodyVerdict::Allow => {
            d.reason.push_str("; the body was checked");
        }
        BodyVerdict::NeedMore => {
            // A complete body never needs more; should the policy say so, it is refused.
            d.verdict = egress_policy::Verdict::Deny;
            d.reason = "the body could not be decided".into();
        }
        BodyVerdict::Deny(why) => {
            d.verdict = egress_policy::Verdict::Deny;
            d.reason = why;
        }
        BodyVerdict::Push { verdicts, .. } => {
            let lines: Vec<String> = verdicts
                .iter()
                .map(|v| {
                    format!(
                        "{} {}: {}",
                        if v.allowed { "allow" } else { "refuse" },
                        v.update.refname,
                        v.why
                    )
                })
                .collect();
            if verdicts.iter().all(|v| v.allowed) {
                d.reason = format!("{}; the push's ref updates: {}", d.reason, lines.join("; "));
            } else {
                d.verdict = egress_policy::Verdict::Deny;
                d.reason = format!("git push refused as a whole: {}", lines.join("; "));
            }
        }
    }
    d
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
    let body = match (&args.body, &args.data) {
        (Some(path), _) if path.as_os_str() == "-" => {
            let mut buf = Vec::new();
            if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf) {
                eprintln!("sandbox explain: cannot read the body from standard input: {e}");
                return ExitCode::from(2);
            }
            Some(buf)
        }
        (Some(path), _) => match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!(
                    "sandbox explain: cannot read the body {}: {e}",
                    path.display()
                );
                return ExitCode::from(2);
            }
        },
        (None, Some(text)) => Some(text.clone().into_bytes()),
        (None, None) => None,
    };
    match decide(&policy, &args.method, &args.url, body.as_deref()) {
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
