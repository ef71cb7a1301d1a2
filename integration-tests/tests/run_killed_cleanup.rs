//! A SIGKILLed supervisor never ran its cleanup: the mount-point directories it made stay on
//! the host (the protected paths its agent created, a nested repository's hooks and config,
//! were already moved aside as they appeared, `jail::planted`). The next `sandbox run` in the
//! same workspace does the rest of the cleanup first and says so. As root and as nobody.

use integration_tests::sandbox_harness::{kill_supervisor_once_started, run, TestDir};
use integration_tests::users::each_user;

#[test]
fn the_next_session_finishes_a_killed_sessions_cleanup() {
    for user in each_user() {
        let dir = TestDir::new(user, "killed-cleanup");
        let contract = dir.contract("write = [\".\"]\ndeny = [\"not-yet\"]\n", &[]);
        let c = contract.to_str().unwrap();
        kill_supervisor_once_started(
            user,
            &dir,
            &["--contract", c],
            "git init -q sub; touch started; sleep 60",
        );
        let hooks = dir.workspace.join("sub/.git/hooks");
        assert!(
            !hooks.exists(),
            "as {}: the planted hooks were refused while the agent ran",
            user.label()
        );
        assert!(
            dir.workspace.join("not-yet").exists(),
            "the kill left the mount point"
        );

        let out = run(
            user,
            &dir,
            &["--contract", c],
            "test -e sub/.git/hooks; echo \"HOOKS $?\"",
        );
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        assert!(
            out.stderr.contains("was killed before it cleaned up"),
            "{ctx}"
        );
        assert!(!hooks.exists(), "{ctx}");
        let moved = std::fs::read_dir(dir.workspace.join("sub/.git"))
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("hooks.sandbox-quarantine-")
            });
        assert!(moved, "{ctx}");
        assert!(!dir.workspace.join("not-yet").exists(), "{ctx}");
        assert!(
            out.stdout.contains("HOOKS 1"),
            "the new session ran after the cleanup: {ctx}"
        );
        // Nothing is left to repair the time after.
        let out = run(user, &dir, &["--contract", c], "true");
        assert!(!out.stderr.contains("was killed before"), "{}", out.both());
    }
}
