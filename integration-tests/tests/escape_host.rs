//! The escape suite's probes of the agent reaching back into the host (issue 16): host unix
//! sockets, code planted for the host's git, editor or agent to run later (nested and bare
//! repositories, `.git` pointer files, hook config, editor and agent config), a fork bomb and
//! a memory hog. Each runs as root and as nobody; nothing here leaves loopback (no contract
//! allows a host, and the sandbox has its own network namespace).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use integration_tests::flowcheck::verify_chain;
use integration_tests::sandbox_harness::{kill_supervisor_once_started, run, tagged, TestDir};
use integration_tests::users::each_user;

/// A host process listening on a pathname socket (mode 0777, so that only the sandbox can
/// stand in the way) that answers `HOST-SECRET` and counts its connections.
struct HostSocket {
    accepted: Arc<AtomicUsize>,
    _thread: std::thread::JoinHandle<()>,
}

fn host_socket(path: &Path) -> HostSocket {
    let listener = UnixListener::bind(path).expect("bind the host socket");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let thread = std::thread::spawn(move || {
        // bounded: the longest test session is well under a minute
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        while std::time::Instant::now() < deadline {
            match listener.accept() {
                Ok((mut s, _)) => {
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = s.write_all(b"HOST-SECRET\n");
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    });
    HostSocket {
        accepted,
        _thread: thread,
    }
}

const CONNECT_PROBE: &str = r#"
import socket, sys
def probe(tag, path):
    try:
        c = socket.socket(socket.AF_UNIX)
        c.connect(path)
        print(tag, "CONNECTED", c.recv(100).decode().strip())
    except OSError as e:
        print(tag, "REFUSED", e.errno)
probe("PATHNAME", sys.argv[1])
try:
    c = socket.socket(socket.AF_UNIX)
    c.connect("\0sandbox-it-abstract")
    print("ABSTRACT CONNECTED")
except OSError as e:
    print("ABSTRACT REFUSED", e.errno)
a, b = socket.socketpair()
a.send(b"x")
print("PAIR", b.recv(1).decode())
"#;

#[test]
fn a_host_unix_socket_is_unreachable_unless_the_contract_names_it() {
    // an abstract socket of the host's network namespace
    let abstract_listener = {
        use std::os::linux::net::SocketAddrExt;
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(b"sandbox-it-abstract").unwrap();
        UnixListener::bind_addr(&addr).expect("bind the abstract socket")
    };
    for user in each_user() {
        let dir = TestDir::new(user, "host-socket");
        std::fs::create_dir_all(dir.workspace.join("src")).unwrap();
        dir.write("ws/probe.py", CONNECT_PROBE);
        let sock = dir.workspace.join("src/host.sock");
        let host = host_socket(&sock);
        let s = sock.to_str().unwrap();

        // the default: no unix socket at all (EPERM), the pair still works
        let c = dir.contract("write = [\".\"]\n", &[]);
        let out = run(
            user,
            &dir,
            &["--contract", c.to_str().unwrap()],
            &format!("python3 probe.py {s}"),
        );
        let ctx = format!("as {} (default):\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        assert_eq!(
            tagged(&out.stdout, "PATHNAME"),
            "PATHNAME REFUSED 1",
            "{ctx}"
        );
        assert_eq!(
            tagged(&out.stdout, "ABSTRACT"),
            "ABSTRACT REFUSED 1",
            "{ctx}"
        );
        assert_eq!(tagged(&out.stdout, "PAIR"), "PAIR x", "{ctx}");

        // `internal = true`: sockets allowed, but the host's is covered (EACCES) and the
        // abstract one lives in another network namespace (ECONNREFUSED)
        let c = dir.contract("write = [\".\"]\n[sockets]\ninternal = true\n", &[]);
        let out = run(
            user,
            &dir,
            &["--contract", c.to_str().unwrap()],
            &format!("python3 probe.py {s}"),
        );
        let ctx = format!("as {} (internal):\n{}", user.label(), out.both());
        assert_eq!(
            tagged(&out.stdout, "PATHNAME"),
            "PATHNAME REFUSED 13",
            "{ctx}"
        );
        assert_eq!(
            tagged(&out.stdout, "ABSTRACT"),
            "ABSTRACT REFUSED 111",
            "{ctx}"
        );
        assert_eq!(host.accepted.load(Ordering::SeqCst), 0, "{ctx}");
        let records = verify_chain(&dir.log_path()).unwrap();
        let start = records
            .iter()
            .rev()
            .find(|r| r["event"] == "session_start")
            .unwrap();
        let layer = start["detail"]["layers"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["layer"] == "unix_sockets")
            .unwrap();
        assert_eq!(layer["state"], "partial", "{ctx}");
        assert_eq!(start["detail"]["layers"]["full"], false, "{ctx}");

        // named in `connect`: reachable, and a flow in the log
        let _ = std::fs::remove_file(dir.log_path());
        let c = dir.contract(
            "write = [\".\"]\n[sockets]\nconnect = [\"src/host.sock\"]\n",
            &[],
        );
        let out = run(
            user,
            &dir,
            &["--contract", c.to_str().unwrap()],
            &format!("python3 probe.py {s}"),
        );
        let ctx = format!("as {} (connect):\n{}", user.label(), out.both());
        assert_eq!(
            tagged(&out.stdout, "PATHNAME"),
            "PATHNAME CONNECTED HOST-SECRET",
            "{ctx}"
        );
        assert_eq!(host.accepted.load(Ordering::SeqCst), 1, "{ctx}");
        let records = verify_chain(&dir.log_path()).unwrap();
        let grant = records
            .iter()
            .find(|r| r["kind"] == "unix")
            .unwrap_or_else(|| panic!("no unix record: {ctx}"));
        assert_eq!(grant["decision"], "allow");
        assert_eq!(grant["rule"], "sockets.connect");
        assert_eq!(grant["path"], s);
    }
    drop(abstract_listener);
}

/// Host-side git commands that would run what the agent planted: each hook or fsmonitor the
/// agent wrote touches `PWNED` in the test root.
fn host_git_runs_nothing(dir: &TestDir, ctx: &str) {
    let pwned = dir.root.join("PWNED");
    for sub in [
        ".",
        "sub",
        "tools/x.git",
        "pointer",
        "scratch",
        "scratch.git",
    ] {
        let d = dir.workspace.join(sub);
        if !d.exists() {
            continue;
        }
        for args in [
            &["status"][..],
            &["checkout", "-q", "."][..],
            &["log", "-1"][..],
        ] {
            let _ = Command::new("git")
                .args(["-c", "safe.directory=*"])
                .args(args)
                .current_dir(&d)
                .output();
        }
    }
    assert!(
        !pwned.exists(),
        "the host's git ran code the agent planted: {ctx}"
    );
}

/// The agent plants: a nested repository with an fsmonitor and a hook, a bare repository with
/// an fsmonitor, a `.git` pointer file to it, `core.hooksPath` in a config of its own, editor
/// and agent config; it also tries the workspace repository's own config and hooks.
fn plant_script(pwned: &Path) -> String {
    let p = pwned.display();
    format!(
        r#"
mkdir -p sub/.git/objects sub/.git/refs && echo 'ref: refs/heads/main' > sub/.git/HEAD
printf '[core]\n\tfsmonitor = touch {p}\n\thooksPath = hooks2\n' > sub/.git/config
mkdir -p sub/.git/hooks; printf '#!/bin/sh\ntouch {p}\n' > sub/.git/hooks/post-checkout; chmod +x sub/.git/hooks/post-checkout
mkdir -p sub/hooks2 && printf '#!/bin/sh\ntouch {p}\n' > sub/hooks2/post-checkout && chmod +x sub/hooks2/post-checkout
mkdir -p tools/x.git/objects tools/x.git/refs && echo 'ref: refs/heads/main' > tools/x.git/HEAD
printf '[core]\n\tbare = true\n\tfsmonitor = touch {p}\n' > tools/x.git/config
mkdir -p tools/x.git/hooks; printf '#!/bin/sh\ntouch {p}\n' > tools/x.git/hooks/post-checkout
mkdir -p pointer && echo "gitdir: ../tools/x.git" > pointer/.git
git init -q scratch; git -C scratch config core.fsmonitor "touch {p}"; git init -q --bare scratch.git
printf '[core]\n\tfsmonitor = touch {p}\n' >> .git/config 2>/dev/null && echo "ROOTCONFIG WRITTEN" || echo "ROOTCONFIG REFUSED"
printf '#!/bin/sh\ntouch {p}\n' > .git/hooks/post-checkout 2>/dev/null && echo "ROOTHOOK WRITTEN" || echo "ROOTHOOK REFUSED"
echo 'touch {p}' > .envrc
mkdir -p .vscode .claude .idea && echo '{{"version":"2.0.0","tasks":[{{"label":"x","command":"touch {p}","runOptions":{{"runOn":"folderOpen"}}}}]}}' > .vscode/tasks.json
echo '{{"hooks":{{"SessionStart":[{{"hooks":[{{"type":"command","command":"touch {p}"}}]}}]}}}}' > .claude/settings.json
echo '{{"mcpServers":{{"x":{{"command":"touch","args":["{p}"]}}}}}}' > .mcp.json
echo '<project/>' > .idea/workspace.xml
sleep 0.5
for f in sub/.git/config sub/.git/hooks tools/x.git/config tools/x.git/hooks pointer/.git .envrc .vscode/tasks.json .claude/settings.json .mcp.json .idea scratch/.git/config scratch/.git/hooks scratch.git/config scratch.git/hooks; do test -e "$f" && echo "LEFT $f"; done
echo "PLANTED done"
"#
    )
}

const PLANTED: &[&str] = &[
    "sub/.git/config",
    "sub/.git/hooks",
    "tools/x.git/config",
    "tools/x.git/hooks",
    "pointer/.git",
    ".envrc",
    ".vscode/tasks.json",
    ".claude/settings.json",
    ".mcp.json",
    ".idea",
];

#[test]
fn planted_repositories_hooks_and_config_are_refused_as_they_appear() {
    for user in each_user() {
        let dir = integration_tests::git_repo::repo(user, "planted");
        let c = dir.contract("write = [\".\"]\n", &[]);
        let out = run(
            user,
            &dir,
            &["--contract", c.to_str().unwrap()],
            &plant_script(&dir.root.join("PWNED")),
        );
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        assert!(out.stdout.contains("PLANTED done"), "{ctx}");
        // refused while the agent ran, not only after it
        assert!(!out.stdout.contains("LEFT "), "{ctx}");
        assert!(out.stdout.contains("ROOTCONFIG REFUSED"), "{ctx}");
        assert!(out.stdout.contains("ROOTHOOK REFUSED"), "{ctx}");
        for p in PLANTED {
            assert!(!dir.workspace.join(p).exists(), "{p} is still there: {ctx}");
        }
        host_git_runs_nothing(&dir, &ctx);
        // one deny record per planted path, each once (git's own `init` gets its config and
        // hooks refused while it writes them, so those are not counted here)
        let records = verify_chain(&dir.log_path()).unwrap();
        let refused: Vec<String> = records
            .iter()
            .filter(|r| r["kind"] == "file" && r["decision"] == "deny")
            .map(|r| r["path"].as_str().unwrap().to_owned())
            .collect();
        for p in PLANTED {
            let full = dir.workspace.join(p).display().to_string();
            assert_eq!(
                refused.iter().filter(|r| **r == full).count(),
                1,
                "{p} in {refused:?}: {ctx}"
            );
        }
        for p in ["scratch/.git/config", "scratch.git/config"] {
            assert!(!dir.workspace.join(p).exists(), "{p}: {ctx}");
        }
        let mut unique = refused.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), refused.len(), "each path once: {refused:?}");
    }
}

#[test]
fn after_a_sigkilled_supervisor_the_host_runs_nothing_the_agent_planted() {
    for user in each_user() {
        let dir = integration_tests::git_repo::repo(user, "planted-killed");
        let c = dir.contract("write = [\".\"]\n", &[]);
        let script = format!(
            "{}\ntouch started; sleep 60",
            plant_script(&dir.root.join("PWNED"))
        );
        kill_supervisor_once_started(user, &dir, &["--contract", c.to_str().unwrap()], &script);
        let ctx = format!("as {}", user.label());
        // no next session has run: the live refusal alone kept the host safe
        for p in PLANTED {
            assert!(
                !dir.workspace.join(p).exists(),
                "{p} survived the kill {ctx}"
            );
        }
        host_git_runs_nothing(&dir, &ctx);
    }
}

#[test]
fn a_fork_bomb_ends_in_the_agents_own_failure_with_the_cause_logged() {
    let bomb = r#"
import os, sys, time
n = 0
while n < 100000:
    try:
        pid = os.fork()
    except OSError as e:
        print("FORK FAILED", n, e.errno)
        sys.stdout.flush()
        time.sleep(0.6)
        sys.exit(3)
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    n += 1
print("NEVER FAILED", n)
"#;
    for user in each_user() {
        let dir = TestDir::new(user, "fork-bomb");
        dir.write("ws/bomb.py", bomb);
        let c = dir.contract("write = [\".\"]\n[limits]\npids = 400\n", &[]);
        let out = run(
            user,
            &dir,
            &["--contract", c.to_str().unwrap()],
            "python3 bomb.py",
        );
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 3, "the agent's own failure: {ctx}");
        let line = tagged(&out.stdout, "FORK");
        let forked: u32 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert!(forked < 400, "{ctx}");
        assert!(out.stderr.contains("reached its process limit"), "{ctx}");
        // the host still forks
        assert!(Command::new("true").status().unwrap().success());
        let records = verify_chain(&dir.log_path()).unwrap();
        let start = records
            .iter()
            .find(|r| r["event"] == "session_start")
            .unwrap();
        assert_eq!(start["detail"]["limits"]["pids"], 400, "{ctx}");
        let end = records
            .iter()
            .find(|r| r["event"] == "session_end")
            .unwrap();
        assert_eq!(end["detail"]["limits"]["reached"][0], "pids", "{ctx}");
        assert_eq!(end["detail"]["exit_code"], 3, "{ctx}");
    }
}

