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
const HOSTS: &str = "SANDBOX_IT_HOSTS_FILE";

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
    if let Ok(hosts) = std::env::var(HOSTS) {
        let bound = Command::new("mount")
            .args(["--bind", &hosts, "/etc/hosts"])
            .status()
            .expect("run mount");
        assert!(bound.success(), "cannot bind-mount the test hosts file");
    }
    true
}

/// Re-runs test `name` of this binary inside a fresh user+network namespace, as `user`;
/// panics with its output when it fails.
pub fn rerun(user: User, name: &str) {
    rerun_with_hosts(user, name, None);
}

/// Like [`rerun`], with a mount namespace too, where `hosts` (when given) replaces
/// `/etc/hosts`: how a test makes a name resolve to chosen addresses without a DNS server.
pub fn rerun_with_hosts(user: User, name: &str, hosts: Option<&str>) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = user.command("unshare");
    cmd.args(["-rnm", "--"])
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INNER, netns_id());
    let file = hosts.map(|text| {
        let path =
            std::env::temp_dir().join(format!("sandbox-it-hosts-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("write the hosts file");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        path
    });
    if let Some(path) = &file {
        cmd.env(HOSTS, path);
    }
    let out = cmd.output().expect("run unshare (util-linux)");
    if let Some(path) = file {
        let _ = std::fs::remove_file(path);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} failed inside a fresh network namespace as {}:\n{stdout}\n{}",
        user.label(),
        String::from_utf8_lossy(&out.stderr)
    );
}
