//! `sandbox run`: the agent in a namespaces + Landlock + seccomp sandbox whose only way out is
//! the egress proxy.

use std::ffi::{CString, OsString};
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use egress_policy::{PathContext, Policy};

use crate::gitstate::GitState;
use crate::jail::landlock_rules::LandlockSpec;
use crate::jail::unix_sockets::UnixSocketRules;
use crate::jail::view::{self, FileRules};
use crate::jail::{
    env, probe, quarantine, seccomp, supervisor, JailSpec, LaunchSpec, EXIT_SETUP, PROXY_PORT,
};
use crate::session::{self, SessionFacts};

const EXAMPLES: &str = "\
Examples:
  # The built-in default: the current directory read+write (except protected paths such as
  # .git/hooks), $HOME invisible, no network at all.
  sandbox run -- sh

  # A contract: its [files], [network] and [env]; every flow in the contract's [log] path.
  sandbox run --contract examples/eu-mistral-bedrock.toml -- sh

  # Point an allowed host at a local test upstream that uses a private CA.
  sandbox run --contract c.toml --connect-to api.eu.mistral.ai:443:127.0.0.1:8443 \\
      --upstream-ca test-ca.pem -- curl -sS https://api.eu.mistral.ai/v1/models

After the agent exits, the contract's `done` commands run one by one in the same sandbox (same
files, same network policy, `[task] done_timeout` each, default 10m); each is one `check`
record in the flow log, followed by a `changes` record (git HEAD, commits, files and line
counts; no file content). Skipped with --no-checks, or when the agent was interrupted (exit
130 or 143).

Exit codes: the agent's own when it failed; 0 when it and every done check passed; 123 when
the agent exited 0 but a done check failed or timed out (--agent-exit-code: always the
agent's own); 125 when the sandbox cannot be set up (the message says why and what to do);
126 when the command is not executable; 127 when it is not found.
Run `sandbox doctor` to see what this kernel enforces.";

/// The exit code of `sandbox run` when the agent exited 0 but a `done` check did not pass.
pub const EXIT_CHECKS_FAILED: i32 = 123;

/// Arguments of `sandbox run`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The prompt contract (TOML). Without it: the built-in default (workspace read+write,
    /// no network).
    #[arg(long, value_name = "FILE")]
    pub contract: Option<PathBuf>,
    /// The project directory the agent works in [default: the current directory].
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// The flow log [default: the contract's `[log] path`]. Never visible inside.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Extra trust root (PEM) for upstream TLS, e.g. a local test upstream's CA. Repeatable.
    #[arg(long = "upstream-ca", value_name = "PEM")]
    pub upstream_ca: Vec<PathBuf>,
    /// Dial HOST:PORT at ADDR:PORT instead (SNI, Host and policy stay HOST's). Repeatable.
    #[arg(long = "connect-to", value_name = "HOST:PORT:ADDR:PORT")]
    pub connect_to: Vec<String>,
    /// Run even when the kernel cannot enforce everything (logged as such).
    #[arg(long)]
    pub best_effort: bool,
    /// Do not run the contract's `done` checks after the agent (the log says they were skipped).
    #[arg(long)]
    pub no_checks: bool,
    /// Exit with the agent's own code even when a `done` check failed.
    #[arg(long)]
    pub agent_exit_code: bool,
    /// Apply this agent's preset (claude, codex, gemini, aider, opencode) for a contract
    /// without `[agent]`: its placeholder key, telemetry off, its settings files.
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// The agent's command and its arguments, after `--`.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "AGENT ARGS"
    )]
    pub command: Vec<OsString>,
}

/// The contract used without `--contract`: the workspace writable, no network.
pub const DEFAULT_CONTRACT: &str = r#"version = 1

[task]
id = "sandbox-default"
class = "B"
objective = "sandbox run without --contract: the workspace is writable, there is no network"
done = []
rollback = "discard the workspace changes"

[files]
write = ["."]
"#;

