//! The egress side of a `sandbox run` session: the proxy started on the listener the sandbox
//! bound, and the `session_start` / `session_end` records in the same hash chain as the flows.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use egress_policy::Policy;
use proxy::flowlog::{Event, Kind};
use proxy::{ConnectTo, FlowLog, FlowRecord, ProxyConfig, ProxyHandle};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::json;

use crate::jail::checks::CheckRun;
use crate::jail::probe;
use crate::jail::quarantine::Quarantined;

/// What `session_start` records about the sandbox.
#[derive(Debug, Clone)]
pub struct SessionFacts {
    /// The contract file, canonical (`None` for the built-in default).
    pub contract_path: Option<PathBuf>,
    /// SHA-256 of the contract's bytes.
    pub contract_sha256: String,
    /// The contract's task id.
    pub task_id: String,
    /// The contract's scope class (A, B, C).
    pub class: String,
    /// The agent's command line.
    pub command: Vec<String>,
    /// The invoking uid.
    pub uid: u32,
    /// The workspace.
    pub workspace: PathBuf,
    /// The kernel's Landlock ABI.
    pub landlock_abi: i32,
    /// `--best-effort` was given.
    pub best_effort: bool,
    /// Deny paths covered by mounts.
    pub covered_deny_paths: Vec<PathBuf>,
    /// The agent got a pty.
    pub interactive: bool,
    /// What ran weaker than the contract asks (only with `--best-effort`).
    pub weaker: Vec<String>,
    /// The Landlock read rules (paths inside the sandbox).
    pub landlock_read: Vec<PathBuf>,
    /// The Landlock write rules.
    pub landlock_write: Vec<PathBuf>,
    /// The contract's rules with `intercept = false` or `protocol = "tcp"` (no request
    /// inspection).
    pub uninspected_rules: Vec<String>,
    /// `[network] residency = "EU"`.
    pub eu_residency: bool,
    /// `[limits]` as applied on this host.
    pub limits: crate::jail::limits::ResolvedLimits,
    /// Unix sockets.
    pub sockets: SocketFacts,
}

/// What the session allows of unix sockets.
#[derive(Debug, Clone, Default)]
pub struct SocketFacts {
    /// The agent may create unix sockets (`[sockets] internal`, or a `connect` grant).
    pub unix_allowed: bool,
    /// `[sockets] connect` paths visible inside.
    pub granted: Vec<PathBuf>,
    /// Host sockets covered at the start (only when `unix_allowed`).
    pub covered: Vec<PathBuf>,
}

