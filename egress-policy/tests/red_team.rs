//! Red-team tests: for every rule of the engine, the ways an agent inside the sandbox (or a
//! careless contract author) could try to get around it. Each attempt is an assertion; a
//! bypass that was found and fixed keeps its test here.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use egress_policy::addr::{classify, AddrClass};
use egress_policy::host::normalize_host;
use egress_policy::secrets::{scan, SecretScanner};
use egress_policy::{
    FileAccess, FileRule, Host, PathContext, Policy, RequestFacts, Scheme, Target, Verdict,
};

const EXAMPLE: &str = include_str!("../../examples/eu-mistral-bedrock.toml");

const HEAD_B: &str = "version = 1\n[task]\nid = \"T-1\"\nclass = \"B\"\nobjective = \"o\"\ndone = [\"true\"]\nrollback = \"r\"\n";

fn ctx() -> PathContext {
    PathContext {
        workspace: PathBuf::from("/work/ws"),
        home: PathBuf::from("/home/agent"),
    }
}

fn parse(src: &str) -> Result<Policy, String> {
    Policy::parse(src, "red.toml", &ctx()).map_err(|e| e.to_string())
}

fn policy(src: &str) -> Policy {
    parse(src).unwrap_or_else(|e| panic!("{e}"))
}

fn with_rules(rules: &str) -> Policy {
    policy(&format!("{HEAD_B}{rules}"))
}

fn facts<'a>(method: &'a str, host: &'a str, port: u16, path: &'a str) -> RequestFacts<'a> {
    RequestFacts {
        method,
        scheme: Scheme::Https,
        host,
        port,
        path_and_query: path,
        headers: &[],
    }
}

fn request(p: &Policy, method: &str, host: &str, path: &str) -> egress_policy::Decision {
    p.decide_request(&facts(method, host, 443, path))
}

fn connect(p: &Policy, host: &str, port: u16) -> egress_policy::Decision {
    p.decide_connect(Target {
        scheme: Scheme::Https,
        host,
        port,
    })
}

const MISTRAL: &str = "api.eu.mistral.ai";
const CHAT: &str = "/v1/chat/completions";
const BEDROCK: &str = "bedrock-runtime.eu-central-1.amazonaws.com";

// ---------------------------------------------------------------------------------------
// Host names
// ---------------------------------------------------------------------------------------

/// Spellings of the allowed host that normalise to it: allowed, and to that exact name (the
/// proxy dials and checks SNI against the normalised host, so no other destination is reached).
#[test]
fn host_spellings_that_normalise_to_the_rule_host_stay_that_host() {
    let p = policy(EXAMPLE);
    for h in [
        "API.EU.MISTRAL.AI",
        "Api.Eu.Mistral.Ai.",
        "api.eu.mistral.ai.",
        "ａｐｉ.eu.mistral.ai", // full-width letters (UTS 46 folds them)
        "api。eu。mistral。ai", // ideographic full stops are label separators in UTS 46
        "api．eu．mistral．ai", // full-width full stops
        "api｡eu｡mistral｡ai",    // half-width ideographic full stops
    ] {
        match normalize_host(h) {
            Ok(Host::Name(n)) => assert_eq!(n, MISTRAL, "{h:?} normalised to another name"),
            other => panic!("{h:?}: {other:?}"),
        }
        let d = connect(&p, h, 443);
        assert_eq!(d.verdict, Verdict::Allow, "{h:?}: {d:?}");
        assert_eq!(d.rule.as_deref(), Some("mistral-eu"));
        let d = request(&p, "POST", h, CHAT);
        assert_eq!(d.verdict, Verdict::Allow, "{h:?}: {d:?}");
    }
}

#[test]
fn host_tricks_are_denied_at_connect_and_per_request() {
    let p = policy(EXAMPLE);
    for h in [
        "api.eu.mistral.ai..",
        "api..eu.mistral.ai",
        ".api.eu.mistral.ai",
        "api.eu.mistral.ai:443",
        "api.eu.mistral.ai:443:443",
        "[api.eu.mistral.ai]",
        "user@api.eu.mistral.ai",
        "api.eu.mistral.ai@evil.example",
        "evil.example#api.eu.mistral.ai",
        "evil.example?api.eu.mistral.ai",
        "evil.example/api.eu.mistral.ai",
        "evil.example\\api.eu.mistral.ai",
        "api.eu.mistral.ai.evil.example",
        "api.eu.mistral.ai%2eevil.example",
        "api%2eeu.mistral.ai",
        "xapi.eu.mistral.ai",
        "x.api.eu.mistral.ai",
        "eu.mistral.ai",
        " api.eu.mistral.ai",
        "api.eu.mistral.ai ",
        "api.eu.mistral.ai\t",
        "api.eu.mistral.ai\0",
        "api.eu.mistral.ai\0.evil.example",
        "api.eu.mistral.ai\r\nHost: evil.example",
        "аpi.eu.mistral.ai",         // Cyrillic а: a different (punycode) name
        "api.eu.mistraI.ai",         // capital I for l
        "api.eu.mistral.ai\u{200B}", // zero-width space
        "api.eu.mis\u{00AD}tral.ai", // soft hyphen: UTS 46 would drop it silently
        "api.eu.mistral\u{2060}.ai", // word joiner
        "api.eu.mistral.ai\u{FEFF}", // zero-width no-break space
        "api.eu.\u{202E}ia.lartsim", // right-to-left override
        "api\u{200B}.eu.mistral.ai", // zero-width space inside a label
        "api.eu.mistral.ai\u{3002}\u{3002}", // two ideographic full stops: empty label
        "*.eu.mistral.ai",
        "*",
        "",
        ".",
        "..",
    ] {
        let d = connect(&p, h, 443);
        assert_eq!(d.verdict, Verdict::Deny, "CONNECT {h:?}: {d:?}");
        let d = request(&p, "POST", h, CHAT);
        assert_eq!(d.verdict, Verdict::Deny, "request {h:?}: {d:?}");
    }
}

#[test]
fn zero_width_and_homoglyph_hosts_never_normalise_to_the_rule_host() {
    for h in [
        "api.eu.mistral.ai\u{200B}",
        "api.eu.mistral.ai\u{200C}",
        "api.eu.mistral.ai\u{200D}",
        "api.eu.mistral.ai\u{FEFF}",
        "аpi.eu.mistral.ai",
        "api.eu.mistraⅼ.ai", // U+217C small roman numeral fifty folds to `l` — same name is fine
    ] {
        if let Ok(Host::Name(n)) = normalize_host(h) {
            // Either refused, or the same name (UTS 46 folding): never a third host whose
            // decision could differ from the name the proxy then dials.
            assert!(
                n == MISTRAL || n.starts_with("xn--") || n.contains(".xn--") || n.contains("xn--"),
                "{h:?} -> {n}"
            );
            assert_eq!(
                normalize_host(&n),
                Ok(Host::Name(n.clone())),
                "not idempotent"
            );
        }
    }
}

/// Every IPv4 spelling an URL parser or `inet_aton` reads as an address, but that is not a
/// canonical dotted quad, is refused outright. (The rule names a global literal: private
/// literals are refused by the contract, see below.)
#[test]
fn non_canonical_ipv4_literals_are_refused() {
    let p = with_rules("[[network.allow]]\nname = \"lit\"\nhost = \"8.8.4.4\"\n");
    assert!(connect(&p, "8.8.4.4", 443).is_allowed());
    for h in [
        "134743044",   // decimal
        "0x8080404",   // hex
        "0X8080404",   // hex, upper-case prefix
        "01002002004", // octal
        "0x8.8.4.4",   // hex octet
        "010.8.4.4",   // octal octet
        "8.525316",    // short form
        "8.8.1028",    // short form
        "8.8.4.04",    // leading zero
        "8.8.4.4.",    // trailing dot on an IP
        "8.8.4.0x4",   // hex last octet
        "８.８.４.４", // full-width digits (UTS 46 folds them to ASCII)
        "8。8。4。4",  // ideographic full stops
        "⑧.8.4.4",     // circled digit eight
        "2130706433",  // 127.0.0.1
        "0x7f.1",      // 127.0.0.1
        "127.1",       // 127.0.0.1
        "0177.0.0.1",  // 127.0.0.1
        "1.2.3.4.5",
        "example.0x10",
        "example.123",
    ] {
        let d = connect(&p, h, 443);
        assert_eq!(d.verdict, Verdict::Deny, "{h:?}: {d:?}");
        assert!(
            normalize_host(h).is_err(),
            "{h:?} normalised to {:?}",
            normalize_host(h)
        );
    }
}

#[test]
fn ipv6_literal_tricks() {
    let p = with_rules("[[network.allow]]\nname = \"lit\"\nhost = \"8.8.4.4\"\n");
    // the IPv4-mapped form is the same address: it matches, and decide_addresses still
    // classifies what is dialled (a mapped address is never dialled)
    assert!(connect(&p, "[::ffff:8.8.4.4]", 443).is_allowed());
    let mapped: IpAddr = "::ffff:8.8.4.4".parse().unwrap();
    assert!(!p
        .decide_addresses("[::ffff:8.8.4.4]", &[mapped])
        .is_allowed());
    for h in [
        "[::8.8.4.4]",        // IPv4-compatible: another address
        "[64:ff9b::808:404]", // NAT64 of it
        "[2002:808:404::]",   // 6to4 of it
        "[fe80::1%25eth0]",   // zone id, URL-encoded
        "[fe80::1%eth0]",     // zone id
        "fe80::1%eth0",
        "[::1]",
        "::1",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::ffff:169.254.169.254]",
        "[0:0:0:0:0:ffff:808:404]:443",
        "[[::ffff:8.8.4.4]]",
        "[::ffff:8.8.4.4",
        "::ffff:8.8.4.4]",
    ] {
        let d = connect(&p, h, 443);
        assert_eq!(d.verdict, Verdict::Deny, "{h:?}: {d:?}");
    }
    // an IPv6 literal rule matches its canonical spellings only
    let p6 = with_rules("[[network.allow]]\nname = \"lit6\"\nhost = \"[2001:4860:4860::8844]\"\n");
    for ok in [
        "[2001:4860:4860::8844]",
        "[2001:4860:4860:0:0:0:0:8844]",
        "[2001:4860:4860:0000::8844]",
        "2001:4860:4860::8844",
    ] {
        assert!(connect(&p6, ok, 443).is_allowed(), "{ok}");
    }
    for bad in [
        "[2001:4860:4860::8845]",
        "[2001:4860:4860::8844%25eth0]",
        "[2001:4860:4860::8844]:443",
    ] {
        assert!(!connect(&p6, bad, 443).is_allowed(), "{bad}");
    }
    // a mapped or compatible literal of a forbidden address is never dialled
    for (host, ip) in [
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ("[::ffff:169.254.169.254]", "::ffff:169.254.169.254"),
        ("[::127.0.0.1]", "::127.0.0.1"),
        ("[64:ff9b::a9fe:a9fe]", "64:ff9b::a9fe:a9fe"),
    ] {
        let d = p.decide_addresses(host, &[ip.parse().unwrap()]);
        assert_eq!(d.verdict, Verdict::Deny, "{host}: {d:?}");
    }
}

