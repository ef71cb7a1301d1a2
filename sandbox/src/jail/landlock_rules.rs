//! The Landlock ruleset the agent runs under, at the highest ABI `sandbox` knows (6): file
//! access per the view, refer, truncate, device ioctl, no TCP connect at all without network
//! (with network every connect goes to the namespace's transparent capture), and scoped
//! signals and abstract unix sockets.
//!
//! Landlock cannot deny inside an allowed tree; deny and protected paths are covered by mounts
//! ([`crate::jail::mounts`]). This ruleset makes sure nothing *outside* the listed trees is
//! reachable even if a mount were missing, and limits what the network namespace already limits.

use std::path::PathBuf;

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

/// What the agent may touch, as paths inside the sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LandlockSpec {
    /// Read and execute beneath these.
    pub read: Vec<PathBuf>,
    /// Full file access beneath these.
    pub write: Vec<PathBuf>,
    /// The proxy's port when the sandbox has network (TCP connect is then left to the
    /// namespace's capture, see `restrict_self`), or `None`: no TCP connect at all.
    pub proxy_port: Option<u16>,
    /// Apply what the kernel supports instead of refusing (`--best-effort`).
    pub best_effort: bool,
}

/// How much of the ruleset the kernel enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    /// Everything.
    Full,
    /// A subset (only possible with `--best-effort`).
    Partial,
    /// Nothing (only possible with `--best-effort`).
    None,
}

/// Restricts the calling thread (and its future children) with the ruleset.
pub fn restrict_self(spec: &LandlockSpec) -> Result<Enforcement, landlock::RulesetError> {
    let abi = ABI::V6;
    let level = if spec.best_effort {
        CompatLevel::BestEffort
    } else {
        CompatLevel::HardRequirement
    };
    let all = AccessFs::from_all(abi) & !(AccessFs::MakeChar | AccessFs::MakeBlock);
    let read = AccessFs::from_read(abi);
    let dev = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::ReadDir | AccessFs::IoctlDev;
    // /proc is read-only: sysctl writes are allowed to the host's root uid without capabilities.
    let proc_access = AccessFs::ReadFile | AccessFs::ReadDir;
    let mut ruleset = Ruleset::default()
        .set_compatibility(level)
        .handle_access(AccessFs::from_all(abi))?;
    // With network, every TCP connect must reach the namespace's transparent capture (any
    // port; `jail::capture`), which hands it to the proxy: Landlock cannot allow "any port"
    // short of not handling connect. Without network, no TCP connect at all.
    if spec.proxy_port.is_none() {
        ruleset = ruleset.handle_access(AccessNet::ConnectTcp)?;
    }
    let created = ruleset
        .scope(Scope::Signal | Scope::AbstractUnixSocket)?
        .create()?
        // Listing directories is allowed everywhere: only the planned view exists inside.
        .add_rules(path_beneath_rules(["/"], AccessFs::ReadDir))?
        .add_rules(path_beneath_rules(&spec.read, read))?
        .add_rules(path_beneath_rules(&spec.write, all))?
        .add_rules(path_beneath_rules(["/dev"], dev))?
        .add_rules(path_beneath_rules(["/dev/shm"], all))?
        .add_rules(path_beneath_rules(["/proc"], proc_access))?;
    let status = created.restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforcement::Full,
        RulesetStatus::PartiallyEnforced => Enforcement::Partial,
        RulesetStatus::NotEnforced => Enforcement::None,
    })
}
