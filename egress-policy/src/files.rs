//! File access: the contract's read/write/deny grants, the paths no contract may open up
//! (protected files that run code outside the sandbox later, credential stores), and the
//! lexical decision for one path.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

/// Read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileAccess {
    /// Open for reading, list a directory, execute.
    Read,
    /// Create, modify, rename, delete.
    Write,
}

/// A file pattern that is never writable, in any class, wherever it appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProtectedPattern {
    /// Glob over path components: `**` matches any number of components; the pattern is
    /// implicitly preceded by `**/` and covers everything below a match.
    pub pattern: &'static str,
    /// Why it is protected.
    pub why: &'static str,
}

/// Never writable, at any depth (nested repositories and `$HOME` included).
pub const PROTECTED_PATTERNS: &[ProtectedPattern] = &[
    ProtectedPattern {
        pattern: ".git/hooks",
        why: "git hooks run on the host at the next commit or checkout",
    },
    ProtectedPattern {
        pattern: ".git/config",
        why: "git config can set core.hooksPath, core.fsmonitor, aliases and filters that run code",
    },
    ProtectedPattern {
        pattern: ".git/config.worktree",
        why: "per-worktree git config (same risks as .git/config)",
    },
    ProtectedPattern {
        pattern: ".git/modules/**/hooks",
        why: "hooks of submodules",
    },
    ProtectedPattern {
        pattern: ".git/modules/**/config",
        why: "git config of submodules",
    },
    ProtectedPattern {
        pattern: ".git/worktrees/**/config.worktree",
        why: "git config of linked worktrees",
    },
    ProtectedPattern {
        pattern: ".gitmodules",
        why: "submodule URLs and update commands are fetched and run on the host",
    },
    ProtectedPattern {
        pattern: ".husky",
        why: "husky installs git hooks from here",
    },
    ProtectedPattern {
        pattern: ".pre-commit-config.yaml",
        why: "pre-commit runs these hooks on the host",
    },
    ProtectedPattern {
        pattern: ".envrc",
        why: "direnv runs it when a developer enters the directory",
    },
    ProtectedPattern {
        pattern: ".github/workflows",
        why: "CI workflows run with the repository's secrets",
    },
    ProtectedPattern {
        pattern: ".github/actions",
        why: "local CI actions called by workflows",
    },
    ProtectedPattern {
        pattern: ".gitlab-ci.yml",
        why: "CI pipeline definition",
    },
    ProtectedPattern {
        pattern: ".circleci",
        why: "CI pipeline definition",
    },
    ProtectedPattern {
        pattern: ".buildkite",
        why: "CI pipeline definition",
    },
    ProtectedPattern {
        pattern: "Jenkinsfile",
        why: "CI pipeline definition",
    },
    ProtectedPattern {
        pattern: "azure-pipelines.yml",
        why: "CI pipeline definition",
    },
    ProtectedPattern {
        pattern: ".travis.yml",
        why: "CI pipeline definition",
    },
    ProtectedPattern {
        pattern: ".gitea/workflows",
        why: "CI workflows (Gitea Actions) run with the repository's secrets",
    },
    ProtectedPattern {
        pattern: ".forgejo/workflows",
        why: "CI workflows (Forgejo Actions) run with the repository's secrets",
    },
    ProtectedPattern {
        pattern: "bitbucket-pipelines.yml",
        why: "CI pipeline definition",
    },
    ProtectedPattern {
        pattern: ".drone.yml",
        why: "CI pipeline definition",
    },
    ProtectedPattern {
        pattern: ".woodpecker.yml",
        why: "CI pipeline definition",
    },
    ProtectedPattern {
        pattern: ".woodpecker",
        why: "CI pipeline definitions",
    },
    ProtectedPattern {
        pattern: ".cirrus.yml",
        why: "CI pipeline definition",
    },
    ProtectedPattern {
        pattern: "appveyor.yml",
        why: "CI pipeline definition",
    },
    ProtectedPattern {
        pattern: ".appveyor.yml",
        why: "CI pipeline definition",
    },
    ProtectedPattern {
        pattern: "mise.toml",
        why: "mise runs its hooks and `_.source` env scripts when a developer enters the directory",
    },
    ProtectedPattern {
        pattern: ".mise.toml",
        why: "mise runs its hooks and `_.source` env scripts when a developer enters the directory",
    },
    ProtectedPattern {
        pattern: ".vscode/tasks.json",
        why: "editor tasks run on the host",
    },
    ProtectedPattern {
        pattern: ".vscode/settings.json",
        why: "editor settings can name interpreters and shells the editor runs",
    },
    ProtectedPattern {
        pattern: ".vscode/launch.json",
        why: "editor launch configurations run on the host",
    },
    ProtectedPattern {
        pattern: ".idea",
        why: "JetBrains run configurations and settings run on the host",
    },
    ProtectedPattern {
        pattern: ".devcontainer",
        why: "dev container definitions run on the host",
    },
    ProtectedPattern {
        pattern: ".cargo/config.toml",
        why: "cargo config can set runners, linkers and aliases",
    },
    ProtectedPattern {
        pattern: ".cargo/config",
        why: "cargo config (legacy name)",
    },
    ProtectedPattern {
        pattern: ".npmrc",
        why: "npm config can set script-shell and registries",
    },
    ProtectedPattern {
        pattern: ".yarnrc",
        why: "yarn config can set the yarn binary path",
    },
    ProtectedPattern {
        pattern: ".yarnrc.yml",
        why: "yarn config can set yarnPath and plugins",
    },
    ProtectedPattern {
        pattern: ".mcp.json",
        why: "project MCP servers: a coding agent started later in the workspace runs them",
    },
    ProtectedPattern {
        pattern: ".claude/settings.json",
        why: "Claude Code project settings: hooks and MCP servers run commands",
    },
    ProtectedPattern {
        pattern: ".claude/settings.local.json",
        why: "Claude Code local settings: hooks and MCP servers run commands",
    },
    ProtectedPattern {
        pattern: ".vscode/mcp.json",
        why: "editor MCP servers run on the host",
    },
    ProtectedPattern {
        pattern: ".cursor/mcp.json",
        why: "Cursor MCP servers run on the host",
    },
    ProtectedPattern {
        pattern: ".gemini/settings.json",
        why: "Gemini CLI project settings: MCP servers and tool commands run on the host",
    },
];

