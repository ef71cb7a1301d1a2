//! Network decisions: the acceptance answers of issue 2 and every matching rule.

use std::net::IpAddr;
use std::path::PathBuf;

use egress_policy::{PathContext, Policy, RequestFacts, Scheme, Target, Verdict};

const EXAMPLE: &str = include_str!("../../examples/eu-mistral-bedrock.toml");

fn ctx() -> PathContext {
    PathContext {
        workspace: PathBuf::from("/work/ws"),
        home: PathBuf::from("/home/agent"),
    }
}

fn policy(src: &str) -> Policy {
    Policy::parse(src, "test.toml", &ctx()).unwrap_or_else(|e| panic!("{e}"))
}

fn req<'a>(
    method: &'a str,
    scheme: Scheme,
    host: &'a str,
    port: u16,
    path: &'a str,
) -> RequestFacts<'a> {
    RequestFacts {
        method,
        scheme,
        host,
        port,
        path_and_query: path,
        headers: &[],
    }
}

fn https<'a>(method: &'a str, host: &'a str, path: &'a str) -> RequestFacts<'a> {
    req(method, Scheme::Https, host, 443, path)
}

const HEAD: &str = "version = 1\n[task]\nid = \"T-1\"\nclass = \"B\"\nobjective = \"o\"\ndone = [\"true\"]\nrollback = \"r\"\n";

fn with_rules(rules: &str) -> Policy {
    policy(&format!("{HEAD}{rules}"))
}

#[test]
fn acceptance_answers_on_the_issue_example() {
    let p = policy(EXAMPLE);
    let d = p.decide_request(&https("POST", "api.eu.mistral.ai", "/v1/chat/completions"));
    assert_eq!(d.verdict, Verdict::Allow, "{d:?}");
    assert_eq!(d.rule.as_deref(), Some("mistral-eu"));
    assert_eq!(d.region_field(), Some("EU"));
    assert_eq!(d.jurisdiction.as_deref(), Some("FR"));

    let d = p.decide_request(&https("GET", "api.eu.mistral.ai", "/v1/chat/completions"));
    assert_eq!(d.verdict, Verdict::Deny, "{d:?}");
    assert!(d.reason.contains("method GET"), "{}", d.reason);

    let d = p.decide_request(&https(
        "POST",
        "api.eu.mistral.ai",
        "/v1/chat/completions/../../admin",
    ));
    assert_eq!(d.verdict, Verdict::Deny);
    assert!(d.reason.contains("ambiguous"), "{}", d.reason);

    let bedrock = "bedrock-runtime.eu-central-1.amazonaws.com";
    let d = p.decide_request(&https(
        "POST",
        bedrock,
        "/model/eu.anthropic.claude-sonnet-4-5-20250929-v1:0/converse",
    ));
    assert_eq!(d.verdict, Verdict::Allow, "{d:?}");
    assert_eq!(d.rule.as_deref(), Some("bedrock-eu"));

    let d = p.decide_request(&https(
        "POST",
        bedrock,
        "/model/global.anthropic.claude-sonnet-4-5-20250929-v1:0/converse",
    ));
    assert_eq!(d.verdict, Verdict::Deny, "{d:?}");
    assert_eq!(d.rule.as_deref(), Some("bedrock-eu"));
    assert!(d.reason.contains("global."), "{}", d.reason);

    let d = p.decide_request(&https("POST", "api.openai.com", "/v1/responses"));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.rule, None);
}

#[test]
fn bedrock_bare_and_other_geographies() {
    let p = policy(EXAMPLE);
    let host = "bedrock-runtime.eu-central-1.amazonaws.com";
    let ok = p.decide_request(&https(
        "POST",
        host,
        "/model/anthropic.claude-3-haiku-20240307-v1:0/invoke",
    ));
    assert_eq!(ok.verdict, Verdict::Allow);
    assert_eq!(ok.region_field(), Some("eu-central-1"));
    for geo in ["us", "apac", "jp", "au", "us-gov"] {
        let path = format!("/model/{geo}.anthropic.claude-3-haiku-20240307-v1:0/invoke");
        assert_eq!(
            p.decide_request(&https("POST", host, &path)).verdict,
            Verdict::Deny,
            "{geo}"
        );
    }
    // encoded forms of the same profile are decided the same way
    let enc = p.decide_request(&https(
        "POST",
        host,
        "/model/%67lobal.anthropic.claude/converse",
    ));
    assert_eq!(enc.verdict, Verdict::Deny, "{enc:?}");
}