/// The statement of the protections in force, as `session_start` records it under `layers`:
/// one entry per layer (`state` is `enforced`, `partial` or `off`) and `full` when every
/// layer is enforced and nothing runs weaker than the contract asks. A report shows it, so a
/// weakened session cannot pass as a full one.
pub fn layers(facts: &SessionFacts) -> serde_json::Value {
    let abi = facts.landlock_abi;
    let missing: Vec<&str> = probe::LANDLOCK_FEATURES
        .iter()
        .filter(|f| f.abi > abi)
        .map(|f| f.name)
        .collect();
    let landlock_state = if missing.is_empty() {
        "enforced"
    } else if abi >= 1 {
        "partial"
    } else {
        "off"
    };
    let mut layers = vec![
        json!({
            "layer": "namespaces",
            "state": "enforced",
            "detail": "user, mount, pid, network, ipc and uts namespaces of the sandbox's own",
        }),
        json!({
            "layer": "landlock",
            "state": landlock_state,
            "detail": format!(
                "ABI {abi}{}: read+execute beneath {} paths, write beneath {} ({}); signals and abstract unix sockets scoped",
                if missing.is_empty() { String::new() } else { format!(", missing {}", missing.join(", ")) },
                facts.landlock_read.len(),
                facts.landlock_write.len(),
                facts.landlock_write.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            ),
        }),
        json!({
            "layer": "seccomp",
            "state": "enforced",
            "detail": "io_uring, ptrace, mount, new namespaces, kernel keyrings and BPF refused",
        }),
        json!({
            "layer": "no_new_privs_and_capabilities",
            "state": "enforced",
            "detail": "no_new_privs set, every capability dropped before exec",
        }),
        json!({
            "layer": "file_view",
            "state": if facts.weaker.is_empty() { "enforced" } else { "partial" },
            "detail": format!(
                "deny paths covered by mounts: {}; protected paths read-only",
                facts.covered_deny_paths.len()
            ),
        }),
        json!({
            "layer": "transparent_capture",
            "state": "enforced",
            "detail": "every TCP port and DNS to the proxy, other packets dropped",
        }),
        json!({
            "layer": "interception",
            "state": if facts.uninspected_rules.is_empty() { "enforced" } else { "partial" },
            "detail": if facts.uninspected_rules.is_empty() {
                "TLS terminated with the session CA: every request decided by host, method, path and body rules".to_string()
            } else {
                format!("not inspected (SNI or TCP only): {}", facts.uninspected_rules.join(", "))
            },
        }),
        json!({
            "layer": "residency",
            "state": if facts.eu_residency { "enforced" } else { "off" },
            "detail": if facts.eu_residency { "EU: every endpoint placed in the EU by the catalog or refused" } else { "no residency rule in the contract" },
        }),
        json!({
            "layer": "limits",
            "state": if facts.limits.full() { "enforced" } else { "partial" },
            "detail": facts.limits.describe(),
        }),
        json!({
            "layer": "unix_sockets",
            "state": if facts.sockets.unix_allowed { "partial" } else { "enforced" },
            "detail": if facts.sockets.unix_allowed {
                format!(
                    "the agent may create unix sockets ([sockets]); host sockets it may connect to: {}; {} other host sockets covered at the start, ones created later in the workspace are reachable on this kernel",
                    if facts.sockets.granted.is_empty() { "none".to_string() } else { facts.sockets.granted.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ") },
                    facts.sockets.covered.len()
                )
            } else {
                "no unix socket can be created (seccomp): no host socket is reachable".to_string()
            },
        }),
    ];
    let full = landlock_state == "enforced"
        && facts.weaker.is_empty()
        && !facts.sockets.unix_allowed
        && facts.limits.full()
        && !facts.best_effort
        && facts.uninspected_rules.is_empty();
    if facts.best_effort {
        layers.push(json!({
            "layer": "best_effort",
            "state": "partial",
            "detail": "--best-effort: the session ran with what the kernel offered",
        }));
    }
    json!({"full": full, "list": layers})
}

/// The proxy configuration, prepared (files read, overrides parsed) before the sandbox exists.
#[derive(Debug)]
pub struct Egress {
    config: ProxyConfig,
    /// The contract's `[log] otlp` collector, if any.
    otlp: Option<String>,
    /// The contract's task id (an OTLP resource attribute).
    task: String,
}

/// A running proxy serving the sandbox.
pub struct RunningEgress {
    handle: ProxyHandle,
    log: FlowLog,
    otlp: Option<proxy::otlp::OtlpHandle>,
}

impl Egress {
    /// Parses `--connect-to` and `--upstream-ca` and collects the credentials the contract
    /// injects (from the supervisor's environment; they never enter the sandbox).
    pub fn prepare(
        policy: &Policy,
        log_path: Option<PathBuf>,
        connect_to: &[String],
        upstream_ca: &[PathBuf],
    ) -> Result<Egress> {
        let mut config = ProxyConfig::new(Arc::new(policy.clone()));
        config.log_path = log_path;
        for value in connect_to {
            config
                .connect_to
                .push(value.parse::<ConnectTo>().map_err(anyhow::Error::new)?);
        }
        for pem in upstream_ca {
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
            config.upstream_roots.extend(certs);
        }
        let credentials = crate::credentials::load(policy, "sandbox run")?;
        config.credentials = credentials;
        Ok(Egress {
            config,
            otlp: policy.contract().log.otlp.clone(),
            task: policy.contract().task.id.clone(),
        })
    }

    /// Starts the proxy on `listener` (bound inside the sandbox's network namespace), and the
    /// OTLP export of the flow log when the contract's `[log] otlp` (or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`) names a collector.
    pub fn start(self, listener: TcpListener) -> Result<RunningEgress> {
        let handle = proxy::start(self.config, vec![listener]).context("start the egress proxy")?;
        let log = handle.flow_log();
        let resource = vec![
            (
                "sandbox.session".to_string(),
                handle.session_id().to_string(),
            ),
            ("sandbox.task".to_string(), self.task.clone()),
        ];
        let otlp = match proxy::otlp::OtlpExporter::attach_configured(
            &log,
            self.otlp.as_deref(),
            resource,
        ) {
            Ok(otlp) => otlp,
            Err(e) => {
                let _ = handle.shutdown();
                return Err(anyhow::Error::new(e).context(
                    "start the OTLP export that [log] otlp asks for (fix the URL or the collector)",
                ));
            }
        };
        Ok(RunningEgress { handle, log, otlp })
    }
}

/// Enforcement of each feature on this kernel, as recorded in `session_start`.
pub fn enforcement(abi: i32) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for ns in [
        "user_namespace",
        "mount_namespace",
        "pid_namespace",
        "network_namespace",
        "ipc_namespace",
        "uts_namespace",
    ] {
        map.insert(ns.into(), json!("enforced"));
    }
    for f in probe::LANDLOCK_FEATURES {
        let level = if abi >= f.abi {
            "enforced"
        } else {
            "unavailable"
        };
        map.insert(f.name.into(), json!(level));
    }
    map.insert("seccomp".into(), json!("enforced"));
    map.insert("no_new_privs".into(), json!("enforced"));
    map.insert("capabilities_dropped".into(), json!("enforced"));
    map.insert("deny_paths_mounts".into(), json!("enforced"));
    map.insert(
        "protected_paths".into(),
        json!("existing matches read-only during the session; matches the agent creates (nested and bare repositories, .git pointer files, editor and agent config) are moved aside as they appear and again after the session"),
    );
    serde_json::Value::Object(map)
}