/// Relative to `$HOME`: never writable (they run code at the next login or shell).
pub const PROTECTED_HOME: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zprofile",
    ".zshenv",
    ".zlogin",
    ".zlogout",
    ".config/fish",
    ".xprofile",
    ".xsession",
    ".gitconfig",
    ".config/git",
    ".config/systemd",
    ".config/autostart",
    ".local/bin",
    "bin",
    ".vimrc",
    ".config/nvim",
    ".emacs",
    ".emacs.d",
    ".config/pip",
    ".pip",
    ".bash_aliases",
    ".bashrc.d",
    ".zshrc.d",
    ".oh-my-zsh",
    ".config/environment.d",
    ".pam_environment",
    ".xinitrc",
    ".config/direnv",
    ".vim",
    ".tmux.conf",
    ".config/tmux",
    ".gdbinit",
    ".config/gdb",
    ".lldbinit",
    ".ipython",
    ".gradle/init.d",
    ".gradle/init.gradle",
    ".gradle/gradle.properties",
    ".m2/settings.xml",
    ".local/share/applications",
    ".config/Code/User",
];

/// Relative to `$HOME`: credential stores, never readable nor writable in any class.
pub const CREDENTIAL_STORES: &[&str] = &[
    ".ssh",
    ".aws",
    ".gnupg",
    ".kube",
    ".docker/config.json",
    ".netrc",
    ".git-credentials",
    ".config/gcloud",
    ".azure",
    ".config/gh",
    ".config/hub",
    ".npmrc",
    ".pypirc",
    ".yarnrc",
    ".cargo/credentials.toml",
    ".cargo/credentials",
    ".terraform.d/credentials.tfrc.json",
    ".vault-token",
    ".password-store",
    ".local/share/keyrings",
    ".pki",
    ".config/op",
    ".claude/.credentials.json",
    ".codex/auth.json",
    ".mozilla",
    ".config/google-chrome",
    ".config/chromium",
];

/// Absolute paths never accessible (a reachable container runtime socket is a full escape).
pub const NEVER_ACCESSIBLE: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
];

/// System trees that no contract may make writable (`/` itself included).
pub const SYSTEM_DIRS: &[&str] = &[
    "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/proc",
    "/sys", "/dev", "/run", "/var/run", "/var/lib", "/snap", "/opt",
];

