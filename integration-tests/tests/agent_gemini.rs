//! The real Gemini CLI, at a pinned version from the npm registry, completes one tool-using
//! turn under `sandbox run` with the contract `sandbox init --agent gemini --provider gemini`
//! writes (its preset: a placeholder key, the workspace trusted, usage statistics off in its
//! settings), against a fake Gemini API on loopback that answers with a `write_file` call. The
//! real key is on the host only: the proxy injects it, the fake sees it, the agent never does.
//! Usage data to `play.googleapis.com`, if the CLI still sends any, is denied and logged.
//!
//! When the registry cannot be reached the test fails and says so.

use integration_tests::agent_cli::{assert_never_inside, init_contract, pinned_cli, run_agent};
use integration_tests::fake_gemini;
use integration_tests::flowcheck::verify_chain;
use integration_tests::sandbox_harness::TestDir;
use integration_tests::upstream::{TestCa, Upstream};
use integration_tests::users::each_user;

/// The pinned Gemini CLI release.
const GEMINI_CLI: &str = "0.61.0";
const HOST: &str = "generativelanguage.googleapis.com";
const KEY: &str = "AIzaSyIT-gemini-real-key-0123456789abcdef";

#[test]
fn gemini_cli_writes_a_file_with_the_key_injected_and_never_inside() {
    let (cli_dir, gemini) = pinned_cli("@google/gemini-cli", GEMINI_CLI, "gemini");
    for user in each_user() {
        let dir = TestDir::new(user, "gemini-cli");
        let target = dir.workspace.join("hello.txt");
        let ca = TestCa::new();
        let upstream = Upstream::start_with(
            &ca,
            &[HOST],
            &["h2", "http/1.1"],
            Some(fake_gemini::responder(
                target.display().to_string(),
                "hello from gemini\n".into(),
            )),
        );
        let contract = init_contract(
            &dir,
            "gemini",
            "gemini",
            false,
            &cli_dir,
            "test -f hello.txt",
        );
        let out = run_agent(
            user,
            &dir,
            &contract,
            &upstream.connect_to(HOST),
            &ca.pem(),
            &format!(
                "'{}' -m gemini-2.5-pro -p 'Create hello.txt in the current directory.' --yolo",
                gemini.display()
            ),
            "GEMINI",
            &[("GEMINI_API_KEY", KEY)],
            &[],
        );
        let log = std::fs::read_to_string(dir.log_path()).unwrap_or_default();
        let ctx = format!("as {}:\n{}\n--- log\n{log}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        assert!(out.stdout.contains("GEMINI-EXIT 0"), "{ctx}");
        assert_eq!(
            std::fs::read_to_string(&target).unwrap_or_default(),
            "hello from gemini\n",
            "{ctx}"
        );
        let model_calls: Vec<_> = upstream
            .received()
            .into_iter()
            .filter(|r| r.path_and_query.contains(":streamGenerateContent"))
            .collect();
        assert!(model_calls.len() >= 2, "a tool call and its answer: {ctx}");
        for r in &model_calls {
            assert_eq!(r.header("x-goog-api-key"), Some(KEY), "injected: {ctx}");
        }
        // The key never inside: the agent had only the preset's placeholder.
        let env = assert_never_inside(&dir, &out, &log, &[KEY]);
        assert!(
            env.contains("GEMINI_API_KEY=sandbox-placeholder"),
            "the preset's placeholder: {env}"
        );
        assert!(env.contains("GEMINI_CLI_TRUST_WORKSPACE=true"), "{env}");
        let records = verify_chain(&dir.log_path()).unwrap_or_else(|e| panic!("{e}\n{ctx}"));
        assert!(
            records.iter().any(|r| r["event"] == "decision"
                && r["decision"] == "allow"
                && r["rule"] == "gemini"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(":streamGenerateContent"))),
            "{ctx}"
        );
        // Anything else it reached for (usage statistics) was denied, never allowed.
        for r in records.iter().filter(|r| r["event"] == "decision") {
            if r["host"] != HOST && !r["host"].is_null() {
                assert_eq!(r["decision"], "deny", "{r}");
            }
        }
    }
}
