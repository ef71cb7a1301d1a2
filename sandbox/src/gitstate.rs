//! What a session changed in the workspace's git state: HEAD and branch before and after, the
//! commits the agent made, the files changed with added and removed line counts (untracked
//! files too), and any change outside the contract's scope. No file content is recorded; a
//! commit subject is recorded with secrets redacted.
//!
//! Git runs on the host, after the quarantine moved aside the hooks and config the agent
//! created, and hardened against what is left: no hooks (`core.hooksPath=/dev/null`), no
//! fsmonitor, no external diff or textconv, no optional locks, no prompt.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use egress_policy::{secrets, Policy};
use serde_json::{json, Value};

/// At most this many files are listed one by one (the totals count them all).
pub const MAX_FILES_LISTED: usize = 500;
/// At most this many commits are listed one by one.
pub const MAX_COMMITS_LISTED: usize = 200;
/// Untracked files larger than this are counted as changed without counting their lines.
const MAX_COUNTED_BYTES: u64 = 8 * 1024 * 1024;

/// The git state of a workspace at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitState {
    /// The repository's top level.
    pub toplevel: PathBuf,
    /// The commit HEAD names (`None` on an unborn branch).
    pub head: Option<String>,
    /// The branch HEAD points at (`None` when detached).
    pub branch: Option<String>,
    /// Paths with uncommitted changes or untracked (relative to the top level), with their
    /// size and modification time then (`None`: gone), to tell a file the session changed
    /// from one that was already dirty.
    pub dirty: BTreeMap<String, Option<(u64, i64, i64)>>,
}

/// Runs git in `dir`, hardened (see the module doc); stdout on success.
fn git(dir: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let safe = format!("safe.directory={}", dir.display());
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
            "-c",
            "diff.external=",
            "-c",
            &safe,
            "--no-optional-locks",
        ])
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_EXTERNAL_DIFF")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

fn nul_list(bytes: &[u8]) -> impl Iterator<Item = String> + '_ {
    bytes
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
}

/// A file's size and modification time, or `None` when it is gone.
fn stamp(path: &Path) -> Option<(u64, i64, i64)> {
    let md = std::fs::symlink_metadata(path).ok()?;
    Some((md.len(), md.mtime(), md.mtime_nsec()))
}

impl GitState {
    /// The path was dirty before and is exactly as it was then (not a change of the session).
    fn unchanged_since(&self, path: &str, top: &Path) -> bool {
        self.dirty
            .get(path)
            .is_some_and(|then| *then == stamp(&top.join(path)))
    }

    /// The state of the repository `workspace` is in, or `None` when it is in none (or git is
    /// not installed).
    pub fn capture(workspace: &Path) -> Option<GitState> {
        // Two git processes, at once (this runs while the sandbox is set up, before the agent
        // may start): the top level, and one `status` that also names HEAD and the branch.
        let status = std::thread::scope(|scope| {
            let status = scope.spawn(|| {
                git(
                    workspace,
                    &[
                        "status",
                        "--porcelain=v2",
                        "--branch",
                        "-z",
                        "--untracked-files=all",
                    ],
                )
            });
            let top = git(workspace, &["rev-parse", "--show-toplevel"]).map(text);
            (top, status.join().ok().flatten())
        });
        let (Some(top), Some(status)) = status else {
            return None;
        };
        let toplevel = PathBuf::from(top);
        let parsed = parse_status_v2(&status);
        let dirty = parsed
            .paths
            .into_iter()
            .map(|path| {
                let stamp = stamp(&toplevel.join(&path));
                (path, stamp)
            })
            .collect();
        Some(GitState {
            toplevel,
            head: parsed.head,
            branch: parsed.branch,
            dirty,
        })
    }
}

/// What `git status --porcelain=v2 --branch -z` says.
#[derive(Debug, Default, PartialEq, Eq)]
struct StatusV2 {
    head: Option<String>,
    branch: Option<String>,
    /// Changed, unmerged and untracked paths (relative to the top level).
    paths: Vec<String>,
}

