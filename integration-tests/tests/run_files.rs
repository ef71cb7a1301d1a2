//! `sandbox run` file view: allowed reads and writes work; denied paths stay unreadable and
//! unwritable directly, through a symlink, by rename or hard link in or out, through
//! /proc/self/root, and by creating them; protected paths in nested repositories stay read-only.
//! Every scenario runs as root and as nobody.

use integration_tests::sandbox_harness::{run, tagged, TestDir};
use integration_tests::users::each_user;

/// Errors the kernel gives for a refused file operation (the agent must see one of them).
const CLEAR_ERRORS: &[&str] = &[
    "Permission denied",
    "Read-only file system",
    "Device or resource busy",
    "Operation not permitted",
    "Invalid cross-device link",
];

fn assert_refused(out: &str, tag: &str) {
    assert_refused_with(out, tag, &[]);
}

fn assert_refused_with(out: &str, tag: &str, also: &[&str]) {
    let line = tagged(out, tag);
    assert!(!line.contains("rc=0"), "{tag} succeeded: {line}\n{out}");
    assert!(
        CLEAR_ERRORS.iter().chain(also).any(|e| line.contains(e)),
        "{tag}: the agent saw no clear error: {line}"
    );
}

fn populate(dir: &TestDir) {
    dir.write("ws/readme.txt", "hello from the workspace\n");
    dir.write("ws/src/main.rs", "fn main() {}\n");
    dir.write("ws/.env", "ENVSECRET=1\n");
    dir.write("ws/secrets/key.txt", "TOPSECRET\n");
    dir.write("ws/config/prod/key.pem", "PRODKEY\n");
    dir.write("ws/sub/.git/config", "[core]\n");
    std::fs::create_dir_all(dir.root.join("ws/sub/.git/hooks")).expect("mkdir hooks");
    std::os::unix::fs::symlink("secrets/key.txt", dir.root.join("ws/innocent")).expect("symlink");
    std::os::unix::fs::symlink("../outside.txt", dir.root.join("ws/outside-link"))
        .expect("symlink");
    dir.write("outside.txt", "OUTSIDE-THE-WORKSPACE\n");
    dir.own();
}

const FILES: &str = r#"read = ["."]
write = ["."]
deny = [".env", "secrets", "later-secret", "config/prod/key.pem"]
"#;

/// One probe per line: `TAG rc=N output`.
const SCRIPT: &str = r##"
probe() { tag=$1; shift; out=$("$@" 2>&1); echo "$tag rc=$? $out" | tr '\n' ' '; echo; }
probe READ cat readme.txt
probe WRITE sh -c 'echo new > src/new.rs && cat src/new.rs'
probe DENY_READ cat secrets/key.txt
probe DENY_READ_ENV cat .env
probe DENY_LIST ls secrets
probe DENY_WRITE sh -c 'echo pwned > .env'
probe DENY_SYMLINK cat innocent
probe DENY_PROC_ROOT cat "/proc/self/root$PWD/.env"
probe DENY_PROC1_ROOT cat "/proc/1/root$PWD/secrets/key.txt"
probe RENAME_OUT mv secrets/key.txt stolen.txt
probe HARDLINK_OUT ln secrets/key.txt hard.txt
probe RENAME_DIR_OUT mv secrets stolen-dir
probe RENAME_IN mv src/new.rs secrets/planted.rs
probe HARDLINK_IN ln src/main.rs secrets/linked.rs
probe RENAME_OVER mv src/main.rs .env
probe CREATE_MISSING sh -c 'echo x > later-secret'
probe CREATE_MISSING_DIR mkdir later-secret/inner
probe OUTSIDE cat outside-link
probe HOOK_NESTED sh -c 'echo "#!/bin/sh" > sub/.git/hooks/pre-commit'
probe CONFIG_NESTED sh -c 'echo "[core] hooksPath=/tmp" >> sub/.git/config'
probe HOOK_RENAME mv sub/.git/hooks sub/.git/hooks-old
probe DENY_PARENT_RENAME mv config/prod config/moved
probe DENY_GRANDPARENT_RENAME mv config config-moved
probe GIT_DIR_SWAP mv sub/.git sub/.git-old
probe REPO_RENAME mv sub sub-moved
probe DENY_NESTED_READ cat config/prod/key.pem
"##;

