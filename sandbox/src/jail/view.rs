//! The file view of the sandbox, planned on the host side before any namespace exists.
//!
//! Every path is resolved here, in the supervisor, with the host's root: symlinks are followed
//! and `..` removed, so the child only executes a list of mount operations on canonical paths.
//! Deny paths and protected paths are turned into covering mounts (Landlock cannot deny inside
//! an allowed tree); the Landlock rule lists are derived from the same plan.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

pub use crate::jail::protected_scan::{
    find_protected, find_protected_below, list_dir, protected_in,
};
use crate::jail::resolve::Resolver;

/// The file rules of a session, as absolute host paths (before resolution).
#[derive(Debug, Clone, Default)]
pub struct FileRules {
    /// Paths the agent may read (and execute).
    pub read: Vec<PathBuf>,
    /// Paths the agent may read, write, create and delete in.
    pub write: Vec<PathBuf>,
    /// Paths the agent must neither read nor write, even inside an allowed tree, even when
    /// they do not exist yet or are reached through a symlink.
    pub deny: Vec<PathBuf>,
    /// Scan writable trees for egress-policy's protected patterns (`.git/hooks`, CI
    /// workflows, ... at any depth) and keep every match read-only.
    pub scan_protected: bool,
    /// Absolute paths that stay read-only where visible (`$HOME` start-up files).
    pub protected_paths: Vec<PathBuf>,
    /// Files the supervisor writes (the flow log): never visible inside.
    pub hidden: Vec<PathBuf>,
    /// Host unix sockets: the ones the agent may connect to, and whether the others present
    /// in writable trees are covered.
    pub sockets: crate::jail::unix_sockets::UnixSocketRules,
    /// Protected paths the contract lets the agent write (`[files] unprotect`).
    pub unprotected: Vec<PathBuf>,
}

/// One step of building the new root, executed in order by the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    /// A fresh, writable, private tmpfs (private /tmp, the invisible $HOME).
    Tmpfs {
        /// Where, inside the sandbox.
        target: PathBuf,
    },
    /// A bind mount of a host path at `target`.
    Bind {
        /// Canonical host path.
        source: PathBuf,
        /// Path inside the sandbox.
        target: PathBuf,
        /// Read-write when true; read-only (and nosuid, nodev) otherwise.
        writable: bool,
    },
    /// A symbolic link created in the new root (merged-/usr links such as /bin -> usr/bin).
    Symlink {
        /// The link, inside the sandbox.
        target: PathBuf,
        /// What it points to.
        points_to: PathBuf,
    },
    /// An empty, read-only, mode-000 file or directory mounted over `target`.
    Hide {
        /// Path inside the sandbox.
        target: PathBuf,
        /// Cover with an empty directory (true) or an empty file (false).
        directory: bool,
    },
}

/// What the sandbox's init executes of a [`ViewPlan`]: the mount steps and where the session CA
/// bundle goes. Sent to the init over the channel (`jail::wire`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountPlan {
    /// Mount steps, parents before children, covers last.
    pub ops: Vec<MountOp>,
    /// The host's root CA bundle (canonical), concatenated with the session CA.
    pub host_ca_bundle: Option<PathBuf>,
    /// System CA bundle paths inside the sandbox to mount the session bundle over.
    pub ca_bundle_targets: Vec<PathBuf>,
}