#[test]
fn connect_gate() {
    let p = policy(EXAMPLE);
    let d = p.decide_connect(Target {
        scheme: Scheme::Https,
        host: "API.EU.MISTRAL.AI.",
        port: 443,
    });
    assert_eq!(d.verdict, Verdict::Allow);
    assert!(d.intercept);
    assert_eq!(
        p.decide_connect(Target {
            scheme: Scheme::Https,
            host: "api.eu.mistral.ai",
            port: 8443
        })
        .verdict,
        Verdict::Deny
    );
    assert_eq!(
        p.decide_connect(Target {
            scheme: Scheme::Http,
            host: "api.eu.mistral.ai",
            port: 443
        })
        .verdict,
        Verdict::Deny
    );
    assert_eq!(
        p.decide_connect(Target {
            scheme: Scheme::Https,
            host: "api.openai.com",
            port: 443
        })
        .verdict,
        Verdict::Deny
    );
    assert_eq!(
        p.decide_connect(Target {
            scheme: Scheme::Https,
            host: "",
            port: 443
        })
        .verdict,
        Verdict::Deny
    );
}

#[test]
fn host_matching_case_trailing_dot_idna_and_wildcards() {
    let p = with_rules(
        "[[network.allow]]\nname = \"w\"\nhost = \"*.example.com\"\n\n[[network.allow]]\nname = \"idn\"\nhost = \"bücher.example\"\n",
    );
    let allowed = |h: &str| p.decide_request(&https("GET", h, "/")).verdict == Verdict::Allow;
    assert!(allowed("a.example.com"));
    assert!(allowed("a.b.example.com"));
    assert!(allowed("A.EXAMPLE.COM."));
    assert!(!allowed("example.com"));
    assert!(!allowed("evil-example.com"));
    assert!(!allowed("a.example.com.evil.example"));
    assert!(allowed("xn--bcher-kva.example"));
    assert!(allowed("BÜCHER.example."));
    assert!(!allowed("buecher.example"));
    assert!(!allowed("a.example.com:443"));
}

#[test]
fn ports_schemes_and_methods() {
    let p = with_rules(
        "[[network.allow]]\nname = \"h\"\nhost = \"api.example.com\"\nport = 8080\nschemes = [\"http\"]\nmethods = [\"GET\", \"HEAD\"]\n",
    );
    assert_eq!(
        p.decide_request(&req("GET", Scheme::Http, "api.example.com", 8080, "/x"))
            .verdict,
        Verdict::Allow
    );
    assert_eq!(
        p.decide_request(&req("GET", Scheme::Https, "api.example.com", 8080, "/x"))
            .verdict,
        Verdict::Deny
    );
    assert_eq!(
        p.decide_request(&req("GET", Scheme::Http, "api.example.com", 80, "/x"))
            .verdict,
        Verdict::Deny
    );
    assert_eq!(
        p.decide_request(&req("POST", Scheme::Http, "api.example.com", 8080, "/x"))
            .verdict,
        Verdict::Deny
    );
    // a method that is not an HTTP token is refused even by a rule without `methods`
    let any = with_rules("[[network.allow]]\nname = \"any\"\nhost = \"api.example.com\"\n");
    for bad in ["", "GET /x", "GE\nT", "G\u{e9}T"] {
        assert_eq!(
            any.decide_request(&https(bad, "api.example.com", "/"))
                .verdict,
            Verdict::Deny,
            "{bad:?}"
        );
    }
    // methods are case-sensitive on the wire
    assert_eq!(
        p.decide_request(&req("get", Scheme::Http, "api.example.com", 8080, "/x"))
            .verdict,
        Verdict::Deny
    );
    // default port is 443 and default scheme https only
    let d = with_rules("[[network.allow]]\nname = \"d\"\nhost = \"api.example.com\"\n");
    assert_eq!(
        d.decide_request(&https("DELETE", "api.example.com", "/"))
            .verdict,
        Verdict::Allow
    );
    assert_eq!(
        d.decide_request(&req("GET", Scheme::Http, "api.example.com", 443, "/"))
            .verdict,
        Verdict::Deny
    );
    assert_eq!(
        d.decide_request(&req("GET", Scheme::Https, "api.example.com", 444, "/"))
            .verdict,
        Verdict::Deny
    );
}