/// Runs `sandbox run`.
pub fn run(args: Args) -> ExitCode {
    let code = match run_session(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sandbox: {e:#}");
            EXIT_SETUP
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/nonexistent"))
}

/// Which Landlock features the kernel lacks, by name.
fn missing_landlock(abi: i32) -> Vec<&'static probe::LandlockFeature> {
    probe::LANDLOCK_FEATURES
        .iter()
        .filter(|f| f.abi > abi)
        .collect()
}

fn run_session(args: Args) -> Result<i32> {
    let started = Instant::now();
    // Signals go to the wait loop only: block them before any thread exists.
    supervisor::block_signals().context("block signals in the supervisor")?;
    let network = args.contract.is_some();
    let launch = LaunchSpec {
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        proxy_port: network.then_some(PROXY_PORT),
        interactive: std::io::stdin().is_terminal(),
    };
    // The clone comes first, while the process is single-threaded: the sandbox builds its
    // namespaces, the capture and /proc and /dev while this process reads the contract and
    // plans the view, which it sends afterwards (`Sandbox::send_spec`). A clone failure is
    // reported after the contract's own errors, as when the clone came last.
    let spawned = supervisor::spawn(&launch);
    let planned = plan_session(&args, network);
    let (mut sandbox, session) = match (spawned, planned) {
        (Ok(sandbox), Ok(session)) => (sandbox, session),
        (Ok(sandbox), Err(e)) => {
            sandbox.kill();
            return Err(e);
        }
        (Err(_), Err(e)) => return Err(e),
        (Err(e), Ok(session)) => {
            remove_placeholders(&session.view);
            return Err(e.into());
        }
    };
    let Session {
        spec,
        view,
        egress,
        facts,
        mut after,
    } = session;
    // What the host must clean up after the agent, written down before it starts: a killed
    // supervisor's cleanup is done by the next session in this workspace.
    let pending = crate::leftovers::record_path(&facts.workspace);
    if let Err(e) = crate::leftovers::write(&pending, &view, &facts.workspace) {
        eprintln!("sandbox: warning: cannot record this session's cleanup ({e:#}); if this supervisor is killed, the next session cannot finish it");
    }
    if egress.is_some() {
        // Read while the sandbox sets up; joined before the agent may start.
        let workspace = facts.workspace.clone();
        after.git_before = Some(std::thread::spawn(move || GitState::capture(&workspace)));
    }
    let result = match sandbox.send_spec(&spec) {
        Ok(()) => run_planned(sandbox, egress, &facts, &view, after, started),
        Err(e) => {
            sandbox.kill();
            Err(e.into())
        }
    };
    remove_placeholders(&view);
    crate::leftovers::clear(&pending);
    result
}

/// Everything planned from the contract before the agent can start.
struct Session {
    /// What the sandbox's init receives.
    spec: JailSpec,
    /// The view as planned (the sweep after the session reads it).
    view: view::ViewPlan,
    /// The proxy's configuration, for a session with network.
    egress: Option<session::Egress>,
    /// What `session_start` records.
    facts: SessionFacts,
    /// What happens after the agent exits.
    after: AfterAgent,
}

/// The steps after the agent: the `done` checks and the record of what changed.
struct AfterAgent {
    /// The contract's `done` commands.
    done: Vec<String>,
    /// The time limit of each.
    done_timeout: Duration,
    /// `--no-checks`.
    no_checks: bool,
    /// `--agent-exit-code`.
    agent_exit_code: bool,
    /// The contract (to judge each changed file).
    policy: Policy,
    /// The git state before the agent started (read on a thread while the sandbox sets up).
    git_before: Option<std::thread::JoinHandle<Option<GitState>>>,
}

/// Records, before a new session writes to `log`, that its last session was killed (no
/// `session_end`), and tells the user.
pub(crate) fn note_recovery(log: &Path, by: &str) -> Result<()> {
    if let Some(r) = crate::recovery::recover_tail(log, by)? {
        eprintln!(
            "sandbox: note: the last session in {} ({}) has no session_end: its supervisor was killed. Recorded as killed, whole up to its record {}; `sandbox log verify --strict` accepts it as such.",
            log.display(),
            r.session,
            r.records
        );
    }
    Ok(())
}

/// Removes the empty directories the plan created on the host as mount points.
fn remove_placeholders(view: &view::ViewPlan) {
    for p in view.placeholders.iter().rev() {
        let _ = std::fs::remove_dir(p);
    }
}

/// Reads the contract, checks what the kernel enforces, plans the view and the agent's
/// environment, and prepares the proxy's configuration.
fn plan_session(args: &Args, network: bool) -> Result<Session> {
    let cwd = std::env::current_dir().context("the current directory is not accessible")?;
    let workspace = args.workspace.clone().unwrap_or_else(|| cwd.clone());
    let workspace = std::fs::canonicalize(&workspace).with_context(|| {
        format!(
            "the workspace {} does not exist; pass an existing directory with --workspace",
            workspace.display()
        )
    })?;
    if !workspace.is_dir() {
        bail!("the workspace {} is not a directory", workspace.display());
    }
    let home = home_dir();
    let ctx = PathContext {
        workspace: workspace.clone(),
        home: home.clone(),
    };
    // An earlier session in this workspace whose supervisor was killed left its cleanup.
    let pending = crate::leftovers::record_path(&workspace);
    match crate::leftovers::repair(&pending) {
        Ok(None) => {}
        Ok(Some(r)) => {
            eprintln!(
                "sandbox: note: an earlier session in this workspace (supervisor pid {}) was killed before it cleaned up; done now: {} protected path(s) it created moved aside, {} mount-point directory(ies) removed",
                r.pid,
                r.quarantined.len(),
                r.placeholders_removed
            );
            for q in &r.quarantined {
                eprintln!(
                    "sandbox: the killed session's agent created the protected path {}; moved it to {}",
                    q.from.display(),
                    q.to.display()
                );
            }
        }
        Err(e) => bail!(
            "an earlier session in this workspace was killed and its cleanup cannot be done: {e:#}; check the workspace for new .git/hooks, .git/config and CI files before running git, then remove {}",
            pending.display()
        ),
    }
    crate::leftovers::ensure_dir(&pending);
    let (policy, contract_path) = match &args.contract {
        Some(path) => {
            let source = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the contract {}", path.display()))?;
            let policy = Policy::parse(&source, &path.display().to_string(), &ctx)
                .map_err(|e| anyhow::anyhow!("the contract {} is invalid:\n{e}", path.display()))?;
            (
                policy,
                Some(std::fs::canonicalize(path).unwrap_or_else(|_| path.clone())),
            )
        }
        None => {
            eprintln!(
                "sandbox: no --contract given: using the built-in default (workspace {} read+write \
                 except protected paths, $HOME invisible, no network at all)",
                workspace.display()
            );
            let policy = Policy::parse(DEFAULT_CONTRACT, "<built-in default contract>", &ctx)
                .map_err(|e| anyhow::anyhow!("the built-in default contract is invalid: {e}"))?;
            (policy, None)
        }
    };
    if !network && !args.connect_to.is_empty() {
        bail!("--connect-to needs --contract: the built-in default has no network");
    }
    let log_path = match (&args.log, &policy.contract().log.path) {
        (Some(p), _) => Some(std::path::absolute(p).context("resolve --log")?),
        (None, Some(p)) => Some(p.clone()),
        (None, None) => None,
    };
    if log_path.is_some() && !network {
        bail!("--log needs --contract: the built-in default has no network, so there is no flow to log");
    }
    if let Some(log) = &log_path {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("create the log directory {}", dir.display()))?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open the flow log {}", log.display()))?;
        note_recovery(log, "sandbox run")?;
    }

    // What the kernel can enforce.
    let abi = probe::landlock_abi();
    let missing = missing_landlock(abi);
    if !missing.is_empty() && !args.best_effort {
        let names: Vec<String> = missing
            .iter()
            .map(|f| {
                format!(
                    "{} (Landlock ABI {}, Linux {}: {})",
                    f.name, f.abi, f.linux, f.purpose
                )
            })
            .collect();
        bail!(
            "this kernel ({}) offers Landlock ABI {abi}, so it cannot enforce: {}. Upgrade the kernel \
             (or enable Landlock with lsm=landlock,... on the kernel command line), or pass \
             --best-effort to run with what is available (recorded in the flow log). `sandbox doctor` \
             shows the details.",
            probe::kernel_release(),
            names.join("; ")
        );
    }
    if !probe::seccomp_available() {
        bail!("this kernel has no seccomp filter support (CONFIG_SECCOMP_FILTER); the sandbox needs it to block io_uring, ptrace, mount and new namespaces");
    }

    // The file view.
    let plan = policy.file_plan();
    let rules = FileRules {
        read: plan.read.clone(),
        write: plan.write.clone(),
        deny: plan.deny.clone(),
        scan_protected: true,
        protected_paths: plan.protected_paths.clone(),
        hidden: log_path
            .iter()
            .cloned()
            .chain(
                pending
                    .parent()
                    .map(Path::to_path_buf)
                    .filter(|d| d.is_dir()),
            )
            .collect(),
        unprotected: plan.unprotected.clone(),
        sockets: UnixSocketRules {
            connect: policy.contract().sockets.connect.clone(),
            cover_present: policy.contract().sockets.unix_sockets_needed(),
        },
    };
    let view = view::plan(&rules, Some(&home)).context("plan the sandbox's file view")?;
    for note in &view.notes {
        eprintln!("sandbox: note: {note}");
    }
    if !view.weaker.is_empty() && !args.best_effort {
        let refusal = anyhow::anyhow!(
            "the contract cannot be enforced as written: {}; or pass --best-effort to run anyway (recorded in the flow log)",
            view.weaker.join("; ")
        );
        remove_placeholders(&view);
        return Err(refusal);
    }
    for weakness in &view.weaker {
        eprintln!("sandbox: --best-effort: {weakness}");
    }
    let placeholders = view.placeholders.clone();
    let planned = finish_plan(
        args,
        policy,
        contract_path.as_deref(),
        view,
        log_path,
        network,
        &workspace,
        &cwd,
        abi,
    );
    if planned.is_err() {
        for p in placeholders.iter().rev() {
            let _ = std::fs::remove_dir(p);
        }
    }
    planned
}