/// The resolved view: mount steps, Landlock rule lists, and what the supervisor created on the
/// host (to remove after the session).
#[derive(Debug, Clone, Default)]
pub struct ViewPlan {
    /// Mount steps, parents before children, covers last.
    pub ops: Vec<MountOp>,
    /// Landlock: read + execute beneath these (inside paths).
    pub landlock_read: Vec<PathBuf>,
    /// Landlock: full file access beneath these (inside paths).
    pub landlock_write: Vec<PathBuf>,
    /// Empty directories created on the host as mount points for deny paths that did not exist.
    pub placeholders: Vec<PathBuf>,
    /// The host's root CA bundle (canonical), concatenated with the session CA.
    pub host_ca_bundle: Option<PathBuf>,
    /// System CA bundle paths inside the sandbox to mount the session bundle over.
    pub ca_bundle_targets: Vec<PathBuf>,
    /// Deny paths (as written) that are covered, for the session record.
    pub covered: Vec<PathBuf>,
    /// Host trees the agent can write (canonical), swept for new protected paths afterwards.
    pub writable_roots: Vec<PathBuf>,
    /// Protected paths (as found, not resolved) that existed at start.
    pub protected_at_start: BTreeSet<PathBuf>,
    /// Things the user should know, printed by `run` (a granted path that does not exist).
    pub notes: Vec<String>,
    /// What cannot be enforced as the rules ask (a deny file with other hard links): `run`
    /// refuses unless `--best-effort`.
    pub weaker: Vec<String>,
    /// Host unix sockets covered because the agent may create unix sockets.
    pub covered_sockets: Vec<PathBuf>,
    /// `[sockets] connect` paths that are sockets and are visible inside.
    pub granted_sockets: Vec<PathBuf>,
    /// `[files] unprotect`: neither read-only nor moved aside.
    pub unprotected: Vec<PathBuf>,
}

impl ViewPlan {
    /// The part of the plan the sandbox's init executes.
    pub fn mount_plan(&self) -> MountPlan {
        MountPlan {
            ops: self.ops.clone(),
            host_ca_bundle: self.host_ca_bundle.clone(),
            ca_bundle_targets: self.ca_bundle_targets.clone(),
        }
    }
}

/// Why the view cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// A path is not absolute.
    #[error("path {0} is not absolute; contract paths are resolved against the workspace first")]
    NotAbsolute(PathBuf),
    /// The workspace would expose the whole file system.
    #[error(
        "the workspace {0} is a system directory; choose a project directory with --workspace"
    )]
    WorkspaceTooBroad(PathBuf),
    /// Reading the host file system failed.
    #[error("cannot inspect {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Scanning the writable trees for protected paths took too many entries.
    #[error("{root} has more than {limit} entries to scan for protected paths (.git/hooks, ...); use a smaller --workspace")]
    ScanLimit {
        /// The tree.
        root: PathBuf,
        /// The limit.
        limit: usize,
    },
}

/// System directories that are readable and executable inside.
pub const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt",
];

/// The parts of /etc that programs need. Everything else in /etc is invisible.
pub const ETC_ENTRIES: &[&str] = &[
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "crypto-policies",
    "debian_version",
    "gai.conf",
    "gitconfig",
    "group",
    "host.conf",
    "hostname",
    "hosts",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "locale.alias",
    "locale.conf",
    "localtime",
    "lsb-release",
    "magic",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "pki",
    "profile",
    "protocols",
    "resolv.conf",
    "services",
    "shells",
    "ssl",
    "terminfo",
    "timezone",
    "vim",
];

/// Host secrets inside the visible parts of /etc, always covered.
pub const SYSTEM_SECRETS: &[&str] = &["/etc/ssl/private", "/etc/pki/tls/private"];

/// Where distributions keep the system CA bundle.
pub const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/pki/tls/cacert.pem",
];

/// Upper bound of directory entries scanned for protected paths per writable tree.
pub const SCAN_LIMIT: usize = 500_000;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ViewError + '_ {
    move |source| ViewError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Removes `.` and `..` lexically (without touching the file system).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Resolves symlinks in the longest existing prefix of `path`; returns the canonical prefix
/// and the missing rest (empty when the whole path exists).
pub fn resolve_existing_prefix(path: &Path) -> Result<(PathBuf, PathBuf), ViewError> {
    existing_prefix(&mut Resolver::new(), path)
}

