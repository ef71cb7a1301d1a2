//! Harness for the `sandbox run` tests (`tests/run_*.rs`): a throw-away workspace owned by the
//! user under test, a bounded run of `sandbox run`, and loopback-only helpers (a host TCP/UDP
//! server, an HTTPS upstream with its own CA). Nothing here names a non-loopback address.

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::bin::sandbox_bin;
use crate::users::{User, NOBODY_ID};

/// How long one `sandbox run` may take before the test kills it and fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A temporary directory (the test's root: workspace, contract, log), removed on drop.
#[derive(Debug)]
pub struct TestDir {
    /// The directory.
    pub root: PathBuf,
    /// `root/ws`, the workspace.
    pub workspace: PathBuf,
    user: User,
}

fn chown_tree(path: &Path, uid: u32) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown -R {uid} {}", path.display());
}

impl TestDir {
    /// A fresh directory with an empty workspace, owned by `user`.
    pub fn new(user: User, name: &str) -> TestDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!(
            "sandbox-it-{name}-{}-{n}-{}",
            std::process::id(),
            user.label().replace(' ', "-")
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("ws")).expect("create the test directory");
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let dir = TestDir {
            workspace: root.join("ws"),
            root,
            user,
        };
        dir.own();
        dir
    }

    /// Gives the whole tree to the user under test (after the test wrote files as root).
    pub fn own(&self) {
        if self.user == User::Nobody {
            chown_tree(&self.root, NOBODY_ID);
        }
    }

    /// Writes `text` at `rel` (relative to the root), creating parents.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write a test file");
        self.own();
        path
    }

    /// Writes a contract at `root/contract.toml` with these `[files]`, `[network]` rules and
    /// `[log] path` (outside the workspace, at `root/flows.jsonl`).
    pub fn contract(&self, files: &str, allow_hosts: &[&str]) -> PathBuf {
        let mut text = String::from(
            "version = 1\n[task]\nid = \"IT-1\"\nclass = \"B\"\nobjective = \"integration test\"\ndone = []\nrollback = \"none\"\n",
        );
        text.push_str("[files]\n");
        text.push_str(files);
        text.push_str("\n[network]\n");
        for (i, host) in allow_hosts.iter().enumerate() {
            text.push_str(&format!(
                "[[network.allow]]\nname = \"rule-{i}\"\nhost = \"{host}\"\n"
            ));
        }
        text.push_str(&format!(
            "[log]\npath = \"{}\"\n",
            self.log_path().display()
        ));
        self.write("contract.toml", &text)
    }

    /// Where [`TestDir::contract`] puts the flow log.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("flows.jsonl")
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// What a `sandbox run` did.
#[derive(Debug)]
pub struct RunOutput {
    /// The exit code (128 + signal when killed).
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl RunOutput {
    /// stdout and stderr, for assertion messages.
    pub fn both(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A `Command` for `sandbox run ARGS -- sh -c SCRIPT` as `user`, in `dir`'s workspace.
pub fn run_command(user: User, dir: &TestDir, args: &[&str], script: &str) -> Command {
    argv_command(user, dir, args, &["sh", "-c", script])
}

/// A `Command` for `sandbox run ARGS -- ARGV...` as `user`, in `dir`'s workspace.
pub fn argv_command(user: User, dir: &TestDir, args: &[&str], argv: &[&str]) -> Command {
    let mut cmd = user.command(sandbox_bin());
    cmd.arg("run")
        .arg("--workspace")
        .arg(&dir.workspace)
        .args(args)
        .arg("--")
        .args(argv)
        .current_dir(&dir.workspace)
        .env("HOME", dir.root.join("home"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for `child` at most `timeout`, killing it when it takes longer (then panics).
pub fn wait_bounded(mut child: Child, timeout: Duration) -> RunOutput {
    let start = Instant::now();
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sandbox run took longer than {timeout:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    RunOutput {
        code,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// Runs `sandbox run ARGS -- sh -c SCRIPT` as `user` and waits (bounded).
pub fn run(user: User, dir: &TestDir, args: &[&str], script: &str) -> RunOutput {
    let child = run_command(user, dir, args, script)
        .spawn()
        .expect("spawn sandbox run");
    wait_bounded(child, RUN_TIMEOUT)
}

/// Runs `sandbox run ARGS -- ARGV...` as `user` and waits (bounded).
pub fn run_argv(user: User, dir: &TestDir, args: &[&str], argv: &[&str]) -> RunOutput {
    let child = argv_command(user, dir, args, argv)
        .spawn()
        .expect("spawn sandbox run");
    wait_bounded(child, RUN_TIMEOUT)
}

/// The line of `out` that starts with `tag ` (the tests print one tagged line per probe).
pub fn tagged<'a>(out: &'a str, tag: &str) -> &'a str {
    let prefix = format!("{tag} ");
    out.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no `{tag}` line in:\n{out}"))
}

/// A TCP listener on the host's loopback that records whether anything connected.
pub fn host_tcp_server() -> TcpListener {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback TCP port");
    l.set_nonblocking(true).expect("nonblocking");
    l
}

/// A UDP socket on the host's loopback.
pub fn host_udp_server() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind a loopback UDP port");
    s.set_nonblocking(true).expect("nonblocking");
    s
}

/// A process the test started; killed and reaped on drop.
#[derive(Debug)]
pub struct Guarded(pub Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTPS upstream on 127.0.0.1 with a certificate for `host` from its own test CA.
#[derive(Debug)]
pub struct Upstream {
    /// The port on 127.0.0.1.
    pub port: u16,
    /// The CA certificate (PEM file) to pass as `--upstream-ca`.
    pub ca_pem: PathBuf,
    _server: Guarded,
}

const UPSTREAM_PY: &str = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self):
        n = int(self.headers.get("content-length") or 0)
        if n: self.rfile.read(n)
        body = b'{"upstream":"reached"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = reply
    do_POST = reply
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (install the openssl package)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Upstream {
    /// Generates a CA and a leaf for `host` in `dir` and starts the server (python3).
    pub fn start(dir: &Path, host: &str) -> Upstream {
        let tls = dir.join("upstream-tls");
        std::fs::create_dir_all(&tls).expect("mkdir");
        openssl(
            &tls,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=sandbox test upstream CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        );
        openssl(
            &tls,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                &format!("/CN={host}"),
            ],
        );
        std::fs::write(
            tls.join("leaf.ext"),
            format!("subjectAltName=DNS:{host}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
        )
        .expect("write leaf.ext");
        openssl(
            &tls,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "leaf.pem",
                "-days",
                "2",
                "-extfile",
                "leaf.ext",
            ],
        );
        std::fs::write(tls.join("upstream.py"), UPSTREAM_PY).expect("write upstream.py");
        let mut child = Command::new("python3")
            .arg(tls.join("upstream.py"))
            .arg(tls.join("leaf.pem"))
            .arg(tls.join("leaf.key"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the python3 upstream");
        let mut stdout = child.stdout.take().expect("stdout");
        let server = Guarded(child);
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while stdout.read(&mut byte).map(|n| n == 1).unwrap_or(false)
            && byte[0] != b'\n'
            && line.len() < 16
        {
            line.push(byte[0]);
        }
        let port: u16 = String::from_utf8_lossy(&line)
            .trim()
            .parse()
            .expect("the upstream printed its port");
        std::fs::set_permissions(tls.join("ca.pem"), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        std::fs::set_permissions(&tls, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Upstream {
            port,
            ca_pem: tls.join("ca.pem"),
            _server: server,
        }
    }
}

/// Pids of host processes whose command line contains `marker`.
pub fn pids_with_marker(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            let spaced: Vec<u8> = cmdline
                .iter()
                .map(|b| if *b == 0 { b' ' } else { *b })
                .collect();
            if String::from_utf8_lossy(&spaced).contains(marker) {
                // Zombies have an empty cmdline, so a match is a live process.
                out.push(pid);
            }
        }
    }
    out
}