/// A session with network: every TCP connect goes to the transparent capture
/// (`jail::capture`: DNS, every TCP port of both families to the proxy, other packets dropped
/// and logged), so Landlock's TCP rule is not used (`not used (capture)`).
fn with_capture(mut enforcement: serde_json::Value) -> serde_json::Value {
    if let Some(map) = enforcement.as_object_mut() {
        map.insert("landlock-tcp".into(), json!("not used (capture)"));
        map.insert("transparent_capture".into(), json!("enforced"));
    }
    enforcement
}

impl std::fmt::Debug for RunningEgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEgress")
            .field("handle", &self.handle)
            .field("otlp", &self.otlp.is_some())
            .finish_non_exhaustive()
    }
}

impl RunningEgress {
    /// The session CA (PEM).
    pub fn ca_pem(&self) -> String {
        self.handle.ca_cert_pem()
    }

    /// Appends the `session_start` record.
    pub fn session_start(&self, facts: &SessionFacts) -> Result<()> {
        let user = std::env::var("USER").unwrap_or_default();
        let mut rec = FlowRecord::new(Event::SessionStart, Kind::Session);
        rec.detail = Some(json!({
            "contract_path": facts.contract_path.as_deref().map(Path::display).map(|d| d.to_string()),
            "contract_sha256": facts.contract_sha256,
            "task_id": facts.task_id,
            "class": facts.class,
            "command": facts.command,
            "user": {"uid": facts.uid, "name": user},
            "workspace": facts.workspace.display().to_string(),
            "landlock_abi": facts.landlock_abi,
            "best_effort": facts.best_effort,
            "enforcement": with_capture(enforcement(facts.landlock_abi)),
            "deny_paths_covered": facts.covered_deny_paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "interactive": facts.interactive,
            "weaker_than_contract": facts.weaker,
            "layers": layers(facts),
            "limits": facts.limits.record(),
            "kernel": probe::kernel_release(),
        }));
        // Written (handed to the kernel) before the agent exists; `session_end` syncs the file.
        self.log
            .append(rec)
            .context("append session_start to the flow log")?;
        // Each host socket the agent may reach is a flow of its own.
        for path in &facts.sockets.granted {
            let mut rec = FlowRecord::new(Event::Decision, Kind::Unix);
            rec.decision = Some(egress_policy::Verdict::Allow);
            rec.rule = Some("sockets.connect".into());
            rec.reason =
                Some("[sockets] connect lets the agent connect to this host unix socket".into());
            rec.path = Some(path.display().to_string());
            self.log
                .append(rec)
                .context("append a unix socket grant to the flow log")?;
        }
        Ok(())
    }

    /// Serves the transparent capture and the DNS resolver on the sockets the sandbox created
    /// inside its network namespace (`jail::capture`).
    pub fn serve_capture(
        &self,
        sockets: Vec<(crate::jail::capture::SocketRole, std::os::fd::OwnedFd)>,
    ) -> Result<()> {
        self.handle
            .serve_capture(crate::jail::capture::proxy_sockets(sockets))
            .context("serve the sandbox's transparent capture and DNS resolver")
    }