#[test]
fn paths_are_anchored_whole_and_matched_without_query() {
    let p = with_rules("[[network.allow]]\nname = \"p\"\nhost = \"api.example.com\"\npaths = [\"/v1/chat\", \"/v1/models/[a-z]+\"]\n");
    let v = |path: &str| {
        p.decide_request(&https("POST", "api.example.com", path))
            .verdict
    };
    assert_eq!(v("/v1/chat"), Verdict::Allow);
    assert_eq!(v("/v1/chat?stream=true"), Verdict::Allow);
    assert_eq!(v("/v1/chat/x"), Verdict::Deny);
    assert_eq!(v("/x/v1/chat"), Verdict::Deny);
    assert_eq!(v("/v1/chatty"), Verdict::Deny);
    assert_eq!(v("/v1/models/abc"), Verdict::Allow);
    assert_eq!(v("/v1/models/abc/def"), Verdict::Deny);
    // `|` cannot escape the anchoring
    let alt = with_rules(
        "[[network.allow]]\nname = \"p\"\nhost = \"api.example.com\"\npaths = [\"/a|/b\"]\n",
    );
    assert_eq!(
        alt.decide_request(&https("GET", "api.example.com", "/a/admin"))
            .verdict,
        Verdict::Deny
    );
    assert_eq!(
        alt.decide_request(&https("GET", "api.example.com", "/x/b"))
            .verdict,
        Verdict::Deny
    );
    assert_eq!(
        alt.decide_request(&https("GET", "api.example.com", "/b"))
            .verdict,
        Verdict::Allow
    );
}

#[test]
fn ambiguous_paths_are_denied_even_when_a_rule_allows_any_path() {
    let p = with_rules("[[network.allow]]\nname = \"any\"\nhost = \"api.example.com\"\n");
    for path in [
        "/a/../b",
        "/a/%2e%2e/b",
        "/a/%2E%2e/b",
        "/a%2fb",
        "/a%5cb",
        "/a\\b",
        "/a%00",
        "/a//b",
        "/a/./b",
        "/a;x",
        "/a%252fb",
    ] {
        let d = p.decide_request(&https("GET", "api.example.com", path));
        assert_eq!(d.verdict, Verdict::Deny, "{path}");
        assert!(d.reason.contains("ambiguous"), "{path}: {}", d.reason);
    }
}

#[test]
fn first_matching_rule_wins_and_the_rest_are_tried() {
    let p = with_rules(
        "[[network.allow]]\nname = \"chat\"\nhost = \"api.example.com\"\nmethods = [\"POST\"]\npaths = [\"/v1/chat\"]\n\n[[network.allow]]\nname = \"models\"\nhost = \"api.example.com\"\nmethods = [\"GET\"]\npaths = [\"/v1/models\"]\n",
    );
    assert_eq!(
        p.decide_request(&https("GET", "api.example.com", "/v1/models"))
            .rule
            .as_deref(),
        Some("models")
    );
    assert_eq!(
        p.decide_request(&https("POST", "api.example.com", "/v1/chat"))
            .rule
            .as_deref(),
        Some("chat")
    );
    assert_eq!(
        p.decide_request(&https("GET", "api.example.com", "/v1/chat"))
            .verdict,
        Verdict::Deny
    );
}

