//! Workspaces that are git repositories, for the tests of what a session changed, its done
//! checks and its rollback drill.

use std::path::Path;
use std::process::Command;

use crate::sandbox_harness::TestDir;
use crate::users::User;

/// Runs `git ARGS` in `dir` on the host (any owner: `safe.directory=*`), with a fixed test
/// identity; panics when git fails.
pub fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.email=it@example.invalid",
            "-c",
            "user.name=it",
            "-c",
            "safe.directory=*",
        ])
        .args(args)
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?} in {}", dir.display());
}

/// `git ARGS` in `dir`, its trimmed stdout.
pub fn git_out(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "safe.directory=*"])
        .args(args)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?} in {}", dir.display());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A test directory whose workspace is a git repository on `main` with one commit
/// (`README.md`), owned by `user`.
pub fn repo(user: User, name: &str) -> TestDir {
    let dir = TestDir::new(user, name);
    git(&dir.workspace, &["init", "-q", "-b", "main"]);
    dir.write("ws/README.md", "hello\nworld\n");
    git(&dir.workspace, &["add", "-A"]);
    git(&dir.workspace, &["commit", "-qm", "init"]);
    dir.own();
    dir
}
