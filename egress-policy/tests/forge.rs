//! The agent never merges: a contract that allows `api.github.com` for every method and path
//! still refuses merging, approving, protection and ruleset changes (REST and GraphQL, also
//! behind aliases, fragments and batches), while reading, opening pull requests and
//! commenting go ahead; git pushes are checked ref by ref; SSH git is refused with a hint.

use std::path::PathBuf;

use egress_policy::forge::{BodyCheck, BodyVerdict};
use egress_policy::git::{pkt, FLUSH};
use egress_policy::{PathContext, Policy, RequestFacts, Scheme, Verdict};

const HEAD: &str = "version = 1\n[task]\nid = \"T-15\"\nclass = \"B\"\nobjective = \"o\"\ndone = [\"true\"]\nrollback = \"r\"\n";

fn policy(src: &str) -> Policy {
    let ctx = PathContext {
        workspace: PathBuf::from("/work/ws"),
        home: PathBuf::from("/home/agent"),
    };
    Policy::parse(src, "t.toml", &ctx).unwrap_or_else(|e| panic!("{e}"))
}

fn github_everything() -> Policy {
    policy(&format!(
        "{HEAD}[[network.allow]]\nname = \"github-api\"\nhost = \"api.github.com\"\nmethods = [\"GET\", \"POST\", \"PUT\", \"PATCH\", \"DELETE\"]\n\n[[network.allow]]\nname = \"ghe\"\nhost = \"github.corp.example\"\nmethods = [\"GET\", \"POST\", \"PUT\", \"PATCH\", \"DELETE\"]\ngithub_api = true\n\n[[network.allow]]\nname = \"github-git\"\nhost = \"github.com\"\nmethods = [\"GET\", \"POST\"]\n"
    ))
}

fn facts<'a>(method: &'a str, host: &'a str, path: &'a str) -> RequestFacts<'a> {
    RequestFacts {
        method,
        scheme: Scheme::Https,
        host,
        port: 443,
        path_and_query: path,
        headers: &[],
    }
}

/// The whole decision: the request, then its body when one is checked.
fn decide(p: &Policy, method: &str, host: &str, path: &str, body: &[u8]) -> (Verdict, String) {
    let r = facts(method, host, path);
    let d = p.decide_request(&r);
    if d.verdict == Verdict::Deny {
        return (Verdict::Deny, d.reason);
    }
    match d.body_check.clone() {
        None => (Verdict::Allow, d.reason),
        Some(check) => match p.decide_body(&check, body, true) {
            BodyVerdict::Allow => (Verdict::Allow, d.reason),
            BodyVerdict::Deny(why) => (Verdict::Deny, why),
            BodyVerdict::NeedMore => panic!("a complete body needs no more"),
            BodyVerdict::Push { verdicts, .. } => {
                if verdicts.iter().all(|v| v.allowed) {
                    (Verdict::Allow, d.reason)
                } else {
                    (
                        Verdict::Deny,
                        verdicts
                            .iter()
                            .map(|v| v.why.clone())
                            .collect::<Vec<_>>()
                            .join("; "),
                    )
                }
            }
        },
    }
}

