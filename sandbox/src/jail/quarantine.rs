//! After the session: protected paths the agent *created* (a new nested repository's
//! `.git/hooks`, a new `.github/workflows`, ...) are moved out of the way before the host can
//! run them. Mounts keep existing protected paths read-only during the session, but a path that
//! does not exist yet cannot be covered; this sweep closes that gap once every sandboxed
//! process is dead.

use std::path::PathBuf;

use crate::jail::view::{find_protected, ViewError, ViewPlan};

/// One path moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Where the agent created it.
    pub from: PathBuf,
    /// Where it is now.
    pub to: PathBuf,
}

/// Renames every protected path in the plan's writable trees that did not exist at start to
/// `<name>.sandbox-quarantine-<tag>`. Call only after the sandbox is gone.
pub fn sweep(plan: &ViewPlan, tag: &str) -> Result<Vec<Quarantined>, ViewError> {
    let mut moved = Vec::new();
    for root in &plan.writable_roots {
        for found in find_protected(root)? {
            if plan.protected_at_start.contains(&found)
                || egress_policy::planted::unprotected(&found, &plan.unprotected)
            {
                continue;
            }
            let Some(name) = found.file_name() else {
                continue;
            };
            let mut new_name = name.to_owned();
            new_name.push(format!(".sandbox-quarantine-{tag}"));
            let to = found.with_file_name(new_name);
            std::fs::rename(&found, &to).map_err(|source| ViewError::Io {
                path: found.clone(),
                source,
            })?;
            moved.push(Quarantined { from: found, to });
        }
    }
    Ok(moved)
}
