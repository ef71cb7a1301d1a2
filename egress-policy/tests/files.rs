//! File decisions: deny precedence at any depth, write implies read, protected paths,
//! credential stores, and the plan handed to the sandbox.

use std::path::{Path, PathBuf};

use egress_policy::{FileAccess, FileRule, PathContext, Policy};

const EXAMPLE: &str = include_str!("../../examples/eu-mistral-bedrock.toml");

fn ctx() -> PathContext {
    PathContext {
        workspace: PathBuf::from("/work/ws"),
        home: PathBuf::from("/home/agent"),
    }
}

fn policy(src: &str) -> Policy {
    Policy::parse(src, "t.toml", &ctx()).unwrap_or_else(|e| panic!("{e}"))
}

const HEAD_B: &str = "version = 1\n[task]\nid = \"T-1\"\nclass = \"B\"\nobjective = \"o\"\ndone = [\"true\"]\nrollback = \"r\"\n";

fn can(p: &Policy, path: &str, access: FileAccess) -> bool {
    p.decide_file(Path::new(path), access).allowed
}

#[test]
fn example_contract_files() {
    let p = policy(EXAMPLE);
    use FileAccess::*;
    assert!(can(&p, "/work/ws/Cargo.toml", Read));
    assert!(!can(&p, "/work/ws/Cargo.toml", Write));
    assert!(can(&p, "/work/ws/src/lib.rs", Write));
    assert!(can(&p, "/work/ws/src/lib.rs", Read), "write implies read");
    assert!(can(&p, "/work/ws/tests/a/b/c.rs", Write));
    // deny wins over read and write, at any depth below the entry
    assert!(!can(&p, "/work/ws/.env", Read));
    assert!(!can(&p, "/work/ws/secrets/prod/key.pem", Read));
    assert!(!can(&p, "/work/ws/secrets", Write));
    assert!(!can(&p, "/home/agent/.ssh/id_ed25519", Read));
    // outside every grant
    assert!(!can(&p, "/etc/passwd", Read));
    assert!(!can(&p, "/work/other/x", Read));
    // a sibling with a common prefix is not inside
    assert!(can(&p, "/work/ws/srcx/y", Read));
    assert!(!can(&p, "/work/ws/srcx/y", Write));
    // lexical `..` cannot escape a deny or reach a grant
    assert!(!can(&p, "/work/ws/src/../secrets/x", Read));
    assert!(!can(&p, "/work/ws/src/../Cargo.toml", Write));
    assert!(can(&p, "/work/ws/docs/../src/x.rs", Write));
    assert!(!can(&p, "relative/path", Read));
    let d = p.decide_file(Path::new("/work/ws/secrets/x"), Read);
    assert_eq!(d.rule, FileRule::Deny("secrets".into()));
    assert!(d.reason.contains("deny wins"));
}

#[test]
fn deny_beats_a_deeper_write_grant() {
    let p = policy(&format!(
        "{HEAD_B}[files]\nwrite = [\"src/gen\"]\ndeny = [\"src\"]\n"
    ));
    assert!(!can(&p, "/work/ws/src/gen/x.rs", FileAccess::Write));
    assert!(!can(&p, "/work/ws/src/gen/x.rs", FileAccess::Read));
    let p = policy(&format!(
        "{HEAD_B}[files]\nwrite = [\"src\"]\ndeny = [\"src/gen/private\"]\n"
    ));
    assert!(can(&p, "/work/ws/src/gen/x.rs", FileAccess::Write));
    assert!(!can(&p, "/work/ws/src/gen/private/a/b/c", FileAccess::Read));
}

