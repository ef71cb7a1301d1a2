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
