//! Arbitrary request facts against a fixed EU contract: never a panic, and an allowed request
//! always names a rule whose host, port, method and path it really matches.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use egress_policy::{PathContext, Policy, RequestFacts, Scheme, Target};
use libfuzzer_sys::fuzz_target;

static POLICY: LazyLock<Policy> = LazyLock::new(|| {
    let src = include_str!("../../../examples/eu-mistral-bedrock.toml");
    let ctx = PathContext {
        workspace: PathBuf::from("/work/ws"),
        home: PathBuf::from("/home/agent"),
    };
    Policy::parse(src, "eu-mistral-bedrock.toml", &ctx).expect("the example is valid")
});

fuzz_target!(|data: &[u8]| {
    // layout: method \n host \n path-and-query, then 2 bytes of port and 1 of scheme
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(4, '\n');
    let (Some(method), Some(host), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let tail = parts.next().unwrap_or("").as_bytes();
    let port = match tail {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 443,
    };
    let scheme = if tail.get(2).is_some_and(|b| b & 1 == 1) {
        Scheme::Http
    } else {
        Scheme::Https
    };
    let p = &*POLICY;
    let _ = p.decide_connect(Target { scheme, host, port });
    let d = p.decide_request(&RequestFacts {
        method,
        scheme,
        host,
        port,
        path_and_query: path,
        headers: &[],
    });
    if d.is_allowed() {
        assert_eq!(method, "POST");
        assert_eq!(port, 443);
        assert_eq!(scheme, Scheme::Https);
        assert!(!path.contains(".."), "{path}");
        let rule = p
            .rule(d.rule.as_deref().expect("an allow names its rule"))
            .expect("the rule exists");
        let normal = egress_policy::host::normalize_host(host).expect("an allowed host is valid");
        assert!(rule.host.matches(&normal));
    }
});
