//! The real Codex CLI, at a pinned version from the npm registry, completes one tool-using turn
//! over its Responses WebSocket transport under `sandbox run`, with the contract
//! `sandbox init --agent codex --residency eu` writes (its preset: the built-in OpenAI provider
//! at `eu.api.openai.com`, a placeholder key, no update check, no analytics), against a fake
//! Responses API on loopback whose model calls Codex's `exec` tool to `apply_patch` a file.
//! The real key is on the host only: the proxy injects it into the WebSocket upgrade, the fake
//! sees it, the agent never does. No fallback to HTTPS, no reconnect loop.
//!
//! When the registry cannot be reached the test fails and says so.

use integration_tests::agent_cli::{assert_never_inside, init_contract, pinned_cli, run_agent};
use integration_tests::fake_openai_ws;
use integration_tests::flowcheck::verify_chain;
use integration_tests::sandbox_harness::TestDir;
use integration_tests::upstream::TestCa;
use integration_tests::users::each_user;
use integration_tests::ws_upstream::WsUpstream;

/// The pinned Codex CLI release.
const CODEX: &str = "0.169.0";
const HOST: &str = "eu.api.openai.com";
const KEY: &str = "sk-it-codex-real-key-0123456789abcdef";

#[test]
fn codex_writes_a_file_over_its_websocket_with_the_key_injected_and_never_inside() {
    let (cli_dir, codex) = pinned_cli("@openai/codex", CODEX, "codex");
    for user in each_user() {
        let dir = TestDir::new(user, "codex-cli");
        let ca = TestCa::new();
        let upstream = WsUpstream::start_with(
            &ca,
            &[HOST],
            Some(fake_openai_ws::responder(
                "hello.txt".into(),
                "hello from codex".into(),
            )),
        );
        let contract = init_contract(&dir, "codex", "openai", true, &cli_dir, "test -f hello.txt");
        let out = run_agent(
            user,
            &dir,
            &contract,
            &upstream.connect_to(HOST),
            &ca.pem(),
            &format!(
                "'{}' exec --skip-git-repo-check -s danger-full-access 'Create hello.txt in the current directory.' < /dev/null",
                codex.display()
            ),
            "CODEX",
            &[("OPENAI_API_KEY", KEY)],
            &[],
        );
        let log = std::fs::read_to_string(dir.log_path()).unwrap_or_default();
        let ctx = format!("as {}:\n{}\n--- log\n{log}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        assert!(out.stdout.contains("CODEX-EXIT 0"), "{ctx}");
        assert_eq!(
            std::fs::read_to_string(dir.workspace.join("hello.txt")).unwrap_or_default(),
            "hello from codex\n",
            "{ctx}"
        );
        assert!(
            !out.stderr.contains("Falling back"),
            "no HTTPS fallback: {ctx}"
        );
        assert!(
            !out.stderr.contains("Reconnecting"),
            "no reconnect loop: {ctx}"
        );

        // The WebSocket carried the turn: a prewarm, the tool call, its answer.
        let seen = upstream.seen();
        assert!(!seen.upgrades.is_empty(), "{ctx}");
        for u in &seen.upgrades {
            assert_eq!(u.path, "/v1/responses", "{ctx}");
            assert_eq!(
                u.header("authorization"),
                Some(format!("Bearer {KEY}").as_str()),
                "the proxy injected the host's key: {ctx}"
            );
            assert_eq!(u.header("sec-websocket-extensions"), None);
        }
        let creates = seen
            .frames
            .iter()
            .filter(|(_, p)| p.starts_with(b"{\"type\":\"response.create\""))
            .count();
        assert!(creates >= 2, "{creates} response.create messages: {ctx}");

        // The key never inside: the agent had only the preset's placeholder.
        let env = assert_never_inside(&dir, &out, &log, &[KEY]);
        assert!(env.contains("OPENAI_API_KEY=sandbox-placeholder"), "{env}");

        // The log: each WebSocket is a GET decided and ended with 101, bytes and messages;
        // no model call went over plain HTTPS; everything else was denied.
        let records = verify_chain(&dir.log_path()).unwrap_or_else(|e| panic!("{e}\n{ctx}"));
        let ws_ends: Vec<_> = records
            .iter()
            .filter(|r| r["event"] == "end" && r["host"] == HOST && r["status"] == 101)
            .collect();
        assert!(!ws_ends.is_empty(), "{ctx}");
        let busiest = ws_ends
            .iter()
            .max_by_key(|r| {
                r["detail"]["websocket"]["messages_in"]
                    .as_u64()
                    .unwrap_or(0)
            })
            .unwrap();
        assert!(
            busiest["detail"]["websocket"]["messages_out"]
                .as_u64()
                .unwrap()
                >= 1,
            "{busiest}"
        );
        assert!(busiest["bytes_in"].as_u64().unwrap() > 0, "{busiest}");
        assert!(
            !records
                .iter()
                .any(|r| r["event"] == "decision" && r["method"] == "POST" && r["host"] == HOST),
            "no HTTPS fallback in the log: {ctx}"
        );
        for r in records.iter().filter(|r| r["event"] == "decision") {
            if r["host"] != HOST && !r["host"].is_null() {
                assert_eq!(r["decision"], "deny", "{r}");
            }
        }
    }
}
