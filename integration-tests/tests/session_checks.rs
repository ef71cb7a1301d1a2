//! The contract's `done` checks run after the agent in the same sandbox, one `check` record
//! each, and `sandbox run`'s exit code says whether the agent and the checks passed; the
//! `changes` record holds the git state before and after, never file content. As root and as
//! nobody. Loopback only: the checks' one network attempt is to a `.example` name that the
//! proxy denies inside the sandbox's own network namespace.

use std::time::{Duration, Instant};

use integration_tests::flowcheck::verify_chain;
use integration_tests::git_repo::repo;
use integration_tests::sandbox_harness::{run, TestDir};
use integration_tests::users::each_user;
use serde_json::Value;

const MARKER: &str = "agent-content-marker-7f3a";

fn contract(dir: &TestDir, done: &[&str], timeout: &str) -> String {
    let done: Vec<String> = done.iter().map(|d| format!("{d:?}")).collect();
    let text = format!(
        "version = 1\n[task]\nid = \"IT-17\"\nclass = \"B\"\nobjective = \"checks\"\ndone = [{}]\ndone_timeout = \"{timeout}\"\nrollback = \"git revert --no-edit HEAD\"\n[files]\nwrite = [\".\"]\n[network]\n[log]\npath = \"{}\"\n",
        done.join(", "),
        dir.log_path().display()
    );
    dir.write("contract.toml", &text).display().to_string()
}

fn records(dir: &TestDir, event: &str) -> Vec<Value> {
    verify_chain(&dir.log_path())
        .expect("the chain verifies")
        .into_iter()
        .filter(|r| r["event"] == event)
        .collect()
}

/// The agent commits and leaves an untracked file.
const AGENT: &str = "printf 'one\\ntwo\\nagent-content-%s\\n' marker-7f3a > src.txt \
    && git -c user.email=a@example.invalid -c user.name=agent add src.txt \
    && git -c user.email=a@example.invalid -c user.name=agent commit -qm 'agent: add src.txt' \
    && echo note > notes.txt";