/// The system directory covering `path` for a write grant: `/` itself, or a tree in
/// [`SYSTEM_DIRS`].
pub fn system_dir_for(path: &Path) -> Option<&'static str> {
    if path == Path::new("/") {
        return Some("/");
    }
    SYSTEM_DIRS
        .iter()
        .copied()
        .find(|d| is_within(path, Path::new(d)))
}

/// The system tree that `path` is, or contains (`/` contains them all): for a write grant
/// inside a workspace, which may itself lie below a system tree but must not be one.
pub fn system_dir_inside(path: &Path) -> Option<&'static str> {
    if path == Path::new("/") {
        return Some("/");
    }
    SYSTEM_DIRS
        .iter()
        .copied()
        .find(|d| is_within(Path::new(d), path))
}

/// Normalise an absolute path lexically: drop `.`, apply `..`, drop trailing slashes.
/// Returns `None` for a relative path. Symlinks are not resolved: callers that need the
/// real target canonicalise first.
pub fn normalize_lexically(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Some(out)
}

fn components(path: &Path) -> Vec<&str> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => n.to_str(),
            _ => None,
        })
        .collect()
}

/// Does `pattern` (components, `**` = any number) match a prefix of `comps`?
fn glob_prefix(pattern: &[&str], comps: &[&str]) -> bool {
    match pattern.split_first() {
        None => true,
        Some((&"**", rest)) => (0..=comps.len()).any(|i| glob_prefix(rest, &comps[i..])),
        // ASCII case-insensitive: on a case-insensitive file system (macOS, ext4 casefold)
        // `.GIT/Hooks` is git's hooks directory
        Some((p, rest)) => {
            comps.first().is_some_and(|c| c.eq_ignore_ascii_case(p))
                && glob_prefix(rest, &comps[1..])
        }
    }
}

/// The protected patterns split into components, once.
fn compiled_patterns() -> &'static [(Vec<&'static str>, &'static ProtectedPattern)] {
    static COMPILED: std::sync::OnceLock<Vec<(Vec<&'static str>, &'static ProtectedPattern)>> =
        std::sync::OnceLock::new();
    COMPILED.get_or_init(|| {
        PROTECTED_PATTERNS
            .iter()
            .map(|p| (p.pattern.split('/').collect(), p))
            .collect()
    })
}

/// The first component of every pattern, ASCII lowercase: a path none of whose components is
/// one of these matches no pattern (the scans of large trees ask for every entry).
fn first_components() -> &'static std::collections::HashSet<String> {
    static FIRST: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    FIRST.get_or_init(|| {
        compiled_patterns()
            .iter()
            .filter_map(|(pat, _)| pat.first())
            .map(|c| c.to_ascii_lowercase())
            .collect()
    })
}

/// The protected pattern covering `path` (an absolute path), if any.
pub fn protected_pattern_for(path: &Path) -> Option<&'static ProtectedPattern> {
    let comps = components(path);
    let first = first_components();
    if !first.contains("**")
        && !comps
            .iter()
            .any(|c| first.contains(&c.to_ascii_lowercase()))
    {
        return None;
    }
    compiled_patterns()
        .iter()
        .find(|(pat, _)| (0..comps.len()).any(|start| glob_prefix(pat, &comps[start..])))
        .map(|(_, p)| *p)
}

/// `path` is `base` or below it (both absolute, lexically normalised).
pub fn is_within(path: &Path, base: &Path) -> bool {
    path.starts_with(base)
}

/// `/proc/PID/root`, `/proc/PID/cwd`, `/proc/PID/fd`, `/proc/PID/map_files` (also under
/// `task/TID`) and `/dev/fd`, `/dev/std{in,out,err}`: magic links to other places in the file
/// system, so nothing below them can be decided lexically. Returns the alias prefix.
pub fn proc_alias_for(path: &Path) -> Option<PathBuf> {
    const MAGIC: &[&str] = &["root", "cwd", "fd", "map_files", "exe"];
    let comps = components(path);
    let prefix = |n: usize| -> PathBuf {
        let mut p = PathBuf::from("/");
        p.extend(&comps[..n]);
        p
    };
    match comps.as_slice() {
        ["proc", _, m, ..] if MAGIC.contains(m) => Some(prefix(3)),
        ["proc", _, "task", _, m, ..] if MAGIC.contains(m) => Some(prefix(5)),
        ["dev", m, ..] if ["fd", "stdin", "stdout", "stderr"].contains(m) => Some(prefix(2)),
        _ => None,
    }
}

