//! Running the same scenario as root and as an unprivileged user.
//!
//! The tool must work for a plain user. When the tests run as root, every scenario that uses
//! [`each_user`] runs twice: once as root and once as `nobody` (uid/gid 65534), by prefixing the
//! command with `setpriv`. When the tests already run unprivileged, it runs once.

use std::process::Command;

/// Who a scenario runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    /// Whoever runs the tests (root in CI).
    Current,
    /// uid/gid 65534, with no supplementary groups, via `setpriv`.
    Nobody,
}

/// The unprivileged uid and gid used for [`User::Nobody`].
pub const NOBODY_ID: u32 = 65534;

impl User {
    /// A `Command` for `program` that runs as this user. For [`User::Nobody`] the command is
    /// `setpriv --reuid=65534 --regid=65534 --clear-groups -- program`.
    pub fn command(self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match self {
            User::Current => Command::new(program),
            User::Nobody => {
                let mut cmd = Command::new("setpriv");
                cmd.arg(format!("--reuid={NOBODY_ID}"))
                    .arg(format!("--regid={NOBODY_ID}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(program);
                cmd
            }
        }
    }

    /// A short label for assertion messages.
    pub fn label(self) -> &'static str {
        match self {
            User::Current => "current user",
            User::Nobody => "nobody",
        }
    }
}

/// `true` when the tests run as root.
pub fn running_as_root() -> bool {
    // Reading the effective uid from /proc avoids a libc dependency.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// The users a scenario must pass as: the current user, plus `nobody` when running as root.
pub fn each_user() -> Vec<User> {
    if running_as_root() {
        vec![User::Current, User::Nobody]
    } else {
        vec![User::Current]
    }
}