#[test]
fn wildcard_edges() {
    let p = with_rules("[[network.allow]]\nname = \"w\"\nhost = \"*.a.example\"\n");
    for ok in [
        "b.a.example",
        "c.b.a.example",
        "B.A.EXAMPLE.",
        "b。a。example",
        "xn--bcher-kva.a.example",
        "bücher.a.example",
    ] {
        assert!(connect(&p, ok, 443).is_allowed(), "{ok}");
    }
    for bad in [
        "a.example",
        "a.example.",
        "xa.example",
        "x-a.example",
        ".a.example",
        "..a.example",
        "b..a.example",
        "b.a.example..",
        "a.example.evil.example",
        "b.a.example.evil.example",
        "b.a.examplex",
        "b.xa.example",
        "*.a.example",
        "b.a.example:443",
        "b.a.example@evil.example",
        "evil.example#.a.example",
    ] {
        let d = connect(&p, bad, 443);
        assert_eq!(d.verdict, Verdict::Deny, "{bad}: {d:?}");
    }
    // the rule's port (443 by default) is part of the match
    assert!(!connect(&p, "b.a.example", 8443).is_allowed());
    assert!(!connect(&p, "b.a.example", 0).is_allowed());
}

#[test]
fn wildcard_patterns_that_cover_unrelated_owners_are_refused() {
    for host in [
        "*.com.",
        "*.COM",
        "*.github.io.",
        "*.GitHub.IO",
        "*.github。io",
        "*.co.uk.",
        "*.xn--p1ai",
        // below a multi-tenant suffix: still everyone's buckets, gateways and apps
        "*.eu-central-1.amazonaws.com",
        "*.s3.eu-central-1.amazonaws.com",
        "*.execute-api.eu-west-1.amazonaws.com",
        "*.eu.rep.googleapis.com",
        "*.storage.googleapis.com",
        "*.x.cloudfront.net",
        "*.web.core.windows.net",
        "*.blob.core.windows.net",
        "*.x.workers.dev",
        "*..example.com",
        "*.example.com..",
        "**.example.com",
        "*.*.example.com",
        "*example.com",
    ] {
        let src = format!("{HEAD_B}[[network.allow]]\nname = \"w\"\nhost = \"{host}\"\n");
        assert!(parse(&src).is_err(), "{host} was accepted");
    }
}

#[test]
fn port_tricks() {
    let p = policy(EXAMPLE);
    for port in [0u16, 80, 444, 8443, 65535] {
        assert!(!connect(&p, MISTRAL, port).is_allowed(), "{port}");
        let d = p.decide_request(&facts("POST", MISTRAL, port, CHAT));
        assert!(!d.is_allowed(), "{port}");
    }
    // plain http on the https port is another scheme: denied
    let d = p.decide_request(&RequestFacts {
        method: "POST",
        scheme: Scheme::Http,
        host: MISTRAL,
        port: 443,
        path_and_query: CHAT,
        headers: &[],
    });
    assert!(!d.is_allowed(), "{d:?}");
}

// ---------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------

/// A rule that allows everything under `/v1/` on a host without per-request facts: only the
/// engine's ambiguity checks stand between the agent and `/admin`.
fn broad_paths() -> Policy {
    with_rules(
        "[[network.allow]]\nname = \"api\"\nhost = \"api.example.com\"\npaths = [\"/v1/.*\"]\n",
    )
}

#[test]
fn dot_dot_in_every_encoding_is_refused() {
    let p = broad_paths();
    for path in [
        "/v1/../admin",
        "/v1/..",
        "/v1/../",
        "/v1/%2e%2e/admin",
        "/v1/%2E%2E/admin",
        "/v1/.%2e/admin",
        "/v1/%2e./admin",
        "/v1/%252e%252e/admin",
        "/v1/%25252e%25252e/admin",
        "/v1/%%32%65%%32%65/admin",
        "/v1/%u002e%u002e/admin",
        "/v1/%c0%ae%c0%ae/admin",       // overlong UTF-8
        "/v1/%e0%80%ae%e0%80%ae/admin", // 3-byte overlong
        "/v1/%f0%80%80%ae./admin",      // 4-byte overlong
        "/v1/%c0%2e%c0%2e/admin",
        "/v1/..%2fadmin",
        "/v1/..%5cadmin",
        "/v1/..\\admin",
        "/v1/..;/admin",
        "/v1/..%3b/admin",
        "/v1/..%00/admin",
        "/v1/..%09/admin",
        "/v1/%2e%2e%2fadmin",
        "/v1/%EF%BC%8E%EF%BC%8E/admin", // full-width full stops
        "/v1/%E3%80%82%E3%80%82/admin", // ideographic full stops
        "/v1/%EF%BD%A1%EF%BD%A1/admin", // half-width ideographic full stops
        "/v1/%E2%80%A5/admin",          // two dot leader
        "/v1/%E2%80%A6/admin",          // horizontal ellipsis (NFKC: `...`)
        "/v1/%EF%B8%99/admin",          // presentation form for vertical ellipsis (NFKC: `...`)
        "/v1/%EF%B8%B0/admin",          // presentation form for vertical two dot leader
        "/v1/%EF%B9%92%EF%B9%92/admin", // small full stops
        "/v1/.%E2%80%A4/admin",         // one dot leader
        "/v1/%E2%81%84admin",           // fraction slash
        "/v1/%EF%BC%8Fadmin",           // full-width solidus
        "/v1/%EF%BC%85%32%65%EF%BC%85%32%65/admin", // full-width percent + `2e`
        "/v1/%EF%B9%AA2e/admin",        // small percent sign
        "/v1/%CD%BE/admin",             // Greek question mark (NFC: `;`)
        "/v1/%EF%BC%9B/admin",          // full-width semicolon
        "/v1/%EF%BC%9F/admin",          // full-width question mark
        "/v1/%EF%BC%83/admin",          // full-width number sign
        "/v1/./admin",
        "/v1/%2e/admin",
        "/v1/.",
        "/v1//admin",
        "/v1/%2f/admin",
        "/v1/admin%00",
        "/v1/admin%0d%0a",
        "/v1/admin%7f",
        "/v1/admin%",
        "/v1/admin%4",
        "/v1/admin%g0",
        "/v1/admin;a=b",
        "/v1/admin%3Ba=b",
        "/v1/admin#frag",
        "/v1/admin%23frag",
        "/v1/admin%3Fq=1",
        "/v1/admin\u{e9}",
        "/v1/ad min",
        "/v1/admin\u{0}",
    ] {
        let d = request(&p, "GET", "api.example.com", path);
        assert_eq!(d.verdict, Verdict::Deny, "{path:?}: {d:?}");
    }
    // control: the broad rule does allow plain paths under /v1/
    assert!(request(&p, "GET", "api.example.com", "/v1/models").is_allowed());
    assert!(request(&p, "GET", "api.example.com", "/v1/caf%C3%A9").is_allowed());
}

#[test]
fn request_targets_that_are_not_origin_form_are_refused() {
    let p = broad_paths();
    for target in [
        "https://api.example.com/v1/models",
        "http://evil.example/v1/models",
        "//evil.example/v1/models",
        "api.example.com:443",
        "*",
        "",
        "?x=1",
        "v1/models",
        "\\v1\\models",
        " /v1/models",
    ] {
        let d = request(&p, "GET", "api.example.com", target);
        assert_eq!(d.verdict, Verdict::Deny, "{target:?}: {d:?}");
    }
}

#[test]
fn exact_path_rules_are_anchored_whole() {
    let p = policy(EXAMPLE);
    for path in [
        "/v1/chat/completions/",
        "/v1/chat/completions/x",
        "/v1/chat/completionsx",
        "/x/v1/chat/completions",
        "/v1/chat/completions%20",
        "/v1/chat/completions%0a",
        "/V1/chat/completions",
        "/v1/chat/comp%E2%80%8Bletions", // zero-width space inside
        "/v1/chat/completions%3F",
        "/v1/chat/completions;",
        "/v1/chat/completions/.",
    ] {
        let d = request(&p, "POST", MISTRAL, path);
        assert_eq!(d.verdict, Verdict::Deny, "{path:?}: {d:?}");
    }
    // the query and harmless encodings do not change the path
    for path in [
        "/v1/chat/completions?",
        "/v1/chat/completions?x=/../admin",
        "/v1/chat/completion%73",
        "/%76%31/chat/completions",
    ] {
        assert!(request(&p, "POST", MISTRAL, path).is_allowed(), "{path}");
    }
}