/// The paths of `list` under `home`.
pub fn home_paths(home: &Path, list: &[&str]) -> Vec<PathBuf> {
    list.iter().map(|p| home.join(p)).collect()
}

/// `path` is `base` or below it, with the part below `home` compared ASCII
/// case-insensitively (`~/.SSH` is `~/.ssh` on a case-insensitive file system).
fn is_within_folding_case(path: &Path, base: &Path, home: &Path) -> bool {
    if is_within(path, base) {
        return true;
    }
    let (Ok(rel), Ok(base_rel)) = (path.strip_prefix(home), base.strip_prefix(home)) else {
        return false;
    };
    let rel = components(rel);
    let base_rel = components(base_rel);
    rel.len() >= base_rel.len()
        && rel
            .iter()
            .zip(&base_rel)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
}

/// The never-readable path covering `path`, if any (credential stores and runtime sockets).
pub fn credential_store_for(path: &Path, home: &Path) -> Option<PathBuf> {
    home_paths(home, CREDENTIAL_STORES)
        .into_iter()
        .chain(NEVER_ACCESSIBLE.iter().map(PathBuf::from))
        .find(|c| is_within_folding_case(path, c, home))
}

/// The protected `$HOME` start-up path covering `path`, if any.
pub fn protected_home_for(path: &Path, home: &Path) -> Option<PathBuf> {
    home_paths(home, PROTECTED_HOME)
        .into_iter()
        .find(|c| is_within_folding_case(path, c, home))
}

/// Names that make a path look like documentation, tests or formatting config (class A).
const CLASS_A_DIRS: &[&str] = &[
    "docs",
    "doc",
    "documentation",
    "test",
    "tests",
    "testing",
    "testdata",
    "test-data",
    "__tests__",
    "spec",
    "specs",
    "fixtures",
];
const CLASS_A_FILES: &[&str] = &[
    "rustfmt.toml",
    ".rustfmt.toml",
    ".editorconfig",
    ".prettierrc",
    ".prettierrc.json",
    ".prettierrc.yaml",
    ".prettierrc.yml",
    ".prettierrc.toml",
    ".prettierignore",
    ".clang-format",
    ".markdownlint.json",
    ".markdownlint.yaml",
    ".markdownlint.yml",
    "taplo.toml",
    ".taplo.toml",
    "biome.json",
    "dprint.json",
    ".dprint.json",
    "stylua.toml",
    ".stylua.toml",
    ".scalafmt.conf",
    ".isort.cfg",
    ".yamllint",
    ".yamllint.yml",
];
const CLASS_A_PREFIXES: &[&str] = &["readme", "changelog", "contributing", "authors", "changes"];
const CLASS_A_EXTENSIONS: &[&str] = &["md", "mdx", "rst", "adoc", "txt"];

/// Does a workspace-relative path look like docs, tests or formatting config?
pub fn looks_like_docs_tests_or_format(relative: &Path) -> bool {
    let comps = components(relative);
    if comps
        .iter()
        .any(|c| CLASS_A_DIRS.contains(&c.to_ascii_lowercase().as_str()))
    {
        return true;
    }
    let Some(name) = comps.last() else {
        return false;
    };
    let lower = name.to_ascii_lowercase();
    // `README`, `README.md`, `CHANGELOG.rst`; not `readme_src` (a directory of code)
    let doc_name = |p: &&str| {
        lower
            .strip_prefix(*p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    };
    if CLASS_A_FILES.contains(&lower.as_str()) || CLASS_A_PREFIXES.iter().any(doc_name) {
        return true;
    }
    if let Some((stem, ext)) = lower.rsplit_once('.') {
        if CLASS_A_EXTENSIONS.contains(&ext) {
            return true;
        }
        let stem_test = stem.starts_with("test_")
            || stem.ends_with("_test")
            || stem.ends_with(".test")
            || stem.ends_with(".spec")
            || stem.ends_with("_spec");
        if stem_test {
            return true;
        }
    }
    false
}

/// A granted path as the contract wrote it and as it resolves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathGrant {
    /// As written in the contract (`src`, `~/.ssh`).
    pub written: String,
    /// Absolute, lexically normalised.
    pub path: PathBuf,
}