#[allow(clippy::too_many_arguments)]
fn finish_plan(
    args: &Args,
    policy: Policy,
    contract_path: Option<&Path>,
    view: view::ViewPlan,
    log_path: Option<PathBuf>,
    network: bool,
    workspace: &Path,
    cwd: &Path,
    abi: i32,
) -> Result<Session> {
    let proxy_port = network.then_some(PROXY_PORT);
    let mut envs = env::build(std::env::vars_os(), &policy.contract().env.pass, proxy_port);
    let home = home_dir();
    let agent = crate::agent_preset::for_session(args.agent.as_deref(), &policy, &home)?;
    let mut home_files = Vec::new();
    if let Some((name, setup)) = &agent {
        eprintln!(
            "sandbox: the {name} preset: {}",
            setup
                .env
                .iter()
                .map(|(k, _)| k.as_str())
                .chain(setup.home_files.iter().map(|(p, _)| p.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (k, v) in &setup.env {
            envs.retain(|(name, _)| name != k.as_str());
            envs.push((k.into(), v.into()));
        }
        for (rel, contents) in &setup.home_files {
            home_files.push((home.join(rel), contents.clone().into_bytes()));
        }
    }
    let envs = envs;
    let search_path = envs
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| env::DEFAULT_PATH.into());
    let argv: Vec<CString> = args
        .command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .context("an argument of the command contains a NUL byte")?;
    let visible_cwd = view
        .landlock_write
        .iter()
        .chain(&view.landlock_read)
        .any(|t| cwd.starts_with(t) && t != Path::new("/etc"));
    let workdir = if cwd.starts_with(workspace) && visible_cwd {
        cwd.to_owned()
    } else {
        workspace.to_owned()
    };
    let limits = crate::jail::limits::resolve(&policy.contract().limits);
    let spec = JailSpec {
        mounts: view.mount_plan(),
        argv,
        envp: env::to_envp(&envs),
        search_path,
        workdir,
        landlock: LandlockSpec {
            read: view.landlock_read.clone(),
            write: view.landlock_write.clone(),
            proxy_port,
            best_effort: args.best_effort,
        },
        seccomp: seccomp::compile(policy.contract().sockets.unix_sockets_needed())
            .context("compile the seccomp filter")?,
        limits: limits.jail,
        home_files,
    };
    let egress = if network {
        Some(session::Egress::prepare(
            &policy,
            log_path.clone(),
            &args.connect_to,
            &args.upstream_ca,
        )?)
    } else {
        None
    };
    let facts = SessionFacts {
        contract_path: contract_path.map(Path::to_path_buf),
        contract_sha256: policy.sha256(),
        task_id: policy.contract().task.id.clone(),
        class: policy.contract().task.class.to_string(),
        command: args
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        uid: nix::unistd::getuid().as_raw(),
        workspace: workspace.to_owned(),
        landlock_abi: abi,
        best_effort: args.best_effort,
        covered_deny_paths: view.covered.clone(),
        weaker: view.weaker.clone(),
        interactive: std::io::stdin().is_terminal(),
        landlock_read: view.landlock_read.clone(),
        landlock_write: view.landlock_write.clone(),
        uninspected_rules: policy
            .contract()
            .network
            .allow
            .iter()
            .filter(|r| !r.intercept || r.protocol == egress_policy::Protocol::Tcp)
            .map(|r| r.name.clone())
            .collect(),
        eu_residency: policy.contract().network.residency.is_some(),
        limits,
        sockets: session::SocketFacts {
            unix_allowed: policy.contract().sockets.unix_sockets_needed(),
            granted: view.granted_sockets.clone(),
            covered: view.covered_sockets.clone(),
        },
    };
    let after = AfterAgent {
        done: policy.contract().task.done.clone(),
        done_timeout: Duration::from_secs(policy.contract().task.done_timeout_secs),
        no_checks: args.no_checks,
        agent_exit_code: args.agent_exit_code,
        policy,
        git_before: None,
    };
    Ok(Session {
        spec,
        view,
        egress,
        facts,
        after,
    })
}

/// Starts the proxy on the sandbox's listener, lets the agent start and waits for it.
fn run_planned(
    mut sandbox: supervisor::Sandbox,
    egress: Option<session::Egress>,
    facts: &SessionFacts,
    view: &view::ViewPlan,
    mut after: AfterAgent,
    started: Instant,
) -> Result<i32> {
    let mut running = None;
    let mut git_state_before: Option<GitState> = None;
    let mut watcher = None;
    if egress.is_none() {
        watcher =
            crate::jail::planted::start_logged(view, &format!("p{}", std::process::id()), None);
    }
    if let Some(egress) = egress {
        let listener = match sandbox.receive_listener() {
            Ok(l) => l,
            Err(e) => {
                sandbox.kill();
                return Err(e.into());
            }
        };
        match egress.start(listener) {
            Ok(r) => {
                // The CA first: the sandbox installs it and seals its root while the session
                // is recorded; the agent waits for `send_start`.
                if let Err(e) = sandbox.send_session_ca(r.ca_pem().as_bytes()) {
                    sandbox.kill();
                    r.shutdown();
                    return Err(e.into());
                }
                // Recorded before the agent exists: no session runs unlogged.
                if let Err(e) = r.session_start(facts) {
                    sandbox.kill();
                    r.shutdown();
                    return Err(
                        e.context("write the session_start record (refusing to run unlogged)")
                    );
                }
                watcher =
                    crate::jail::planted::start_logged(view, &r.session_id(), Some(r.flow_log()));
                let served = sandbox
                    .receive_capture()
                    .map_err(anyhow::Error::new)
                    .and_then(|sockets| r.serve_capture(sockets));
                if let Err(e) = served {
                    sandbox.kill();
                    r.shutdown();
                    return Err(e);
                }
                let git_before = after
                    .git_before
                    .take()
                    .and_then(|h| h.join().ok().flatten());
                git_state_before = git_before;
                if let Err(e) = sandbox.send_start() {
                    sandbox.kill();
                    r.shutdown();
                    return Err(e.into());
                }
                running = Some(r);
            }
            Err(e) => {
                sandbox.kill();
                return Err(e);
            }
        }
    }
    if facts.interactive {
        if let Err(e) = sandbox.receive_pty() {
            sandbox.kill();
            if let Some(r) = running {
                r.shutdown();
            }
            return Err(e.into());
        }
    }
    let code = match sandbox.wait() {
        Ok(code) => code,
        Err(e) => {
            if let Some(r) = running {
                r.shutdown();
            }
            return Err(e.into());
        }
    };
    let checks = match &running {
        Some(r) => run_checks(&mut sandbox, r, &after, code),
        None => ChecksOutcome::default(),
    };
    // Every sandboxed process is dead: move aside protected paths the agent created (what
    // the live watch refused is already aside).
    let refused_live: Vec<quarantine::Quarantined> = watcher
        .map(|w| w.stop().refused.into_iter().map(|r| r.moved).collect())
        .unwrap_or_default();
    let tag = running
        .as_ref()
        .map(|r| r.session_id())
        .unwrap_or_else(|| format!("p{}", std::process::id()));
    let swept = match quarantine::sweep(view, &tag) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("sandbox: could not check the workspace for new protected paths: {e}; review new .git/hooks, .git/config and CI files before using them");
            Vec::new()
        }
    };
    let mut quarantined = refused_live;
    quarantined.extend(swept.iter().cloned());
    for q in &swept {
        eprintln!(
            "sandbox: the agent created the protected path {}; moved it to {} so that the host does not run it",
            q.from.display(),
            q.to.display()
        );
    }
    let exit = checks.exit_code(code, after.agent_exit_code);
    crate::jail::limits::report_reached(&sandbox.reached.record(&facts.limits));
    if let Some(r) = running {
        let git_after = git_state_before
            .as_ref()
            .and_then(|b| GitState::capture(&b.toplevel));
        let changes = crate::gitstate::changes_detail(
            git_state_before.as_ref(),
            git_after.as_ref(),
            &after.policy,
        );
        report_out_of_scope(&changes);
        if let Err(e) = r.record(proxy::flowlog::Event::Changes, changes) {
            eprintln!("sandbox: {e:#}");
        }
        if let Err(e) = r.finish(
            code,
            exit,
            started.elapsed(),
            &quarantined,
            checks.summary(),
            sandbox.reached.record(&facts.limits),
        ) {
            eprintln!("sandbox: {e:#}");
        }
    }
    Ok(exit)
}

