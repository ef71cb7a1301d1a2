//! `sandbox proxy` as the tests run it: a scratch directory, the contract, the spawned binary
//! (as any [`User`]), its port, its CA, its flow log, and an orderly stop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bin::sandbox_bin;
use crate::flowcheck;
use crate::users::User;

/// A scratch directory every test user can use, removed when dropped.
pub struct Scratch {
    /// The directory.
    pub path: PathBuf,
}

impl Scratch {
    /// A fresh directory under the system temp dir, mode 0777 so that `nobody` can write.
    pub fn new(name: &str) -> Scratch {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "sandbox-it-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the scratch directory");
        set_mode(&path, 0o777);
        Scratch { path }
    }

    /// Writes `name` with `contents`, readable by everyone; returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, contents).expect("write a scratch file");
        set_mode(&p, 0o644);
        p
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A running `sandbox proxy`. Stopped with SIGTERM (then SIGKILL) when dropped.
pub struct Gateway {
    child: Option<Child>,
    /// The proxy's port on 127.0.0.1.
    pub port: u16,
    /// The session CA (PEM file) that clients must trust.
    pub ca: PathBuf,
    /// The flow log.
    pub log: PathBuf,
    /// Everything the proxy printed on stderr (filled in by [`Gateway::stop`]).
    pub stderr: String,
}

/// What to start the gateway with.
pub struct GatewayOptions<'a> {
    /// Run as this user.
    pub user: User,
    /// Contract text.
    pub contract: &'a str,
    /// `--connect-to` values.
    pub connect_to: Vec<String>,
    /// PEM text for `--upstream-ca`.
    pub upstream_ca: Option<String>,
    /// Extra environment (credentials for `inject`).
    pub env: Vec<(String, String)>,
    /// A program (and args) to run the binary under, e.g. `["unshare", "-rn"]`; empty for none.
    pub wrapper: Vec<String>,
    /// Extra arguments for `sandbox proxy`, e.g. `["--workers", "1"]`.
    pub args: Vec<String>,
}

impl<'a> GatewayOptions<'a> {
    /// Defaults: current user, no overrides.
    pub fn new(contract: &'a str) -> Self {
        GatewayOptions {
            user: User::Current,
            contract,
            connect_to: Vec::new(),
            upstream_ca: None,
            env: Vec::new(),
            wrapper: Vec::new(),
            args: Vec::new(),
        }
    }
}

impl Gateway {
    /// Starts `sandbox proxy` in `scratch` and waits (at most 30 s) until it listens.
    pub fn start(scratch: &Scratch, opts: GatewayOptions<'_>) -> Gateway {
        let contract = scratch.write("contract.toml", opts.contract);
        let ca = scratch.path.join("session-ca.pem");
        let log = scratch.path.join("flows.jsonl");
        let mut cmd = match opts.wrapper.split_first() {
            None => opts.user.command(sandbox_bin()),
            Some((program, rest)) => {
                let mut c = opts.user.command(program);
                c.args(rest).arg(sandbox_bin());
                c
            }
        };
        cmd.arg("proxy")
            .arg("--contract")
            .arg(&contract)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--log")
            .arg(&log)
            .arg("--ca-out")
            .arg(&ca)
            .arg("--workspace")
            .arg(&scratch.path)
            .current_dir(&scratch.path)
            .env("HOME", &scratch.path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(pem) = &opts.upstream_ca {
            let p = scratch.write("upstream-ca.pem", pem);
            cmd.arg("--upstream-ca").arg(p);
        }
        for c in &opts.connect_to {
            cmd.arg("--connect-to").arg(c);
        }
        cmd.args(&opts.args);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn sandbox proxy");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if !l.is_empty() => l,
            _ => {
                let _ = child.kill();
                let out = child
                    .wait_with_output()
                    .expect("collect the proxy's output");
                panic!(
                    "sandbox proxy did not start: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        };
        let port: u16 = line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in the proxy's first line: {line:?}"));
        assert!(
            ca.is_file(),
            "the session CA was not written to {}",
            ca.display()
        );
        Gateway {
            child: Some(child),
            port,
            ca,
            log,
            stderr: String::new(),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the proxy with SIGTERM (SIGKILL after 10 s) and returns the verified log records.
    pub fn stop(&mut self) -> Vec<Value> {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
            if let Some(mut err) = child.stderr.take() {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut err, &mut s);
                self.stderr = s;
            }
        }
        self.records()
    }

    /// The log's records so far, after checking the hash chain (panics when it is broken).
    pub fn records(&self) -> Vec<Value> {
        flowcheck::verify_chain(&self.log)
            .unwrap_or_else(|e| panic!("the flow log's hash chain is broken: {e}"))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }
}

fn terminate(child: &mut Child) {
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
