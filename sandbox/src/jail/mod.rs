//! The sandbox itself: namespaces, the file view, Landlock, seccomp, the init process and the
//! agent's exec. The supervisor side ([`supervisor`]) creates it; everything in [`init`] and
//! [`agent`] runs inside.
//!
//! Order of events (see `docs/threat-model.md`):
//! 1. the supervisor clones a child into new user, mount, pid, ipc and uts namespaces as soon
//!    as the command line is parsed, while it is still single-threaded ([`LaunchSpec`]: only
//!    what the command line says);
//! 2. the child (pid 1 inside) creates its network namespace (owned by its user namespace, as
//!    if the clone had made it) before it touches the network, maps the invoking uid/gid,
//!    brings up `lo`, binds the proxy
//!    listener and passes it to the supervisor over a socketpair, sets up the transparent
//!    capture, and builds the new root's `/proc` and `/dev`; meanwhile the supervisor reads the
//!    contract, plans the view ([`view`]), builds the environment and sends the rest of the
//!    sandbox ([`JailSpec`], encoded by [`wire`]);
//! 3. the child mounts the view while the supervisor starts the proxy on that listener and
//!    sends the session CA back;
//! 4. the child installs the CA bundle and seals the root while the supervisor writes
//!    `session_start` and serves the capture; on the supervisor's start signal (with network)
//!    it forks the agent, which drops every capability, sets no_new_privs, enters Landlock and
//!    seccomp and execs the command.

pub mod agent;
pub mod capture;
pub mod channel;
pub mod checks;
pub mod env;
pub mod init;
pub mod landlock_rules;
pub mod limits;
pub mod mounts;
pub mod netlink;
pub mod planted;
pub mod probe;
pub mod protected_scan;
pub mod pty;
pub mod quarantine;
pub mod resolve;
pub mod seccomp;
pub mod supervisor;
pub mod sys;
#[cfg(test)]
pub(crate) mod test_support;
pub mod unix_sockets;
pub mod view;
pub mod wire;

use std::ffi::{CString, OsString};
use std::path::PathBuf;

/// What the child needs from its first instruction on: known from the command line alone, so
/// that the clone happens before the contract is read.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The invoking user's uid, mapped to itself inside.
    pub uid: u32,
    /// The invoking user's gid, mapped to itself inside.
    pub gid: u32,
    /// The proxy's port on the sandbox's 127.0.0.1, or `None` for no network at all.
    pub proxy_port: Option<u16>,
    /// Give the agent a pty the supervisor relays (stdin is a terminal).
    pub interactive: bool,
}

/// The rest of the sandbox, planned by the supervisor from the contract while the child sets
/// up its namespaces, and sent to it over the channel ([`wire`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailSpec {
    /// The mount steps of the file view and the CA bundle targets.
    pub mounts: view::MountPlan,
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
    /// What the session may take from the host.
    pub limits: JailLimits,
    /// Files the init writes into the private `$HOME` before the agent starts (absolute
    /// inside paths, contents): an `[agent]` preset's settings.
    pub home_files: Vec<(PathBuf, Vec<u8>)>,
}

/// The limits the init and the agent apply (`None`: not applied).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JailLimits {
    /// The pid namespace's `pid_max` (live processes and threads stay below it; the init
    /// writes it, Linux 6.14 and later).
    pub pid_max: Option<u32>,
    /// `RLIMIT_DATA` of every process: its private writable memory.
    pub data_bytes: Option<u64>,
    /// `RLIMIT_NPROC` (counted in the sandbox's user namespace): where `pid_max` cannot be set.
    pub nproc: Option<u64>,
    /// The agent's nice value (0: unchanged).
    pub nice: u8,
}

/// The TCP port the proxy listens on inside the sandbox's network namespace.
pub const PROXY_PORT: u16 = 3128;

/// Exit code for set-up failures of `sandbox run`.
pub const EXIT_SETUP: i32 = 125;
/// Exit code when the command exists but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Exit code when the command is not found.
pub const EXIT_NOT_FOUND: i32 = 127;
