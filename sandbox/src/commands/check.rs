//! `sandbox check <contract>`: validate a prompt contract and summarise what it allows.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use egress_policy::{
    ContractError, Diagnostic, Location, PathContext, Policy, Protocol, Rule, Scheme,
};
use serde_json::{json, Value};

/// `sandbox check`
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Validate a prompt contract (TOML, version = 1) and print what it allows: the task \
and its scope class; what is readable, writable and denied; each network endpoint with its region \
and jurisdiction; and warnings.\n\nEvery problem is reported as FILE:LINE:COL with the key and a hint.\n\n\
Exit status: 0 the contract is valid, 1 it is invalid, 2 usage error (bad arguments, unreadable file).",
    after_help = "Examples:\n  sandbox check examples/eu-mistral-bedrock.toml\n  sandbox check --workspace ~/src/client contract.toml\n  sandbox check --json contract.toml | jq .endpoints"
)]
pub struct Args {
    /// The contract file.
    pub contract: PathBuf,
    /// Print the summary (or the errors) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// The workspace the contract's relative paths resolve in [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

/// Why a contract could not be turned into a policy.
pub enum LoadError {
    /// The contract was read but is invalid.
    Invalid(ContractError),
    /// The contract could not be read, or the environment is unusable (exit 2).
    Usage(anyhow::Error),
}

/// The workspace and home a contract resolves against: `--workspace` (or the current
/// directory), made absolute, and `$HOME`.
pub fn path_context(workspace: Option<&Path>) -> anyhow::Result<PathContext> {
    let cwd = std::env::current_dir().context("cannot determine the current directory")?;
    let workspace = match workspace {
        Some(w) => std::path::absolute(w)
            .with_context(|| format!("cannot make {} absolute", w.display()))?,
        None => cwd,
    };
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .ok_or_else(|| {
            anyhow!(
                "$HOME is unset or not absolute: `~` in the contract cannot be resolved; set HOME"
            )
        })?;
    Ok(PathContext { workspace, home })
}

/// Read and validate a contract file.
pub fn load(contract: &Path, workspace: Option<&Path>) -> Result<Policy, LoadError> {
    let ctx = path_context(workspace).map_err(LoadError::Usage)?;
    let bytes = std::fs::read(contract)
        .with_context(|| format!("cannot read the contract {}", contract.display()))
        .map_err(LoadError::Usage)?;
    let origin = contract.display().to_string();
    let source = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let text = String::from_utf8_lossy(valid);
        LoadError::Invalid(ContractError {
            diagnostics: vec![Diagnostic {
                origin: origin.clone(),
                location: Location::of_offset(&text, text.len()),
                key: String::new(),
                message: "the contract is not valid UTF-8".into(),
                hint: Some("save the file as UTF-8 (TOML requires it)".into()),
            }],
        })
    })?;
    Policy::parse(&source, &origin, &ctx).map_err(LoadError::Invalid)
}

fn scheme_name(s: Scheme) -> &'static str {
    match s {
        Scheme::Http => "http",
        Scheme::Https => "https",
    }
}

/// Region, jurisdiction and provider of a rule, as far as they are known before a request.
fn rule_region(rule: &Rule) -> (String, bool, Option<String>, Option<String>) {
    match &rule.placement {
        Some(p) if p.region.is_some() => (
            p.region
                .as_ref()
                .map_or(String::new(), |r| r.field().to_string()),
            false,
            Some(p.jurisdiction.to_string()),
            Some(p.provider.to_string()),
        ),
        p => match &rule.region {
            Some(r) => (
                r.clone(),
                true,
                p.as_ref().map(|p| p.jurisdiction.to_string()),
                p.as_ref().map(|p| p.provider.to_string()),
            ),
            None if rule.host.is_wildcard() => ("per host (catalog)".into(), false, None, None),
            None => (
                "unknown".into(),
                false,
                p.as_ref().map(|p| p.jurisdiction.to_string()),
                p.as_ref().map(|p| p.provider.to_string()),
            ),
        },
    }
}

fn endpoint_json(rule: &Rule) -> Value {
    let (region, attested, jurisdiction, provider) = rule_region(rule);
    json!({
        "name": rule.name,
        "host": rule.host.to_string(),
        "port": rule.port,
        "protocol": rule.protocol,
        "schemes": rule.schemes,
        "methods": rule.methods,
        "paths": rule.paths,
        "intercept": rule.intercept,
        "inject": rule.inject,
        "region": region,
        "region_attested": attested,
        "jurisdiction": jurisdiction,
        "provider": provider,
    })
}

