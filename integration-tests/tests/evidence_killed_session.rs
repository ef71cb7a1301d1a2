//! A session whose supervisor is SIGKILLed has no `session_end`: `sandbox log verify
//! --strict` fails on its log until the kill is recorded (`sandbox log recover`, or the next
//! `sandbox run` on the same log), then accepts it as killed; a log cut after the fact (its
//! end, or its recovery record, removed) still fails. As root and as nobody. The sessions
//! have no allowed host: nothing leaves the sandbox's own network namespace.

use integration_tests::sandbox_harness::{kill_supervisor_once_started, run, sandbox_as, TestDir};
use integration_tests::users::{each_user, User};

fn killed_session(user: User, dir: &TestDir, contract: &str) {
    kill_supervisor_once_started(
        user,
        dir,
        &["--contract", contract],
        "touch started; sleep 60",
    );
}

fn strict(user: User, dir: &TestDir, log: &std::path::Path) -> (i32, String) {
    let out = sandbox_as(
        user,
        dir,
        &["log", "verify", "--strict", log.to_str().unwrap()],
    );
    (out.code, out.stdout)
}

#[test]
fn a_killed_session_verifies_as_killed_after_recovery_and_a_cut_log_does_not() {
    for user in each_user() {
        let dir = TestDir::new(user, "killed");
        let log = dir.log_path();
        let contract = dir.contract("write = [\".\"]\n", &[]);
        let c = contract.to_str().unwrap();
        let out = run(user, &dir, &["--contract", c], "true");
        assert_eq!(out.code, 0, "{}", out.both());
        assert_eq!(strict(user, &dir, &log).0, 0, "a whole log passes");

        // A whole log cut at its end fails strict verification on its own.
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let cut = dir.write("cut.jsonl", &(lines[..lines.len() - 1].join("\n") + "\n"));
        let (code, stdout) = strict(user, &dir, &cut);
        assert_eq!(code, 1, "{stdout}");
        assert!(stdout.contains("has no session_end"), "{stdout}");

        killed_session(user, &dir, c);
        let (code, stdout) = strict(user, &dir, &log);
        assert_eq!(code, 1, "as {}: {stdout}", user.label());
        assert!(stdout.contains("sandbox log recover"), "{stdout}");
        let plain = sandbox_as(user, &dir, &["log", "verify", log.to_str().unwrap()]);
        assert_eq!(plain.code, 0, "without --strict a note: {}", plain.both());

        let rec = sandbox_as(user, &dir, &["log", "recover", log.to_str().unwrap()]);
        assert_eq!(rec.code, 0, "{}", rec.both());
        assert!(rec.stdout.contains("recorded as killed"), "{}", rec.both());
        let (code, stdout) = strict(user, &dir, &log);
        assert_eq!(code, 0, "as {}: {stdout}", user.label());
        assert!(stdout.contains("was killed"), "{stdout}");
        let again = sandbox_as(user, &dir, &["log", "recover", log.to_str().unwrap()]);
        assert!(
            again.stdout.contains("nothing to recover"),
            "{}",
            again.both()
        );

        // The recovery record removed after the fact: fails again.
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let cut = dir.write("cut2.jsonl", &(lines[..lines.len() - 1].join("\n") + "\n"));
        assert_eq!(strict(user, &dir, &cut).0, 1);

        // The next `sandbox run` on the log recovers a killed session by itself.
        killed_session(user, &dir, c);
        let out = run(user, &dir, &["--contract", c], "true");
        assert_eq!(out.code, 0, "{}", out.both());
        assert!(
            out.stderr.contains("its supervisor was killed"),
            "{}",
            out.both()
        );
        let (code, stdout) = strict(user, &dir, &log);
        assert_eq!(code, 0, "as {}: {stdout}", user.label());
        assert_eq!(stdout.matches("was killed").count(), 2, "{stdout}");
    }
}
