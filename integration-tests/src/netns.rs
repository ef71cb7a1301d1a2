//! Running a test body inside a fresh network namespace that has only `lo`, so that a test
//! naming a non-loopback address (169.254.169.254, 10.0.0.1, 192.0.2.x) cannot send a packet
//! off the machine even if the code under test is wrong.
//!
//! The test binary re-executes itself as `unshare -rn -- <test binary> --exact <name>` (as
//! each user); the inner run checks that its namespace differs from the outer one, brings `lo`
//! up, and asserts it is the only interface.

use std::process::Command;

use crate::users::User;

const INNER: &str = "SANDBOX_IT_OUTER_NETNS";

fn netns_id() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .map(|p| p.display().to_string())
        .expect("read /proc/self/ns/net")
}

/// `true` in the re-executed inner run. It has already checked the namespace and set up `lo`.
pub fn inside() -> bool {
    let Ok(outer) = std::env::var(INNER) else {
        return false;
    };
    let here = netns_id();
    assert_ne!(
        here, outer,
        "the inner run is in the host's network namespace"
    );
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("run ip (apt-get install iproute2)");
    assert!(up.success(), "cannot bring lo up in the test namespace");
    let links = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip -o link");
    let links = String::from_utf8_lossy(&links.stdout);
    let names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(str::trim)
        .collect();
    assert_eq!(names, vec!["lo"], "the test namespace must have only lo");
    true
}

/// Re-runs test `name` of this binary inside a fresh user+network namespace, as `user`;
/// panics with its output when it fails.
pub fn rerun(user: User, name: &str) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = user
        .command("unshare")
        .args(["-rn", "--"])
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INNER, netns_id())
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} failed inside a fresh network namespace as {}:\n{stdout}\n{}",
        user.label(),
        String::from_utf8_lossy(&out.stderr)
    );
}
