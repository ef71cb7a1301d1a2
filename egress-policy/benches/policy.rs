//! Criterion benches for the policy engine's hot paths: what the proxy asks per CONNECT and
//! per request. Run with `cargo bench -p egress-policy`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use egress_policy::{PathContext, Policy, RequestFacts, Scheme, Target};

/// The same contract `bench/run.sh` gives the proxy, plus a second rule so matching has to skip.
const CONTRACT: &str = include_str!("../tests/fixtures/contract-bench.toml");

fn policy() -> Policy {
    let ctx = PathContext {
        workspace: PathBuf::from("/work/ws"),
        home: PathBuf::from("/home/bench"),
    };
    match Policy::parse(CONTRACT, "bench.toml", &ctx) {
        Ok(p) => p,
        Err(e) => panic!("the bench contract does not parse: {e}"),
    }
}

fn benches(c: &mut Criterion) {
    let p = policy();
    let headers: [(&str, &[u8]); 3] = [
        ("content-type", b"application/json"),
        ("authorization", b"Bearer bench-not-a-secret"),
        ("user-agent", b"bench"),
    ];
    let allowed = RequestFacts {
        method: "POST",
        scheme: Scheme::Https,
        host: "api.eu.mistral.ai",
        port: 443,
        path_and_query: "/v1/chat/completions",
        headers: &headers,
    };
    let denied = RequestFacts {
        method: "DELETE",
        path_and_query: "/v2/files?purpose=x",
        ..allowed
    };

    c.bench_function("parse the contract", |b| b.iter(|| black_box(policy())));
    c.bench_function("decide_connect allowed host", |b| {
        b.iter(|| {
            p.decide_connect(black_box(Target {
                scheme: Scheme::Https,
                host: "api.eu.mistral.ai",
                port: 443,
            }))
        })
    });
    c.bench_function("decide_connect unknown host", |b| {
        b.iter(|| {
            p.decide_connect(black_box(Target {
                scheme: Scheme::Https,
                host: "blocked.example",
                port: 443,
            }))
        })
    });
    c.bench_function("decide_request allowed POST", |b| {
        b.iter(|| p.decide_request(black_box(&allowed)))
    });
    c.bench_function("decide_request denied", |b| {
        b.iter(|| p.decide_request(black_box(&denied)))
    });
    let addrs = [IpAddr::V4(Ipv4Addr::new(51, 159, 0, 1))];
    c.bench_function("decide_addresses public", |b| {
        b.iter(|| p.decide_addresses(black_box("api.eu.mistral.ai"), black_box(&addrs)))
    });
}

criterion_group!(policy_benches, benches);
criterion_main!(policy_benches);