/// Warns on stderr about each changed file outside the contract's scope (a finding).
fn report_out_of_scope(changes: &serde_json::Value) {
    for f in changes["out_of_scope"].as_array().into_iter().flatten() {
        eprintln!(
            "sandbox: FINDING: the session changed {} outside the contract's scope: {}",
            f["path"].as_str().unwrap_or("?"),
            f["why"].as_str().unwrap_or("?")
        );
    }
}

/// What the `done` checks came to.
#[derive(Debug, Default)]
struct ChecksOutcome {
    /// How many ran.
    run: usize,
    /// How many passed.
    passed: usize,
    /// Why none ran, if none did although the contract has some.
    skipped: Option<String>,
    /// How many the contract lists.
    listed: usize,
}

impl ChecksOutcome {
    /// `sandbox run`'s exit code (see `EXAMPLES`).
    fn exit_code(&self, agent: i32, agent_exit_code: bool) -> i32 {
        if agent != 0 || agent_exit_code || self.run == self.passed {
            agent
        } else {
            EXIT_CHECKS_FAILED
        }
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "listed": self.listed,
            "run": self.run,
            "passed": self.passed,
            "failed": self.run - self.passed,
            "skipped": self.skipped,
        })
    }
}

/// The agent exited with one of these after Ctrl-C or a TERM: the user wants out, not checks.
const INTERRUPTED: [i32; 2] = [130, 143];