/// The whole summary as JSON.
pub fn summary_json(policy: &Policy, origin: &Path) -> Value {
    let c = policy.contract();
    let plan = policy.file_plan();
    json!({
        "valid": true,
        "contract": origin.display().to_string(),
        "sha256": policy.sha256(),
        "task": c.task,
        "class": c.task.class,
        "class_description": c.task.class.describe(),
        "workspace": policy.path_context().workspace,
        "files": {
            "readable": plan.read,
            "writable": plan.write,
            "denied": plan.deny,
            "protected_patterns": plan.protected_patterns,
            "protected_paths": plan.protected_paths,
        },
        "residency": c.network.residency,
        "endpoints": c.network.allow.iter().map(endpoint_json).collect::<Vec<_>>(),
        "env_pass": c.env.pass,
        "log": c.log,
        "secrets": c.secrets.action,
        "git": c.git,
        "sockets": c.sockets,
        "limits": c.limits,
        "agent": c.agent,
        "warnings": policy.warnings(),
    })
}

fn list(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        "(none)".into()
    } else {
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The human summary.
pub fn summary_text(policy: &Policy, origin: &Path) -> String {
    let c = policy.contract();
    let plan = policy.file_plan();
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!(
        "{}: valid (sha256 {})",
        origin.display(),
        policy.sha256()
    ));
    line(format!(
        "task {}: class {} ({})",
        c.task.id,
        c.task.class,
        c.task.class.describe()
    ));
    line(format!("  objective: {}", c.task.objective));
    if !c.task.done.is_empty() {
        line(format!("  done when: {}", c.task.done.join(" && ")));
    }
    if let Some(r) = &c.task.rollback {
        line(format!("  rollback: {r}"));
    }
    if let (Some(a), Some(t)) = (&c.task.approved_by, &c.task.ticket) {
        line(format!("  approved by {a}, ticket {t}"));
    }
    line(format!(
        "files (workspace {}):",
        policy.path_context().workspace.display()
    ));
    line(format!("  readable: {}", list(&plan.read)));
    line(format!("  writable: {}", list(&plan.write)));
    let contract_deny: Vec<PathBuf> = c.files.deny.iter().map(|g| g.path.clone()).collect();
    line(format!("  denied:   {}", list(&contract_deny)));
    line(format!("  always denied: {} credential stores and runtime sockets (e.g. ~/.ssh, ~/.aws, docker.sock)", plan.deny.len() - contract_deny.len()));
    let protected: Vec<&str> = egress_policy::files::PROTECTED_PATTERNS
        .iter()
        .map(|p| p.pattern)
        .collect();
    line(format!(
        "  read-only wherever they appear: {}",
        protected.join(", ")
    ));
    line(format!(
        "  also protected: {} and {}",
        egress_policy::planted::GIT_POINTER.pattern,
        egress_policy::planted::GIT_DIR_PARTS
            .iter()
            .map(|p| p.pattern)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    line("  protected paths the agent creates are moved aside as they appear".into());
    line(format!(
        "  read-only in $HOME: {}",
        egress_policy::files::PROTECTED_HOME.join(", ")
    ));
    if c.sockets.unix_sockets_needed() {
        line(format!(
            "unix sockets: the agent may create them{}; host sockets it may connect to: {}; other host sockets in writable trees are covered at the start",
            if c.sockets.internal { " ([sockets] internal)" } else { "" },
            list(&c.sockets.connect)
        ));
    } else {
        line(
            "unix sockets: none (the agent cannot create one, so no host socket is reachable)"
                .into(),
        );
    }
    let limits = crate::jail::limits::resolve(&c.limits);
    line(format!("limits: {}", limits.describe()));
    if let Some(a) = &c.agent {
        if let Some(p) = egress_policy::agents::preset(&a.name) {
            line(format!(
                "agent preset: {} ({}) on {}: {}; it adds no network rule (the rules below are the contract's)",
                p.cli,
                p.name,
                a.provider.name(),
                egress_policy::agents::describe_setup(p, a.provider, c.network.residency.is_some())
            ));
        }
    }
    match c.network.residency {
        Some(_) => line("network (residency EU; everything else denied):".into()),
        None => line("network (no residency requirement; everything else denied):".into()),
    }
    if c.network.allow.is_empty() {
        line("  (no endpoint)".into());
    }
    for rule in &c.network.allow {
        let (region, attested, jurisdiction, provider) = rule_region(rule);
        let target = match rule.protocol {
            Protocol::Tcp => format!("tcp://{}:{}", rule.host, rule.port),
            Protocol::Http => {
                let schemes: Vec<&str> = rule.schemes.iter().map(|s| scheme_name(*s)).collect();
                format!("{}://{}:{}", schemes.join("+"), rule.host, rule.port)
            }
        };
        line(format!("  {}: {target}", rule.name));
        if rule.protocol == Protocol::Http {
            let methods = rule
                .methods
                .as_ref()
                .map_or("any method".to_string(), |m| m.join(", "));
            let paths = if rule.paths.is_empty() {
                "any path".to_string()
            } else {
                rule.paths
                    .iter()
                    .map(|p| p.source.as_str())
                    .collect::<Vec<_>>()
                    .join(" | ")
            };
            line(format!("    {methods}; {paths}"));
        }
        let how = match (rule.protocol, rule.intercept) {
            (Protocol::Tcp, _) => "raw TCP, spliced after the host:port check",
            (_, false) => "TLS passthrough after the SNI check (requests not inspected)",
            (_, true) => "TLS intercepted, each request decided",
        };
        line(format!("    {how}"));
        let mut wher = format!(
            "    region {region}{}",
            if attested {
                " (attested by the rule)"
            } else {
                ""
            }
        );
        if let Some(j) = jurisdiction {
            wher.push_str(&format!(", jurisdiction {j}"));
        }
        if let Some(p) = provider {
            wher.push_str(&format!(", provider {p}"));
        }
        line(wher);
        if let Some(i) = &rule.inject {
            line(format!(
                "    {} (the agent never holds it)",
                describe_inject(i)
            ));
        }
    }
    if !c.env.pass.is_empty() {
        line(format!("environment passed in: {}", c.env.pass.join(", ")));
    }
    if let Some(p) = &c.log.path {
        line(format!("flow log: {}", p.display()));
    }
    if let Some(o) = &c.log.otlp {
        line(format!("OTLP export: {o}"));
    }
    line(format!(
        "secrets in outbound URLs: {}",
        match c.secrets.action {
            egress_policy::SecretAction::Block => "blocked",
            egress_policy::SecretAction::Log => "logged, not blocked",
        }
    ));
    line(format!(
        "git over HTTPS (any allowed host): push only to {}; fetch {}; merging, approving and protection changes on GitHub refused{}",
        if c.git.push.is_empty() {
            "(no ref: no push)".to_string()
        } else {
            c.git.push.join(", ")
        },
        if c.git.fetch { "allowed" } else { "refused" },
        if c.git.unchecked_ssh { "; SSH git accepted UNCHECKED" } else { "" }
    ));
    let warnings = policy.warnings();
    if warnings.is_empty() {
        line("warnings: none".into());
    } else {
        line(format!("warnings ({}):", warnings.len()));
        for w in warnings {
            line(format!("  warning: {w}"));
        }
    }
    s
}

/// Print a contract's errors on stderr: every diagnostic with `file:line:col`, the key and a hint.
pub fn report_invalid(e: &ContractError) {
    eprintln!("{e}");
    let origin = e
        .diagnostics
        .first()
        .map_or("the contract", |d| d.origin.as_str());
    eprintln!("{origin}: invalid contract");
}

/// Print a contract's errors as JSON on stdout.
fn report_invalid_json(e: &ContractError, origin: &Path) {
    let v = json!({ "valid": false, "contract": origin.display().to_string(), "errors": e.diagnostics });
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
}

/// Runs `sandbox check`.
pub fn run(args: Args) -> ExitCode {
    match load(&args.contract, args.workspace.as_deref()) {
        Ok(policy) => {
            let out = if args.json {
                serde_json::to_string_pretty(&summary_json(&policy, &args.contract))
                    .unwrap_or_default()
                    + "\n"
            } else {
                summary_text(&policy, &args.contract)
            };
            let _ = std::io::stdout().write_all(out.as_bytes());
            ExitCode::SUCCESS
        }
        Err(LoadError::Invalid(e)) => {
            if args.json {
                report_invalid_json(&e, &args.contract);
            } else {
                report_invalid(&e);
            }
            ExitCode::from(1)
        }
        Err(LoadError::Usage(e)) => {
            eprintln!("sandbox check: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// One line on what a rule's `inject` does, for `check`.
fn describe_inject(i: &egress_policy::Inject) -> String {
    use egress_policy::Inject;
    match i {
        Inject::Header { header, env } => format!("injects ${env} into the `{header}` header"),
        Inject::Bearer { env } => format!("injects `Authorization: Bearer ${env}`"),
        Inject::AzureApiKey { env } => format!("injects ${env} into Azure's `api-key` header"),
        Inject::AwsSigv4 {
            service,
            region,
            profile,
        } => format!(
            "signs each request with AWS SigV4 (service {service}, region {}) using {}",
            region.as_deref().unwrap_or("from the host"),
            match profile {
                Some(p) => format!("AWS profile `{p}` of the host"),
                None =>
                    "the host's AWS credentials (AWS_ACCESS_KEY_ID, else AWS_PROFILE or default)"
                        .into(),
            }
        ),
        Inject::GoogleOauth { credentials, .. } => format!(
            "sends Google OAuth access tokens the supervisor mints from {}",
            match credentials {
                Some(p) => p.display().to_string(),
                None => "GOOGLE_APPLICATION_CREDENTIALS, else the application default credentials"
                    .into(),
            }
        ),
    }
}