/// [`resolve_existing_prefix`] with the plan's resolver.
fn existing_prefix(resolver: &mut Resolver, path: &Path) -> Result<(PathBuf, PathBuf), ViewError> {
    let path = normalize(path);
    let mut prefix = path.clone();
    let mut rest = Vec::new();
    loop {
        match resolver.canonicalize(&prefix) {
            Ok(canon) => {
                let mut missing = PathBuf::new();
                for part in rest.iter().rev() {
                    missing.push(part);
                }
                return Ok((canon, missing));
            }
            // Missing, or not reachable by this user (then the agent cannot reach it either).
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::PermissionDenied
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                let Some(name) = prefix.file_name().map(|n| n.to_owned()) else {
                    return Err(ViewError::Io { path, source: e });
                };
                rest.push(name);
                prefix.pop();
            }
            Err(e) => return Err(io_err(&prefix)(e)),
        }
    }
}

/// A visible tree: where a host tree appears inside, and whether it is writable.
#[derive(Debug, Clone)]
struct Tree {
    source: PathBuf,
    target: PathBuf,
    writable: bool,
}

/// Plans the view for `rules`, with `home` made an empty private tmpfs (unless it is listed),
/// private /tmp, and the system directories.
pub fn plan(rules: &FileRules, home: Option<&Path>) -> Result<ViewPlan, ViewError> {
    let mut created = Vec::new();
    let result = plan_into(rules, home, &mut created);
    if result.is_err() {
        // Nothing may stay behind on the host when planning fails half-way.
        for p in created.iter().rev() {
            let _ = fs::remove_dir(p);
        }
    }
    result
}

