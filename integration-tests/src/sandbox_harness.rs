//! Harness for the `sandbox run` tests (`tests/run_*.rs`): a throw-away workspace owned by the
//! user under test, a bounded run of `sandbox run`, and loopback-only helpers (a host TCP/UDP
//! server). The HTTPS upstream is `crate::upstream`. Nothing here names a non-loopback address.

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

/// Runs `sandbox ARGS` (any subcommand) as `user` in `dir`'s root and waits (bounded).
pub fn sandbox_as(user: User, dir: &TestDir, args: &[&str]) -> RunOutput {
    let child = user
        .command(sandbox_bin())
        .args(args)
        .current_dir(&dir.root)
        .env("HOME", dir.root.join("home"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sandbox");
    wait_bounded(child, RUN_TIMEOUT)
}

/// Starts `sandbox run ARGS -- sh -c SCRIPT` as `user`; once `SCRIPT` has created the file
/// `started` in the workspace, SIGKILLs the supervisor and reaps it (bounded: 30 s to start).
pub fn kill_supervisor_once_started(user: User, dir: &TestDir, args: &[&str], script: &str) {
    let marker = dir.workspace.join("started");
    let _ = std::fs::remove_file(&marker);
    let mut child = run_command(user, dir, args, script)
        .spawn()
        .expect("spawn sandbox run");
    let start = Instant::now();
    while !marker.exists() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("as {}: the session never started", user.label());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .arg("-KILL")
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill the supervisor");
    let _ = child.wait();
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

/// Pids of host processes (other than this one) for which `keep` holds.
fn host_pids(keep: impl Fn(u32) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id() && keep(*pid))
        .collect()
}

/// Pids of host processes whose command line contains `marker`.
pub fn pids_with_marker(marker: &str) -> Vec<u32> {
    host_pids(|pid| {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let spaced: Vec<u8> = cmdline
            .iter()
            .map(|b| if *b == 0 { b' ' } else { *b })
            .collect();
        // Zombies have an empty cmdline, so a match is a live process.
        String::from_utf8_lossy(&spaced).contains(marker)
    })
}

/// Pids of host processes whose pid namespace is `ns` (a `pid:[N]` link text).
pub fn pids_in_namespace(ns: &str) -> Vec<u32> {
    host_pids(|pid| {
        std::fs::read_link(format!("/proc/{pid}/ns/pid"))
            .is_ok_and(|link| link.to_string_lossy() == ns)
    })
}

/// The first file under `root` whose bytes contain `needle` (for "the secret is nowhere the
/// agent could write" checks).
pub fn file_containing(root: &Path, needle: &str) -> Option<PathBuf> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                return Some(path);
            }
        }
    }
    None
}
