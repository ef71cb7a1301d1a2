//! `sandbox run` processes: the host environment's secrets stay out, signals to host processes
//! fail, nothing survives a SIGKILL of the supervisor or a normal exit, escape syscalls fail with EPERM, and exit
//! codes propagate (agent's code, 125 set-up, 126 not executable, 127 not found, 128+n killed).

use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::sandbox_harness::{
    pids_in_namespace, pids_with_marker, run, run_argv, run_command, tagged, wait_bounded, Guarded,
    TestDir, RUN_TIMEOUT,
};
use integration_tests::users::each_user;

#[test]
fn a_secret_in_the_host_environment_is_not_visible_inside() {
    for user in each_user() {
        let dir = TestDir::new(user, "env");
        let mut cmd = run_command(
            user,
            &dir,
            &[],
            "env; echo \"PROC1 $(cat /proc/1/environ 2>&1 | tr '\\0' ' ')\"; echo \"AWS ${AWS_SECRET_ACCESS_KEY:-unset}\"",
        );
        cmd.env("OPENAI_API_KEY", "sk-host-secret-value")
            .env("AWS_SECRET_ACCESS_KEY", "aws-host-secret-value");
        let out = wait_bounded(cmd.spawn().expect("spawn"), RUN_TIMEOUT);
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        assert!(!out.stdout.contains("host-secret-value"), "{ctx}");
        assert_eq!(tagged(&out.stdout, "AWS"), "AWS unset", "{ctx}");
        assert!(
            tagged(&out.stdout, "PROC1").contains("Permission denied"),
            "{ctx}"
        );
        assert!(out.stdout.contains("SANDBOX=1"), "{ctx}");
    }
}

#[test]
fn signals_to_host_processes_fail() {
    for user in each_user() {
        let dir = TestDir::new(user, "signals");
        let victim = Guarded(
            user.command("sleep")
                .arg("30")
                .spawn()
                .expect("start a host process"),
        );
        let pid = victim.0.id();
        let script = format!(
            "echo \"KILLHOST $(kill -TERM {pid} 2>&1; echo rc=$?)\"; echo \"KILLINIT $(kill -TERM 1 2>&1; echo rc=$?)\""
        );
        let out = run(user, &dir, &[], &script);
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        let killhost = tagged(&out.stdout, "KILLHOST");
        assert!(
            killhost.contains("No such process") && !killhost.contains("rc=0"),
            "{ctx}"
        );
        let killinit = tagged(&out.stdout, "KILLINIT");
        assert!(
            killinit.contains("Operation not permitted") && !killinit.contains("rc=0"),
            "{ctx}"
        );
        // The host process is still alive.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            !state.is_empty() && !state.contains(") Z "),
            "the host process died: {ctx}"
        );
    }
}

