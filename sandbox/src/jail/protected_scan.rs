//! The scan of a writable tree for protected entries (egress-policy's
//! [`egress_policy::planted::protected_entries`]: protected patterns, `.git` pointer files, the
//! config and hooks of bare repositories): at the start (kept read-only), live
//! ([`crate::jail::planted`]) and after the session ([`crate::jail::quarantine`]).

use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::jail::view::{ViewError, SCAN_LIMIT};

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ViewError + '_ {
    move |source| ViewError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Depth-first scan of `root` (not following symlinks) for protected entries (egress-policy's
/// [`egress_policy::planted::protected_entries`]: protected patterns, `.git` files, the config
/// and hooks of bare repositories). Matches are returned as found (a symlink is not resolved)
/// and not descended into.
pub fn find_protected(root: &Path) -> Result<Vec<PathBuf>, ViewError> {
    find_protected_below(root, root)
}

/// [`find_protected`] for the part of `root`'s tree below `dir` (`dir` itself included).
pub fn find_protected_below(root: &Path, dir: &Path) -> Result<Vec<PathBuf>, ViewError> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let listing = match list_dir(&dir) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&dir)(e)),
        };
        seen += listing.len();
        if seen > SCAN_LIMIT {
            return Err(ViewError::ScanLimit {
                root: root.to_owned(),
                limit: SCAN_LIMIT,
            });
        }
        let rel = dir.strip_prefix(root).unwrap_or(Path::new(""));
        let protected = protected_in(rel, &listing);
        for (name, ft) in &listing {
            let path = dir.join(name);
            if protected.iter().any(|p| p == name) {
                if !ft.is_socket() && !ft.is_fifo() {
                    found.push(path);
                }
            } else if ft.is_dir() {
                stack.push(path);
            }
        }
    }
    Ok(found)
}

/// The entries of `dir` with their types (not following symlinks).
pub fn list_dir(dir: &Path) -> io::Result<Vec<(std::ffi::OsString, fs::FileType)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Ok(ft) = entry.file_type() {
            out.push((entry.file_name(), ft));
        }
    }
    Ok(out)
}

/// The names in `listing` (of the directory `rel` below a writable tree's root) that
/// egress-policy protects, with why.
pub fn protected_in(
    rel: &Path,
    listing: &[(std::ffi::OsString, fs::FileType)],
) -> Vec<std::ffi::OsString> {
    let entries: Vec<egress_policy::planted::Entry<'_>> = listing
        .iter()
        .filter_map(|(name, ft)| {
            Some(egress_policy::planted::Entry {
                name: name.to_str()?,
                is_dir: ft.is_dir(),
                is_file: ft.is_file(),
            })
        })
        .collect();
    egress_policy::planted::protected_entries(rel, &entries)
        .into_iter()
        .map(|(n, _)| std::ffi::OsString::from(n))
        .collect()
}
