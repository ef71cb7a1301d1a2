//! Host unix sockets in the view. Landlock (below ABI 8) does not govern `connect()` on a
//! pathname socket and a read-only mount does not stop it, so by default the agent cannot
//! create a unix socket at all (seccomp, [`crate::jail::seccomp`]). A contract that needs unix
//! sockets (`[sockets] internal`, or a host socket in `[sockets] connect`) gets them back; then
//! every host socket present at the start in a writable tree is covered here, except the
//! listed ones, and the listed ones outside the view are bound into it.

use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::jail::view::{ViewError, SCAN_LIMIT};

/// What the view does about unix sockets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnixSocketRules {
    /// Host sockets the agent may connect to (absolute paths as the contract resolved them).
    pub connect: Vec<PathBuf>,
    /// Cover every other socket present in a writable tree (the agent can create unix
    /// sockets, so a host socket it can see is one it can connect to).
    pub cover_present: bool,
}

/// Depth-first scan of `root` (not following symlinks) for sockets, bounded like the
/// protected scan.
pub fn find_sockets(root: &Path) -> Result<Vec<PathBuf>, ViewError> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound
                ) =>
            {
                continue
            }
            Err(source) => return Err(ViewError::Io { path: dir, source }),
        };
        for entry in entries {
            let entry = entry.map_err(|source| ViewError::Io {
                path: dir.clone(),
                source,
            })?;
            seen += 1;
            if seen > SCAN_LIMIT {
                return Err(ViewError::ScanLimit {
                    root: root.to_owned(),
                    limit: SCAN_LIMIT,
                });
            }
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_socket() {
                found.push(entry.path());
            } else if ft.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// `path` exists and is a socket (symlinks followed).
pub fn is_socket(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jail::test_support::Scratch;

    #[test]
    fn sockets_are_found_at_any_depth_and_nothing_else() {
        let s = Scratch::new("unix-sockets");
        let ws = s.subdir("ws");
        fs::create_dir_all(ws.join("a/b")).unwrap();
        fs::write(ws.join("a/file"), b"x").unwrap();
        let _l1 = std::os::unix::net::UnixListener::bind(ws.join("top.sock")).unwrap();
        let _l2 = std::os::unix::net::UnixListener::bind(ws.join("a/b/deep.sock")).unwrap();
        std::os::unix::fs::symlink(ws.join("top.sock"), ws.join("link.sock")).unwrap();
        assert_eq!(
            find_sockets(&ws).unwrap(),
            vec![ws.join("a/b/deep.sock"), ws.join("top.sock")]
        );
        assert!(is_socket(&ws.join("link.sock")));
        assert!(!is_socket(&ws.join("a/file")));
    }
}