fn plan_into(
    rules: &FileRules,
    home: Option<&Path>,
    created: &mut Vec<PathBuf>,
) -> Result<ViewPlan, ViewError> {
    for p in rules.read.iter().chain(&rules.write).chain(&rules.deny) {
        if !p.is_absolute() {
            return Err(ViewError::NotAbsolute(p.clone()));
        }
    }
    let mut plan = ViewPlan {
        unprotected: rules.unprotected.clone(),
        ..ViewPlan::default()
    };
    let mut trees: Vec<Tree> = Vec::new();
    let mut resolver = Resolver::new();

    // Private tmpfs for /tmp and $HOME, before any bind that may land inside them.
    plan.ops.push(MountOp::Tmpfs {
        target: PathBuf::from("/tmp"),
    });
    plan.landlock_write.push(PathBuf::from("/tmp"));
    if let Some(home) = home {
        let home = normalize(home);
        if home != Path::new("/")
            && !SYSTEM_DIRS.iter().any(|d| home.starts_with(d))
            && home != Path::new("/tmp")
        {
            plan.ops.push(MountOp::Tmpfs {
                target: home.clone(),
            });
            plan.landlock_write.push(home);
        }
    }

    // System directories: read + execute; merged-/usr symlinks replicated.
    for dir in SYSTEM_DIRS {
        let path = Path::new(dir);
        match fs::symlink_metadata(path) {
            Ok(md) if md.file_type().is_symlink() => {
                let points_to = fs::read_link(path).map_err(io_err(path))?;
                plan.ops.push(MountOp::Symlink {
                    target: path.to_owned(),
                    points_to,
                });
            }
            Ok(md) if md.is_dir() => {
                let source = resolver.canonicalize(path).map_err(io_err(path))?;
                trees.push(Tree {
                    source: source.clone(),
                    target: path.to_owned(),
                    writable: false,
                });
                plan.ops.push(MountOp::Bind {
                    source,
                    target: path.to_owned(),
                    writable: false,
                });
                plan.landlock_read.push(path.to_owned());
            }
            _ => {}
        }
    }
    for entry in ETC_ENTRIES {
        let path = Path::new("/etc").join(entry);
        let Ok(source) = resolver.canonicalize(&path) else {
            continue;
        };
        trees.push(Tree {
            source: source.clone(),
            target: path.clone(),
            writable: false,
        });
        plan.ops.push(MountOp::Bind {
            source,
            target: path.clone(),
            writable: false,
        });
    }
    plan.landlock_read.push(PathBuf::from("/etc"));

    // Contract paths, shallow first so that a write inside a read (or the reverse) wins.
    let mut grants: Vec<(PathBuf, bool)> = Vec::new();
    for (list, writable) in [(&rules.read, false), (&rules.write, true)] {
        for p in list {
            match resolver.canonicalize(p) {
                Ok(canon) => grants.push((canon, writable)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => plan.notes.push(format!(
                    "[files] {} {} does not exist, so it is not in the sandbox; create it first",
                    if writable { "write" } else { "read" },
                    p.display()
                )),
                Err(e) => return Err(io_err(p)(e)),
            }
        }
    }
    for (canon, _) in &grants {
        if canon == Path::new("/")
            || SYSTEM_DIRS.iter().any(|d| Path::new(d) == canon)
            || canon == Path::new("/etc")
        {
            return Err(ViewError::WorkspaceTooBroad(canon.clone()));
        }
    }
    grants.sort_by_key(|(p, w)| (p.components().count(), *w));
    grants.dedup();
    for (canon, writable) in &grants {
        trees.push(Tree {
            source: canon.clone(),
            target: canon.clone(),
            writable: *writable,
        });
        plan.ops.push(MountOp::Bind {
            source: canon.clone(),
            target: canon.clone(),
            writable: *writable,
        });
        if *writable {
            plan.landlock_write.push(canon.clone());
        } else {
            plan.landlock_read.push(canon.clone());
        }
    }

    // Host sockets the contract lets the agent connect to: visible inside (bound where no
    // tree shows them), never covered.
    let mut granted = BTreeSet::new();
    for p in &rules.sockets.connect {
        let Ok(canon) = resolver.canonicalize(p) else {
            plan.notes.push(format!(
                "[sockets] connect {} does not exist, so the agent cannot reach it; start the service first",
                p.display()
            ));
            continue;
        };
        if !crate::jail::unix_sockets::is_socket(&canon) {
            plan.notes.push(format!(
                "[sockets] connect {} is not a socket; nothing is granted for it",
                p.display()
            ));
            continue;
        }
        if inside_paths(&trees, &canon).is_empty() {
            plan.ops.push(MountOp::Bind {
                source: canon.clone(),
                target: p.clone(),
                writable: false,
            });
        }
        granted.insert(canon);
        plan.granted_sockets.push(p.clone());
    }

    // Protected patterns: read-only wherever they exist inside a writable tree.
    let mut protected = BTreeSet::new();
    for p in &rules.protected_paths {
        if let Ok(canon) = resolver.canonicalize(p) {
            protected.insert(canon);
        }
    }
    if rules.scan_protected {
        for tree in trees.iter().filter(|t| t.writable) {
            plan.writable_roots.push(tree.source.clone());
            for found in find_protected(&tree.source)? {
                if egress_policy::planted::unprotected(&found, &rules.unprotected) {
                    continue;
                }
                let resolved =
                    if fs::symlink_metadata(&found).is_ok_and(|m| m.file_type().is_symlink()) {
                        resolver.canonicalize(&found).ok()
                    } else {
                        Some(found.clone())
                    };
                protected.extend(resolved);
                plan.protected_at_start.insert(found);
            }
            // A repository without hooks gets an empty, read-only `.git/hooks` (git's normal
            // layout) so that the agent cannot create one.
            let git = tree.source.join(".git");
            let hooks = git.join("hooks");
            if git.is_dir()
                && fs::symlink_metadata(&hooks).is_err()
                && fs::create_dir(&hooks).is_ok()
            {
                protected.insert(hooks.clone());
                plan.protected_at_start.insert(hooks);
            }
        }
    }
    let mut covers: Vec<MountOp> = Vec::new();
    if rules.sockets.cover_present {
        for tree in trees.iter().filter(|t| t.writable) {
            for found in crate::jail::unix_sockets::find_sockets(&tree.source)? {
                if granted.contains(&found) {
                    continue;
                }
                for (target, _) in inside_paths(&trees, &found) {
                    covers.push(MountOp::Hide {
                        target,
                        directory: false,
                    });
                }
                plan.covered_sockets.push(found);
            }
        }
    }
    for host_path in &protected {
        for (target, tree_writable) in inside_paths(&trees, host_path) {
            if tree_writable {
                covers.push(MountOp::Bind {
                    source: host_path.clone(),
                    target,
                    writable: false,
                });
            }
        }
    }

    // Deny paths and supervisor files: covered wherever they are visible; host private keys
    // under the visible parts of /etc as well (a uid that is root on the host could read them).
    let system_secrets: Vec<PathBuf> = SYSTEM_SECRETS.iter().map(PathBuf::from).collect();
    for (list, is_hidden) in [
        (&rules.deny, false),
        (&rules.hidden, true),
        (&system_secrets, true),
    ] {
        for p in list {
            let (canon, rest) = existing_prefix(&mut resolver, p)?;
            let mut first_missing = rest.components();
            match first_missing.next() {
                None => {
                    let directory = canon.is_dir();
                    if let Ok(md) = fs::metadata(&canon) {
                        use std::os::unix::fs::MetadataExt;
                        if !directory && md.nlink() > 1 {
                            plan.weaker.push(format!(
                                "the deny path {} has {} hard links; its other names cannot be covered (remove the extra links)",
                                p.display(),
                                md.nlink()
                            ));
                        }
                    }
                    let targets = inside_paths(&trees, &canon);
                    if !targets.is_empty() && !is_hidden {
                        plan.covered.push(p.clone());
                    }
                    for (target, _) in targets {
                        covers.push(MountOp::Hide { target, directory });
                    }
                }
                Some(first) => {
                    // Creatable inside only through a writable bind of a host tree: put an
                    // empty directory there and cover it, so the path cannot be created.
                    let targets = inside_paths(&trees, &canon);
                    if targets.iter().any(|(_, w)| *w) {
                        let placeholder = canon.join(first);
                        fs::create_dir(&placeholder).map_err(io_err(&placeholder))?;
                        created.push(placeholder.clone());
                        plan.placeholders.push(placeholder.clone());
                        for (target, _) in inside_paths(&trees, &placeholder) {
                            covers.push(MountOp::Hide {
                                target,
                                directory: true,
                            });
                        }
                        if !is_hidden {
                            plan.covered.push(p.clone());
                        }
                    }
                }
            }
        }
    }
    // Pin every directory between a writable tree's root and a cover: a mount point cannot be
    // renamed or removed, so the agent cannot move a covered path (or the `.git` holding a
    // protected `hooks`) out of the way and put its own in its place for the host to find.
    let mut pins = BTreeSet::new();
    for op in &covers {
        let (MountOp::Bind { target, .. } | MountOp::Hide { target, .. }) = op else {
            continue;
        };
        let Some(tree) = trees
            .iter()
            .filter(|t| t.writable && target.starts_with(&t.target) && target != &t.target)
            .max_by_key(|t| t.target.components().count())
        else {
            continue;
        };
        let mut ancestor = target.parent();
        while let Some(a) = ancestor {
            if a == tree.target || !a.starts_with(&tree.target) {
                break;
            }
            pins.insert(a.to_owned());
            ancestor = a.parent();
        }
    }
    let covered_targets: BTreeSet<PathBuf> = covers
        .iter()
        .filter_map(|op| match op {
            MountOp::Bind { target, .. } | MountOp::Hide { target, .. } => Some(target.clone()),
            _ => None,
        })
        .collect();
    for pin in pins.difference(&covered_targets) {
        let Some(tree) = trees
            .iter()
            .filter(|t| pin.starts_with(&t.target))
            .max_by_key(|t| t.target.components().count())
        else {
            continue;
        };
        let rel = pin.strip_prefix(&tree.target).unwrap_or(Path::new(""));
        covers.push(MountOp::Bind {
            source: tree.source.join(rel),
            target: pin.clone(),
            writable: true,
        });
    }
    covers.sort_by_key(|op| match op {
        MountOp::Bind { target, .. } | MountOp::Hide { target, .. } => target.components().count(),
        _ => 0,
    });
    plan.ops.extend(covers);

    // The system CA bundles, for the session bundle to be mounted over.
    for bundle in SYSTEM_CA_BUNDLES {
        let Ok(canon) = resolver.canonicalize(Path::new(bundle)) else {
            continue;
        };
        if plan.host_ca_bundle.is_none() {
            plan.host_ca_bundle = Some(canon.clone());
        }
        for (target, _) in inside_paths(&trees, &canon) {
            if !plan.ca_bundle_targets.contains(&target) {
                plan.ca_bundle_targets.push(target);
            }
        }
    }
    Ok(plan)
}

/// Every path inside the sandbox at which the host path `host` is visible, with whether the
/// tree that shows it is writable. The deepest tree wins for each visible location.
fn inside_paths(trees: &[Tree], host: &Path) -> Vec<(PathBuf, bool)> {
    let mut out: Vec<(PathBuf, bool)> = Vec::new();
    for tree in trees {
        if let Ok(rel) = host.strip_prefix(&tree.source) {
            let target = if rel.as_os_str().is_empty() {
                tree.target.clone()
            } else {
                tree.target.join(rel)
            };
            // A later (deeper) tree at the same place overrides an earlier one.
            out.retain(|(t, _)| t != &target);
            // Skip locations shadowed by a deeper tree that shows something else.
            let shadowed = trees.iter().any(|other| {
                other.target.starts_with(&tree.target)
                    && other.target != tree.target
                    && target.starts_with(&other.target)
                    && !host.starts_with(&other.source)
            });
            if !shadowed {
                out.push((target, tree.writable));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jail::test_support::Scratch;

    fn rules(ws: &Path, deny: &[&str]) -> FileRules {
        FileRules {
            write: vec![ws.to_owned()],
            deny: deny.iter().map(|d| ws.join(d)).collect(),
            scan_protected: true,
            ..FileRules::default()
        }
    }

    fn hides(plan: &ViewPlan) -> Vec<(PathBuf, bool)> {
        plan.ops
            .iter()
            .filter_map(|op| match op {
                MountOp::Hide { target, directory } => Some((target.clone(), *directory)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(Path::new("/a/./b/../c/")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../../etc")), PathBuf::from("/etc"));
    }

    #[test]
    fn existing_prefix_follows_symlinks_and_keeps_the_missing_rest() {
        let s = Scratch::new("view-prefix");
        let ws = s.subdir("ws");
        fs::create_dir_all(ws.join("real")).unwrap();
        std::os::unix::fs::symlink(ws.join("real"), ws.join("link")).unwrap();
        let (canon, rest) = resolve_existing_prefix(&ws.join("link/missing/deeper")).unwrap();
        assert_eq!(canon, ws.join("real"));
        assert_eq!(rest, PathBuf::from("missing/deeper"));
        let (canon, rest) = resolve_existing_prefix(&ws.join("real/../real")).unwrap();
        assert_eq!((canon, rest), (ws.join("real"), PathBuf::new()));
    }

    #[test]
    fn deny_paths_are_covered_where_they_are_visible_through_symlinks_and_when_missing() {
        let s = Scratch::new("view-deny");
        let ws = s.subdir("ws");
        fs::write(ws.join(".env"), "x").unwrap();
        fs::create_dir_all(ws.join("secrets")).unwrap();
        fs::write(ws.join("secrets/k"), "x").unwrap();
        std::os::unix::fs::symlink("secrets/k", ws.join("alias")).unwrap();
        let plan = plan(
            &rules(&ws, &[".env", "secrets", "alias", "later/x", "../outside"]),
            None,
        )
        .unwrap();
        let h = hides(&plan);
        assert!(h.contains(&(ws.join(".env"), false)), "{h:?}");
        assert!(h.contains(&(ws.join("secrets"), true)), "{h:?}");
        // The symlink's target is covered (the link then leads to the cover).
        assert!(h.contains(&(ws.join("secrets/k"), false)), "{h:?}");
        // A missing deny path gets a placeholder at its first missing component.
        assert!(h.contains(&(ws.join("later"), true)), "{h:?}");
        assert_eq!(plan.placeholders, vec![ws.join("later")]);
        assert!(ws.join("later").is_dir());
        // Not visible at all: nothing to cover, nothing created.
        assert!(!h.iter().any(|(t, _)| t.ends_with("outside")), "{h:?}");
        assert!(!s.path().join("outside").exists());
        // Covers come after the binds they cover.
        let bind_at = plan
            .ops
            .iter()
            .position(|op| matches!(op, MountOp::Bind { target, .. } if target == &ws))
            .unwrap();
        let hide_at = plan
            .ops
            .iter()
            .position(|op| matches!(op, MountOp::Hide { .. }))
            .unwrap();
        assert!(bind_at < hide_at);
    }

    #[test]
    fn protected_paths_in_nested_repositories_become_read_only_binds() {
        let s = Scratch::new("view-protected");
        let ws = s.subdir("ws");
        fs::create_dir_all(ws.join("vendor/lib/.git/hooks")).unwrap();
        fs::write(ws.join("vendor/lib/.git/config"), "").unwrap();
        fs::create_dir_all(ws.join(".git")).unwrap();
        fs::create_dir_all(ws.join("src/hooks")).unwrap();
        let plan = plan(&rules(&ws, &[]), None).unwrap();
        let ro: Vec<&PathBuf> = plan
            .ops
            .iter()
            .filter_map(|op| match op {
                MountOp::Bind {
                    target,
                    writable: false,
                    ..
                } if target.starts_with(&ws) => Some(target),
                _ => None,
            })
            .collect();
        for p in [
            "vendor/lib/.git/hooks",
            "vendor/lib/.git/config",
            ".git/hooks",
        ] {
            assert!(ro.contains(&&ws.join(p)), "{p} not read-only: {ro:?}");
        }
        assert!(!ro.contains(&&ws.join("src/hooks")), "{ro:?}");
        // The missing `.git/hooks` of the top-level repository was created (empty) to be covered.
        assert!(ws.join(".git/hooks").is_dir());
        assert!(plan.protected_at_start.contains(&ws.join(".git/hooks")));
    }

    #[test]
    fn the_supervisor_log_is_hidden_and_home_is_a_private_tmpfs() {
        let s = Scratch::new("view-hidden");
        let ws = s.subdir("ws");
        fs::write(ws.join("flows.jsonl"), "").unwrap();
        let mut r = rules(&ws, &[]);
        r.hidden = vec![ws.join("flows.jsonl")];
        let plan = plan(&r, Some(&s.path().join("home"))).unwrap();
        assert!(hides(&plan).contains(&(ws.join("flows.jsonl"), false)));
        assert!(plan.ops.contains(&MountOp::Tmpfs {
            target: s.path().join("home")
        }));
        assert!(
            plan.covered.is_empty(),
            "the log is not reported as a contract deny path"
        );
    }

    #[test]
    fn the_whole_file_system_is_not_a_workspace() {
        let r = FileRules {
            write: vec![PathBuf::from("/")],
            ..FileRules::default()
        };
        assert!(matches!(
            plan(&r, None),
            Err(ViewError::WorkspaceTooBroad(_))
        ));
        let r = FileRules {
            read: vec![PathBuf::from("relative")],
            ..FileRules::default()
        };
        assert!(matches!(plan(&r, None), Err(ViewError::NotAbsolute(_))));
    }
}
