//! `sandbox proxy`: the egress proxy as a standalone gateway.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use proxy::flowlog::{Event, Kind};
use proxy::{ConnectTo, FlowRecord, ProxyConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::json;

use super::check::{load, LoadError};

/// `sandbox proxy`
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Run the TLS-terminating egress proxy on its own: every CONNECT, tunnel and \
request is decided by the contract and logged (hash-chained JSON Lines) before any byte goes \
upstream. Clients must trust the session CA written to --ca-out.\n\n\
Credentials for rules with `inject` are read from this process's environment.\n\n\
Stops on SIGINT or SIGTERM, writing a session_end record.",
    after_help = "Example:\n  sandbox proxy --contract examples/eu-mistral-bedrock.toml --listen 127.0.0.1:8080 \\\n    --log flows.jsonl --ca-out ca.pem\n  curl --proxy http://127.0.0.1:8080 --cacert ca.pem https://api.eu.mistral.ai/v1/chat/completions -d '{}'"
)]
pub struct Args {
    /// The prompt contract.
    #[arg(long, value_name = "C")]
    pub contract: PathBuf,
    /// Where to listen, e.g. 127.0.0.1:8080 (port 0 picks a free port; the address is printed).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// The flow log (appended to; its hash chain is continued).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Write the session CA certificate (PEM) here.
    #[arg(long, value_name = "FILE")]
    pub ca_out: Option<PathBuf>,
    /// Extra trust roots (PEM) for upstream TLS, on top of the system roots.
    #[arg(long, value_name = "PEM")]
    pub upstream_ca: Vec<PathBuf>,
    /// curl's --connect-to: dial ADDR:PORT for HOST:PORT (SNI, Host and policy stay HOST's).
    /// The only way to reach loopback or private addresses.
    #[arg(long, value_name = "HOST:PORT:ADDR:PORT")]
    pub connect_to: Vec<String>,
    /// The workspace the contract's relative paths resolve in [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Worker threads. Each keeps its connections, and the upstream connections they reuse, to
    /// itself. [default: one per core, 2 to 16]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
}