#[test]
fn ip_literal_rules_match_only_literally() {
    let p = with_rules("[[network.allow]]\nname = \"ip\"\nhost = \"192.0.2.10\"\n");
    assert_eq!(
        p.decide_connect(Target {
            scheme: Scheme::Https,
            host: "192.0.2.10",
            port: 443
        })
        .verdict,
        Verdict::Allow
    );
    assert_eq!(
        p.decide_connect(Target {
            scheme: Scheme::Https,
            host: "192.0.2.11",
            port: 443
        })
        .verdict,
        Verdict::Deny
    );
    // a name that resolves to the address does not match an IP rule
    assert_eq!(
        p.decide_connect(Target {
            scheme: Scheme::Https,
            host: "host.example",
            port: 443
        })
        .verdict,
        Verdict::Deny
    );
    // non-canonical forms of the address are refused, not matched
    for alt in ["3221225994", "0xc0.0.2.10", "192.0.522"] {
        assert_eq!(
            p.decide_connect(Target {
                scheme: Scheme::Https,
                host: alt,
                port: 443
            })
            .verdict,
            Verdict::Deny,
            "{alt}"
        );
    }
    // name rules never match IP literals
    let n = with_rules("[[network.allow]]\nname = \"n\"\nhost = \"api.example.com\"\n");
    assert_eq!(
        n.decide_connect(Target {
            scheme: Scheme::Https,
            host: "192.0.2.10",
            port: 443
        })
        .verdict,
        Verdict::Deny
    );
}

#[test]
fn addresses_after_resolution() {
    let p = with_rules("[[network.allow]]\nname = \"n\"\nhost = \"api.example.com\"\n\n[[network.allow]]\nname = \"literal\"\nhost = \"8.8.4.4\"\n");
    let ips = |v: &[&str]| {
        v.iter()
            .map(|s| s.parse().unwrap())
            .collect::<Vec<IpAddr>>()
    };
    assert_eq!(
        p.decide_addresses("api.example.com", &ips(&["8.8.8.8", "2606:4700::1111"]))
            .verdict,
        Verdict::Allow
    );
    for bad in [
        "127.0.0.1",
        "169.254.169.254",
        "10.0.0.1",
        "100.64.0.1",
        "::1",
        "fe80::1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "0.0.0.0",
        "192.0.2.1",
    ] {
        let d = p.decide_addresses("api.example.com", &ips(&["8.8.8.8", bad]));
        assert_eq!(d.verdict, Verdict::Deny, "{bad}");
    }
    assert_eq!(
        p.decide_addresses("api.example.com", &[]).verdict,
        Verdict::Deny
    );
    // an explicit IP literal rule may dial that address, and only that one
    assert_eq!(
        p.decide_addresses("8.8.4.4", &ips(&["8.8.4.4"])).verdict,
        Verdict::Allow
    );
    assert_eq!(
        p.decide_addresses("8.8.4.4", &ips(&["8.8.4.5"])).verdict,
        Verdict::Deny
    );
    // a private address is never dialled: a rule cannot name it (see contract_errors.rs)
    assert_eq!(
        p.decide_addresses("10.1.2.3", &ips(&["10.1.2.3"])).verdict,
        Verdict::Deny
    );
    // never loopback or metadata: a rule cannot name them (see contract_errors.rs), and a
    // documentation or reserved literal that a rule names is still never dialled
    assert_eq!(
        p.decide_addresses("127.0.0.1", &ips(&["127.0.0.1"]))
            .verdict,
        Verdict::Deny
    );
    let doc = with_rules("[[network.allow]]\nname = \"doc\"\nhost = \"192.0.2.7\"\n");
    assert_eq!(
        doc.decide_addresses("192.0.2.7", &ips(&["192.0.2.7"]))
            .verdict,
        Verdict::Deny
    );
    // a host no rule names is denied even with good addresses
    assert_eq!(
        p.decide_addresses("other.example", &ips(&["8.8.8.8"]))
            .verdict,
        Verdict::Deny
    );
}

