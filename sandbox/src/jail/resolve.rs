//! Canonical host paths for the view planner, with what was learnt about each directory kept
//! for the next path.
//!
//! [`Resolver::canonicalize`] has `realpath(3)` semantics, as `std::fs::canonicalize`: every
//! symlink is followed (at most [`MAX_LINKS`] of them), `.` and `..` apply to the resolved path
//! and need a directory before them, and a missing component, a file in the middle of the path
//! or a directory that cannot be searched is an error (`NotFound`, `ENOTDIR`,
//! `PermissionDenied`). Unlike `realpath`, a path component already found to exist and not to
//! be a symlink is not looked up again: the view's many paths under one directory (the /etc
//! entries, the credential files in `$HOME`) cost one `readlink` each instead of one per
//! component. What is remembered is only valid for one plan: make a new resolver per plan.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed in one lookup before it fails with `ELOOP`, as Linux allows.
pub const MAX_LINKS: usize = 40;

/// Resolves host paths, remembering the components it found to be real (not symlinks).
#[derive(Debug, Default)]
pub struct Resolver {
    /// Canonical paths that exist and are not symlinks.
    real: HashSet<PathBuf>,
    /// Canonical paths known to be directories.
    dirs: HashSet<PathBuf>,
}

enum Step {
    Current,
    Parent,
    Name(OsString),
}

fn steps(path: &Path) -> impl DoubleEndedIterator<Item = Step> + '_ {
    path.components().filter_map(|c| match c {
        Component::CurDir => Some(Step::Current),
        Component::ParentDir => Some(Step::Parent),
        Component::Normal(n) => Some(Step::Name(n.to_owned())),
        Component::RootDir | Component::Prefix(_) => None,
    })
}

impl Resolver {
    /// A resolver that knows nothing yet.
    pub fn new() -> Resolver {
        Resolver::default()
    }

    /// The canonical form of `path` (which must exist), as `std::fs::canonicalize`. A relative
    /// path is left to `std::fs::canonicalize`.
    pub fn canonicalize(&mut self, path: &Path) -> io::Result<PathBuf> {
        if !path.is_absolute() {
            return fs::canonicalize(path);
        }
        let mut resolved = PathBuf::from("/");
        // Still to walk, the next one last.
        let mut pending: Vec<Step> = steps(path).rev().collect();
        let mut links = 0usize;
        // `Path::components` drops a trailing `/` or `/.`; realpath wants a directory there.
        let bytes = path.as_os_str().as_bytes();
        let trailing_dir = bytes.len() > 1 && (bytes.ends_with(b"/") || bytes.ends_with(b"/."));
        while let Some(step) = pending.pop() {
            match step {
                Step::Current | Step::Parent => {
                    // `x/.` and `x/..` need `x` to be a directory, as in realpath.
                    self.require_dir(&resolved)?;
                    if matches!(step, Step::Parent) {
                        resolved.pop();
                    }
                }
                Step::Name(name) => {
                    let candidate = resolved.join(&name);
                    if self.real.contains(&candidate) {
                        resolved = candidate;
                        continue;
                    }
                    match fs::read_link(&candidate) {
                        Ok(target) => {
                            links += 1;
                            if links > MAX_LINKS {
                                return Err(io::Error::from_raw_os_error(libc::ELOOP));
                            }
                            if target.is_absolute() {
                                resolved = PathBuf::from("/");
                            }
                            pending.extend(steps(&target).rev());
                        }
                        // EINVAL: it exists and is not a symlink.
                        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                            // Its parent holds an entry, so the parent is a directory.
                            self.dirs.insert(resolved.clone());
                            self.real.insert(candidate.clone());
                            resolved = candidate;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if trailing_dir {
            self.require_dir(&resolved)?;
        }
        Ok(resolved)
    }

    fn require_dir(&mut self, path: &Path) -> io::Result<()> {
        if path == Path::new("/") || self.dirs.contains(path) {
            return Ok(());
        }
        if fs::metadata(path)?.is_dir() {
            self.dirs.insert(path.to_owned());
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::ENOTDIR))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jail::test_support::Scratch;
    use std::os::unix::fs::symlink;

    /// Every case agrees with `std::fs::canonicalize`, with a fresh resolver and with one that
    /// has already resolved all the others (in both orders).
    #[test]
    fn agrees_with_realpath_on_links_dots_missing_files_and_loops() {
        let s = Scratch::new("resolve-agree");
        let d = s.path();
        fs::create_dir_all(d.join("a/b/c")).unwrap();
        fs::write(d.join("a/file"), "x").unwrap();
        symlink("b/c", d.join("a/rel")).unwrap();
        symlink(d.join("a/b"), d.join("abs")).unwrap();
        symlink("../a/file", d.join("a/b/up")).unwrap();
        symlink("nowhere", d.join("dangling")).unwrap();
        symlink("loop2", d.join("loop1")).unwrap();
        symlink("loop1", d.join("loop2")).unwrap();
        symlink("abs/c/../../rel", d.join("chain")).unwrap();
        let cases = [
            "a/b/c",
            "a/rel",
            "a/rel/..",
            "a/rel/../..",
            "abs/c",
            "abs/../file",
            "a/b/up",
            "a/b/up/..",
            "a/file/..",
            "a/file/.",
            "a/file/x",
            "a/./b/./c/.",
            "a/file/",
            "a/b/",
            "a/rel/",
            "a/b/up/",
            "dangling/",
            "a/missing",
            "a/missing/..",
            "dangling",
            "loop1",
            "chain",
            "chain/..",
            "../../../..",
        ];
        let expected: Vec<_> = cases
            .iter()
            .map(|c| fs::canonicalize(d.join(c)).map_err(|e| e.raw_os_error()))
            .collect();
        let mut warm = Resolver::new();
        for pass in 0..3 {
            for i in 0..cases.len() {
                let i = if pass == 2 { cases.len() - 1 - i } else { i };
                let c = cases[i];
                let mut fresh = Resolver::new();
                let got = fresh.canonicalize(&d.join(c)).map_err(|e| e.raw_os_error());
                assert_eq!(got, expected[i], "fresh resolver, {c}");
                let got = warm.canonicalize(&d.join(c)).map_err(|e| e.raw_os_error());
                assert_eq!(got, expected[i], "warm resolver (pass {pass}), {c}");
            }
        }
        // Some of the cases must fail, or the comparison proves little.
        assert!(expected.contains(&Err(Some(libc::ENOTDIR))));
        assert!(expected.contains(&Err(Some(libc::ENOENT))));
        assert!(expected.contains(&Err(Some(libc::ELOOP))));
    }
}