/// Runs the gateway until SIGINT/SIGTERM.
pub fn run(args: Args) -> ExitCode {
    match serve(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sandbox proxy: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn serve(args: Args) -> Result<ExitCode> {
    let policy = match load(&args.contract, args.workspace.as_deref()) {
        Ok(p) => p,
        Err(LoadError::Invalid(e)) => {
            eprintln!("{e}");
            eprintln!("{}: invalid contract", args.contract.display());
            return Ok(ExitCode::from(1));
        }
        Err(LoadError::Usage(e)) => return Err(e),
    };
    let mut config = ProxyConfig::new(Arc::new(policy));
    config.log_path = args.log.clone();
    if let Some(log) = &args.log {
        crate::commands::run::note_recovery(log, "sandbox proxy")?;
    }
    config.limits.workers = args.workers.map_or(0, usize::from);
    for value in &args.connect_to {
        config.connect_to.push(value.parse::<ConnectTo>()?);
    }
    for pem in &args.upstream_ca {
        config.upstream_roots.extend(read_roots(pem)?);
    }
    config.credentials = crate::credentials::load(&config.policy, "sandbox proxy")?;
    let listener =
        proxy::bind(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
    let started = Instant::now();
    let handle = proxy::start(config.clone(), vec![listener]).context("cannot start the proxy")?;
    let local = handle.local_addrs()[0];
    if let Some(path) = &args.ca_out {
        write_atomically(path, handle.ca_cert_pem().as_bytes())
            .with_context(|| format!("cannot write the session CA to {}", path.display()))?;
    }
    let log = handle.flow_log();
    // OpenTelemetry: the contract's `[log] otlp`, else OTEL_EXPORTER_OTLP_ENDPOINT. Registered
    // before session_start so that the collector sees the whole session.
    let otlp = proxy::otlp::OtlpExporter::attach_configured(
        &log,
        config.policy.contract().log.otlp.as_deref(),
        vec![
            ("sandbox.session".into(), handle.session_id().to_string()),
            ("sandbox.contract.sha256".into(), config.policy.sha256()),
        ],
    )
    .context("cannot start the OpenTelemetry exporter")?;
    let mut start = FlowRecord::new(Event::SessionStart, Kind::Session);
    start.detail = Some(session_start_detail(&args, &config, local));
    log.append(start)
        .context("cannot append session_start to the flow log")?;
    let session = handle.session_id().to_string();
    handle
        .wait_for_termination_signal(|| {
            println!("sandbox proxy: listening on {local} (session {session})");
            let _ = std::io::stdout().flush();
        })
        .context("cannot wait for SIGINT/SIGTERM")?;
    let report = handle.shutdown();
    let mut end = FlowRecord::new(Event::SessionEnd, Kind::Session);
    end.duration_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    end.detail = Some(json!({
        "flows": report.stats.flows,
        "allowed": report.stats.allowed,
        "denied": report.stats.denied,
        "connections": report.stats.connections,
        "log_failures": report.stats.log_failures,
    }));
    log.append(end)
        .context("cannot append session_end to the flow log")?;
    log.sync().context("cannot flush the flow log")?;
    if let Some(exporter) = otlp {
        eprintln!(
            "sandbox proxy: {}",
            exporter.finish_blocking(Duration::from_secs(5))
        );
    }
    eprintln!(
        "sandbox proxy: stopped; {} flows ({} allowed, {} denied)",
        report.stats.flows, report.stats.allowed, report.stats.denied
    );
    Ok(ExitCode::SUCCESS)
}

fn read_roots(pem: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pem)
        .with_context(|| format!("cannot read --upstream-ca {}", pem.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "--upstream-ca {} is not a PEM certificate file",
                pem.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!("--upstream-ca {} holds no certificate", pem.display());
    }
    Ok(certs)
}

/// Writes via a temporary file and a rename, so that a reader never sees half a certificate.
fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp-sandbox-proxy");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

/// The `detail` of this gateway's `session_start`: the keys and shapes of `sandbox run`'s
/// (`command` an array, `user` an object, `task_id`, `class`), plus the gateway's own
/// `listen` and `connect_to`.
fn session_start_detail(args: &Args, config: &ProxyConfig, local: SocketAddr) -> serde_json::Value {
    let contract = config.policy.contract();
    json!({
        "contract_path": std::path::absolute(&args.contract).ok().map(|p| p.display().to_string()),
        "contract_sha256": config.policy.sha256(),
        "task_id": contract.task.id,
        "class": contract.task.class.to_string(),
        "command": command_line(std::env::args_os().skip(1)),
        "user": {
            "uid": nix::unistd::getuid().as_raw(),
            "name": std::env::var("USER").unwrap_or_default(),
        },
        "listen": local.to_string(),
        "connect_to": args.connect_to,
    })
}

/// This process's command line as logged: `sandbox` (whatever path started it), then its
/// arguments (not valid UTF-8 is shown lossily).
fn command_line(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<String> {
    std::iter::once("sandbox".to_string())
        .chain(args.into_iter().map(|a| a.to_string_lossy().into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_start_has_the_keys_and_shapes_of_run() {
        let dir = std::env::temp_dir().join(format!("sandbox-proxy-detail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let contract = dir.join("contract.toml");
        std::fs::write(
            &contract,
            "version = 1\n[task]\nid = \"GW-1\"\nclass = \"B\"\nobjective = \"t\"\ndone = []\nrollback = \"none\"\n[files]\nwrite = [\".\"]\n[network]\n",
        )
        .unwrap();
        let policy = match load(&contract, Some(&dir)) {
            Ok(p) => p,
            Err(_) => panic!("the test contract loads"),
        };
        let config = ProxyConfig::new(Arc::new(policy));
        let args = Args {
            contract: contract.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            log: None,
            ca_out: None,
            upstream_ca: Vec::new(),
            connect_to: vec!["a.example:443:127.0.0.1:8443".into()],
            workspace: Some(dir.clone()),
            workers: None,
        };
        let d = session_start_detail(&args, &config, "127.0.0.1:8080".parse().unwrap());
        let mut keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "class",
                "command",
                "connect_to",
                "contract_path",
                "contract_sha256",
                "listen",
                "task_id",
                "user"
            ]
        );
        assert_eq!(d["task_id"], "GW-1");
        assert_eq!(d["class"], "B");
        assert!(
            d["command"].is_array() && d["command"][0] == "sandbox",
            "{d}"
        );
        assert_eq!(d["user"]["uid"], nix::unistd::getuid().as_raw());
        assert!(d["user"]["name"].is_string());
        assert!(d.get("uid").is_none(), "no top-level uid: {d}");
        assert_eq!(d["listen"], "127.0.0.1:8080");
        assert_eq!(d["connect_to"][0], "a.example:443:127.0.0.1:8443");
        assert_eq!(
            command_line(["proxy".into(), "--listen".into(), "127.0.0.1:0".into()]),
            ["sandbox", "proxy", "--listen", "127.0.0.1:0"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