fn parse_status_v2(out: &[u8]) -> StatusV2 {
    let mut parsed = StatusV2::default();
    let mut fields = nul_list(out);
    while let Some(entry) = fields.next() {
        if let Some(h) = entry.strip_prefix("# branch.oid ") {
            parsed.head = (h != "(initial)").then(|| h.to_string());
        } else if let Some(b) = entry.strip_prefix("# branch.head ") {
            parsed.branch = (b != "(detached)").then(|| b.to_string());
        } else if let Some(p) = entry.strip_prefix("? ") {
            parsed.paths.push(p.to_string());
        } else if entry.starts_with("1 ") {
            if let Some(p) = entry.splitn(9, ' ').nth(8) {
                parsed.paths.push(p.to_string());
            }
        } else if entry.starts_with("2 ") {
            if let Some(p) = entry.splitn(10, ' ').nth(9) {
                parsed.paths.push(p.to_string());
            }
            // A rename or copy: its source follows as the next field.
            let _ = fields.next();
        } else if entry.starts_with("u ") {
            if let Some(p) = entry.splitn(11, ' ').nth(10) {
                parsed.paths.push(p.to_string());
            }
        }
    }
    parsed
}

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFile {
    /// Relative to the repository's top level.
    pub path: String,
    /// Lines added (`None` for binary or too large to count).
    pub added: Option<u64>,
    /// Lines removed (`None` for binary).
    pub removed: Option<u64>,
    /// Not tracked by git.
    pub untracked: bool,
    /// It already had uncommitted changes before the session.
    pub dirty_before: bool,
    /// Why it lies outside the contract's scope, if it does.
    pub out_of_scope: Option<String>,
}