/// Runs the contract's `done` checks in the sandbox, one record each, and prints a summary.
fn run_checks(
    sandbox: &mut supervisor::Sandbox,
    running: &session::RunningEgress,
    after: &AfterAgent,
    agent_code: i32,
) -> ChecksOutcome {
    let mut outcome = ChecksOutcome {
        listed: after.done.len(),
        ..ChecksOutcome::default()
    };
    if after.done.is_empty() {
        return outcome;
    }
    let skipped = if after.no_checks {
        Some("--no-checks")
    } else if INTERRUPTED.contains(&agent_code) {
        Some("the agent was interrupted")
    } else {
        None
    };
    if let Some(why) = skipped {
        eprintln!("sandbox: done checks skipped ({why})");
        outcome.skipped = Some(why.to_owned());
        return outcome;
    }
    let total = after.done.len();
    let mut failures = Vec::new();
    for (i, command) in after.done.iter().enumerate() {
        eprintln!("sandbox: done check {}/{total}: {command}", i + 1);
        let run = match sandbox.run_check(command, after.done_timeout, true) {
            Ok(run) => run,
            Err(e) => {
                eprintln!("sandbox: the done checks stopped: {e}");
                outcome.skipped = Some(format!("stopped after {i} of {total}: {e}"));
                break;
            }
        };
        outcome.run += 1;
        if run.passed() {
            outcome.passed += 1;
        } else {
            failures.push(describe_failure(&run, after.done_timeout));
        }
        if let Err(e) = running.record_check(i, &run, after.done_timeout) {
            eprintln!("sandbox: {e:#}");
        }
    }
    let mut line = format!("sandbox: done checks: {} of {total} passed", outcome.passed);
    if !failures.is_empty() {
        line.push_str(&format!(" ({})", failures.join("; ")));
    }
    eprintln!("{line}");
    outcome
}

fn describe_failure(run: &crate::jail::checks::CheckRun, limit: Duration) -> String {
    if let Some(e) = &run.error {
        format!("`{}` could not start: {e}", run.command)
    } else if run.timed_out {
        format!("`{}` ran out of its {} s", run.command, limit.as_secs())
    } else {
        format!(
            "`{}` exited {} after {:.1} s",
            run.command,
            run.exit_code,
            run.duration.as_secs_f64()
        )
    }
}