#[test]
fn alternations_cannot_escape_the_anchors() {
    let p = with_rules(
        "[[network.allow]]\nname = \"alt\"\nhost = \"api.example.com\"\npaths = [\"/v1/a|/v1/b\", \"^/v2/c$|^/v2/d$\"]\n",
    );
    for ok in ["/v1/a", "/v1/b", "/v2/c", "/v2/d"] {
        assert!(
            request(&p, "GET", "api.example.com", ok).is_allowed(),
            "{ok}"
        );
    }
    for bad in [
        "/v1/a/x",
        "/x/v1/b",
        "/v1/bx",
        "/v1/ab",
        "/v2/cd",
        "/v2/c/admin",
        "/admin/v2/d",
    ] {
        assert!(
            !request(&p, "GET", "api.example.com", bad).is_allowed(),
            "{bad}"
        );
    }
}

/// A pattern that closes the engine's anchoring group (`)|(`) would match anything: the
/// contract is refused instead of silently allowing every path.
#[test]
fn patterns_that_break_out_of_the_anchoring_group_are_refused() {
    for pat in [
        r"/v1/chat)|(.*",
        r"/v1/chat)|(?:.*",
        r"/v1/chat)|.*|(",
        r"/v1/chat)|(.*)|(?:",
        r"(?x)/v1/chat # )|(.*",
        r"(?x)/v1/chat # )|(?:.*",
        r"/v1/chat\",
    ] {
        let src = format!(
            "{HEAD_B}[[network.allow]]\nname = \"r\"\nhost = \"api.example.com\"\npaths = ['{pat}']\n"
        );
        match parse(&src) {
            Err(_) => {}
            Ok(p) => {
                // if accepted at all, it must not allow an unrelated path
                let d = request(&p, "GET", "api.example.com", "/admin/delete");
                assert!(
                    !d.is_allowed(),
                    "pattern {pat:?} allows /admin/delete: {d:?}"
                );
                panic!("pattern {pat:?} was accepted");
            }
        }
    }
    // flags inside the pattern do not leak to the anchors: the path must still match whole
    let p = with_rules(
        "[[network.allow]]\nname = \"m\"\nhost = \"api.example.com\"\npaths = ['(?m)/v1/x$', '(?s)/v1/y.*', '(?i)/v1/z']\n",
    );
    for bad in ["/v1/x/admin", "/admin/v1/y", "/v1/z/admin", "/V1/X/admin"] {
        assert!(
            !request(&p, "GET", "api.example.com", bad).is_allowed(),
            "{bad}"
        );
    }
    assert!(request(&p, "GET", "api.example.com", "/V1/Z").is_allowed());
}

#[test]
fn very_long_and_deep_paths_do_not_panic_and_are_decided() {
    let p = policy(EXAMPLE);
    let long = format!("/v1/chat/completions{}", "a".repeat(200_000));
    assert!(!request(&p, "POST", MISTRAL, &long).is_allowed());
    let deep = "/x".repeat(50_000);
    assert!(!request(&p, "POST", MISTRAL, &deep).is_allowed());
    let encoded = "%41".repeat(50_000);
    assert!(!request(&p, "POST", MISTRAL, &format!("/{encoded}")).is_allowed());
    let bp = broad_paths();
    assert!(request(
        &bp,
        "GET",
        "api.example.com",
        &format!("/v1/{}", "b".repeat(100_000))
    )
    .is_allowed());
}

// ---------------------------------------------------------------------------------------
// Methods
// ---------------------------------------------------------------------------------------

#[test]
fn method_tricks() {
    let p = policy(EXAMPLE);
    for m in [
        "post",
        "Post",
        "pOST",
        "POST ",
        " POST",
        "POST\0",
        "POST\r\n",
        "POSTX",
        "POS",
        "",
        "P\u{130}ST",
        "ＰＯＳＴ",
        "GET",
        "PUT",
        "CONNECT",
        "TRACE",
    ] {
        let d = request(&p, m, MISTRAL, CHAT);
        assert_eq!(d.verdict, Verdict::Deny, "{m:?}: {d:?}");
    }
}

/// A rule without `methods` allows any method a server would treat as a request to the path;
/// never CONNECT (a tunnel inside the tunnel) nor TRACE/TRACK (which echo the request, injected
/// credentials included, back to the agent).
#[test]
fn connect_and_trace_are_never_allowed_by_a_rule_without_methods() {
    let p = broad_paths();
    assert!(request(&p, "GET", "api.example.com", "/v1/x").is_allowed());
    assert!(request(&p, "PROPFIND", "api.example.com", "/v1/x").is_allowed());
    for m in ["CONNECT", "TRACE", "TRACK"] {
        let d = request(&p, m, "api.example.com", "/v1/x");
        assert_eq!(d.verdict, Verdict::Deny, "{m}: {d:?}");
    }
    // a rule cannot list CONNECT
    let src = format!(
        "{HEAD_B}[[network.allow]]\nname = \"c\"\nhost = \"api.example.com\"\nmethods = [\"CONNECT\", \"TRACE\"]\n"
    );
    let e = parse(&src).expect_err("CONNECT in methods was accepted");
    assert!(e.contains("CONNECT"), "{e}");
    // TRACE only when listed explicitly, and never in another casing
    let p = with_rules(
        "[[network.allow]]\nname = \"t\"\nhost = \"api.example.com\"\nmethods = [\"TRACE\"]\n",
    );
    assert!(request(&p, "TRACE", "api.example.com", "/").is_allowed());
    assert!(!request(&p, "trace", "api.example.com", "/").is_allowed());
    assert!(!request(&p, "CONNECT", "api.example.com", "/").is_allowed());
}

// ---------------------------------------------------------------------------------------
// Residency
// ---------------------------------------------------------------------------------------

#[test]
fn bedrock_profiles_in_every_casing_and_encoding_are_denied() {
    let p = policy(EXAMPLE);
    let ok = request(
        &p,
        "POST",
        BEDROCK,
        "/model/eu.anthropic.claude-sonnet-4-5-20250929-v1:0/converse",
    );
    assert!(ok.is_allowed(), "{ok:?}");
    for id in [
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "GLOBAL.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "Global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "gLoBaL.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "%67lobal.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "%47%4C%4F%42%41%4C.anthropic.claude-v2",
        "global%2Eanthropic.claude-sonnet-4-5-20250929-v1:0",
        "global%2eanthropic.claude-v2",
        "US.anthropic.claude-3-haiku-20240307-v1:0",
        "Us.anthropic.claude-3-haiku-20240307-v1:0",
        "us.anthropic.claude-3-haiku-20240307-v1:0",
        "APAC.anthropic.claude-v2",
        "us-gov.anthropic.claude-v2",
        "US-GOV.anthropic.claude-v2",
        "jp.anthropic.claude-v2",
        "au.anthropic.claude-v2",
        "ca.anthropic.claude-v2",
        // a geography the engine does not know yet: it cannot be placed, so it is denied
        "latam.anthropic.claude-v2",
        "eu-west.anthropic.claude-v2",
        // look-alike prefixes that are not `eu`
        "eu\u{200B}.anthropic.claude-v2",
        "%E2%80%8Beu.anthropic.claude-v2",
        "ｅｕ.anthropic.claude-v2",
        "global\u{00AD}.anthropic.claude-v2",
        // ARNs in any casing and encoding
        "arn:aws:bedrock:us-east-1::foundation-model",
        "ARN:aws:bedrock:us-east-1::foundation-model",
        "Arn:Aws:Bedrock:US-EAST-1::foundation-model",
        "arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model",
        "%61rn:aws:bedrock:us-east-1::foundation-model",
        "arn:aws:bedrock:eu-central-1:123456789012:application-inference-profile",
        "arn:aws:bedrock:eu-central-1:123456789012:inference-profile",
        "arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model",
    ] {
        let path = format!("/model/{id}/converse");
        let d = request(&p, "POST", BEDROCK, &path);
        assert_eq!(d.verdict, Verdict::Deny, "{path}: {d:?}");
    }
}

#[test]
fn bedrock_bare_model_ids_and_eu_profiles_stay_allowed() {
    let p = policy(EXAMPLE);
    for id in [
        "anthropic.claude-3-haiku-20240307-v1:0",
        "mistral.mistral-large-2402-v1:0",
        "amazon.nova-pro-v1:0",
        "meta.llama3-70b-instruct-v1:0",
        "cohere.command-r-plus-v1:0",
        "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "eu.amazon.nova-lite-v1:0",
        "eu.meta.llama3-2-1b-instruct-v1:0",
    ] {
        let path = format!("/model/{id}/converse");
        let d = request(&p, "POST", BEDROCK, &path);
        assert!(d.is_allowed(), "{path}: {d:?}");
    }
}

/// A rule with a case-insensitive or loose path pattern still gets the per-request check.
#[test]
fn bedrock_per_request_check_does_not_depend_on_the_rules_path_spelling() {
    let src = format!(
        "{HEAD_B}[network]\nresidency = \"EU\"\n[[network.allow]]\nname = \"b\"\nhost = \"{BEDROCK}\"\npaths = ['(?i)/model/.+']\n"
    );
    let p = policy(&src);
    for path in [
        "/MODEL/global.anthropic.claude-v2/converse",
        "/Model/us.anthropic.claude-v2/invoke",
        "/model/arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2/converse",
        "/model/ARN:AWS:BEDROCK:US-EAST-1::foundation-model/anthropic.claude-v2/converse",
        "/model/arn:aws:bedrock:eu-central-1:1:inference-profile/global.anthropic.claude-v2/converse",
    ] {
        let d = request(&p, "POST", BEDROCK, path);
        assert_eq!(d.verdict, Verdict::Deny, "{path}: {d:?}");
    }
}

