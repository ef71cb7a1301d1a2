//! The sandbox itself: namespaces, the file view, Landlock, seccomp, the init process and the
//! agent's exec. The supervisor side ([`supervisor`]) creates it; everything in [`init`] and
//! [`agent`] runs inside.
//!
//! Order of events (see `docs/threat-model.md`):
//! 1. the supervisor plans the view ([`view`]), compiles seccomp and builds the environment
//!    while it is still single-threaded, then clones a child into new user, mount, pid, net,
//!    ipc and uts namespaces;
//! 2. the child (pid 1 inside) maps the invoking uid/gid, builds the new root, brings up `lo`,
//!    binds the proxy listener and passes it to the supervisor over a socketpair;
//! 3. the supervisor starts the proxy on that listener and sends the session CA back;
//! 4. the child installs the CA bundle, seals the root, and forks the agent, which drops every
//!    capability, sets no_new_privs, enters Landlock and seccomp and execs the command.

pub mod agent;
pub mod capture;
pub mod channel;
pub mod env;
pub mod init;
pub mod landlock_rules;
pub mod mounts;
pub mod netlink;
pub mod probe;
pub mod pty;
pub mod quarantine;
pub mod seccomp;
pub mod supervisor;
pub mod sys;
pub mod view;

use std::ffi::{CString, OsString};
use std::path::PathBuf;

/// Everything the child needs, computed by the supervisor before the clone.
#[derive(Debug)]
pub struct JailSpec {
    /// The invoking user's uid, mapped to itself inside.
    pub uid: u32,
    /// The invoking user's gid, mapped to itself inside.
    pub gid: u32,
    /// The file view.
    pub view: view::ViewPlan,
    /// The proxy's port on the sandbox's 127.0.0.1, or `None` for no network at all.
    pub proxy_port: Option<u16>,
    /// Give the agent a pty the supervisor relays (stdin is a terminal).
    pub interactive: bool,
    /// The command and its arguments.
    pub argv: Vec<CString>,
    /// The agent's environment (`NAME=value`).
    pub envp: Vec<CString>,
    /// The agent's PATH, for the command search.
    pub search_path: OsString,
    /// The agent's working directory (inside path).
    pub workdir: PathBuf,
    /// The Landlock ruleset.
    pub landlock: landlock_rules::LandlockSpec,
    /// The compiled seccomp programs.
    pub seccomp: seccomp::SeccompPrograms,
}

/// The TCP port the proxy listens on inside the sandbox's network namespace.
pub const PROXY_PORT: u16 = 3128;

/// Exit code for set-up failures of `sandbox run`.
pub const EXIT_SETUP: i32 = 125;
/// Exit code when the command exists but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit code when the command is not found.
pub const EXIT_NOT_FOUND: i32 = 127;
