//! Code planted for the host to run later: which entries of one directory are protected. The
//! sandbox's scans (at the start, live while the agent runs, and after it) hand each directory's
//! listing to [`protected_entries`]; this module holds the whole list and the reasons.
//!
//! Three kinds of entry are protected:
//! - a match of [`crate::files::PROTECTED_PATTERNS`] (`.git/hooks`, `.envrc`, `.vscode/tasks.json`,
//!   ... at any depth);
//! - `.git` as a *file*: a pointer (`gitdir: ...`) to a git directory elsewhere, whose config
//!   and hooks git then runs (a nested repository, a linked worktree);
//! - the [`GIT_DIR_PARTS`] of a directory git takes for a repository (`HEAD`, `objects/` and
//!   `refs/`) under any other name than `.git`: a bare repository, or the target of a `.git`
//!   file.

use std::path::Path;

use crate::files::{protected_pattern_for, ProtectedPattern};

/// A `.git` that is a regular file.
pub const GIT_POINTER: ProtectedPattern = ProtectedPattern {
    pattern: ".git (a file)",
    why: "a `gitdir:` pointer makes git use a repository elsewhere, with that repository's config and hooks",
};

/// What git runs from a git directory that is not named `.git`.
pub const GIT_DIR_PARTS: &[ProtectedPattern] = &[
    ProtectedPattern {
        pattern: "<bare repository>/config",
        why: "git config of a bare repository (or of the target of a `.git` file): core.hooksPath, core.fsmonitor, filters run code when git runs there",
    },
    ProtectedPattern {
        pattern: "<bare repository>/config.worktree",
        why: "per-worktree git config of a bare repository (same risks as its config)",
    },
    ProtectedPattern {
        pattern: "<bare repository>/hooks",
        why: "hooks of a bare repository run when git runs there",
    },
];

/// One entry of a directory listing.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The entry's name.
    pub name: &'a str,
    /// It is a directory (not following symlinks).
    pub is_dir: bool,
    /// It is a regular file.
    pub is_file: bool,
}

/// `entries` (the listing of `dir`, which is relative to a writable tree's root) make `dir` a
/// git directory: a `HEAD` file and `objects` and `refs` directories.
pub fn is_git_dir(entries: &[Entry<'_>]) -> bool {
    let has = |name: &str, dir: bool| {
        entries
            .iter()
            .any(|e| e.name == name && if dir { e.is_dir } else { e.is_file })
    };
    has("HEAD", false) && has("objects", true) && has("refs", true)
}

/// The names (ASCII lowercase) that can make an entry protected: the last component of every
/// pattern, and the names of [`GIT_POINTER`] and [`GIT_DIR_PARTS`].
fn candidate_names() -> &'static std::collections::HashSet<String> {
    static NAMES: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        crate::files::PROTECTED_PATTERNS
            .iter()
            .filter_map(|p| p.pattern.rsplit('/').next())
            .chain(
                GIT_DIR_PARTS
                    .iter()
                    .filter_map(|p| p.pattern.rsplit('/').next()),
            )
            .chain([".git"])
            .map(str::to_ascii_lowercase)
            .collect()
    })
}

/// `name` is one that some protected pattern ends with (cheap, before the full match).
fn is_candidate(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    candidate_names().contains(&lower)
}

/// The entries of `dir` (relative to a writable tree's root; `""` for the root itself) that
/// are protected, each with the pattern that protects it.
pub fn protected_entries<'e>(
    dir: &Path,
    entries: &[Entry<'e>],
) -> Vec<(&'e str, &'static ProtectedPattern)> {
    let mut out = Vec::new();
    let git_dir = is_git_dir(entries)
        && !dir
            .file_name()
            .is_some_and(|n| n.eq_ignore_ascii_case(".git"));
    for e in entries {
        // Only a name some pattern ends with can match (the scans never descend into a
        // protected directory, so nothing below one is asked about).
        if !is_candidate(e.name) {
            continue;
        }
        if let Some(p) = protected_pattern_for(&dir.join(e.name)) {
            out.push((e.name, p));
        } else if e.is_file && e.name.eq_ignore_ascii_case(".git") {
            out.push((e.name, &GIT_POINTER));
        } else if git_dir {
            if let Some(p) = GIT_DIR_PARTS
                .iter()
                .find(|p| p.pattern.rsplit('/').next() == Some(e.name))
            {
                out.push((e.name, p));
            }
        }
    }
    out
}

/// `path` can be protected: it matches a protected pattern, or its name is one that a `.git`
/// pointer file or a bare repository's parts carry (whether it is one depends on the disk).
pub fn may_be_protected(path: &Path) -> bool {
    protected_pattern_for(path).is_some()
        || path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            n.eq_ignore_ascii_case(".git")
                || GIT_DIR_PARTS
                    .iter()
                    .any(|p| p.pattern.rsplit('/').next() == Some(n))
        })
}

/// `path` is at or below one of the contract's `[files] unprotect` paths.
pub fn unprotected(path: &Path, unprotect: &[std::path::PathBuf]) -> bool {
    unprotect.iter().any(|u| path.starts_with(u))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, is_dir: bool) -> Entry<'_> {
        Entry {
            name,
            is_dir,
            is_file: !is_dir,
        }
    }

    fn names<'a>(dir: &str, entries: &[Entry<'a>]) -> Vec<&'a str> {
        protected_entries(Path::new(dir), entries)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn patterns_pointers_and_bare_repositories() {
        // a protected name at the root, a .git file, nothing else
        let root = [
            e(".envrc", false),
            e(".git", false),
            e("src", true),
            e("README.md", false),
        ];
        assert_eq!(names("", &root), vec![".envrc", ".git"]);
        // a .git directory is the repository itself, not a pointer
        assert!(names("", &[e(".git", true)]).is_empty());
        // inside .git: hooks and config by pattern
        let git = [
            e("HEAD", false),
            e("objects", true),
            e("refs", true),
            e("config", false),
            e("hooks", true),
        ];
        assert_eq!(names(".git", &git), vec!["config", "hooks"]);
        // a bare repository anywhere, under any case of its name
        assert_eq!(names("tools/evil.git", &git), vec!["config", "hooks"]);
        assert_eq!(names("x", &git), vec!["config", "hooks"]);
        // not a git dir: a `config` file next to a HEAD file alone is nothing
        let half = [e("HEAD", false), e("config", false), e("hooks", true)];
        assert!(names("x", &half).is_empty());
        // HEAD as a directory does not count
        let fake = [
            e("HEAD", true),
            e("objects", true),
            e("refs", true),
            e("config", false),
        ];
        assert!(names("x", &fake).is_empty());
        // case folding of `.GIT` as a file
        assert_eq!(names("sub", &[e(".GIT", false)]), vec![".GIT"]);
    }
}
