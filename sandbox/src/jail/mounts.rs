//! Building the new root inside the child's mount namespace (runs as pid 1 of the sandbox,
//! with the capabilities of the new user namespace).
//!
//! The host tree is reached as `/.host/rw` after a first `pivot_root` onto a fresh tmpfs, and
//! as `/.host/ro` (read-only) for the read-only binds; every source path was resolved on the
//! host side already ([`crate::jail::view`]). At the end both are detached and the new root
//! made read-only.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{symlink, DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};

use crate::jail::view::{MountOp, MountPlan};

/// A small tmpfs holding both views of the host's tree while the new root is built, so that
/// one lazy unmount detaches them together (each unmount waits for an RCU grace period).
pub const HOST_TREES: &str = "/.host";
/// Where the host's root is reachable while the new root is built.
pub const OLD_ROOT: &str = "/.host/rw";
/// The host's root once more, its top mount read-only, nosuid and nodev: read-only binds are
/// taken from here, so that they are born with those flags and need no remount.
pub const READ_ONLY_HOST: &str = "/.host/ro";
/// Inside path of the session CA certificate.
pub const SESSION_CA_PATH: &str = "/etc/sandbox/session-ca.pem";
/// Inside path of the CA bundle (session CA + host roots).
pub const CA_BUNDLE_PATH: &str = "/etc/sandbox/ca-bundle.pem";
const EMPTY_FILE: &str = "/etc/sandbox/.empty";

/// Parts of the sandbox's /proc that are kernel-wide, made read-only by a bind over themselves.
pub const PROC_READ_ONLY: &[&str] = &[
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/irq",
    "/proc/bus",
    "/proc/fs",
];

/// A failed step, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct MountError {
    what: String,
    source: io::Error,
}

fn step<T, E: Into<io::Error>>(
    r: Result<T, E>,
    what: impl FnOnce() -> String,
) -> Result<T, MountError> {
    r.map_err(|e| MountError {
        what: what(),
        source: e.into(),
    })
}

fn host(path: &Path) -> PathBuf {
    Path::new(OLD_ROOT).join(path.strip_prefix("/").unwrap_or(path))
}

fn read_only_host(path: &Path) -> PathBuf {
    Path::new(READ_ONLY_HOST).join(path.strip_prefix("/").unwrap_or(path))
}

fn mkdir_all(path: &Path) -> Result<(), MountError> {
    step(
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path),
        || format!("create mount point {}", path.display()),
    )
}

/// Creates an empty file (or directory) at `path` to mount on, and missing parents, unless
/// something is there already: of any type, a symlink included, which is not followed
/// (`O_EXCL` and `mkdir` never follow one). One system call when the parent exists.
fn mount_point(path: &Path, directory: bool) -> Result<(), MountError> {
    let what = || format!("create mount point {}", path.display());
    let create = || -> io::Result<()> {
        if directory {
            fs::DirBuilder::new().mode(0o755).create(path)
        } else {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map(drop)
        }
    };
    match create() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                mkdir_all(parent)?;
            }
            match create() {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                other => step(other, what),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => step(other, what),
    }
}

fn tmpfs(target: &Path, flags: MsFlags, options: &str) -> Result<(), MountError> {
    step(
        mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some(options)),
        || format!("mount a tmpfs on {}", target.display()),
    )
}

fn bind(source: &Path, target: &Path, writable: bool) -> Result<(), MountError> {
    step(
        mount(
            Some(source),
            target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ),
        || format!("bind {} on {}", source.display(), target.display()),
    )?;
    // A remount must keep the flags the kernel locked on the original mount (a user namespace
    // cannot clear nosuid/nodev/noexec), so they are read back and kept.
    let existing = step(statvfs(target), || format!("statvfs {}", target.display()))?.flags();
    // Already nosuid, nodev (and read-only when asked): the remount would change nothing.
    if existing.contains(FsFlags::ST_NOSUID | FsFlags::ST_NODEV)
        && (writable || existing.contains(FsFlags::ST_RDONLY))
    {
        return Ok(());
    }
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if !writable {
        flags |= MsFlags::MS_RDONLY;
    }
    for (fs_flag, ms_flag) in [
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if existing.contains(fs_flag) {
            flags |= ms_flag;
        }
    }
    step(
        mount(None::<&str>, target, None::<&str>, flags, None::<&str>),
        || {
            format!(
                "make {} {}",
                target.display(),
                if writable { "nosuid" } else { "read-only" }
            )
        },
    )
}