#[test]
fn passthrough_and_tcp_rules() {
    let p = with_rules(
        "[[network.allow]]\nname = \"pinned\"\nhost = \"pinned.example.com\"\nintercept = false\n\n[[network.allow]]\nname = \"ssh\"\nhost = \"git.example.com\"\nport = 2222\nprotocol = \"tcp\"\n",
    );
    let d = p.decide_connect(Target {
        scheme: Scheme::Https,
        host: "pinned.example.com",
        port: 443,
    });
    assert_eq!(d.verdict, Verdict::Allow);
    assert!(!d.intercept);
    let d = p.decide_connect(Target {
        scheme: Scheme::Https,
        host: "git.example.com",
        port: 2222,
    });
    assert_eq!(d.verdict, Verdict::Allow);
    assert!(!d.intercept);
    // a tcp rule never allows HTTP requests
    assert_eq!(
        p.decide_request(&req("GET", Scheme::Https, "git.example.com", 2222, "/"))
            .verdict,
        Verdict::Deny
    );
}

#[test]
fn secrets_in_urls() {
    let p = with_rules("[[network.allow]]\nname = \"any\"\nhost = \"api.example.com\"\n");
    let d = p.decide_request(&https(
        "GET",
        "api.example.com",
        "/v1/x?key=AKIAIOSFODNN7EXAMPLE",
    ));
    assert_eq!(d.verdict, Verdict::Deny);
    assert!(d.reason.contains("aws-access-key"), "{}", d.reason);
    assert!(
        !d.reason.contains("AKIA"),
        "the reason must not carry the value"
    );
    let d = p.decide_request(&https(
        "GET",
        "api.example.com",
        "/ghp_0123456789abcdefghijABCDEFGHIJ012345",
    ));
    assert_eq!(d.verdict, Verdict::Deny);
    // percent-encoded in the query, or with `+`
    let d = p.decide_request(&https(
        "GET",
        "api.example.com",
        "/v1/x?key=%41KIAIOSFODNN7EXAMPLE",
    ));
    assert_eq!(d.verdict, Verdict::Deny, "{d:?}");
    let d = p.decide_request(&https(
        "GET",
        "api.example.com",
        "/v1/x?k=-----BEGIN+PRIVATE+KEY-----",
    ));
    assert_eq!(d.verdict, Verdict::Deny, "{d:?}");
    let log = with_rules("[secrets]\naction = \"log\"\n[[network.allow]]\nname = \"any\"\nhost = \"api.example.com\"\n");
    let d = log.decide_request(&https(
        "GET",
        "api.example.com",
        "/v1/x?key=AKIAIOSFODNN7EXAMPLE",
    ));
    assert_eq!(d.verdict, Verdict::Allow);
    assert!(d.reason.contains("aws-access-key"));
}

#[test]
fn deny_by_default_without_rules() {
    let p = policy(HEAD);
    assert_eq!(
        p.decide_request(&https("GET", "api.example.com", "/"))
            .verdict,
        Verdict::Deny
    );
    assert_eq!(
        p.decide_connect(Target {
            scheme: Scheme::Https,
            host: "api.example.com",
            port: 443
        })
        .verdict,
        Verdict::Deny
    );
}

#[test]
fn sha256_is_of_the_source() {
    let p = policy(EXAMPLE);
    assert_eq!(p.sha256().len(), 64);
    let q = policy(&format!("{EXAMPLE}\n# changed\n"));
    assert_ne!(p.sha256(), q.sha256());
    assert!(p.rule("mistral-eu").is_some());
    assert!(p.rule("nope").is_none());
}

/// The proxy shares one policy between tasks: this fails to compile if `Policy` stops being
/// `Send + Sync`.
#[test]
fn policy_can_be_shared_between_threads() {
    fn shared<T: Send + Sync + 'static>(_: &T) {}
    let p = policy(EXAMPLE);
    shared(&p);
    let handle = std::thread::spawn(move || {
        p.decide_request(&https("POST", "api.eu.mistral.ai", "/v1/chat/completions"))
            .verdict
    });
    assert_eq!(handle.join().unwrap(), Verdict::Allow);
}
