//! `sandbox run` with a terminal: a full-screen (curses) program draws and takes a key, the
//! agent's controlling terminal is the sandbox's own pty, the window size is passed on, and
//! the exit code still propagates. `script` (util-linux) provides the outer terminal.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use integration_tests::bin::sandbox_bin;
use integration_tests::sandbox_harness::{wait_bounded, TestDir, RUN_TIMEOUT};
use integration_tests::users::each_user;

const TUI: &str = r#"
import curses, os, sys
def main(w):
    h, wd = w.getmaxyx()
    w.addstr(0, 0, "TUI-READY %dx%d" % (wd, h))
    w.refresh()
    k = w.getkey()
    curses.endwin()
    print("TUI-KEY", k, "TTY", os.ttyname(0))
curses.wrapper(main)
sys.exit(3)
"#;

#[test]
fn a_full_screen_program_draws_and_takes_keys_in_the_sandbox_pty() {
    for user in each_user() {
        let dir = TestDir::new(user, "tty");
        dir.write("ws/tui.py", TUI);
        let inner = format!(
            "stty cols 91 rows 27; {} run --workspace {} -- python3 tui.py",
            sandbox_bin().display(),
            dir.workspace.display()
        );
        let mut child = user
            .command("script")
            .args(["-qec", &inner, "/dev/null"])
            .current_dir(&dir.workspace)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run script (util-linux)");
        let mut stdin = child.stdin.take().expect("stdin");
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            let _ = stdin.write_all(b"q");
            std::thread::sleep(Duration::from_millis(500));
        });
        let out = wait_bounded(child, RUN_TIMEOUT);
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 3, "{ctx}");
        assert!(out.stdout.contains("TUI-READY 91x27"), "{ctx}");
        assert!(out.stdout.contains("TUI-KEY q TTY /dev/pts/0"), "{ctx}");
    }
}

/// Drives `sandbox run` on a pty of its own (Python's `pty`), resizes it, and reports what the
/// agent saw. Bounded: 20 s, then the sandbox is killed.
const WINCH_DRIVER: &str = r#"
import os, pty, sys, time, fcntl, termios, struct, select, signal
sandbox, ws = sys.argv[1], sys.argv[2]
script = "trap 'echo WINCH $(stty size); exit 4' WINCH; echo READY $(stty size); i=0; while [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done"
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 20, 70, 0, 0))
    os.execv(sandbox, [sandbox, "run", "--workspace", ws, "--", "sh", "-c", script])
out, resized, deadline = b"", False, time.time() + 20
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    if not resized and b"READY 20 70" in out:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
        resized = True
else:
    os.kill(pid, signal.SIGKILL)
_, status = os.waitpid(pid, 0)
print(out.decode(errors="replace").replace("\r", ""))
print("EXIT", os.waitstatus_to_exitcode(status))
"#;

#[test]
fn a_window_size_change_reaches_the_agent() {
    for user in each_user() {
        let dir = TestDir::new(user, "winch");
        let driver = dir.write("winch.py", WINCH_DRIVER);
        let child = user
            // The system interpreter: a per-user shim (pyenv) is not reachable for nobody.
            .command(if std::path::Path::new("/usr/bin/python3").exists() {
                "/usr/bin/python3"
            } else {
                "python3"
            })
            .arg(&driver)
            .arg(sandbox_bin())
            .arg(&dir.workspace)
            .current_dir(&dir.workspace)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the pty driver (python3)");
        let out = wait_bounded(child, RUN_TIMEOUT);
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert!(out.stdout.contains("READY 20 70"), "{ctx}");
        assert!(out.stdout.contains("WINCH 33 111"), "{ctx}");
        assert!(out.stdout.contains("EXIT 4"), "{ctx}");
    }
}