/// Mounts a tmpfs on host `/tmp` (in this mount namespace only), pivots into it and keeps the
/// host tree at [`OLD_ROOT`], inside the [`HOST_TREES`] tmpfs.
pub fn enter_new_root() -> Result<(), MountError> {
    step(
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        ),
        || "make the mount tree private".to_owned(),
    )?;
    tmpfs(
        Path::new("/tmp"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        "mode=0755,size=16m",
    )?;
    let trees = Path::new("/tmp").join(HOST_TREES.trim_start_matches('/'));
    mkdir_all(&trees)?;
    tmpfs(
        &trees,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        "mode=0700,size=4k,nr_inodes=8",
    )?;
    let put_old = Path::new("/tmp").join(OLD_ROOT.trim_start_matches('/'));
    mkdir_all(&put_old)?;
    step(nix::unistd::pivot_root("/tmp", &put_old), || {
        "pivot_root into the new root".to_owned()
    })?;
    step(nix::unistd::chdir("/"), || "chdir /".to_owned())?;
    mkdir_all(Path::new("/etc/sandbox"))?;
    mount_point(Path::new(EMPTY_FILE), false)?;
    step(
        fs::set_permissions(EMPTY_FILE, fs::Permissions::from_mode(0o000)),
        || "chmod the cover file".to_owned(),
    )?;
    Ok(())
}

/// Makes the kernel-wide knobs read-only, even for a uid that is root on the host (sysctl
/// write permission is checked against the host root uid, not against capabilities). Called
/// once the init has set the pid namespace's own `pid_max`, before the view is built.
pub fn seal_proc_knobs() -> Result<(), MountError> {
    for knob in PROC_READ_ONLY {
        let path = Path::new(knob);
        if fs::symlink_metadata(path).is_ok() {
            bind(path, path, false)?;
        }
    }
    Ok(())
}

/// Mounts /proc (of the new pid namespace) and a minimal /dev; returns the pty master when
/// `with_pty`. The kernel-wide knobs stay writable until [`seal_proc_knobs`].
pub fn mount_proc_and_dev(with_pty: bool) -> Result<Option<fs::File>, MountError> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mkdir_all(Path::new("/proc"))?;
    step(
        mount(
            Some("proc"),
            "/proc",
            Some("proc"),
            nosuid_nodev_noexec,
            None::<&str>,
        ),
        || {
            "mount /proc for the new pid namespace (a container that masks /proc prevents this)"
                .to_owned()
        },
    )?;
    mkdir_all(Path::new("/dev"))?;
    tmpfs(
        Path::new("/dev"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        "mode=0755,size=64k",
    )?;
    for dev in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = Path::new("/dev").join(dev);
        mount_point(&target, false)?;
        step(
            mount(
                Some(&host(&target)),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            ),
            || format!("bind {}", target.display()),
        )?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        step(symlink(to, Path::new("/dev").join(link)), || {
            format!("link /dev/{link}")
        })?;
    }
    mkdir_all(Path::new("/dev/shm"))?;
    tmpfs(Path::new("/dev/shm"), nosuid_nodev_noexec, "mode=1777")?;
    mkdir_all(Path::new("/dev/pts"))?;
    step(
        mount(
            Some("devpts"),
            "/dev/pts",
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        ),
        || "mount a private devpts on /dev/pts".to_owned(),
    )?;
    let master = if with_pty {
        let f = step(
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/pts/ptmx"),
            || "open /dev/pts/ptmx".to_owned(),
        )?;
        Some(f)
    } else {
        None
    };
    step(
        mount(
            None::<&str>,
            "/dev",
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("mode=0755,size=64k"),
        ),
        || "make /dev read-only".to_owned(),
    )?;
    Ok(master)
}