#[test]
fn vertex_locations_in_every_casing_are_decided() {
    let host = "europe-west4-aiplatform.googleapis.com";
    let src = format!(
        "{HEAD_B}[network]\nresidency = \"EU\"\n[[network.allow]]\nname = \"v\"\nhost = \"{host}\"\npaths = ['/v1/.*']\n"
    );
    let p = policy(&src);
    let ok = "/v1/projects/p/locations/europe-west4/publishers/google/models/g:generateContent";
    assert!(request(&p, "POST", host, ok).is_allowed());
    for path in [
        "/v1/projects/p/locations/global/publishers/google/models/g:generateContent",
        "/v1/projects/p/locations/GLOBAL/publishers/google/models/g:generateContent",
        "/v1/projects/p/locations/Global/publishers/google/models/g:generateContent",
        "/v1/projects/p/locations/%67lobal/publishers/google/models/g:generateContent",
        "/v1/projects/p/LOCATIONS/global/publishers/google/models/g:generateContent",
        "/v1/projects/p/Locations/us-central1/publishers/google/models/g:generateContent",
        "/v1/projects/p/locations/us-central1/publishers/google/models/g:generateContent",
        "/v1/projects/p/locations/europe-west2/publishers/google/models/g:generateContent",
        "/v1/projects/p/locations/europe-west4/publishers/x/locations/global/models/g",
        "/v1/projects/p/locations//publishers/google/models/g",
        "/v1/projects/p/locations/europe-west4%E2%80%8B/publishers/google/models/g",
    ] {
        let d = request(&p, "POST", host, path);
        assert_eq!(d.verdict, Verdict::Deny, "{path}: {d:?}");
    }
}

#[test]
fn a_non_eu_host_is_denied_whatever_the_path_says() {
    let src = format!(
        "{HEAD_B}[network]\nresidency = \"EU\"\n[[network.allow]]\nname = \"w\"\nhost = \"*.example.org\"\nregion = \"eu-central-1\"\n"
    );
    let p = policy(&src);
    // an attested wildcard matches names the catalog does not know; it does not reach
    // the catalog's non-EU names by spelling tricks
    for h in ["api.example.org", "API.EXAMPLE.ORG."] {
        assert!(connect(&p, h, 443).is_allowed(), "{h}");
    }
    let p = policy(EXAMPLE);
    for h in [
        "bedrock-runtime.us-east-1.amazonaws.com",
        "bedrock-runtime.eu-west-2.amazonaws.com",
        "BEDROCK-RUNTIME.EU-CENTRAL-2.AMAZONAWS.COM",
        "api.mistral.ai",
        "API.MISTRAL.AI.",
    ] {
        assert!(!connect(&p, h, 443).is_allowed(), "{h}");
        let d = request(&p, "POST", h, "/model/eu.anthropic.claude-v2/converse");
        assert!(!d.is_allowed(), "{h}");
    }
}

// ---------------------------------------------------------------------------------------
// Address classes (IANA IPv4 and IPv6 special-purpose registries)
// ---------------------------------------------------------------------------------------

