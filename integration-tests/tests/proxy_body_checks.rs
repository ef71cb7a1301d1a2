//! Bodies the proxy reads before a request may go ahead, through `sandbox proxy` with curl:
//! a GitHub GraphQL merge is refused before anything reaches the upstream, a query goes
//! through with its body intact (also a large one, read in many frames); under EU residency
//! a `bedrock-mantle` request with a `global.` model is refused, an `eu.` one forwarded
//! byte for byte. Loopback only.

use integration_tests::clients::curl;
use integration_tests::gateway::{Gateway, GatewayOptions, Scratch};
use integration_tests::upstream::{TestCa, Upstream};

const GITHUB: &str = "api.github.com";
const MANTLE: &str = "bedrock-mantle.eu-central-1.api.aws";

/// `sandbox proxy` with `contract`, `host` pointed at a fresh TLS upstream.
fn gateway(host: &str, contract: &str, name: &str) -> (Upstream, Scratch, Gateway) {
    let ca = TestCa::new();
    let up = Upstream::start(&ca, &[host], &["http/1.1"]);
    let scratch = Scratch::new(name);
    let mut opts = GatewayOptions::new(contract);
    opts.connect_to = vec![up.connect_to(host)];
    opts.upstream_ca = Some(ca.pem());
    let gw = Gateway::start(&scratch, opts);
    (up, scratch, gw)
}

fn received_bodies(up: &Upstream, path: &str) -> Vec<Vec<u8>> {
    up.received()
        .into_iter()
        .filter(|r| r.path_and_query == path)
        .map(|r| r.body)
        .collect()
}

#[test]
fn graphql_merges_are_refused_before_the_upstream_and_queries_arrive_intact() {
    let contract = "version = 1\n[task]\nid = \"IT-15-gql\"\nclass = \"B\"\nobjective = \"o\"\ndone = []\nrollback = \"none\"\n[[network.allow]]\nname = \"github-api\"\nhost = \"api.github.com\"\nmethods = [\"GET\", \"POST\", \"PUT\"]\n";
    let (up, scratch, mut gw) = gateway(GITHUB, contract, "body-checks-github");
    let url = format!("https://{GITHUB}/graphql");

    let merge = r#"{"query":"mutation { x: mergePullRequest(input: {pullRequestId: \"1\"}) { clientMutationId } }"}"#;
    let r = curl(
        &gw.url(),
        &gw.ca,
        "POST",
        &url,
        Some(merge),
        &["-H", "content-type: application/json"],
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("the agent never merges"), "{}", r.body);
    assert!(
        received_bodies(&up, "/graphql").is_empty(),
        "nothing reached the upstream"
    );

    let query = r#"{"query":"query { viewer { login } }"}"#;
    let r = curl(
        &gw.url(),
        &gw.ca,
        "POST",
        &url,
        Some(query),
        &["-H", "content-type: application/json"],
    );
    assert_eq!(r.status, 200, "{r:?}");
    // A large document: read whole (in many frames), forwarded byte for byte.
    let big = format!(
        "{{\"query\":\"query {{ viewer {{ login }} }} # {}\"}}",
        "x".repeat(300_000)
    );
    let big_file = scratch.write("big.json", &big);
    let at = format!("@{}", big_file.display());
    let r = curl(
        &gw.url(),
        &gw.ca,
        "POST",
        &url,
        None,
        &["-H", "content-type: application/json", "--data-binary", &at],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let bodies = received_bodies(&up, "/graphql");
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0], query.as_bytes());
    assert_eq!(bodies[1], big.as_bytes());

    // A REST merge is refused on its path; a compressed body that must be checked too.
    let r = curl(
        &gw.url(),
        &gw.ca,
        "PUT",
        &format!("https://{GITHUB}/repos/o/r/pulls/1/merge"),
        Some("{}"),
        &[],
    );
    assert_eq!(r.status, 403);
    // Compressed bodies are decoded for the check and forwarded as they came; an encoding
    // the proxy does not decode, or a corrupt one, is refused.
    let gz = |text: &str| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    let merge_gz = scratch.path.join("merge.gz");
    std::fs::write(&merge_gz, gz(merge)).unwrap();
    let query_gz = scratch.path.join("query.gz");
    std::fs::write(&query_gz, gz(query)).unwrap();
    let send = |file: &std::path::Path, encoding: &str| {
        let at = format!("@{}", file.display());
        let enc = format!("content-encoding: {encoding}");
        curl(
            &gw.url(),
            &gw.ca,
            "POST",
            &url,
            None,
            &["-H", &enc, "--data-binary", &at],
        )
    };
    assert_eq!(send(&merge_gz, "gzip").status, 403, "a gzipped merge");
    assert_eq!(received_bodies(&up, "/graphql").len(), 2);
    assert_eq!(send(&query_gz, "gzip").status, 200, "a gzipped query");
    let bodies = received_bodies(&up, "/graphql");
    assert_eq!(
        bodies.last().unwrap(),
        &std::fs::read(&query_gz).unwrap(),
        "forwarded as it came"
    );
    assert_eq!(
        send(&query_gz, "br").status,
        403,
        "an encoding the proxy does not decode"
    );
    let plain = scratch.write("plain.json", query);
    assert_eq!(send(&plain, "gzip").status, 403, "not gzip at all");
    let records = gw.stop();
    assert!(records.iter().any(|r| r["decision"] == "deny"
        && r["reason"]
            .as_str()
            .unwrap_or("")
            .contains("mergePullRequest")));
}

#[test]
fn a_body_that_names_a_global_model_is_refused_under_eu_residency() {
    let contract = "version = 1\n[task]\nid = \"IT-15-model\"\nclass = \"B\"\nobjective = \"o\"\ndone = []\nrollback = \"none\"\n[network]\nresidency = \"EU\"\n[[network.allow]]\nname = \"mantle\"\nhost = \"bedrock-mantle.eu-central-1.api.aws\"\nmethods = [\"POST\"]\n";
    let (up, _scratch, mut gw) = gateway(MANTLE, contract, "body-checks-mantle");
    let url = format!("https://{MANTLE}/v1/chat/completions");
    let model = "anthropic.claude-sonnet-4-5-20250929-v1:0";
    let body = |id: &str| {
        format!("{{\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}],\"model\":\"{id}\"}}")
    };
    for bad in [format!("global.{model}"), format!("us.{model}")] {
        let r = curl(&gw.url(), &gw.ca, "POST", &url, Some(&body(&bad)), &[]);
        assert_eq!(r.status, 403, "{bad}: {r:?}");
        assert!(r.body.contains("residency EU"), "{}", r.body);
    }
    let r = curl(
        &gw.url(),
        &gw.ca,
        "POST",
        &url,
        Some("{\"messages\":[]}"),
        &[],
    );
    assert_eq!(r.status, 403, "no model: {r:?}");
    assert!(received_bodies(&up, "/v1/chat/completions").is_empty());
    let good = body(&format!("eu.{model}"));
    let r = curl(&gw.url(), &gw.ca, "POST", &url, Some(&good), &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        received_bodies(&up, "/v1/chat/completions"),
        vec![good.into_bytes()]
    );
    gw.stop();
}
