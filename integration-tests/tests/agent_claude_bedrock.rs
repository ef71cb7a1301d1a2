//! The real Claude Code CLI, at a pinned version from the npm registry, completes one
//! tool-using turn on Bedrock under `sandbox run` with no AWS key inside, with the contract
//! `sandbox init --agent claude --residency eu` writes (its `[agent]` preset sets Bedrock, the
//! `eu.` model ids and telemetry off): the CLI sends its
//! Bedrock requests unsigned (`CLAUDE_CODE_SKIP_BEDROCK_AUTH=1`, the CLI's switch for gateways
//! that sign), the proxy signs them with the supervisor's keys (`inject = { form = "aws-sigv4" }`),
//! and a fake Bedrock runtime on loopback, speaking AWS event-stream framing, answers with a
//! `Write` tool call. botocore confirms each signature the fake received.
//!
//! The CLI is installed once into a cache outside the checkout (`$SANDBOX_IT_CACHE`, default
//! `/var/cache/sandbox-it`), keyed by version. When the registry cannot be reached the test
//! fails and says so: it never passes without running the CLI.

use integration_tests::agent_cli::{assert_never_inside, init_contract, pinned_cli, run_agent};
use integration_tests::fake_bedrock;
use integration_tests::sandbox_harness::TestDir;
use integration_tests::sigv4_oracle::{verify, TestAwsKey};
use integration_tests::upstream::{TestCa, Upstream};
use integration_tests::users::each_user;

/// The pinned Claude Code release.
const CLAUDE_CODE: &str = "2.1.328";
const BEDROCK: &str = "bedrock-runtime.eu-central-1.amazonaws.com";

const AWS_KEY_ID: &str = "AKIAITCLAUDEBEDROCK01";
const AWS_SECRET: &str = "itClaudeBedrockSecret/0123456789abcdefghij";

#[test]
fn claude_code_on_bedrock_writes_a_file_with_no_aws_key_inside() {
    let (cli_dir, claude) = pinned_cli("@anthropic-ai/claude-code", CLAUDE_CODE, "claude");
    let key = TestAwsKey {
        key_id: AWS_KEY_ID.into(),
        secret: AWS_SECRET.into(),
        token: None,
    };
    for user in each_user() {
        let dir = TestDir::new(user, "claude-bedrock");
        let target = dir.workspace.join("hello.txt");
        let ca = TestCa::new();
        let upstream = Upstream::start_with(
            &ca,
            &[BEDROCK],
            &["h2", "http/1.1"],
            Some(fake_bedrock::responder(
                target.display().to_string(),
                "hello from claude on bedrock\n".into(),
            )),
        );
        let contract = init_contract(
            &dir,
            "claude",
            "bedrock",
            true,
            &cli_dir,
            "test -f hello.txt",
        );
        // Only the host's AWS keys: the rest (Bedrock, EU model ids, no signing inside,
        // telemetry off) is the `[agent]` preset of the contract `sandbox init` wrote.
        let out = run_agent(
            user,
            &dir,
            &contract,
            &upstream.connect_to(BEDROCK),
            &ca.pem(),
            &format!(
                "'{}' -p 'Create hello.txt in the current directory.' --allowedTools Write --permission-mode acceptEdits",
                claude.display()
            ),
            "CLAUDE",
            &[
                ("AWS_ACCESS_KEY_ID", AWS_KEY_ID),
                ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
            ],
            &["AWS_SESSION_TOKEN"],
        );
        let log = std::fs::read_to_string(dir.log_path()).unwrap_or_default();
        let ctx = format!("as {}:\n{}\n--- log\n{log}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        assert!(out.stdout.contains("CLAUDE-EXIT 0"), "{ctx}");
        assert_eq!(
            std::fs::read_to_string(&target).unwrap_or_default(),
            "hello from claude on bedrock\n",
            "{ctx}"
        );

        // The model calls reached the fake Bedrock signed with the supervisor's key.
        let model_calls: Vec<_> = upstream
            .received()
            .into_iter()
            .filter(|r| r.path_and_query.contains("invoke-with-response-stream"))
            .collect();
        assert!(model_calls.len() >= 2, "a tool call and its answer: {ctx}");
        for r in &model_calls {
            verify(r, BEDROCK, &key, "eu-central-1", "bedrock")
                .unwrap_or_else(|e| panic!("{e}\n{r:?}\n{ctx}"));
            assert!(
                r.path_and_query.contains("/model/eu."),
                "{}",
                r.path_and_query
            );
        }
        // The key never inside: not in the agent's environment, its output, its files, the log.
        assert_never_inside(&dir, &out, &log, &[AWS_SECRET, AWS_KEY_ID]);
        // Every model call is an allowed, logged flow.
        let allowed = log
            .lines()
            .filter(|l| {
                l.contains("\"event\":\"decision\"")
                    && l.contains("invoke-with-response-stream")
                    && l.contains("\"decision\":\"allow\"")
            })
            .count();
        assert!(allowed >= 2, "{log}");
        // What the CLI asked for, for the compatibility matrix (shown with --nocapture).
        for l in log.lines().filter(|l| l.contains("\"event\":\"decision\"")) {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            eprintln!(
                "claude {} {}: {} {} {} {}",
                CLAUDE_CODE,
                user.label(),
                r["decision"],
                r["host"],
                r["method"],
                r["path"]
            );
        }
    }
}