/// Which rule decided a file access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum FileRule {
    /// A credential store or runtime socket: never accessible.
    CredentialStore(PathBuf),
    /// A protected pattern (never writable).
    Protected(String),
    /// A protected `$HOME` start-up file (never writable).
    ProtectedHome(PathBuf),
    /// The session's flow log (`[log] path`): hidden from the agent, which must not read or
    /// rewrite the record of what it did.
    FlowLog(PathBuf),
    /// A `[files] deny` entry, as written.
    Deny(String),
    /// A `[files] write` entry, as written.
    Write(String),
    /// A `[files] read` entry, as written.
    Read(String),
    /// No grant covers the path: deny by default.
    Default,
}

/// The answer for one path and access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDecision {
    /// The access asked about.
    pub access: FileAccess,
    /// The path, normalised.
    pub path: PathBuf,
    /// Allowed or not.
    pub allowed: bool,
    /// The rule that won.
    pub rule: FileRule,
    /// Why, in words.
    pub reason: String,
}

/// What the sandbox must set up: absolute paths and the patterns it must keep read-only
/// wherever they appear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilePlan {
    /// Readable (read-only) trees.
    pub read: Vec<PathBuf>,
    /// Writable trees (also readable).
    pub write: Vec<PathBuf>,
    /// Hidden trees: the contract's `deny` entries, credential stores and runtime sockets.
    /// They win over `read` and `write` at any depth.
    pub deny: Vec<PathBuf>,
    /// Glob patterns (over path components, `**` = any depth) that must stay read-only
    /// wherever they appear below a writable tree, existing or not.
    pub protected_patterns: Vec<String>,
    /// Absolute `$HOME` start-up paths that must stay read-only.
    pub protected_paths: Vec<PathBuf>,
    /// Protected paths the contract lets the agent write (`[files] unprotect`).
    pub unprotected: Vec<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_normalisation() {
        assert_eq!(
            normalize_lexically(Path::new("/a/./b/../c/")),
            Some(PathBuf::from("/a/c"))
        );
        assert_eq!(
            normalize_lexically(Path::new("/../../etc")),
            Some(PathBuf::from("/etc"))
        );
        assert_eq!(normalize_lexically(Path::new("a/b")), None);
    }

    #[test]
    fn protected_patterns_match_at_any_depth() {
        for p in [
            "/w/.git/hooks",
            "/w/.git/hooks/pre-commit",
            "/w/vendor/sub/.git/hooks/post-checkout",
            "/w/.git/config",
            "/w/.git/modules/libfoo/hooks/pre-commit",
            "/w/.git/modules/a/b/config",
            "/w/.github/workflows/ci.yml",
            "/w/pkg/.github/workflows/x.yml",
            "/w/Jenkinsfile",
            "/w/.cargo/config.toml",
            "/home/u/.cargo/config",
            "/w/.vscode/tasks.json",
            "/w/.devcontainer/devcontainer.json",
        ] {
            assert!(protected_pattern_for(Path::new(p)).is_some(), "{p}");
        }
        for p in [
            "/w/.git/objects/ab",
            "/w/src/hooks/mod.rs",
            "/w/.github/CODEOWNERS",
            "/w/git/config",
            "/w/.gitignore",
        ] {
            assert!(protected_pattern_for(Path::new(p)).is_none(), "{p}");
        }
    }

    #[test]
    fn class_a_paths() {
        for p in [
            "docs",
            "docs/guide.md",
            "tests",
            "crate/tests/it.rs",
            "README.md",
            "CHANGELOG",
            "rustfmt.toml",
            ".editorconfig",
            "src/foo_test.go",
            "web/app.spec.ts",
            "test_x.py",
            "notes.txt",
        ] {
            assert!(looks_like_docs_tests_or_format(Path::new(p)), "{p}");
        }
        for p in [
            ".",
            "src",
            "src/main.rs",
            ".github/workflows",
            "Cargo.toml",
            "build.rs",
            "latest/x.rs",
        ] {
            assert!(!looks_like_docs_tests_or_format(Path::new(p)), "{p}");
        }
    }
}