#[test]
fn done_checks_run_in_the_sandbox_and_decide_the_exit_code() {
    for user in each_user() {
        let dir = repo(user, "checks");
        let c = contract(
            &dir,
            &[
                "test -f src.txt",
                "echo checking; printf 'AKIA%s\\n' IOSFODNN7EXAMPLE; exit 3",
                // the file policy holds for checks: the hooks directory is read-only
                "if echo planted > .git/hooks/pre-commit 2>/dev/null; then exit 1; fi",
                // and the network policy: a name no rule allows is denied
                "curl -fsS -o /dev/null --max-time 5 http://denied.example/ && exit 1 || exit 0",
            ],
            "30s",
        );
        let out = run(user, &dir, &["--contract", &c], AGENT);
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 123, "the agent passed, a check failed: {ctx}");
        assert!(
            out.stderr.contains("done checks: 3 of 4 passed"),
            "one summary line: {ctx}"
        );
        assert!(
            out.stderr.contains("exited 3"),
            "the failure is named: {ctx}"
        );
        assert!(
            !dir.workspace.join(".git/hooks/pre-commit").exists(),
            "{ctx}"
        );
        let checks = records(&dir, "check");
        assert_eq!(checks.len(), 4, "{ctx}");
        let codes: Vec<i64> = checks
            .iter()
            .map(|r| r["detail"]["exit_code"].as_i64().unwrap())
            .collect();
        assert_eq!(codes, vec![0, 3, 0, 0], "{ctx}");
        let second = &checks[1]["detail"];
        assert_eq!(second["passed"], false);
        assert_eq!(
            second["command"],
            "echo checking; printf 'AKIA%s\\n' IOSFODNN7EXAMPLE; exit 3"
        );
        let tail = second["output_tail"].as_str().unwrap();
        assert!(tail.contains("checking"), "{tail}");
        assert!(!tail.contains("AKIAIOSFODNN7EXAMPLE"), "redacted: {tail}");
        assert_eq!(second["secrets_redacted"][0], "aws-access-key");
        assert!(checks[0]["duration_ms"].as_f64().unwrap() >= 0.0);
        // The denied name in the check is logged like any agent flow.
        let log = std::fs::read_to_string(dir.log_path()).unwrap();
        assert!(log.contains("denied.example"), "{ctx}");
        // The changes: HEAD moved by one commit, two files, no content.
        let changes = records(&dir, "changes");
        assert_eq!(changes.len(), 1, "{ctx}");
        let d = &changes[0]["detail"];
        assert_eq!(d["git"], true, "{d}");
        assert_eq!(d["before"]["branch"], "main", "{d}");
        assert_ne!(d["before"]["head"], d["after"]["head"], "{d}");
        assert_eq!(d["commit_count"], 1, "{d}");
        assert_eq!(d["commits"][0]["subject"], "agent: add src.txt", "{d}");
        assert_eq!(d["history_rewritten"], false, "{d}");
        let files: Vec<(&str, i64, bool)> = d["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().unwrap(),
                    f["added"].as_i64().unwrap(),
                    f["untracked"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            files,
            vec![("notes.txt", 1, true), ("src.txt", 3, false)],
            "{d}"
        );
        assert_eq!(d["lines_added"], 4, "{d}");
        assert_eq!(d["out_of_scope"].as_array().unwrap().len(), 0, "{d}");
        assert!(!log.contains(MARKER), "no file content in the log");
        let end = records(&dir, "session_end");
        let e = &end[0]["detail"];
        assert_eq!(e["exit_code"], 0, "{e}");
        assert_eq!(e["sandbox_exit_code"], 123, "{e}");
        assert_eq!(e["checks"]["passed"], 3, "{e}");
        assert_eq!(e["checks"]["failed"], 1, "{e}");

        // --agent-exit-code keeps the agent's own code.
        let dir2 = repo(user, "checks-agent-code");
        let c2 = contract(&dir2, &["false"], "30s");
        let out = run(
            user,
            &dir2,
            &["--contract", &c2, "--agent-exit-code"],
            "true",
        );
        assert_eq!(out.code, 0, "{}", out.both());
        assert_eq!(records(&dir2, "check").len(), 1);
        // A failing agent's code wins over the checks'.
        let out = run(user, &dir2, &["--contract", &c2], "exit 7");
        assert_eq!(out.code, 7, "{}", out.both());
        // All checks passing: 0.
        let c3 = contract(&dir2, &["true", "true"], "30s");
        let out = run(user, &dir2, &["--contract", &c3], "true");
        assert_eq!(out.code, 0, "{}", out.both());
        assert!(
            out.stderr.contains("done checks: 2 of 2 passed"),
            "{}",
            out.both()
        );
    }
}

#[test]
fn no_checks_is_recorded_and_a_slow_check_is_stopped_at_its_limit() {
    for user in each_user() {
        let dir = repo(user, "checks-skip");
        let c = contract(&dir, &["false"], "2s");
        let out = run(user, &dir, &["--contract", &c, "--no-checks"], "true");
        assert_eq!(out.code, 0, "{}", out.both());
        assert!(records(&dir, "check").is_empty());
        let end = records(&dir, "session_end");
        assert_eq!(end[0]["detail"]["checks"]["skipped"], "--no-checks");

        let slow = contract(&dir, &["sleep 60 & sleep 60; echo never"], "2s");
        let started = Instant::now();
        let out = run(user, &dir, &["--contract", &slow], "true");
        let took = started.elapsed();
        assert_eq!(out.code, 123, "{}", out.both());
        assert!(
            took < Duration::from_secs(30),
            "stopped at its limit: {took:?}"
        );
        let checks = records(&dir, "check");
        let last = &checks.last().unwrap()["detail"];
        assert_eq!(last["timed_out"], true, "{last}");
        assert_eq!(last["exit_code"], 124, "{last}");
        assert!(out.stderr.contains("ran out of its 2 s"), "{}", out.both());
    }
}

#[test]
fn a_workspace_without_git_records_that_no_change_was_recorded() {
    let user = each_user()[0];
    let dir = TestDir::new(user, "checks-nogit");
    let c = contract(&dir, &["true"], "30s");
    let out = run(user, &dir, &["--contract", &c], "echo x > f.txt");
    assert_eq!(out.code, 0, "{}", out.both());
    let changes = records(&dir, "changes");
    assert_eq!(changes[0]["detail"]["git"], false);
}