/// Executes the planned mount steps.
pub fn apply_view(plan: &MountPlan) -> Result<(), MountError> {
    // One read-only copy of the host tree: every read-only bind below is cut from it and so is
    // read-only, nosuid and nodev from the start (`bind` checks, and remounts what is not:
    // sources on other host mounts, which keep their own flags). Detached by `seal_root`.
    mkdir_all(Path::new(READ_ONLY_HOST))?;
    bind(Path::new(OLD_ROOT), Path::new(READ_ONLY_HOST), false)?;
    for op in &plan.ops {
        match op {
            MountOp::Tmpfs { target } => {
                mkdir_all(target)?;
                let mode = if target == Path::new("/tmp") {
                    "mode=1777"
                } else {
                    "mode=0700"
                };
                tmpfs(target, MsFlags::MS_NOSUID | MsFlags::MS_NODEV, mode)?;
            }
            MountOp::Bind {
                source,
                target,
                writable,
            } => {
                let src = if *writable {
                    host(source)
                } else {
                    read_only_host(source)
                };
                let is_dir =
                    step(fs::metadata(&src), || format!("stat {}", source.display()))?.is_dir();
                mount_point(target, is_dir)?;
                bind(&src, target, *writable)?;
            }
            MountOp::Symlink { target, points_to } => {
                if let Some(parent) = target.parent() {
                    mkdir_all(parent)?;
                }
                step(symlink(points_to, target), || {
                    format!("link {}", target.display())
                })?;
            }
            MountOp::Hide { target, directory } => {
                if *directory {
                    tmpfs(
                        target,
                        MsFlags::MS_RDONLY
                            | MsFlags::MS_NOSUID
                            | MsFlags::MS_NODEV
                            | MsFlags::MS_NOEXEC,
                        "mode=000,size=4k,nr_inodes=1",
                    )?;
                } else {
                    bind(Path::new(EMPTY_FILE), target, false)?;
                }
            }
        }
    }
    Ok(())
}

/// The CA bundle under construction: the host roots, copied in before the session CA exists
/// (so that the copy overlaps the supervisor's proxy start), to which [`install_ca`] appends
/// the session CA.
#[derive(Debug)]
pub struct PendingBundle {
    file: fs::File,
    /// The host roots did not end with a newline: one goes before the session CA.
    needs_newline: bool,
}

/// Creates [`CA_BUNDLE_PATH`] holding the host's roots (a kernel-side copy from the host
/// bundle, no user-space buffer).
pub fn prepare_ca_bundle(plan: &MountPlan) -> Result<PendingBundle, MountError> {
    let mut file = step(
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(CA_BUNDLE_PATH),
        || format!("create {CA_BUNDLE_PATH}"),
    )?;
    let mut needs_newline = false;
    if let Some(host_bundle) = &plan.host_ca_bundle {
        let what = || format!("copy the host CA bundle {}", host_bundle.display());
        let mut roots = step(fs::File::open(host(host_bundle)), what)?;
        let copied = step(io::copy(&mut roots, &mut file), what)?;
        if copied > 0 {
            let mut last = [0u8; 1];
            step(file.read_exact_at(&mut last, copied - 1), what)?;
            needs_newline = last[0] != b'\n';
        }
    }
    Ok(PendingBundle {
        file,
        needs_newline,
    })
}

/// Writes the session CA, completes the bundle (host roots + session CA) and mounts it over
/// the system bundle paths.
pub fn install_ca(
    plan: &MountPlan,
    mut bundle: PendingBundle,
    session_ca_pem: &[u8],
) -> Result<(), MountError> {
    step(fs::write(SESSION_CA_PATH, session_ca_pem), || {
        format!("write {SESSION_CA_PATH}")
    })?;
    let mut tail = Vec::with_capacity(session_ca_pem.len() + 2);
    if bundle.needs_newline {
        tail.push(b'\n');
    }
    tail.extend_from_slice(session_ca_pem);
    if !session_ca_pem.ends_with(b"\n") {
        tail.push(b'\n');
    }
    step(bundle.file.write_all(&tail), || {
        format!("append the session CA to {CA_BUNDLE_PATH}")
    })?;
    drop(bundle);
    for target in &plan.ca_bundle_targets {
        bind(Path::new(CA_BUNDLE_PATH), target, false)?;
    }
    Ok(())
}

/// Detaches the host tree (both views, in one unmount) and makes the new root read-only.
pub fn seal_root() -> Result<(), MountError> {
    step(umount2(HOST_TREES, MntFlags::MNT_DETACH), || {
        "detach the host root".to_owned()
    })?;
    step(fs::remove_dir(HOST_TREES), || {
        format!("remove {HOST_TREES}")
    })?;
    step(
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_BIND
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV,
            None::<&str>,
        ),
        || "make the new root read-only".to_owned(),
    )
}