    /// The flow log (a clone writing the same chain).
    pub fn flow_log(&self) -> FlowLog {
        self.log.clone()
    }

    /// The session id.
    pub fn session_id(&self) -> String {
        self.handle.session_id().to_owned()
    }

    /// Appends one supervisor record (`check`, `changes`) with `detail`.
    pub fn record(&self, event: Event, detail: serde_json::Value) -> Result<()> {
        let mut rec = FlowRecord::new(event, Kind::Session);
        rec.detail = Some(detail);
        self.log
            .append(rec)
            .with_context(|| format!("append a {event:?} record to the flow log"))?;
        Ok(())
    }

    /// Appends the `check` record of the `index`th `done` command: command, exit code,
    /// duration, the last lines of its output with secrets redacted (withheld whole when it
    /// holds an encoded secret).
    pub fn record_check(&self, index: usize, run: &CheckRun, limit: Duration) -> Result<()> {
        let (clean, redacted) = egress_policy::secrets::redact(&run.output_tail);
        let text = String::from_utf8_lossy(&clean).into_owned();
        let encoded: Vec<&str> = egress_policy::secrets::scan_encoded(&text)
            .iter()
            .map(|k| k.as_str())
            .collect();
        let tail = if encoded.is_empty() {
            text
        } else {
            format!(
                "[output withheld: it holds an encoded secret ({})]",
                encoded.join(", ")
            )
        };
        let mut rec = FlowRecord::new(Event::Check, Kind::Session);
        rec.duration_ms = Some(run.duration.as_secs_f64() * 1000.0);
        rec.detail = Some(json!({
            "index": index,
            "command": run.command,
            "exit_code": run.exit_code,
            "passed": run.passed(),
            "timed_out": run.timed_out,
            "timeout_s": limit.as_secs(),
            "duration_ms": run.duration.as_secs_f64() * 1000.0,
            "output_tail": tail,
            "secrets_redacted": redacted.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            "error": run.error,
        }));
        self.log
            .append(rec)
            .context("append a check record to the flow log")?;
        Ok(())
    }

    /// Stops the proxy (open flows get their `end` records) and appends `session_end`:
    /// the agent's exit code, `sandbox run`'s own, and what the `done` checks came to.
    pub fn finish(
        self,
        exit_code: i32,
        sandbox_exit_code: i32,
        duration: Duration,
        quarantined: &[Quarantined],
        checks: serde_json::Value,
        limits: serde_json::Value,
    ) -> Result<()> {
        let log = self.log.clone();
        // One fdatasync for the whole session: after `session_end`, below.
        let report = self.handle.shutdown_unsynced();
        let mut rec = FlowRecord::new(Event::SessionEnd, Kind::Session);
        rec.duration_ms = Some(duration.as_secs_f64() * 1000.0);
        rec.detail = Some(json!({
            // What `sandbox log verify --strict` holds the session to: a log cut inside the
            // session lacks this record, one cut before it misses records it counts.
            "records_before": log.records(),
            "last_hash": log.last_hash(),
            "exit_code": exit_code,
            "sandbox_exit_code": sandbox_exit_code,
            "checks": checks,
            "limits": limits,
            "duration_ms": duration.as_secs_f64() * 1000.0,
            "flows": report.stats.flows,
            "allowed": report.stats.allowed,
            "denied": report.stats.denied,
            "connections": report.stats.connections,
            "log_failures": report.stats.log_failures,
            "protected_paths_quarantined": quarantined
                .iter()
                .map(|q| json!({"created": q.from.display().to_string(), "moved_to": q.to.display().to_string()}))
                .collect::<Vec<_>>(),
        }));
        log.append(rec)
            .context("append session_end to the flow log")?;
        log.sync().context("flush the flow log")?;
        if let Some(otlp) = self.otlp {
            let report = otlp.finish_blocking(Duration::from_secs(5));
            if !report.complete() {
                anyhow::bail!(
                    "the OTLP export is incomplete: {report} (the flow log file is complete)"
                );
            }
        }
        Ok(())
    }

    /// Stops the proxy without a `session_end` (set-up failed).
    pub fn shutdown(self) {
        let _ = self.handle.shutdown();
    }
}
