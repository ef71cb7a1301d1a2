//! What a session must clean up on the host after the agent (the quarantine of protected paths
//! the agent created, the empty mount-point directories the plan made) is written down before
//! the agent starts, outside anything the sandbox sees. A session whose supervisor was killed
//! never cleaned up: the next `sandbox run` in the same workspace finds its record, does the
//! cleanup (the quarantine first: a planted hook must not survive to the next `git commit`),
//! and says so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::jail::quarantine::{self, Quarantined};
use crate::jail::view::ViewPlan;

/// The cleanup a session owes the host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pending {
    /// The supervisor's pid (to tell a killed session from a running one).
    pub pid: u32,
    /// The workspace.
    pub workspace: PathBuf,
    /// The trees the agent could write (the quarantine looks there).
    pub writable_roots: Vec<PathBuf>,
    /// Protected paths that existed at the start (left in place).
    pub protected_at_start: BTreeSet<PathBuf>,
    /// Empty directories the plan created as mount points (removed if still empty).
    pub placeholders: Vec<PathBuf>,
}

/// What a repair did.
#[derive(Debug, Default)]
pub struct Repaired {
    /// The killed session's supervisor pid.
    pub pid: u32,
    /// Protected paths moved aside.
    pub quarantined: Vec<Quarantined>,
    /// Mount-point directories removed.
    pub placeholders_removed: usize,
}

/// Where the record for `workspace` lives: under `$XDG_STATE_HOME/sandbox/pending` (or
/// `~/.local/state/...`), else a private directory in the system temporary directory; named
/// by the workspace's hash.
pub fn record_path(workspace: &Path) -> PathBuf {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(workspace.as_os_str().as_encoded_bytes());
    let name: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    // Only a directory of the invoking user's own (a `$HOME` inherited from another user, as
    // under `setpriv`, is not).
    let own = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(p)
            .is_ok_and(|m| m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw())
    };
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && own(p))
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute() && own(p))
                .map(|h| h.join(".local/state"))
        })
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("sandbox-state-{}", nix::unistd::geteuid()))
        });
    base.join("sandbox/pending").join(format!("{name}.json"))
}

/// The record's directory is the invoking user's and no one else can write it (a directory
/// another user made in the temporary directory is not trusted).
fn trusted_dir(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(dir) = path.parent() else {
        return false;
    };
    std::fs::symlink_metadata(dir).is_ok_and(|m| {
        m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o022 == 0
    })
}

/// Creates the record's directory (mode 0700), so that the view can hide it from the agent.
pub fn ensure_dir(path: &Path) {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(dir) = path.parent() {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    }
}

/// Writes the record before the agent starts (atomically, mode 0600 in a 0700 directory).
pub fn write(path: &Path, plan: &ViewPlan, workspace: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let pending = Pending {
        pid: std::process::id(),
        workspace: workspace.to_path_buf(),
        writable_roots: plan.writable_roots.clone(),
        protected_at_start: plan.protected_at_start.clone(),
        placeholders: plan.placeholders.clone(),
    };
    let dir = path.parent().context("the record has a directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create {}", dir.display()))?;
    if !trusted_dir(path) {
        anyhow::bail!(
            "{} is not a directory of this user's that only it can write",
            dir.display()
        );
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("write {}", tmp.display()))?;
    serde_json::to_writer(&mut f, &pending).context("write the cleanup record")?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}

/// Removes the record after a session cleaned up after itself.
pub fn clear(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Whether `pid` is a live `sandbox` process (a pid reused by another program is dead for us).
fn alive_sandbox(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            c.split(|b| *b == 0)
                .next()
                .is_some_and(|argv0| argv0.ends_with(b"sandbox"))
        })
        .unwrap_or(false)
}

/// Before a session plans its view: when an earlier session in this workspace left its
/// record and its supervisor is gone, does that session's cleanup. `Ok(None)` when there was
/// nothing to repair (or that session is still running).
pub fn repair(path: &Path) -> Result<Option<Repaired>> {
    if !path.exists() {
        return Ok(None);
    }
    if !trusted_dir(path) {
        // Not a record this user wrote: acting on it would let another user steer the cleanup.
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let pending: Pending = match serde_json::from_str(&text) {
        Ok(p) => p,
        Err(_) => {
            // A record torn by a crash while it was written: nothing to act on.
            clear(path);
            return Ok(None);
        }
    };
    if pending.pid != std::process::id() && alive_sandbox(pending.pid) {
        return Ok(None);
    }
    let plan = ViewPlan {
        writable_roots: pending.writable_roots.clone(),
        protected_at_start: pending.protected_at_start.clone(),
        ..ViewPlan::default()
    };
    let quarantined = quarantine::sweep(&plan, &format!("recovered{}", pending.pid))
        .context("move aside the protected paths the killed session's agent created")?;
    let mut removed = 0;
    for p in pending.placeholders.iter().rev() {
        if std::fs::remove_dir(p).is_ok() {
            removed += 1;
        }
    }
    clear(path);
    Ok(Some(Repaired {
        pid: pending.pid,
        quarantined,
        placeholders_removed: removed,
    }))
}