#[test]
fn merge_approve_protection_and_rulesets_are_refused_reads_and_pull_requests_go_ahead() {
    let p = github_everything();
    let gql = |q: &str| serde_json::json!({ "query": q }).to_string().into_bytes();
    let refused: Vec<(&str, &str, Vec<u8>)> = vec![
        ("PUT", "/repos/o/r/pulls/7/merge", b"{}".to_vec()),
        ("PUT", "/repos/o/r/pulls/7/update-branch", b"{}".to_vec()),
        ("POST", "/repos/o/r/merges", b"{\"base\":\"main\",\"head\":\"pilot/x\"}".to_vec()),
        ("POST", "/repos/o/r/pulls/7/reviews", br#"{"event":"APPROVE"}"#.to_vec()),
        ("POST", "/repos/o/r/pulls/7/reviews/99/events", br#"{"event":"APPROVE"}"#.to_vec()),
        ("PUT", "/repos/o/r/branches/main/protection", b"{}".to_vec()),
        ("DELETE", "/repos/o/r/branches/main/protection", Vec::new()),
        ("DELETE", "/repos/o/r/branches/release/v1/protection/required_status_checks", Vec::new()),
        ("POST", "/repos/o/r/rulesets", b"{}".to_vec()),
        ("PUT", "/repos/o/r/rulesets/5", b"{}".to_vec()),
        ("POST", "/repos/o/r/actions/workflows/ci.yml/dispatches", b"{}".to_vec()),
        ("POST", "/repos/o/r/actions/runs/1/rerun", Vec::new()),
        ("PATCH", "/repos/o/r", br#"{"allow_auto_merge":true}"#.to_vec()),
        ("PUT", "/repos/o/r/collaborators/mallory", Vec::new()),
        ("PUT", "/repos/o/r/actions/secrets/TOKEN", b"{}".to_vec()),
        ("POST", "/repos/o/r/keys", b"{}".to_vec()),
        ("PATCH", "/repos/o/r/git/refs/heads/main", br#"{"sha":"x","force":true}"#.to_vec()),
        ("PUT", "/repos/o/r/contents/src/main.rs", b"{}".to_vec()),
        ("POST", "/graphql", gql("mutation { mergePullRequest(input: {pullRequestId: \"x\"}) { clientMutationId } }")),
        ("POST", "/graphql", gql("mutation { a: enablePullRequestAutoMerge(input: {pullRequestId: \"x\"}) { clientMutationId } }")),
        ("POST", "/graphql", gql("mutation { addPullRequestReview(input: {pullRequestId: \"x\", event: APPROVE}) { clientMutationId } }")),
        ("POST", "/graphql", gql("mutation { createBranchProtectionRule(input: {}) { clientMutationId } }")),
        ("POST", "/graphql", gql("mutation { mergePullRequest(")),
        ("POST", "/graphql", b"not json".to_vec()),
        ("GET", "/graphql?query=mutation", Vec::new()),
    ];
    for (method, path, body) in &refused {
        let (v, why) = decide(&p, method, "api.github.com", path, body);
        assert_eq!(v, Verdict::Deny, "{method} {path} must be refused");
        assert!(!why.is_empty());
    }
    let (_, why) = decide(
        &p,
        "PUT",
        "api.github.com",
        "/repos/o/r/pulls/7/merge",
        b"{}",
    );
    assert!(why.contains("the agent never merges"), "{why}");

    let allowed: Vec<(&str, &str, Vec<u8>)> = vec![
        ("GET", "/repos/o/r/pulls", Vec::new()),
        ("POST", "/repos/o/r/pulls", br#"{"title":"t","head":"pilot/x","base":"main"}"#.to_vec()),
        ("POST", "/repos/o/r/issues/7/comments", br#"{"body":"done"}"#.to_vec()),
        ("POST", "/repos/o/r/pulls/7/reviews", br#"{"event":"COMMENT","body":"notes"}"#.to_vec()),
        ("GET", "/repos/o/r/branches/main/protection", Vec::new()),
        ("POST", "/graphql", gql("query { viewer { login } }")),
        ("POST", "/graphql", gql("mutation { addComment(input: {subjectId: \"x\", body: \"hi\"}) { clientMutationId } }")),
    ];
    for (method, path, body) in &allowed {
        let (v, why) = decide(&p, method, "api.github.com", path, body);
        assert_eq!(v, Verdict::Allow, "{method} {path}: {why}");
    }

    // GitHub Enterprise Server: the same controls under /api/v3 and /api/graphql.
    let (v, _) = decide(
        &p,
        "PUT",
        "github.corp.example",
        "/api/v3/repos/o/r/pulls/7/merge",
        b"{}",
    );
    assert_eq!(v, Verdict::Deny);
    let (v, _) = decide(
        &p,
        "POST",
        "github.corp.example",
        "/api/graphql",
        &gql("mutation { mergePullRequest(input: {pullRequestId: \"x\"}) { clientMutationId } }"),
    );
    assert_eq!(v, Verdict::Deny);
    let (v, _) = decide(
        &p,
        "GET",
        "github.corp.example",
        "/api/v3/repos/o/r/pulls",
        b"",
    );
    assert_eq!(v, Verdict::Allow);
}

fn push_body(updates: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (old, new, r)) in updates.iter().enumerate() {
        let line = if i == 0 {
            format!("{old} {new} {r}\0report-status side-band-64k\n")
        } else {
            format!("{old} {new} {r}\n")
        };
        out.extend(pkt(line.as_bytes()));
    }
    out.extend_from_slice(FLUSH);
    out.extend_from_slice(b"PACK....");
    out
}

#[test]
fn pushes_are_checked_ref_by_ref_whatever_rule_allowed_the_host() {
    let p = github_everything();
    let a = "a".repeat(40);
    let b = "b".repeat(40);
    let z = "0".repeat(40);
    let path = "/o/r.git/git-receive-pack";
    let ok = decide(
        &p,
        "POST",
        "github.com",
        path,
        &push_body(&[(&a, &b, "refs/heads/pilot/x")]),
    );
    assert_eq!(ok.0, Verdict::Allow, "{}", ok.1);
    for (old, new, r) in [
        (a.as_str(), b.as_str(), "refs/heads/main"),
        (a.as_str(), z.as_str(), "refs/heads/pilot/x"),
        (z.as_str(), a.as_str(), "refs/tags/v1.0"),
    ] {
        let (v, why) = decide(&p, "POST", "github.com", path, &push_body(&[(old, new, r)]));
        assert_eq!(v, Verdict::Deny, "{r}");
        assert!(!why.is_empty());
    }
    // One bad ref refuses the whole push.
    let (v, _) = decide(
        &p,
        "POST",
        "github.com",
        path,
        &push_body(&[(&a, &b, "refs/heads/pilot/x"), (&a, &b, "refs/heads/main")]),
    );
    assert_eq!(v, Verdict::Deny);
    // The advertisement before a push is allowed where pushing is; fetch separately.
    let adv = "/o/r.git/info/refs?service=git-receive-pack";
    assert_eq!(decide(&p, "GET", "github.com", adv, b"").0, Verdict::Allow);
    let no_push = policy(&format!(
        "{HEAD}[[network.allow]]\nname = \"g\"\nhost = \"github.com\"\nmethods = [\"GET\", \"POST\"]\n[git]\npush = []\nfetch = false\n"
    ));
    assert_eq!(
        decide(&no_push, "GET", "github.com", adv, b"").0,
        Verdict::Deny
    );
    assert_eq!(
        decide(&no_push, "POST", "github.com", path, b"").0,
        Verdict::Deny
    );
    let fetch = "/o/r.git/info/refs?service=git-upload-pack";
    assert_eq!(
        decide(&no_push, "GET", "github.com", fetch, b"").0,
        Verdict::Deny
    );
    assert_eq!(
        decide(&p, "GET", "github.com", fetch, b"").0,
        Verdict::Allow
    );
    // A body cut before its command list ended is refused, never passed.
    let r = facts("POST", "github.com", path);
    let d = p.decide_request(&r);
    let check = d.body_check.clone().expect("a push is checked");
    assert!(matches!(check, BodyCheck::Push { .. }));
    let body = push_body(&[(&a, &b, "refs/heads/pilot/x")]);
    assert_eq!(
        p.decide_body(&check, &body[..10], false),
        BodyVerdict::NeedMore
    );
    assert!(matches!(
        p.decide_body(&check, &body[..10], true),
        BodyVerdict::Deny(_)
    ));
}

#[test]
fn ssh_git_is_refused_with_a_hint_unless_accepted_explicitly() {
    let src = format!(
        "{HEAD}[[network.allow]]\nname = \"github-ssh\"\nhost = \"github.com\"\nport = 22\nprotocol = \"tcp\"\n"
    );
    let ctx = PathContext {
        workspace: PathBuf::from("/work/ws"),
        home: PathBuf::from("/home/agent"),
    };
    let err = Policy::parse(&src, "t.toml", &ctx).unwrap_err().to_string();
    assert!(err.contains("SSH (port 22)"), "{err}");
    assert!(err.contains("git over HTTPS"), "{err}");
    let accepted = Policy::parse(
        &format!("{src}[git]\nunchecked_ssh = true\n"),
        "t.toml",
        &ctx,
    )
    .expect("accepted explicitly");
    assert!(accepted
        .warnings()
        .iter()
        .any(|w| w.to_string().contains("cannot be checked")));
    // A bad ref pattern is an error at its place.
    let bad = Policy::parse(&format!("{HEAD}[git]\npush = [\"main\"]\n"), "t.toml", &ctx)
        .unwrap_err()
        .to_string();
    assert!(bad.contains("git.push[0]"), "{bad}");
}

#[test]
fn a_connection_to_port_22_is_told_to_use_https() {
    let p = github_everything();
    let d = p.decide_connect(egress_policy::Target {
        scheme: Scheme::Https,
        host: "github.com",
        port: 22,
    });
    assert_eq!(d.verdict, Verdict::Deny);
    assert!(d.reason.contains("use git over HTTPS"), "{}", d.reason);
}

#[test]
fn gitlab_merges_approvals_and_protection_are_refused_too() {
    let p = policy(&format!(
        "{HEAD}[[network.allow]]\nname = \"gitlab\"\nhost = \"gitlab.com\"\nmethods = [\"GET\", \"POST\", \"PUT\", \"DELETE\"]\n\n[[network.allow]]\nname = \"self-managed\"\nhost = \"gitlab.corp.example\"\nmethods = [\"GET\", \"POST\", \"PUT\", \"DELETE\"]\ngitlab_api = true\n"
    ));
    for host in ["gitlab.com", "gitlab.corp.example"] {
        for (method, path) in [
            ("PUT", "/api/v4/projects/42/merge_requests/7/merge"),
            ("POST", "/api/v4/projects/42/merge_requests/7/approve"),
            ("POST", "/api/v4/projects/42/protected_branches"),
            ("DELETE", "/api/v4/projects/42/protected_branches/main"),
            ("PUT", "/api/v4/projects/42"),
            ("POST", "/api/v4/projects/42/repository/commits"),
            ("POST", "/api/v4/projects/42/pipeline"),
        ] {
            let (v, why) = decide(&p, method, host, path, b"{}");
            assert_eq!(v, Verdict::Deny, "{host} {method} {path}");
            assert!(why.contains("the agent never merges"), "{why}");
        }
        for (method, path) in [
            ("GET", "/api/v4/projects/42/merge_requests"),
            ("POST", "/api/v4/projects/42/merge_requests"),
            ("POST", "/api/v4/projects/42/merge_requests/7/notes"),
        ] {
            let (v, why) = decide(&p, method, host, path, b"{}");
            assert_eq!(v, Verdict::Allow, "{host} {method} {path}: {why}");
        }
        let gql = |q: &str| serde_json::json!({ "query": q }).to_string().into_bytes();
        let (v, _) = decide(&p, "POST", host, "/api/graphql", &gql("mutation { mergeRequestAccept(input: {projectPath: \"g/p\", iid: \"7\"}) { errors } }"));
        assert_eq!(v, Verdict::Deny, "{host}");
        let (v, _) = decide(
            &p,
            "POST",
            host,
            "/api/graphql",
            &gql("query { currentUser { username } }"),
        );
        assert_eq!(v, Verdict::Allow, "{host}");
    }
}

#[test]
fn a_forge_passed_through_unopened_is_a_warning() {
    let p = policy(&format!(
        "{HEAD}[[network.allow]]\nname = \"gh\"\nhost = \"github.com\"\nintercept = false\n"
    ));
    assert!(p
        .warnings()
        .iter()
        .any(|w| w.to_string().contains("not checked against [git]")));
}