#[test]
fn allowed_reads_and_writes_work_and_denied_paths_resist_every_route() {
    for user in each_user() {
        let dir = TestDir::new(user, "files");
        populate(&dir);
        let contract = dir.contract(FILES, &[]);
        let out = run(
            user,
            &dir,
            &["--contract", contract.to_str().unwrap()],
            SCRIPT,
        );
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        let s = &out.stdout;

        assert!(
            tagged(s, "READ").contains("rc=0 hello from the workspace"),
            "{ctx}"
        );
        assert!(tagged(s, "WRITE").contains("rc=0 new"), "{ctx}");
        for tag in [
            "DENY_READ",
            "DENY_READ_ENV",
            "DENY_LIST",
            "DENY_WRITE",
            "DENY_SYMLINK",
            "DENY_PROC_ROOT",
            "DENY_PROC1_ROOT",
            "RENAME_OUT",
            "HARDLINK_OUT",
            "RENAME_DIR_OUT",
            "RENAME_IN",
            "HARDLINK_IN",
            "RENAME_OVER",
            "CREATE_MISSING_DIR",
            "HOOK_NESTED",
            "CONFIG_NESTED",
            "HOOK_RENAME",
            "DENY_PARENT_RENAME",
            "DENY_GRANDPARENT_RENAME",
            "GIT_DIR_SWAP",
            "REPO_RENAME",
            "DENY_NESTED_READ",
        ] {
            assert_refused(s, tag);
        }
        // A deny path that did not exist is covered by an empty, read-only, mode-000 directory.
        assert_refused_with(s, "CREATE_MISSING", &["Is a directory"]);
        assert!(tagged(s, "OUTSIDE").contains("No such file"), "{ctx}");
        assert!(
            !s.contains("TOPSECRET")
                && !s.contains("ENVSECRET")
                && !s.contains("OUTSIDE-THE")
                && !s.contains("PRODKEY"),
            "{ctx}"
        );

        // The host side is untouched.
        let ws = &dir.workspace;
        assert_eq!(
            std::fs::read_to_string(ws.join("secrets/key.txt")).unwrap(),
            "TOPSECRET\n"
        );
        assert_eq!(
            std::fs::read_to_string(ws.join(".env")).unwrap(),
            "ENVSECRET=1\n"
        );
        // Neither the deny path nor the nested repository moved on the host.
        assert_eq!(
            std::fs::read_to_string(ws.join("config/prod/key.pem")).unwrap(),
            "PRODKEY\n"
        );
        assert!(ws.join("sub/.git/hooks").is_dir(), "{ctx}");
        assert_eq!(
            std::fs::read_to_string(ws.join("src/new.rs")).unwrap(),
            "new\n",
            "{ctx}"
        );
        for gone in [
            "stolen.txt",
            "hard.txt",
            "stolen-dir",
            "secrets/planted.rs",
            "secrets/linked.rs",
            "later-secret",
            "sub/.git/hooks/pre-commit",
        ] {
            assert!(
                std::fs::symlink_metadata(ws.join(gone)).is_err(),
                "{gone} exists after the run {ctx}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(ws.join("sub/.git/config")).unwrap(),
            "[core]\n"
        );
        assert!(ws.join("sub/.git/hooks").is_dir());
    }
}

#[test]
fn without_a_contract_the_workspace_is_writable_home_is_invisible_and_protected_paths_hold() {
    for user in each_user() {
        let dir = TestDir::new(user, "default");
        dir.write("home/.ssh/id_ed25519", "PRIVATEKEY\n");
        dir.write("ws/.git/config", "[core]\n");
        dir.write("ws/.github/workflows/ci.yml", "on: push\n");
        let script = r#"
probe() { tag=$1; shift; out=$("$@" 2>&1); echo "$tag rc=$? $out" | tr '\n' ' '; echo; }
probe WRITE sh -c 'echo ok > made.txt && cat made.txt'
probe HOME_SSH cat "$HOME/.ssh/id_ed25519"
probe HOME_LIST ls -A "$HOME"
probe TMP sh -c 'echo t > /tmp/x && cat /tmp/x'
probe HOOK sh -c 'echo x > .git/hooks/post-checkout'
probe CONFIG sh -c 'echo x >> .git/config'
probe WORKFLOW sh -c 'echo x >> .github/workflows/ci.yml'
probe ETC_SHADOW cat /etc/shadow
probe HOSTNAME hostname
probe SSL_PRIVATE ls -A /etc/ssl/private
"#;
        let out = run(user, &dir, &[], script);
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        assert!(out.stderr.contains("no --contract given"), "{ctx}");
        let s = &out.stdout;
        assert!(tagged(s, "WRITE").contains("rc=0 ok"), "{ctx}");
        assert!(tagged(s, "HOME_SSH").contains("No such file"), "{ctx}");
        assert_eq!(tagged(s, "HOME_LIST").trim(), "HOME_LIST rc=0", "{ctx}");
        assert!(tagged(s, "TMP").contains("rc=0 t"), "{ctx}");
        for tag in ["HOOK", "CONFIG", "WORKFLOW"] {
            assert_refused(s, tag);
        }
        assert!(tagged(s, "ETC_SHADOW").contains("No such file"), "{ctx}");
        assert!(tagged(s, "HOSTNAME").contains("rc=0 sandbox"), "{ctx}");
        if std::path::Path::new("/etc/ssl/private").is_dir() {
            // Host TLS private keys stay hidden, even from a uid that is root on the host.
            assert_refused(s, "SSL_PRIVATE");
        }
        assert!(!s.contains("PRIVATEKEY"), "{ctx}");
        assert_eq!(
            std::fs::read_to_string(dir.workspace.join("made.txt")).unwrap(),
            "ok\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.workspace.join(".git/config")).unwrap(),
            "[core]\n"
        );
        assert!(std::fs::symlink_metadata(dir.workspace.join(".git/hooks/post-checkout")).is_err());
        // Files the agent wrote belong to the invoking user.
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata(dir.workspace.join("made.txt"))
            .unwrap()
            .uid();
        let expected = if user == integration_tests::users::User::Nobody {
            65534
        } else {
            std::fs::metadata(&dir.root).unwrap().uid()
        };
        assert_eq!(uid, expected, "{ctx}");
    }
}

#[test]
fn protected_paths_the_agent_creates_are_moved_aside() {
    for user in each_user() {
        let dir = TestDir::new(user, "quarantine");
        let script = r##"
mkdir -p newrepo/.git/hooks deep/er/.github/workflows
printf '#!/bin/sh\necho pwned\n' > newrepo/.git/hooks/pre-commit && chmod +x newrepo/.git/hooks/pre-commit
printf '[core]\n\thooksPath = /tmp/evil\n' > newrepo/.git/config
echo 'on: push' > deep/er/.github/workflows/exfil.yml
echo 'fine' > deep/er/notes.txt
"##;
        let out = run(user, &dir, &[], script);
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        let ws = &dir.workspace;
        for created in [
            "newrepo/.git/hooks",
            "newrepo/.git/config",
            "deep/er/.github/workflows",
        ] {
            assert!(
                std::fs::symlink_metadata(ws.join(created)).is_err(),
                "{created} is still in place: {ctx}"
            );
            // refused as it appeared (`refused: the agent created X (pattern: why)`) or, if
            // the live watch missed it, after the session
            let shown = ws.join(created).display().to_string();
            assert!(
                out.stderr.lines().any(|l| l.contains("the agent created")
                    && (l.contains(&format!("{shown} ("))
                        || l.ends_with(&shown)
                        || l.contains(&format!("path {shown};")))),
                "{ctx}"
            );
        }
        let moved: Vec<String> = std::fs::read_dir(ws.join("newrepo/.git"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            moved
                .iter()
                .any(|n| n.starts_with("hooks.sandbox-quarantine-")),
            "{moved:?}"
        );
        assert_eq!(
            std::fs::read_to_string(ws.join("deep/er/notes.txt")).unwrap(),
            "fine\n"
        );
    }
}

#[test]
fn a_deny_file_with_other_hard_links_is_refused_unless_best_effort() {
    for user in each_user() {
        let dir = TestDir::new(user, "hardlink");
        dir.write("ws/secret.txt", "LINKED-SECRET\n");
        std::fs::hard_link(
            dir.workspace.join("secret.txt"),
            dir.workspace.join("alias.txt"),
        )
        .expect("hard link");
        dir.own();
        let contract = dir.contract(
            "write = [\".\"]\ndeny = [\"secret.txt\", \"not-yet/key\"]\n",
            &[],
        );
        let c = contract.to_str().unwrap();
        let out = run(user, &dir, &["--contract", c], "cat alias.txt");
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 125, "{ctx}");
        assert!(out.stderr.contains("has 2 hard links"), "{ctx}");
        // The refusal leaves nothing behind (no placeholder for the missing deny path).
        assert!(!dir.workspace.join("not-yet").exists(), "{ctx}");
        assert!(!out.stdout.contains("LINKED-SECRET"), "{ctx}");

        let out = run(
            user,
            &dir,
            &["--contract", c, "--best-effort"],
            "cat secret.txt",
        );
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_ne!(out.code, 0, "the deny path itself stays covered: {ctx}");
        assert!(!out.stdout.contains("LINKED-SECRET"), "{ctx}");
        let log = std::fs::read_to_string(dir.log_path()).expect("the log");
        let start: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
        assert_eq!(start["detail"]["best_effort"], true, "{log}");
        assert!(
            start["detail"]["weaker_than_contract"][0]
                .as_str()
                .unwrap()
                .contains("hard links"),
            "{log}"
        );
    }
}