fn count_lines(path: &Path) -> Option<u64> {
    let md = std::fs::symlink_metadata(path).ok()?;
    if !md.is_file() || md.len() > MAX_COUNTED_BYTES {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    if bytes.contains(&0) {
        return None;
    }
    let n = bytes.iter().filter(|b| **b == b'\n').count() as u64;
    Some(n + u64::from(!bytes.is_empty() && !bytes.ends_with(b"\n")))
}

/// The files changed between `before` (its HEAD) and the working tree now.
fn changed_files(before: &GitState, after: &GitState, policy: &Policy) -> Vec<ChangedFile> {
    let top = &after.toplevel;
    let mut files = Vec::new();
    let base = before
        .head
        .clone()
        // An unborn branch: compare with the empty tree.
        .unwrap_or_else(|| "4b825dc642cb6eb9a060e54bf8d69288fbee4904".to_owned());
    let numstat = git(
        top,
        &[
            "diff",
            "--numstat",
            "-z",
            "--no-ext-diff",
            "--no-textconv",
            "--no-renames",
            &base,
        ],
    )
    .unwrap_or_default();
    for entry in nul_list(&numstat) {
        let mut parts = entry.splitn(3, '\t');
        let (Some(a), Some(r), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if before.unchanged_since(path, top) {
            continue;
        }
        files.push(ChangedFile {
            path: path.to_owned(),
            added: a.parse().ok(),
            removed: r.parse().ok(),
            untracked: false,
            dirty_before: before.dirty.contains_key(path),
            out_of_scope: None,
        });
    }
    let others =
        git(top, &["ls-files", "--others", "--exclude-standard", "-z"]).unwrap_or_default();
    for path in nul_list(&others) {
        if before.unchanged_since(&path, top) {
            continue;
        }
        let dirty_before = before.dirty.contains_key(&path);
        files.push(ChangedFile {
            added: count_lines(&top.join(&path)),
            removed: Some(0),
            untracked: true,
            dirty_before,
            out_of_scope: None,
            path,
        });
    }
    for f in &mut files {
        f.out_of_scope = policy.change_out_of_scope(&top.join(&f.path));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// A commit subject as recorded: secrets redacted, at most 200 bytes.
fn recorded_subject(subject: &str) -> String {
    let (clean, _) = secrets::redact(subject.as_bytes());
    let mut s = String::from_utf8_lossy(&clean).into_owned();
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The commits of `range` (oldest first) as `{"oid", "subject"}`.
fn commits_in(top: &Path, range: &str) -> Vec<Value> {
    let log = git(top, &["log", "--reverse", "-z", "--format=%H%x09%s", range]).unwrap_or_default();
    nul_list(&log)
        .filter_map(|e| {
            let (oid, subject) = e.split_once('\t')?;
            Some(json!({"oid": oid.trim(), "subject": recorded_subject(subject)}))
        })
        .collect()
}

/// The `detail` of the `changes` record: the state before and after, the agent's commits,
/// the files changed with their line counts and the out-of-scope findings.
pub fn changes_detail(
    before: Option<&GitState>,
    after: Option<&GitState>,
    policy: &Policy,
) -> Value {
    let (Some(before), Some(after)) = (before, after) else {
        return json!({
            "git": false,
            "why": "the workspace is not in a git repository (or git is not installed): no change was recorded",
        });
    };
    let mut commits = Vec::new();
    let mut history_rewritten = false;
    if let (Some(b), Some(a)) = (&before.head, &after.head) {
        if b != a {
            history_rewritten =
                git(&after.toplevel, &["merge-base", "--is-ancestor", b, a]).is_none();
            commits = commits_in(&after.toplevel, &format!("{b}..{a}"));
        }
    } else if let (None, Some(a)) = (&before.head, &after.head) {
        commits = commits_in(&after.toplevel, a);
    }
    let files = changed_files(before, after, policy);
    let added: u64 = files.iter().filter_map(|f| f.added).sum();
    let removed: u64 = files.iter().filter_map(|f| f.removed).sum();
    let out_of_scope: Vec<Value> = files
        .iter()
        .filter_map(|f| {
            f.out_of_scope
                .as_ref()
                .map(|why| json!({"path": f.path, "why": why}))
        })
        .collect();
    let listed: Vec<Value> = files
        .iter()
        .take(MAX_FILES_LISTED)
        .map(|f| {
            json!({
                "path": f.path,
                "added": f.added,
                "removed": f.removed,
                "untracked": f.untracked,
                "dirty_before": f.dirty_before,
            })
        })
        .collect();
    let commit_count = commits.len();
    commits.truncate(MAX_COMMITS_LISTED);
    json!({
        "git": true,
        "toplevel": after.toplevel.display().to_string(),
        "before": {"head": before.head, "branch": before.branch, "dirty_files": before.dirty.len()},
        "after": {"head": after.head, "branch": after.branch, "dirty_files": after.dirty.len()},
        "history_rewritten": history_rewritten,
        "commits": commits,
        "commit_count": commit_count,
        "files_changed": files.len(),
        "lines_added": added,
        "lines_removed": removed,
        "untracked_files": files.iter().filter(|f| f.untracked).count(),
        "files": listed,
        "files_listed": listed_len(files.len()),
        "out_of_scope": out_of_scope,
    })
}

fn listed_len(n: usize) -> usize {
    n.min(MAX_FILES_LISTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_v2_names_head_branch_and_every_kind_of_path() {
        let out = b"# branch.oid 0123abcd\0# branch.head main\0\
1 .M N... 100644 100644 100644 aaa bbb src/a file.rs\0\
2 R. N... 100644 100644 100644 aaa bbb R100 new name.rs\0old name.rs\0\
u UU N... 100644 100644 100644 100644 aaa bbb ccc conflict.rs\0\
? untracked dir/x.txt\0";
        let p = parse_status_v2(out);
        assert_eq!(p.head.as_deref(), Some("0123abcd"));
        assert_eq!(p.branch.as_deref(), Some("main"));
        assert_eq!(
            p.paths,
            vec![
                "src/a file.rs",
                "new name.rs",
                "conflict.rs",
                "untracked dir/x.txt"
            ]
        );
        let unborn = parse_status_v2(b"# branch.oid (initial)\0# branch.head (detached)\0");
        assert_eq!((unborn.head, unborn.branch), (None, None));
    }
}