/// Every range of the IANA special-purpose registries that is not globally reachable, at its
/// first, a middle and its last address, is never dialled.
#[test]
fn every_non_global_special_purpose_range_is_forbidden() {
    let ranges: &[(&str, &str)] = &[
        // IPv4
        ("0.0.0.0", "0.255.255.255"),
        ("10.0.0.0", "10.255.255.255"),
        ("100.64.0.0", "100.127.255.255"),
        ("127.0.0.0", "127.255.255.255"),
        ("169.254.0.0", "169.254.255.255"),
        ("172.16.0.0", "172.31.255.255"),
        ("192.0.0.0", "192.0.0.255"),
        ("192.0.2.0", "192.0.2.255"),
        ("192.88.99.0", "192.88.99.255"),
        ("192.168.0.0", "192.168.255.255"),
        ("198.18.0.0", "198.19.255.255"),
        ("198.51.100.0", "198.51.100.255"),
        ("203.0.113.0", "203.0.113.255"),
        ("224.0.0.0", "239.255.255.255"),
        ("240.0.0.0", "255.255.255.255"),
        // IPv6
        ("::", "::"),
        ("::1", "::1"),
        ("::ffff:0:0", "::ffff:ffff:ffff"),
        ("::ffff:0:0:0", "::ffff:0:ffff:ffff"),
        ("64:ff9b::", "64:ff9b::ffff:ffff"),
        ("64:ff9b:1::", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff"),
        ("100::", "100::ffff:ffff:ffff:ffff"),
        ("100:0:0:1::", "100:0:0:1:ffff:ffff:ffff:ffff"),
        ("2001::", "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("2001::", "2001:0:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("2001:2::", "2001:2:0:ffff:ffff:ffff:ffff:ffff"),
        ("2001:10::", "2001:1f:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("2001:20::", "2001:2f:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("2002::", "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("3fff::", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("5f00::", "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("fec0::", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ];
    for (first, last) in ranges {
        let a: IpAddr = first.parse().unwrap();
        let b: IpAddr = last.parse().unwrap();
        let mid = match (a, b) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                IpAddr::V4(((u32::from(a) / 2) + (u32::from(b) / 2)).into())
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                IpAddr::V6(((u128::from(a) / 2) + (u128::from(b) / 2)).into())
            }
            _ => unreachable!(),
        };
        for ip in [a, mid, b] {
            let class = classify(ip);
            assert!(class.is_forbidden(), "{ip} ({first}..{last}) is {class:?}");
        }
    }
    // and the neighbours just outside are global
    for ip in [
        "1.0.0.1",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "2001:200::1",
        "2003::1",
        "2a00:1450:4001::1",
    ] {
        let class = classify(ip.parse().unwrap());
        assert_eq!(class, AddrClass::Global, "{ip}");
    }
}

#[test]
fn one_forbidden_address_among_global_ones_denies_the_flow() {
    let p = policy(EXAMPLE);
    let global: IpAddr = "8.8.8.8".parse().unwrap();
    for bad in [
        "169.254.169.254",
        "127.0.0.1",
        "10.0.0.1",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2001:20::1",
        "fd00:ec2::254",
        "0.0.0.0",
    ] {
        let addrs = [global, bad.parse().unwrap()];
        let d = p.decide_addresses(MISTRAL, &addrs);
        assert_eq!(d.verdict, Verdict::Deny, "{bad}: {d:?}");
        let addrs = [bad.parse().unwrap(), global];
        assert!(!p.decide_addresses(MISTRAL, &addrs).is_allowed(), "{bad}");
    }
    assert!(p.decide_addresses(MISTRAL, &[global]).is_allowed());
    assert!(!p.decide_addresses("evil.example", &[global]).is_allowed());
}

#[test]
fn ip_literal_rules_never_open_other_addresses() {
    let p = with_rules("[[network.allow]]\nname = \"lit\"\nhost = \"8.8.4.4\"\n");
    let d = p.decide_addresses("8.8.4.4", &["8.8.4.4".parse().unwrap()]);
    assert!(d.is_allowed(), "{d:?}");
    // a literal is dialled as written: never at another address, even a global one
    let d = p.decide_addresses("8.8.4.4", &["8.8.4.5".parse().unwrap()]);
    assert!(!d.is_allowed(), "{d:?}");
    for ip in [
        "127.0.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "::1",
        "10.0.0.7",
        "100.64.0.1",
    ] {
        assert!(
            !p.decide_addresses("8.8.4.4", &[ip.parse().unwrap()])
                .is_allowed(),
            "{ip}"
        );
    }
    // contracts cannot name addresses that are never dialled
    for lit in [
        "127.0.0.1",
        "169.254.169.254",
        "[::1]",
        "0.0.0.0",
        "[::ffff:127.0.0.1]",
        "224.0.0.1",
    ] {
        let src = format!("{HEAD_B}[[network.allow]]\nname = \"x\"\nhost = \"{lit}\"\n");
        assert!(parse(&src).is_err(), "{lit}");
    }
}

/// Issue 3: only the operator's `--connect-to` may send traffic to private addresses. A rule
/// naming a private (RFC 1918, fc00::/7, fec0::/10) or CGNAT literal, in any spelling, is a
/// contract error whose hint points at `--connect-to`, and `decide_addresses` never allows
/// such an address, whatever the host.
#[test]
fn private_and_cgnat_literals_are_reachable_only_through_connect_to() {
    for lit in [
        "10.0.0.7",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.254",
        "100.100.100.201",
        "[fc00::1]",
        "[fd00:ec2::255]",
        "[fdff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]",
        "[fec0::1]",
        "[::ffff:10.0.0.7]",
        "[::ffff:a00:7]",
        "[::ffff:100.64.0.1]",
        "[::10.0.0.7]",
    ] {
        for rule in [
            format!("name = \"x\"\nhost = \"{lit}\"\n"),
            format!("name = \"x\"\nhost = \"{lit}\"\nport = 2222\nprotocol = \"tcp\"\n"),
            format!("name = \"x\"\nhost = \"{lit}\"\nintercept = false\n"),
        ] {
            let src = format!("{HEAD_B}[[network.allow]]\n{rule}");
            let err = parse(&src)
                .err()
                .unwrap_or_else(|| panic!("{lit} accepted: {rule}"));
            assert!(err.contains("`network.allow[0].host`"), "{lit}: {err}");
            assert!(err.contains("--connect-to"), "{lit}: {err}");
        }
    }
    // global neighbours of the private ranges stay nameable
    for lit in ["172.32.0.1", "100.128.0.1", "11.0.0.1", "192.169.0.1"] {
        let src = format!("{HEAD_B}[[network.allow]]\nname = \"x\"\nhost = \"{lit}\"\n");
        assert!(parse(&src).is_ok(), "{lit}");
    }
    // no rule can make decide_addresses dial a private or CGNAT address: not as a literal,
    // not through a name (a wildcard included), not mixed with global ones
    let p = with_rules(
        "[[network.allow]]\nname = \"gw\"\nhost = \"gateway.corp.example\"\n\n[[network.allow]]\nname = \"w\"\nhost = \"*.corp.example\"\n",
    );
    let global: IpAddr = "8.8.8.8".parse().unwrap();
    for ip in [
        "10.0.0.7",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "fd12:3456::1",
        "fec0::1",
        "::ffff:10.0.0.7",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        for host in ["gateway.corp.example", "x.corp.example"] {
            for addrs in [vec![ip], vec![global, ip], vec![ip, global]] {
                let d = p.decide_addresses(host, &addrs);
                assert_eq!(d.verdict, Verdict::Deny, "{host} {addrs:?}: {d:?}");
            }
        }
        let literal = if ip.is_ipv4() {
            ip.to_string()
        } else {
            format!("[{ip}]")
        };
        assert!(!p.decide_addresses(&literal, &[ip]).is_allowed(), "{ip}");
    }
    assert!(p
        .decide_addresses("gateway.corp.example", &[global])
        .is_allowed());
}

// ---------------------------------------------------------------------------------------
// Secrets in the URL
// ---------------------------------------------------------------------------------------

const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";

#[test]
fn secrets_in_the_url_in_encoded_forms_are_found() {
    let p = broad_paths();
    // base64 of the key in standard and URL-safe alphabets, padded or not
    let b64 = "QUtJQUlPU0ZPRE5ON0VYQU1QTEU="; // AKIAIOSFODNN7EXAMPLE
    for target in [
        format!("/v1/x?k={AWS_KEY}"),
        format!("/v1/{AWS_KEY}"),
        "/v1/x?k=%41KIAIOSFODNN7EXAMPLE".to_string(),
        "/v1/x?k=%2541KIAIOSFODNN7EXAMPLE".to_string(),
        "/v1/x?k=%252541KIAIOSFODNN7EXAMPLE".to_string(),
        "/v1/x?k=AKIA%49OSFODNN7EXAMPLE".to_string(),
        "/v1/%41KIAIOSFODNN7EXAMPLE".to_string(),
        format!("/v1/x?k={b64}"),
        "/v1/x?k=QUtJQUlPU0ZPRE5ON0VYQU1QTEU".to_string(),
        "/v1/x?k=QUtJQUlPU0ZPRE5ON0VYQU1QTEU%3D".to_string(),
        // base64 at another alignment, inside a longer value
        format!("/v1/x?k=eHg6{}", "QUtJQUlPU0ZPRE5ON0VYQU1QTEUK"),
        "/v1/x?k=ghp%5f0123456789abcdefghijABCDEFGHIJ012345".to_string(),
    ] {
        let d = request(&p, "GET", "api.example.com", &target);
        assert_eq!(d.verdict, Verdict::Deny, "{target}: {d:?}");
        assert!(!d.reason.contains(AWS_KEY), "{}", d.reason);
        assert!(!d.reason.contains("QUtJQ"), "{}", d.reason);
    }
    assert!(request(&p, "GET", "api.example.com", "/v1/x?k=hello").is_allowed());
}

#[test]
fn the_streaming_scanner_finds_a_secret_split_anywhere_and_reports_it_once() {
    let text = format!("{}{AWS_KEY}{}", "x ".repeat(200), " y".repeat(200));
    let bytes = text.as_bytes();
    // three chunks, every pair of split points around the key
    let start = 400;
    for a in start - 2..start + AWS_KEY.len() + 2 {
        for b in a..start + AWS_KEY.len() + 2 {
            let mut s = SecretScanner::new();
            let mut found = s.feed(&bytes[..a]);
            found.extend(s.feed(&bytes[a..b]));
            found.extend(s.feed(&bytes[b..]));
            assert_eq!(found.len(), 1, "split at {a},{b}: {found:?}");
            assert_eq!(found[0].offset, start as u64);
        }
    }
    // a secret after a very long boundary run still needs its boundary
    let glued = format!("{}{AWS_KEY}", "A".repeat(1000));
    assert!(scan(glued.as_bytes()).is_empty());
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

fn file(p: &Policy, path: &str, access: FileAccess) -> egress_policy::FileDecision {
    p.decide_file(Path::new(path), access)
}

#[test]
fn dot_dot_and_dot_components_cannot_escape_deny_or_reach_credentials() {
    let p = policy(EXAMPLE);
    for (path, access) in [
        ("/work/ws/src/../.env", FileAccess::Read),
        ("/work/ws/src/./../.env", FileAccess::Read),
        ("/work/ws/./.env", FileAccess::Read),
        ("/work/ws//.env", FileAccess::Read),
        ("/work/ws/.env/", FileAccess::Read),
        ("/work/ws/.env/.", FileAccess::Read),
        ("/work/ws/src/../secrets/a/b/c", FileAccess::Read),
        ("/work/ws/secrets/deep/er/still", FileAccess::Read),
        (
            "/work/ws/src/../../../home/agent/.ssh/id_ed25519",
            FileAccess::Read,
        ),
        ("/../../home/agent/.ssh/id_ed25519", FileAccess::Read),
        ("/home/agent/.aws/credentials", FileAccess::Read),
        ("/home/agent/./.aws/../.aws/credentials", FileAccess::Read),
        ("/home/agent/.docker/config.json", FileAccess::Read),
        ("/var/run/docker.sock", FileAccess::Read),
        ("/var/run/../run/docker.sock", FileAccess::Read),
        ("/work/ws/src/../.git/hooks/pre-commit", FileAccess::Write),
        ("/work/ws/src/../Cargo.toml", FileAccess::Write),
        ("/work/ws/src/../../ws2/src/x", FileAccess::Write),
        ("/work/ws/srcx/main.rs", FileAccess::Write),
        ("/work/ws/sr", FileAccess::Write),
        ("/work/ws", FileAccess::Write),
        ("src/main.rs", FileAccess::Write),
        ("./src/main.rs", FileAccess::Write),
        ("~/src/main.rs", FileAccess::Write),
        ("", FileAccess::Read),
    ] {
        let d = file(&p, path, access);
        assert!(!d.allowed, "{path} {access:?}: {d:?}");
    }
    // and the grants still work through the same tricks
    assert!(file(&p, "/work/ws/src/./a/../main.rs", FileAccess::Write).allowed);
    assert!(file(&p, "/work/ws/src/", FileAccess::Write).allowed);
    assert!(file(&p, "//work//ws//src//main.rs", FileAccess::Write).allowed);
}

#[test]
fn deny_wins_at_every_depth_and_write_implies_read() {
    let p = policy(&format!(
        "{HEAD_B}[files]\nread = [\".\"]\nwrite = [\"src\", \"src/gen/out\"]\ndeny = [\"src/gen\", \"src/keys.pem\"]\n"
    ));
    for path in [
        "/work/ws/src/gen",
        "/work/ws/src/gen/out",
        "/work/ws/src/gen/out/a.rs",
        "/work/ws/src/gen/a/b/c/d/e/f.rs",
        "/work/ws/src/keys.pem",
        "/work/ws/src/keys.pem/x",
    ] {
        for access in [FileAccess::Read, FileAccess::Write] {
            let d = file(&p, path, access);
            assert!(!d.allowed, "{path} {access:?}: {d:?}");
            assert!(matches!(d.rule, FileRule::Deny(_)), "{path}: {:?}", d.rule);
        }
    }
    // siblings that share a prefix are not denied
    assert!(file(&p, "/work/ws/src/generate.rs", FileAccess::Write).allowed);
    assert!(file(&p, "/work/ws/src/keys.pem.bak", FileAccess::Write).allowed);
    // write implies read, read does not imply write
    let d = file(&p, "/work/ws/src/lib.rs", FileAccess::Read);
    assert!(d.allowed && matches!(d.rule, FileRule::Write(_)), "{d:?}");
    assert!(!file(&p, "/work/ws/README.md", FileAccess::Write).allowed);
}

#[test]
fn protected_files_stay_read_only_at_any_depth_under_a_broad_write() {
    let p = policy(&format!(
        "{HEAD_B}[files]\nread = [\".\"]\nwrite = [\".\", \"~/projects\"]\n"
    ));
    for path in [
        "/work/ws/.git/hooks",
        "/work/ws/.git/hooks/",
        "/work/ws/.git/hooks/pre-commit",
        "/work/ws/.git/./hooks/pre-push",
        "/work/ws/src/../.git/hooks/pre-push",
        "/work/ws/.git/config",
        "/work/ws/.git/config.worktree",
        "/work/ws/vendor/lib/.git/hooks/post-checkout",
        "/work/ws/a/b/c/d/.git/config",
        "/work/ws/.git/modules/sub/hooks/pre-commit",
        "/work/ws/.git/modules/a/b/c/hooks/x",
        "/work/ws/.git/modules/a/b/config",
        "/work/ws/.git/worktrees/w/config.worktree",
        "/work/ws/.gitmodules",
        "/work/ws/sub/.gitmodules",
        "/work/ws/.husky/pre-commit",
        "/work/ws/web/.husky/_/husky.sh",
        "/work/ws/.pre-commit-config.yaml",
        "/work/ws/.envrc",
        "/work/ws/sub/.envrc",
        "/work/ws/.github/workflows/ci.yml",
        "/work/ws/pkg/.github/workflows/x.yml",
        "/work/ws/.github/actions/a/action.yml",
        "/work/ws/.vscode/tasks.json",
        "/work/ws/.vscode/settings.json",
        "/work/ws/.devcontainer/devcontainer.json",
        "/work/ws/.cargo/config.toml",
        "/work/ws/crate/.cargo/config",
        "/work/ws/.npmrc",
        "/home/agent/projects/other/.git/hooks/pre-commit",
        "/home/agent/.bashrc",
        "/home/agent/.config/git/config",
        "/home/agent/.local/bin/git",
    ] {
        let d = file(&p, path, FileAccess::Write);
        assert!(!d.allowed, "{path}: {d:?}");
        // still readable when a read grant covers it (protected means read-only)
        if path.starts_with("/work/ws") {
            assert!(file(&p, path, FileAccess::Read).allowed, "{path} read");
        }
    }
    for path in [
        "/work/ws/src/hooks.rs",
        "/work/ws/.git/objects/ab/cdef",
        "/work/ws/.git/refs/heads/main",
        "/work/ws/.githooks-notes.md",
        "/work/ws/git/config",
        "/work/ws/.github/CODEOWNERS",
    ] {
        assert!(file(&p, path, FileAccess::Write).allowed, "{path}");
    }
}

#[test]
fn contracts_cannot_grant_write_on_protected_paths_by_spelling_tricks() {
    for w in [
        ".git/hooks",
        "./.git/hooks",
        ".git/hooks/",
        ".git/./hooks",
        ".git//hooks",
        "./.git/hooks/pre-commit",
        "/work/ws/.git/hooks",
        "//work/ws/.git/hooks",
        "/work/ws/./.git/config",
        "sub/.git/config",
        ".github/workflows/",
        "~/.bashrc",
        "~/.ssh",
        "~//.ssh",
        "~/./.ssh/",
        "/home/agent/.ssh",
        "~/.aws",
        "/etc",
        "/etc/",
        "/usr/local/bin",
        "/",
        "//",
        "/proc/self/root",
        "/var/run/docker.sock",
        "src/../.git/hooks",
        "~root/.ssh",
        "~agent/.bashrc",
    ] {
        let src = format!("{HEAD_B}[files]\nwrite = [\"{w}\"]\n");
        assert!(parse(&src).is_err(), "write = [{w:?}] was accepted");
    }
    for r in [
        "~/.ssh",
        "~/.ssh/",
        "/home/agent/.aws/credentials",
        "~/.docker/config.json",
    ] {
        let src = format!("{HEAD_B}[files]\nread = [\"{r}\"]\n");
        // reading a credential store is refused, or at least never allowed by the engine
        if let Ok(p) = parse(&src) {
            let abs = r.replace('~', "/home/agent");
            let d = file(&p, &abs, FileAccess::Read);
            assert!(!d.allowed, "read = [{r:?}]: {d:?}");
        }
    }
}

#[test]
fn home_and_workspace_given_with_dots_are_normalised_first() {
    let odd = PathContext {
        workspace: PathBuf::from("/work/./ws/"),
        home: PathBuf::from("/home/x/../agent"),
    };
    let p = Policy::parse(EXAMPLE, "red.toml", &odd).unwrap();
    assert!(
        !p.decide_file(Path::new("/home/agent/.ssh/id_rsa"), FileAccess::Read)
            .allowed
    );
    assert!(
        !p.decide_file(Path::new("/work/ws/.env"), FileAccess::Read)
            .allowed
    );
    assert!(
        p.decide_file(Path::new("/work/ws/src/a.rs"), FileAccess::Write)
            .allowed
    );
}

// ---------------------------------------------------------------------------------------
// Reasons never carry a credential
// ---------------------------------------------------------------------------------------

/// A decision's reason is logged and shown to the model: a secret the agent puts in the path
/// (or the method) must not be copied into it, whatever the verdict and whatever the action.
#[test]
fn reasons_never_echo_a_secret_from_the_path_or_method() {
    let ghp = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let log_action = format!(
        "{HEAD_B}[secrets]\naction = \"log\"\n[network]\nresidency = \"EU\"\n[[network.allow]]\nname = \"api\"\nhost = \"api.eu.mistral.ai\"\npaths = ['/v1/.*']\n[[network.allow]]\nname = \"b\"\nhost = \"{BEDROCK}\"\n"
    );
    for p in [policy(EXAMPLE), broad_paths(), policy(&log_action)] {
        for (method, host, path) in [
            ("POST", MISTRAL, format!("/v1/chat/{AWS_KEY}")),
            ("POST", MISTRAL, format!("/v1/{ghp}")),
            ("POST", MISTRAL, format!("/x/{AWS_KEY}")),
            ("GET", "api.example.com", format!("/v1/{AWS_KEY}")),
            ("GET", "api.example.com", format!("/v2/{AWS_KEY}")),
            (
                "GET",
                "api.example.com",
                "/v1/QUtJQUlPU0ZPRE5ON0VYQU1QTEU".to_string(),
            ),
            ("POST", BEDROCK, format!("/model/global.{AWS_KEY}/converse")),
            ("POST", BEDROCK, format!("/model/{AWS_KEY}.x/converse")),
            (
                "POST",
                BEDROCK,
                format!("/model/arn:aws:bedrock:us-east-1:{AWS_KEY}/converse"),
            ),
            (AWS_KEY, MISTRAL, CHAT.to_string()),
            (AWS_KEY, "api.example.com", "/v1/x".to_string()),
        ] {
            let d = p.decide_request(&facts(method, host, 443, &path));
            for needle in [AWS_KEY, ghp, "QUtJQUlPU0ZPRE5ON0VYQU1QTEU"] {
                assert!(
                    !d.reason.contains(needle),
                    "{method} {host}{path}: {}",
                    d.reason
                );
                assert!(
                    !d.region_field().unwrap_or("").contains(needle),
                    "{method} {host}{path}: {d:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Class A heuristics
// ---------------------------------------------------------------------------------------

/// Class A may write docs, tests and formatting config; a directory whose name merely starts
/// like `README` or `CHANGELOG` is not one.
#[test]
fn class_a_cannot_write_code_through_doc_like_prefixes() {
    let head_a = HEAD_B.replace("class = \"B\"", "class = \"A\"");
    for w in [
        "readme_src",
        "readme-tool/src",
        "changelog_generator",
        "authorsrc",
        "changes_engine/lib.rs",
        "contributing_bot",
        "src",
        ".",
        "build.rs",
        "docs.rs",
        "testing.rs",
    ] {
        let src = format!("{head_a}[files]\nread = [\".\"]\nwrite = [\"{w}\"]\n");
        assert!(parse(&src).is_err(), "class A write = [{w:?}] was accepted");
    }
    for w in [
        "README",
        "README.md",
        "readme.rst",
        "CHANGELOG",
        "CHANGELOG.md",
        "AUTHORS",
        "CONTRIBUTING.md",
        "docs",
        "tests",
        "rustfmt.toml",
    ] {
        let src = format!("{head_a}[files]\nread = [\".\"]\nwrite = [\"{w}\"]\n");
        assert!(
            parse(&src).is_ok(),
            "class A write = [{w:?}]: {:?}",
            parse(&src).err()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Headers that change what the server does
// ---------------------------------------------------------------------------------------

/// Google APIs, Rails, Symfony and IIS act on the method or URL named in these headers rather
/// than on the request line: a POST the rule allows would become a DELETE, or another path.
#[test]
fn method_and_url_override_headers_are_refused() {
    let p = policy(EXAMPLE);
    let plain = p.decide_request(&facts("POST", MISTRAL, 443, CHAT));
    assert!(plain.is_allowed());
    for name in [
        "x-http-method-override",
        "X-HTTP-Method-Override",
        "x-http-method",
        "x-method-override",
        "x-original-method",
        "x-original-url",
        "x-rewrite-url",
    ] {
        for value in [&b"DELETE"[..], b"/v1/files/f-1", b"POST"] {
            let headers = [("content-type", &b"application/json"[..]), (name, value)];
            let d = p.decide_request(&RequestFacts {
                headers: &headers,
                ..facts("POST", MISTRAL, 443, CHAT)
            });
            assert_eq!(d.verdict, Verdict::Deny, "{name}: {d:?}");
            assert!(
                d.reason.contains(&name.to_ascii_lowercase()),
                "{}",
                d.reason
            );
        }
    }
    // ordinary headers do not matter
    let headers = [
        ("content-type", &b"application/json"[..]),
        ("x-request-id", b"abc"),
        ("x-http-methods", b"x"),
    ];
    let d = p.decide_request(&RequestFacts {
        headers: &headers,
        ..facts("POST", MISTRAL, 443, CHAT)
    });
    assert!(d.is_allowed(), "{d:?}");
}

/// `/proc/self/root/...` and friends are magic links: a broad read grant must not make the
/// engine answer "allowed" for a credential store reached through them.
#[test]
fn proc_magic_links_are_never_decided_lexically() {
    let p = policy(&format!(
        "{HEAD_B}[files]\nread = [\"/\"]\nwrite = [\".\"]\n"
    ));
    assert!(file(&p, "/usr/share/doc/x", FileAccess::Read).allowed);
    for path in [
        "/proc/self/root/home/agent/.ssh/id_ed25519",
        "/proc/self/root/work/ws/.git/hooks/pre-commit",
        "/proc/1/root/etc/shadow",
        "/proc/thread-self/root/home/agent/.aws/credentials",
        "/proc/self/task/7/root/home/agent/.ssh/id_rsa",
        "/proc/self/cwd/../../home/agent/.ssh/id_rsa",
        "/proc/self/fd/3",
        "/proc/self/map_files/x",
        "/proc/self/exe",
        "/dev/fd/3",
        "/dev/stdin",
    ] {
        for access in [FileAccess::Read, FileAccess::Write] {
            let d = file(&p, path, access);
            assert!(!d.allowed, "{path} {access:?}: {d:?}");
        }
    }
    // other /proc files are decided as usual (the read grant on / covers them)
    assert!(file(&p, "/proc/self/status", FileAccess::Read).allowed);
    // and a contract cannot grant through them
    for (kind, path) in [
        ("read", "/proc/self/root"),
        ("read", "/proc/1/cwd/home"),
        ("write", "/proc/self/root/work/ws/src"),
        ("read", "/dev/fd"),
    ] {
        let src = format!("{HEAD_B}[files]\n{kind} = [\"{path}\"]\n");
        assert!(parse(&src).is_err(), "{kind} = [{path:?}] was accepted");
    }
}

/// Under EU residency, a host whose region depends on each request (Bedrock model ids,
/// Vertex locations) must be intercepted: a spliced tunnel would carry `global.` profiles
/// unseen.
#[test]
fn per_request_residency_hosts_cannot_be_spliced_under_eu_residency() {
    for (host, extra) in [
        (BEDROCK, "intercept = false\n"),
        (BEDROCK, "protocol = \"tcp\"\n"),
        (
            "europe-west4-aiplatform.googleapis.com",
            "intercept = false\n",
        ),
        ("aiplatform.eu.rep.googleapis.com", "protocol = \"tcp\"\n"),
    ] {
        let src = format!(
            "{HEAD_B}[network]\nresidency = \"EU\"\n[[network.allow]]\nname = \"x\"\nhost = \"{host}\"\n{extra}"
        );
        match parse(&src) {
            Err(e) => assert!(e.contains("splices"), "{e}"),
            Ok(p) => panic!(
                "{host} with {extra:?} accepted under EU residency: {:?}",
                connect(&p, host, 443)
            ),
        }
        // without residency the same rule is fine (a warning says what is not checked)
        let src = format!("{HEAD_B}[[network.allow]]\nname = \"x\"\nhost = \"{host}\"\n{extra}");
        assert!(parse(&src).is_ok(), "{host} {extra:?}");
    }
}

/// The hardening above must not break the shipped examples.
#[test]
fn every_example_still_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let src = std::fs::read_to_string(&path).expect("readable example");
            if let Err(e) = parse(&src) {
                panic!("{}: {e}", path.display());
            }
            n += 1;
        }
    }
    assert!(n >= 5, "only {n} examples found");
}

/// An injected credential goes to every host a rule matches: under a wildcard, that includes
/// an attacker's own `evil.openai.azure.com` resource.
#[test]
fn credentials_are_never_injected_under_a_wildcard() {
    let src = format!(
        "{HEAD_B}[[network.allow]]\nname = \"az\"\nhost = \"*.openai.azure.com\"\ninject = {{ header = \"api-key\", env = \"AZURE_OPENAI_KEY\" }}\n"
    );
    let e = parse(&src).expect_err("inject under a wildcard was accepted");
    assert!(e.contains("inject"), "{e}");
    let exact = format!(
        "{HEAD_B}[[network.allow]]\nname = \"az\"\nhost = \"myres.openai.azure.com\"\ninject = {{ header = \"api-key\", env = \"AZURE_OPENAI_KEY\" }}\n"
    );
    parse(&exact).unwrap_or_else(|e| panic!("{e}"));
}

/// Endpoints of the same APIs that the catalog cannot place (VPC endpoints, private service
/// connect names) are attested by the rule; their requests still get the per-request check.
#[test]
fn attested_private_endpoints_of_bedrock_and_vertex_keep_the_per_request_check() {
    for (host, bad, good) in [
        (
            "vpce-0abc123-xyz.bedrock-runtime.eu-central-1.vpce.amazonaws.com",
            "/model/global.anthropic.claude-v2/converse",
            "/model/eu.anthropic.claude-v2/converse",
        ),
        (
            "bedrock-runtime.eu-central-1.api.aws",
            "/model/us.anthropic.claude-v2/converse",
            "/model/anthropic.claude-v2/converse",
        ),
        (
            "europe-west4-aiplatform-psc1.p.googleapis.com",
            "/v1/projects/p/locations/global/publishers/google/models/g:generateContent",
            "/v1/projects/p/locations/europe-west4/publishers/google/models/g:generateContent",
        ),
    ] {
        let src = format!(
            "{HEAD_B}[network]\nresidency = \"EU\"\n[[network.allow]]\nname = \"x\"\nhost = \"{host}\"\nregion = \"EU\"\n"
        );
        let p = policy(&src);
        let d = request(&p, "POST", host, bad);
        assert_eq!(d.verdict, Verdict::Deny, "{host}{bad}: {d:?}");
        let d = request(&p, "POST", host, good);
        assert!(d.is_allowed(), "{host}{good}: {d:?}");
        // and such a rule cannot splice
        let spliced = format!("{src}intercept = false\n");
        assert!(parse(&spliced).is_err(), "{host} spliced");
    }
}

/// A contract author cannot smuggle a non-EU endpoint past the residency check by spelling it
/// differently: the check runs on the normalised name.
#[test]
fn residency_checks_the_normalised_contract_host() {
    for host in [
        "API.ANTHROPIC.COM",
        "api.anthropic.com.",
        "ａｐｉ.anthropic.com",
        "api。anthropic。com",
        "api.mistral.ai.",
        "BEDROCK-RUNTIME.US-EAST-1.AMAZONAWS.COM",
        "bedrock-runtime.eu-central-2.amazonaws.com.",
        "US-CENTRAL1-aiplatform.googleapis.com",
    ] {
        let src = format!(
            "{HEAD_B}[network]\nresidency = \"EU\"\n[[network.allow]]\nname = \"x\"\nhost = \"{host}\"\nregion = \"EU\"\n"
        );
        assert!(parse(&src).is_err(), "{host} accepted under EU residency");
    }
}

/// Cloud metadata and platform addresses are never dialled: not through a name, not through
/// a literal rule (CGNAT 100.100.100.200 and private fd00:ec2::254 could otherwise be named),
/// and not Azure's 168.63.129.16, which is a global unicast address.
#[test]
fn cloud_metadata_addresses_are_never_dialled() {
    let p = policy(EXAMPLE);
    for ip in [
        "169.254.169.254",
        "169.254.170.2",
        "100.100.100.200",
        "168.63.129.16",
        "::ffff:168.63.129.16",
        "fd00:ec2::254",
        "fd20:ce::254",
        "192.0.0.192",
    ] {
        let d = p.decide_addresses(MISTRAL, &[ip.parse().unwrap()]);
        assert_eq!(d.verdict, Verdict::Deny, "{ip}: {d:?}");
    }
    for lit in [
        "100.100.100.200",
        "[fd00:ec2::254]",
        "168.63.129.16",
        "[fd20:ce::254]",
    ] {
        let src = format!("{HEAD_B}[[network.allow]]\nname = \"x\"\nhost = \"{lit}\"\n");
        assert!(parse(&src).is_err(), "{lit} accepted as a literal rule");
    }
    // the neighbouring CGNAT and private literals are refused too: only `--connect-to`
    // reaches internal addresses
    for lit in ["100.100.100.201", "[fd00:ec2::255]"] {
        let src = format!("{HEAD_B}[[network.allow]]\nname = \"x\"\nhost = \"{lit}\"\n");
        let err = parse(&src)
            .err()
            .unwrap_or_else(|| panic!("{lit} accepted"));
        assert!(err.contains("--connect-to"), "{lit}: {err}");
    }
}

/// The flow log may lie inside the workspace (a warning); the engine still never lets the
/// agent read or rewrite it, whatever `write = ["."]` says.
#[test]
fn the_flow_log_is_never_accessible_to_the_agent() {
    let p = policy(&format!(
        "{HEAD_B}[files]\nread = [\".\"]\nwrite = [\".\"]\n[log]\npath = \"logs/flows.jsonl\"\n"
    ));
    for path in [
        "/work/ws/logs/flows.jsonl",
        "/work/ws/./logs/flows.jsonl",
        "/work/ws/src/../logs/flows.jsonl",
    ] {
        for access in [FileAccess::Read, FileAccess::Write] {
            let d = file(&p, path, access);
            assert!(!d.allowed, "{path} {access:?}: {d:?}");
            assert!(matches!(d.rule, FileRule::FlowLog(_)), "{d:?}");
        }
    }
    assert!(file(&p, "/work/ws/logs/other.txt", FileAccess::Write).allowed);
}

/// On a case-insensitive file system (macOS, ext4 casefold) `.GIT/Hooks` is git's hooks
/// directory and `~/.SSH` is the SSH directory: other casings are protected too.
#[test]
fn protected_and_credential_paths_in_other_casings() {
    let p = policy(&format!(
        "{HEAD_B}[files]\nread = [\".\", \"~\"]\nwrite = [\".\", \"~/projects\"]\n"
    ));
    for path in [
        "/work/ws/.GIT/hooks/pre-commit",
        "/work/ws/.Git/Hooks/pre-commit",
        "/work/ws/sub/.git/CONFIG",
        "/work/ws/.GITHUB/WORKFLOWS/ci.yml",
        "/work/ws/.Envrc",
        "/home/agent/.BASHRC",
        "/home/agent/.Config/Git/config",
    ] {
        assert!(!file(&p, path, FileAccess::Write).allowed, "{path}");
    }
    for path in [
        "/home/agent/.SSH/id_ed25519",
        "/home/agent/.Ssh",
        "/home/agent/.AWS/credentials",
        "/home/agent/.Docker/Config.json",
    ] {
        assert!(!file(&p, path, FileAccess::Read).allowed, "{path}");
    }
    // ordinary names that merely contain the letters are untouched
    assert!(file(&p, "/work/ws/src/githooks.rs", FileAccess::Write).allowed);
    assert!(file(&p, "/home/agent/.sshrc-notes", FileAccess::Read).allowed);
}

/// Under a wildcard rule, a host name is an exfiltration channel through DNS itself: a name
/// carrying a recognisable secret is refused before any lookup, and the reason does not echo
/// it.
#[test]
fn hosts_carrying_a_secret_are_refused_without_echoing_it() {
    let p = with_rules("[[network.allow]]\nname = \"w\"\nhost = \"*.a.example\"\n");
    assert!(connect(&p, "ok.a.example", 443).is_allowed());
    for h in [
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123.a.example",
        "SK-ANT-API03-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123.a.example",
        "x.sk-proj-abcdefghijklmnopqrstuvwxyz0123.a.example",
        "xoxb-123456789012-abcdefghijkl.a.example",
        "AKIAIOSFODNN7EXAMPLE.a.example",
        "akiaiosfodnn7example.a.example",
    ] {
        let d = connect(&p, h, 443);
        assert_eq!(d.verdict, Verdict::Deny, "{h}: {d:?}");
        assert!(
            !d.reason.to_ascii_lowercase().contains("abcdefghijkl"),
            "{}",
            d.reason
        );
        assert!(
            !d.reason.to_ascii_lowercase().contains("akiaiosfodnn7"),
            "{}",
            d.reason
        );
        let d = request(&p, "GET", h, "/");
        assert_eq!(d.verdict, Verdict::Deny, "{h}: {d:?}");
    }
}

/// The workspace stays writable wherever it lies, but a workspace that *is* `/` or a system
/// tree (or contains one) does not make `write = ["."]` a grant on the whole system.
#[test]
fn a_workspace_at_a_system_root_does_not_open_the_system() {
    let src = format!("{HEAD_B}[files]\nread = [\".\"]\nwrite = [\".\"]\n");
    for ws in ["/", "/etc", "/usr", "/var", "/usr/local/..", "/run"] {
        let c = PathContext {
            workspace: PathBuf::from(ws),
            home: PathBuf::from("/home/agent"),
        };
        assert!(
            Policy::parse(&src, "c.toml", &c).is_err(),
            "workspace {ws} made write = [\".\"] valid"
        );
    }
    for ws in [
        "/var/lib/jenkins/workspace/app",
        "/work/ws",
        "/home/agent/src",
        "/opt/x/y",
    ] {
        let c = PathContext {
            workspace: PathBuf::from(ws),
            home: PathBuf::from("/home/agent"),
        };
        Policy::parse(&src, "c.toml", &c).unwrap_or_else(|e| panic!("{ws}: {e}"));
    }
}

/// Files in `$HOME` that run code the next time a developer opens a shell, a debugger, an
/// editor or a build: sourced by the protected start-up files, or auto-loaded by tools.
#[test]
fn home_files_that_run_code_later_are_never_writable() {
    let src = format!("{HEAD_B}[files]\nwrite = [\"~\"]\n");
    let home_rw = policy(&src);
    for rel in [
        ".bash_aliases",
        ".bashrc.d/x.sh",
        ".oh-my-zsh/custom/evil.zsh",
        ".vim/plugin/evil.vim",
        ".gdbinit",
        ".tmux.conf",
        ".ipython/profile_default/startup/00.py",
        ".gradle/init.d/evil.gradle",
        ".m2/settings.xml",
        ".config/Code/User/tasks.json",
        ".local/share/applications/evil.desktop",
        ".config/environment.d/evil.conf",
    ] {
        let path = format!("/home/agent/{rel}");
        assert!(!file(&home_rw, &path, FileAccess::Write).allowed, "{path}");
    }
    assert!(file(&home_rw, "/home/agent/notes.txt", FileAccess::Write).allowed);
}

/// CI systems other than GitHub/GitLab, and directory hooks other than direnv, run code from
/// the repository with its secrets or on the developer's machine.
#[test]
fn other_ci_and_directory_hook_files_are_protected() {
    let p = policy(&format!(
        "{HEAD_B}[files]\nread = [\".\"]\nwrite = [\".\"]\n"
    ));
    for rel in [
        ".gitea/workflows/ci.yml",
        ".forgejo/workflows/ci.yml",
        "bitbucket-pipelines.yml",
        ".drone.yml",
        ".woodpecker.yml",
        ".woodpecker/build.yml",
        ".cirrus.yml",
        "appveyor.yml",
        "sub/.appveyor.yml",
        "mise.toml",
        "pkg/.mise.toml",
    ] {
        let path = format!("/work/ws/{rel}");
        assert!(!file(&p, &path, FileAccess::Write).allowed, "{path}");
        assert!(file(&p, &path, FileAccess::Read).allowed, "{path}");
    }
}

/// A Bedrock rule without `paths` would also allow the APIs that carry the model id in the
/// body (`/async-invoke`, the OpenAI-compatible `/openai/v1/...`, `bedrock-mantle`): under EU
/// residency their body is read and its model placed before anything is forwarded: an `eu.`
/// profile or a bare id goes ahead, a `global.`/`us.` profile, an ARN elsewhere, a body
/// without a model or that is not JSON are refused; `/model/...` stays decided by its path.
#[test]
fn bedrock_apis_with_the_model_in_the_body_are_placed_by_the_body_under_eu_residency() {
    use egress_policy::forge::BodyVerdict;
    let src = format!(
        "{HEAD_B}[network]\nresidency = \"EU\"\n[[network.allow]]\nname = \"b\"\nhost = \"{BEDROCK}\"\n[[network.allow]]\nname = \"mantle\"\nhost = \"bedrock-mantle.eu-central-1.api.aws\"\n"
    );
    let p = policy(&src);
    let with_body = |host: &str, path: &str, body: &str| -> Verdict {
        let facts = RequestFacts {
            method: "POST",
            scheme: Scheme::Https,
            host,
            port: 443,
            path_and_query: path,
            headers: &[],
        };
        let d = p.decide_request(&facts);
        if !d.is_allowed() {
            return Verdict::Deny;
        }
        let check = d
            .body_check
            .clone()
            .unwrap_or_else(|| panic!("{path}: the body must be checked"));
        match p.decide_body(&check, body.as_bytes(), true) {
            BodyVerdict::Allow => Verdict::Allow,
            BodyVerdict::Deny(_) => Verdict::Deny,
            other => panic!("{other:?}"),
        }
    };
    let m = "anthropic.claude-sonnet-4-5-20250929-v1:0";
    for (host, path, field) in [
        (BEDROCK, "/openai/v1/chat/completions", "model"),
        (BEDROCK, "/OPENAI/v1/responses", "model"),
        (BEDROCK, "/async-invoke", "modelId"),
        (
            "bedrock-mantle.eu-central-1.api.aws",
            "/v1/chat/completions",
            "model",
        ),
    ] {
        let body = |id: &str| format!("{{\"{field}\": \"{id}\", \"messages\": []}}");
        assert_eq!(
            with_body(host, path, &body(&format!("eu.{m}"))),
            Verdict::Allow,
            "{host}{path}"
        );
        assert_eq!(
            with_body(host, path, &body(m)),
            Verdict::Allow,
            "{host}{path} bare"
        );
        for bad in [
            format!("global.{m}"),
            format!("us.{m}"),
            format!("GLOBAL.{m}"),
            format!("arn:aws:bedrock:us-east-1:1:foundation-model/{m}"),
            format!("zz.{m}"),
        ] {
            assert_eq!(
                with_body(host, path, &body(&bad)),
                Verdict::Deny,
                "{host}{path} {bad}"
            );
        }
        assert_eq!(
            with_body(host, path, "{\"messages\": []}"),
            Verdict::Deny,
            "no model"
        );
        assert_eq!(
            with_body(host, path, "model=eu.x"),
            Verdict::Deny,
            "not JSON"
        );
        assert_eq!(
            with_body(host, path, &format!("{{\"{field}\": 7}}")),
            Verdict::Deny,
            "not a string"
        );
    }
    // An incomplete body is not decided before its end, a huge one is refused.
    let facts = RequestFacts {
        method: "POST",
        scheme: Scheme::Https,
        host: BEDROCK,
        port: 443,
        path_and_query: "/openai/v1/chat/completions",
        headers: &[],
    };
    let check = p.decide_request(&facts).body_check.unwrap();
    assert_eq!(
        p.decide_body(&check, b"{\"model\": \"eu.x\"", false),
        BodyVerdict::NeedMore
    );
    let huge = vec![b' '; egress_policy::forge::MAX_MODEL_BODY + 1];
    assert!(matches!(
        p.decide_body(&check, &huge, false),
        BodyVerdict::Deny(_)
    ));
    for path in [
        "/model/eu.anthropic.claude-v2/converse",
        "/model/anthropic.claude-v2/invoke",
        "/guardrail/gr-1/version/1/apply",
    ] {
        let d = request(&p, "POST", BEDROCK, path);
        assert!(d.is_allowed(), "{path}");
        assert!(d.body_check.is_none(), "{path} is placed by its path");
    }
    // without residency nothing is read
    let open = policy(&format!(
        "{HEAD_B}[[network.allow]]\nname = \"b\"\nhost = \"{BEDROCK}\"\n"
    ));
    let d = request(&open, "POST", BEDROCK, "/openai/v1/chat/completions");
    assert!(d.is_allowed());
    assert!(d.body_check.is_none());
}

/// Exhaustive: every Unicode scalar whose compatibility normalisation (NFKC) contains a
/// character that gives a path structure (`.`, `/`, `\`, `%`, `;`, `?`, `#`) is refused when
/// sent percent-encoded, alone or doubled, so no server-side normalisation can turn an
/// allowed path into `..`, `%2e%2e` or `;`.
#[test]
fn no_unicode_character_normalises_into_path_structure() {
    use egress_policy::request_path::normalize;
    use unicode_normalization::UnicodeNormalization;
    let structural = ['.', '/', '\\', '%', ';', '?', '#'];
    let mut checked = 0;
    for c in (0x80u32..=0x10FFFF).filter_map(char::from_u32) {
        let folded: String = std::iter::once(c).nfkc().collect();
        if !folded.chars().any(|f| structural.contains(&f)) {
            continue;
        }
        let mut buf = [0u8; 4];
        let encoded: String = c
            .encode_utf8(&mut buf)
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect();
        for path in [
            format!("/v1/{encoded}/x"),
            format!("/v1/{encoded}{encoded}/x"),
        ] {
            assert!(
                normalize(&path).is_err(),
                "U+{:04X} ({folded:?}) in {path}",
                c as u32
            );
        }
        checked += 1;
    }
    assert!(
        checked > 50,
        "only {checked} characters fold into path structure"
    );
}

/// Exhaustive: every character that IDNA processing silently drops (so that `ab.example`
/// and `a<it>b.example` are the same name) is refused in a host, so a log or a reviewer never
/// sees a name that differs invisibly from the one matched.
#[test]
fn no_invisible_character_is_silently_dropped_from_a_host() {
    let mut checked = 0;
    for c in (0x80u32..=0x10FFFF).filter_map(char::from_u32) {
        let host = format!("a{c}b.example");
        if !idna::domain_to_ascii(&host).is_ok_and(|a| a == "ab.example") {
            continue;
        }
        assert!(
            normalize_host(&host).is_err(),
            "U+{:04X} is dropped silently",
            c as u32
        );
        checked += 1;
    }
    assert!(checked > 0, "IDNA drops no character?");
}