#[test]
fn protected_paths_stay_read_only_inside_broad_grants() {
    let p = policy(&format!(
        "{HEAD_B}[files]\nread = [\"~\"]\nwrite = [\".\", \"~/scratch\", \"~\"]\n"
    ));
    use FileAccess::*;
    for path in [
        "/work/ws/.git/hooks/pre-commit",
        "/work/ws/.git/config",
        "/work/ws/vendor/lib/.git/hooks/post-checkout",
        "/work/ws/.git/modules/sub/hooks/pre-push",
        "/work/ws/.git/modules/sub/config",
        "/work/ws/.github/workflows/release.yml",
        "/work/ws/pkg/.github/workflows/ci.yml",
        "/work/ws/.gitmodules",
        "/work/ws/.husky/pre-commit",
        "/work/ws/.envrc",
        "/work/ws/.pre-commit-config.yaml",
        "/work/ws/.gitlab-ci.yml",
        "/work/ws/.circleci/config.yml",
        "/work/ws/.buildkite/pipeline.yml",
        "/work/ws/Jenkinsfile",
        "/work/ws/azure-pipelines.yml",
        "/work/ws/.vscode/tasks.json",
        "/work/ws/.devcontainer/devcontainer.json",
        "/work/ws/.cargo/config.toml",
        "/work/ws/.cargo/config",
        "/home/agent/.bashrc",
        "/home/agent/.bash_profile",
        "/home/agent/.profile",
        "/home/agent/.zshrc",
        "/home/agent/.zprofile",
        "/home/agent/.zshenv",
        "/home/agent/.config/fish/config.fish",
        "/home/agent/.cargo/config.toml",
    ] {
        assert!(!can(&p, path, Write), "{path} must not be writable");
        assert!(can(&p, path, Read), "{path} stays readable");
    }
    assert!(can(&p, "/work/ws/.git/objects/ab/cdef", Write));
    assert!(can(&p, "/work/ws/.github/CODEOWNERS", Write));
    assert!(can(&p, "/home/agent/scratch/x", Write));
    // credential stores are never readable, even under `read = ["~"]`
    for store in [
        "/home/agent/.ssh/id_rsa",
        "/home/agent/.aws/credentials",
        "/home/agent/.gnupg/x",
        "/home/agent/.kube/config",
        "/home/agent/.docker/config.json",
        "/home/agent/.netrc",
        "/home/agent/.git-credentials",
        "/home/agent/.config/gcloud/x",
    ] {
        assert!(!can(&p, store, Read), "{store}");
        assert!(!can(&p, store, Write), "{store}");
        assert!(matches!(
            p.decide_file(Path::new(store), Read).rule,
            FileRule::CredentialStore(_)
        ));
    }
}

#[test]
fn file_plan_is_absolute_and_complete() {
    let p = policy(EXAMPLE);
    let plan = p.file_plan();
    assert_eq!(plan.read, vec![PathBuf::from("/work/ws")]);
    assert_eq!(
        plan.write,
        vec![
            PathBuf::from("/work/ws/src"),
            PathBuf::from("/work/ws/tests")
        ]
    );
    for d in [
        "/work/ws/.env",
        "/work/ws/secrets",
        "/home/agent/.ssh",
        "/home/agent/.aws",
        "/var/run/docker.sock",
    ] {
        assert!(
            plan.deny.contains(&PathBuf::from(d)),
            "{d} in {:?}",
            plan.deny
        );
    }
    assert!(plan
        .protected_patterns
        .contains(&"**/.git/hooks".to_string()));
    assert!(plan
        .protected_patterns
        .contains(&"**/.github/workflows".to_string()));
    assert!(plan
        .protected_paths
        .contains(&PathBuf::from("/home/agent/.bashrc")));
    assert!(plan
        .read
        .iter()
        .chain(&plan.write)
        .chain(&plan.deny)
        .all(|p| p.is_absolute()));
}

#[test]
fn home_and_absolute_entries_resolve() {
    let p = policy(&format!(
        "{HEAD_B}[files]\nread = [\"~/.cargo/registry\", \"/opt/toolchain/\", \"./docs/./x\"]\n"
    ));
    let plan = p.file_plan();
    assert_eq!(
        plan.read,
        vec![
            PathBuf::from("/home/agent/.cargo/registry"),
            PathBuf::from("/opt/toolchain"),
            PathBuf::from("/work/ws/docs/x")
        ]
    );
}

#[test]
fn changes_out_of_scope_are_named() {
    let p = policy(EXAMPLE);
    assert_eq!(
        p.change_out_of_scope(Path::new("/work/ws/src/lib.rs")),
        None
    );
    let why = p
        .change_out_of_scope(Path::new("/work/ws/Cargo.toml"))
        .expect("read-only file");
    assert!(!why.is_empty());
    assert!(p
        .change_out_of_scope(Path::new("/work/ws/src/../secrets/k"))
        .is_some());
    let a = policy(&HEAD_B.replace("class = \"B\"", "class = \"A\"").replace(
        "rollback = \"r\"\n",
        "rollback = \"r\"\n[files]\nwrite = [\"docs\", \"tests\"]\n",
    ));
    assert_eq!(
        a.change_out_of_scope(Path::new("/work/ws/docs/guide.md")),
        None
    );
    assert!(a
        .change_out_of_scope(Path::new("/work/ws/src/main.rs"))
        .is_some());
}

#[test]
fn agent_and_editor_configs_that_run_code_are_protected() {
    use egress_policy::files::protected_pattern_for;
    for p in [
        ".mcp.json",
        "sub/.mcp.json",
        ".claude/settings.json",
        ".claude/settings.local.json",
        "pkg/.CLAUDE/Settings.Local.json",
        ".vscode/mcp.json",
        ".cursor/mcp.json",
        ".gemini/settings.json",
    ] {
        assert!(protected_pattern_for(Path::new(p)).is_some(), "{p}");
    }
    for p in [".claude/commands/x.md", "mcp.json", ".gemini/notes.md"] {
        assert!(protected_pattern_for(Path::new(p)).is_none(), "{p}");
    }
}