#[test]
fn a_memory_hog_ends_in_the_agents_own_failure_with_the_cause_logged() {
    let hog = r#"
import sys
chunks = []
try:
    for i in range(4096):
        chunks.append(b"x" * (8 << 20))
    print("NEVER FAILED")
except MemoryError:
    print("MEMORY FAILED", len(chunks) * 8)
    sys.exit(4)
"#;
    for user in each_user() {
        let dir = TestDir::new(user, "memory-hog");
        dir.write("ws/hog.py", hog);
        let c = dir.contract("write = [\".\"]\n[limits]\nmemory = \"256M\"\n", &[]);
        let out = run(
            user,
            &dir,
            &["--contract", c.to_str().unwrap()],
            "python3 hog.py",
        );
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 4, "the agent's own failure: {ctx}");
        let line = tagged(&out.stdout, "MEMORY");
        let mib: u64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert!(mib <= 256, "{ctx}");
        assert!(out.stderr.contains("reached the memory limit"), "{ctx}");
        let records = verify_chain(&dir.log_path()).unwrap();
        let end = records
            .iter()
            .find(|r| r["event"] == "session_end")
            .unwrap();
        assert_eq!(end["detail"]["limits"]["reached"][0], "memory", "{ctx}");
        assert_eq!(
            end["detail"]["limits"]["memory_per_process_bytes"],
            256u64 << 20
        );
    }
}