#[test]
fn after_sigkill_of_the_supervisor_no_sandboxed_process_is_left() {
    for user in each_user() {
        let dir = TestDir::new(user, "sigkill");
        let marker = format!("sbxmark{}u{}", std::process::id(), user.label().len());
        let needle = format!("/tmp/{marker} 30");
        let script = format!(
            "cp /bin/sleep /tmp/{marker}; (/tmp/{marker} 300 &); /tmp/{marker} 301 & /tmp/{marker} 302"
        );
        let mut child = run_command(user, &dir, &[], &script)
            .spawn()
            .expect("spawn");
        let supervisor = child.id();
        let start = Instant::now();
        let inside = loop {
            let pids: Vec<u32> = pids_with_marker(&needle)
                .into_iter()
                .filter(|p| *p != supervisor)
                .collect();
            if pids.len() >= 3 {
                break pids;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("as {}: the sandboxed sleeps never started", user.label());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Command::new("kill")
            .arg("-KILL")
            .arg(supervisor.to_string())
            .status()
            .expect("kill");
        let _ = child.wait();
        let start = Instant::now();
        loop {
            let left = pids_with_marker(&needle);
            if left.is_empty() {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) {
                for pid in &left {
                    let _ = Command::new("kill")
                        .arg("-KILL")
                        .arg(pid.to_string())
                        .status();
                }
                panic!(
                    "as {}: sandboxed processes {left:?} (of {inside:?}) survived the supervisor's SIGKILL",
                    user.label()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn after_a_normal_exit_the_sandbox_init_is_gone_too() {
    // The init outlives the agent until the supervisor has finished the session (its
    // namespaces are torn down off the session's path), and no longer.
    for user in each_user() {
        let dir = TestDir::new(user, "init-gone");
        let out = run(user, &dir, &[], "echo \"NS $(readlink /proc/self/ns/pid)\"");
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        let ns = tagged(&out.stdout, "NS")
            .trim_start_matches("NS ")
            .to_owned();
        assert!(ns.starts_with("pid:["), "{ctx}");
        let host_ns = std::fs::read_link("/proc/self/ns/pid").expect("host pid namespace");
        assert_ne!(
            ns,
            host_ns.to_string_lossy(),
            "the agent ran in its own pid namespace: {ctx}"
        );
        let start = Instant::now();
        loop {
            let left = pids_in_namespace(&ns);
            if left.is_empty() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "as {}: processes {left:?} of the sandbox's pid namespace {ns} outlived `sandbox run` by 10 s",
                user.label()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn exit_codes_propagate() {
    for user in each_user() {
        let dir = TestDir::new(user, "exit");
        dir.write("ws/not-executable.sh", "#!/bin/sh\necho hi\n");
        let who = user.label();

        let out = run(user, &dir, &[], "exit 7");
        assert_eq!(out.code, 7, "as {who}: {}", out.both());

        let out = run(user, &dir, &[], "kill -KILL $$");
        assert_eq!(out.code, 137, "as {who}: {}", out.both());

        let out = run_argv(user, &dir, &[], &["no-such-command-sandbox-it"]);
        assert_eq!(out.code, 127, "as {who}: {}", out.both());
        assert!(
            out.stderr.contains("command not found"),
            "as {who}: {}",
            out.both()
        );

        let out = run_argv(user, &dir, &[], &["./not-executable.sh"]);
        assert_eq!(out.code, 126, "as {who}: {}", out.both());
        assert!(
            out.stderr.contains("not executable"),
            "as {who}: {}",
            out.both()
        );

        let missing = dir.root.join("no-such-contract.toml");
        let out = run_argv(
            user,
            &dir,
            &["--contract", missing.to_str().unwrap()],
            &["true"],
        );
        assert_eq!(out.code, 125, "as {who}: {}", out.both());
        assert!(
            out.stderr.contains("cannot read the contract"),
            "as {who}: {}",
            out.both()
        );

        let bad = dir.write("bad.toml", "version = 1\n[files]\nwrite = 3\n");
        let out = run_argv(
            user,
            &dir,
            &["--contract", bad.to_str().unwrap()],
            &["true"],
        );
        assert_eq!(out.code, 125, "as {who}: {}", out.both());
        assert!(
            out.stderr.contains("is invalid"),
            "as {who}: {}",
            out.both()
        );

        let out = run_argv(user, &dir, &[], &["true"]);
        assert_eq!(out.code, 0, "as {who}: {}", out.both());
    }
}

#[test]
fn seccomp_denies_escape_syscalls_with_a_clear_error() {
    for user in each_user() {
        let dir = TestDir::new(user, "seccomp");
        let script = r#"
echo "UNSHARE $(unshare -r true 2>&1; echo rc=$?)"
echo "UNSHARE_NET $(unshare -n true 2>&1; echo rc=$?)"
python3 - <<'PY'
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def probe(tag, rc):
    e = ctypes.get_errno()
    print(tag, "rc=%d" % rc, os.strerror(e) if rc < 0 else "")
probe("PTRACE", libc.ptrace(16, 1, 0, 0))
probe("IOURING", libc.syscall(425, 8, ctypes.c_void_p(0)))
probe("BPF", libc.syscall(321, 0, 0, 0))
probe("KEYCTL", libc.syscall(250, 0, 0, 0, 0, 0))
probe("MOUNT", libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
probe("TIOCSTI", libc.ioctl(0, 0x5412, ctypes.byref(ctypes.c_char(b"x"))))
try:
    socket.socket(40, socket.SOCK_STREAM); print("VSOCK rc=0")
except OSError as e:
    print("VSOCK rc=-1", e.strerror)
PY
"#;
        let out = run(user, &dir, &[], script);
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        for tag in ["UNSHARE", "UNSHARE_NET"] {
            let line = tagged(&out.stdout, tag);
            assert!(
                line.contains("Operation not permitted") && !line.contains("rc=0"),
                "{tag}: {ctx}"
            );
        }
        for tag in [
            "PTRACE", "IOURING", "BPF", "KEYCTL", "MOUNT", "TIOCSTI", "VSOCK",
        ] {
            let line = tagged(&out.stdout, tag);
            assert!(
                line.contains("rc=-1") && line.contains("Operation not permitted"),
                "{tag}: {ctx}"
            );
        }
    }
}

#[test]
fn sigterm_and_sigint_to_the_supervisor_reach_the_agent() {
    for user in each_user() {
        for (signal, name) in [("-TERM", "TERM"), ("-INT", "INT")] {
            let dir = TestDir::new(user, "forward");
            let script = format!(
                "trap 'echo GOT-{name}; exit 42' {name}; touch ready; sleep 30 & wait; echo NOT-INTERRUPTED"
            );
            let child = run_command(user, &dir, &[], &script)
                .spawn()
                .expect("spawn");
            let supervisor = child.id();
            let start = Instant::now();
            while !dir.workspace.join("ready").exists() {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "the agent never started"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Command::new("kill")
                .arg(signal)
                .arg(supervisor.to_string())
                .status()
                .expect("kill");
            let out = wait_bounded(child, RUN_TIMEOUT);
            let ctx = format!("as {}, SIG{name}:\n{}", user.label(), out.both());
            assert_eq!(out.code, 42, "{ctx}");
            assert!(out.stdout.contains(&format!("GOT-{name}")), "{ctx}");
            assert!(!out.stdout.contains("NOT-INTERRUPTED"), "{ctx}");
        }
    }
}

#[test]
fn kernel_knobs_are_read_only_and_leaked_descriptors_do_not_reach_the_agent() {
    for user in each_user() {
        let dir = TestDir::new(user, "knobs");
        let secret = dir.write("outside-secret.txt", "LEAKED-THROUGH-FD\n");
        // The invoking process leaks descriptor 7 (a file outside the view) to `sandbox run`.
        let inner = format!(
            "exec 7<{secret}; exec {bin} run --workspace {ws} -- sh -c '{script}'",
            secret = secret.display(),
            bin = integration_tests::bin::sandbox_bin().display(),
            ws = dir.workspace.display(),
            script = "echo \"FD7 $(cat <&7 2>&1)\"; echo \"FDS $(ls /proc/self/fd | tr \"\\n\" \" \")\"; \
                      echo \"SYSCTL $(cat /proc/sys/kernel/domainname > /proc/sys/kernel/domainname 2>&1; echo rc=$?)\"; \
                      echo \"SYSRQ $(test -w /proc/sysrq-trigger && echo writable || echo read-only)\"; \
                      echo \"COMM $(echo x > /proc/self/comm 2>&1; echo rc=$?)\"",
        );
        let child = user
            .command("sh")
            .args(["-c", &inner])
            .current_dir(&dir.workspace)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let out = wait_bounded(child, RUN_TIMEOUT);
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        assert!(!out.stdout.contains("LEAKED-THROUGH-FD"), "{ctx}");
        // The shell reports failed redirections on its own stderr.
        assert_eq!(tagged(&out.stdout, "FD7"), "FD7 ", "{ctx}");
        assert!(out.stderr.contains("7: Bad file descriptor"), "{ctx}");
        assert_eq!(tagged(&out.stdout, "FDS"), "FDS 0 1 2 3 ", "{ctx}");
        assert!(!tagged(&out.stdout, "SYSCTL").contains("rc=0"), "{ctx}");
        assert!(
            out.stderr
                .contains("/proc/sys/kernel/domainname: Read-only file system"),
            "{ctx}"
        );
        assert_eq!(tagged(&out.stdout, "SYSRQ"), "SYSRQ read-only", "{ctx}");
        assert!(!tagged(&out.stdout, "COMM").contains("rc=0"), "{ctx}");
        assert!(
            out.stderr.contains("/proc/self/comm: Permission denied"),
            "{ctx}"
        );
    }
}

#[test]
fn the_contract_env_pass_lets_only_the_listed_variables_in() {
    for user in each_user() {
        let dir = TestDir::new(user, "envpass");
        let contract = dir.write(
            "contract.toml",
            "version = 1\n[task]\nid = \"IT-3\"\nclass = \"B\"\nobjective = \"env pass\"\n\
             done = []\nrollback = \"none\"\n[files]\nwrite = [\".\"]\n[network]\n\
             [env]\npass = [\"SANDBOX_IT_PASSED\"]\n",
        );
        let mut cmd = run_command(
            user,
            &dir,
            &["--contract", contract.to_str().unwrap()],
            "echo \"PASSED ${SANDBOX_IT_PASSED:-unset}\"; echo \"OTHER ${SANDBOX_IT_OTHER:-unset}\"; echo \"PROXY $HTTPS_PROXY\"",
        );
        cmd.env("SANDBOX_IT_PASSED", "passed-value")
            .env("SANDBOX_IT_OTHER", "other-value")
            .env("HTTPS_PROXY", "http://127.0.0.1:9");
        let out = wait_bounded(cmd.spawn().expect("spawn"), RUN_TIMEOUT);
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        assert_eq!(
            tagged(&out.stdout, "PASSED"),
            "PASSED passed-value",
            "{ctx}"
        );
        assert_eq!(tagged(&out.stdout, "OTHER"), "OTHER unset", "{ctx}");
        assert_eq!(
            tagged(&out.stdout, "PROXY"),
            "PROXY http://127.0.0.1:3128",
            "{ctx}"
        );
    }
}

#[test]
fn doctor_reports_every_feature_and_agrees_with_run() {
    for user in each_user() {
        let out = wait_bounded(
            user.command(integration_tests::bin::sandbox_bin())
                .arg("doctor")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn doctor"),
            RUN_TIMEOUT,
        );
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        for needle in [
            "kernel: Linux",
            "user namespaces",
            "creating user+mount+pid+net namespaces",
            "Landlock",
            "landlock-tcp",
            "landlock-scope",
            "seccomp",
        ] {
            assert!(out.stdout.contains(needle), "{needle}: {ctx}");
        }
        // doctor says "everything is available" exactly when `run` starts without --best-effort.
        let dir = TestDir::new(user, "doctor");
        let run_out = run(user, &dir, &[], "true");
        assert_eq!(
            out.code == 0,
            run_out.code == 0,
            "{ctx}\n{}",
            run_out.both()
        );
        if out.code != 0 {
            assert!(out.stdout.contains("fix:"), "{ctx}");
        }
    }
}
