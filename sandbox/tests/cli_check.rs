//! `sandbox check` and `sandbox explain`, run as the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_sandbox");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn example() -> PathBuf {
    repo().join("examples/eu-mistral-bedrock.toml")
}

#[path = "../src/jail/test_support.rs"]
mod test_support;
use test_support::Scratch;

fn sandbox(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("HOME", "/home/agent")
        .current_dir(repo())
        .output()
        .expect("run the sandbox binary")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_example_passes_check() {
    let mut n = 0;
    for entry in std::fs::read_dir(repo().join("examples")).expect("examples/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        n += 1;
        let o = sandbox(&["check", "--workspace", "/work/ws", path.to_str().unwrap()]);
        assert_eq!(
            code(&o),
            0,
            "{}:\n{}{}",
            path.display(),
            stdout(&o),
            stderr(&o)
        );
        assert!(stdout(&o).contains("valid"), "{}", stdout(&o));
    }
    assert!(
        n >= 4,
        "expected at least one example per class and one EU example, found {n}"
    );
}

#[test]
fn check_prints_the_summary() {
    let o = sandbox(&[
        "check",
        "--workspace",
        "/work/ws",
        example().to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "class B",
        "readable: /work/ws",
        "writable: /work/ws/src, /work/ws/tests",
        "denied:   /work/ws/.env, /work/ws/secrets, /home/agent/.ssh",
        "mistral-eu: https://api.eu.mistral.ai:443",
        "region EU, jurisdiction FR, provider Mistral",
        "region eu-central-1, jurisdiction US, provider AWS Bedrock",
        ".git/hooks",
        "residency EU",
        "warning:",
        "inside the workspace",
    ] {
        assert!(out.contains(needle), "missing `{needle}` in:\n{out}");
    }
}

#[test]
fn check_json_has_the_same_summary() {
    let o = sandbox(&[
        "check",
        "--json",
        "--workspace",
        "/work/ws",
        example().to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["valid"], true);
    assert_eq!(v["class"], "B");
    assert_eq!(v["residency"], "EU");
    assert_eq!(v["files"]["writable"][0], "/work/ws/src");
    assert_eq!(v["endpoints"][0]["name"], "mistral-eu");
    assert_eq!(v["endpoints"][0]["region"], "EU");
    assert_eq!(v["endpoints"][0]["jurisdiction"], "FR");
    assert_eq!(
        v["endpoints"][1]["paths"][0],
        "^/model/[^/]+/(converse|converse-stream|invoke|invoke-with-response-stream)$"
    );
    assert_eq!(v["sha256"].as_str().map(str::len), Some(64));
    assert!(v["warnings"]
        .as_array()
        .is_some_and(|w| w.iter().any(|w| w["key"] == "log.path")));
}

/// Run `check` on a broken contract: exit 1, `file:line:col`, the key and a hint.
fn broken(s: &Scratch, name: &str, text: &str, line: usize, col: usize, key: &str, hint: &str) {
    let path = s.file(name, text);
    let p = path.to_str().unwrap();
    let o = sandbox(&["check", "--workspace", "/work/ws", p]);
    assert_eq!(code(&o), 1, "{name}: {}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{p}:{line}:{col}: `{key}`")),
        "{name}: expected {p}:{line}:{col} `{key}` in:\n{err}"
    );
    assert!(
        err.contains("hint:") && err.contains(hint),
        "{name}: expected hint `{hint}` in:\n{err}"
    );
    // and the same as JSON
    let o = sandbox(&["check", "--json", "--workspace", "/work/ws", p]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON errors on stdout");
    assert_eq!(v["valid"], false);
    assert!(
        v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["key"] == key && e["location"]["line"] == line),
        "{v}"
    );
}

#[test]
fn broken_contracts_fail_with_position_and_hint() {
    let s = Scratch::new("cli-check-broken");
    let example = std::fs::read_to_string(example()).unwrap();
    broken(
        &s,
        "typo.toml",
        &example.replace(
            "methods = [\"POST\"]\npaths = [\"^/v1/chat",
            "methds = [\"POST\"]\npaths = [\"^/v1/chat",
        ),
        21,
        1,
        "network.allow[0].methds",
        "did you mean `methods`?",
    );
    broken(
        &s,
        "regex.toml",
        &example.replace("^/v1/chat/completions$", "^/v1/(chat/completions$"),
        22,
        10,
        "network.allow[0].paths[0]",
        "regex",
    );
    broken(
        &s,
        "class-a.toml",
        "version = 1\n[task]\nid = \"DOC-1\"\nclass = \"A\"\nobjective = \"docs\"\n[files]\nread = [\".\"]\nwrite = [\"docs\", \".github/workflows\"]\n",
        8,
        18,
        "files.write[1]",
        "keeps protected paths read-only",
    );
    broken(
        &s,
        "eu-anthropic.toml",
        &example.replace(
            "host = \"api.eu.mistral.ai\"",
            "host = \"api.anthropic.com\"",
        ),
        20,
        8,
        "network.allow[0].host",
        "Bedrock",
    );
    broken(
        &s,
        "class.toml",
        &example.replace("class = \"B\"", "class = \"Z\""),
        5,
        9,
        "task.class",
        "valid classes",
    );
}

#[test]
fn non_utf8_contract_is_invalid_with_a_position() {
    let s = Scratch::new("cli-check-utf8");
    let path = s.path().join("latin1.toml");
    std::fs::write(&path, b"version = 1\n# caf\xe9\n").unwrap();
    let o = sandbox(&["check", path.to_str().unwrap()]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains(&format!("{}:2:6", path.display())),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("UTF-8"));
}

#[test]
fn check_usage_errors_exit_2() {
    assert_eq!(code(&sandbox(&["check"])), 2);
    assert_eq!(
        code(&sandbox(&["check", "--bogus", example().to_str().unwrap()])),
        2
    );
    let o = sandbox(&["check", "/nonexistent/contract.toml"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("cannot read the contract"),
        "{}",
        stderr(&o)
    );
}

fn explain(method: &str, url: &str) -> Output {
    sandbox(&[
        "explain",
        "--workspace",
        "/work/ws",
        example().to_str().unwrap(),
        method,
        url,
    ])
}

#[test]
fn explain_acceptance_answers() {
    let bedrock = "https://bedrock-runtime.eu-central-1.amazonaws.com/model";
    let cases: &[(&str, String, i32, &str, &str)] = &[
        (
            "POST",
            "https://api.eu.mistral.ai/v1/chat/completions".into(),
            0,
            "mistral-eu",
            "region: EU",
        ),
        (
            "GET",
            "https://api.eu.mistral.ai/v1/chat/completions".into(),
            1,
            "none",
            "method GET",
        ),
        (
            "POST",
            "https://api.eu.mistral.ai/v1/chat/completions/../../admin".into(),
            1,
            "none",
            "ambiguous",
        ),
        (
            "POST",
            format!("{bedrock}/eu.anthropic.claude-sonnet-4-5-20250929-v1:0/converse"),
            0,
            "bedrock-eu",
            "region: EU",
        ),
        (
            "POST",
            format!("{bedrock}/global.anthropic.claude-sonnet-4-5-20250929-v1:0/converse"),
            1,
            "bedrock-eu",
            "global.",
        ),
        (
            "POST",
            "https://api.openai.com/v1/responses".into(),
            1,
            "none",
            "no rule",
        ),
    ];
    for (method, url, exit, rule, needle) in cases {
        let o = explain(method, url);
        let out = stdout(&o);
        assert_eq!(code(&o), *exit, "{method} {url}:\n{out}{}", stderr(&o));
        let mut lines = out.lines();
        assert_eq!(
            lines.next(),
            Some(if *exit == 0 { "allow" } else { "deny" }),
            "{out}"
        );
        assert_eq!(
            lines.next(),
            Some(format!("rule: {rule}").as_str()),
            "{out}"
        );
        assert!(
            lines.next().is_some_and(|l| l.starts_with("reason: ")),
            "{out}"
        );
        assert!(
            lines.next().is_some_and(|l| l.starts_with("region: ")),
            "{out}"
        );
        assert!(
            out.contains(needle),
            "{method} {url}: `{needle}` not in\n{out}"
        );
    }
}

#[test]
fn explain_refuses_tricks() {
    for (method, url) in [
        (
            "POST",
            "https://api.eu.mistral.ai/v1/chat/completions%2f..%2fadmin",
        ),
        (
            "POST",
            "https://api.eu.mistral.ai/v1/chat/completions/%2e%2e/x",
        ),
        ("POST", "https://api.eu.mistral.ai:8443/v1/chat/completions"),
        ("POST", "http://api.eu.mistral.ai/v1/chat/completions"),
        (
            "POST",
            "https://api.eu.mistral.ai.evil.example/v1/chat/completions",
        ),
        ("POST", "https://169.254.169.254/latest/meta-data"),
        ("post", "https://api.eu.mistral.ai/v1/chat/completions"),
    ] {
        let o = explain(method, url);
        assert_eq!(code(&o), 1, "{method} {url}: {}", stdout(&o));
        assert!(stdout(&o).starts_with("deny\n"));
    }
    // case and trailing dot of the host do not matter
    assert_eq!(
        code(&explain(
            "POST",
            "https://API.EU.MISTRAL.AI./v1/chat/completions?x=1"
        )),
        0
    );
}

#[test]
fn explain_errors_exit_2() {
    assert_eq!(code(&explain("POST", "ftp://api.eu.mistral.ai/")), 2);
    assert_eq!(
        code(&explain(
            "POST",
            "https://user@api.eu.mistral.ai/v1/chat/completions"
        )),
        2
    );
    assert_eq!(
        code(&explain(
            "PO ST",
            "https://api.eu.mistral.ai/v1/chat/completions"
        )),
        2
    );
    assert_eq!(
        code(&sandbox(&["explain", example().to_str().unwrap(), "POST"])),
        2
    );
    let s = Scratch::new("cli-check-explain-invalid");
    let bad = s.file("bad.toml", "version = 1\n");
    let o = sandbox(&[
        "explain",
        bad.to_str().unwrap(),
        "POST",
        "https://api.eu.mistral.ai/",
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("bad.toml:1:1"), "{}", stderr(&o));
}

#[test]
fn help_has_examples() {
    for sub in ["check", "explain"] {
        let o = sandbox(&[sub, "--help"]);
        assert_eq!(code(&o), 0);
        let out = stdout(&o);
        assert!(
            out.contains("Examples:") && out.contains("Exit status"),
            "{sub}:\n{out}"
        );
    }
}

/// `sandbox explain` with a body, on a contract that allows all of GitHub: merging,
/// approving, protection, rulesets and GraphQL merges are denied (exit 1), reading and
/// opening pull requests allowed (exit 0), a push decided ref by ref.
#[test]
fn explain_refuses_merges_on_a_contract_that_allows_all_of_github() {
    let contract = repo().join("sandbox/tests/fixtures/contract-github-all.toml");
    let c = contract.to_str().unwrap();
    let api = "https://api.github.com";
    let merge_gql = r#"{"query":"mutation { m: mergePullRequest(input: {pullRequestId: \"x\"}) { clientMutationId } }"}"#;
    let approve_gql = r#"{"query":"mutation($i: AddPullRequestReviewInput!) { addPullRequestReview(input: $i) { clientMutationId } }","variables":{"i":{"event":"APPROVE"}}}"#;
    let cases: &[(&str, String, Option<&str>, i32)] = &[
        ("PUT", format!("{api}/repos/o/r/pulls/1/merge"), None, 1),
        (
            "POST",
            format!("{api}/repos/o/r/pulls/1/reviews"),
            Some(r#"{"event":"APPROVE"}"#),
            1,
        ),
        (
            "PUT",
            format!("{api}/repos/o/r/branches/main/protection"),
            Some("{}"),
            1,
        ),
        ("POST", format!("{api}/repos/o/r/rulesets"), Some("{}"), 1),
        ("POST", format!("{api}/graphql"), Some(merge_gql), 1),
        ("POST", format!("{api}/graphql"), Some(approve_gql), 1),
        (
            "POST",
            format!("{api}/graphql"),
            Some("{\"query\": \"mutation {"),
            1,
        ),
        ("GET", format!("{api}/repos/o/r/pulls"), None, 0),
        (
            "POST",
            format!("{api}/repos/o/r/pulls"),
            Some(r#"{"title":"t","head":"pilot/x","base":"main"}"#),
            0,
        ),
        (
            "POST",
            format!("{api}/graphql"),
            Some(r#"{"query":"query { viewer { login } }"}"#),
            0,
        ),
    ];
    for (method, url, body, want) in cases {
        let mut args = vec!["explain", c, method, url.as_str()];
        if let Some(b) = body {
            args.extend(["-d", b]);
        }
        let o = sandbox(&args);
        assert_eq!(
            code(&o),
            *want,
            "{method} {url} {body:?}:\n{}{}",
            stdout(&o),
            stderr(&o)
        );
        if *want == 1 {
            assert!(stdout(&o).starts_with("deny\n"), "{}", stdout(&o));
        }
    }
    let o = sandbox(&[
        "explain",
        c,
        "PUT",
        &format!("{api}/repos/o/r/pulls/1/merge"),
    ]);
    assert!(
        stdout(&o).contains("the agent never merges"),
        "{}",
        stdout(&o)
    );

    // A push, offline: the raw git-receive-pack request from a file.
    let s = Scratch::new("explain-push");
    let pkt = |line: &str| format!("{:04x}{line}", line.len() + 4);
    let a = "a".repeat(40);
    let b = "b".repeat(40);
    let push = |r: &str| format!("{}0000PACK", pkt(&format!("{a} {b} {r}\0report-status\n")));
    let good = s.path().join("good.bin");
    std::fs::write(&good, push("refs/heads/pilot/x")).unwrap();
    let bad = s.path().join("bad.bin");
    std::fs::write(&bad, push("refs/heads/main")).unwrap();
    let url = "https://github.com/o/r.git/git-receive-pack";
    let o = sandbox(&["explain", c, "POST", url, "--body", good.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("allow refs/heads/pilot/x"),
        "{}",
        stdout(&o)
    );
    let o = sandbox(&["explain", c, "POST", url, "--body", bad.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("refuse refs/heads/main"),
        "{}",
        stdout(&o)
    );
    let o = sandbox(&["explain", c, "POST", url, "--body", "/nonexistent/push.bin"]);
    assert_eq!(code(&o), 2);
}
