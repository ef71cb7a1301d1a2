//! The `sandbox proxy` command exports its session over OpenTelemetry: with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a real loopback OTLP/HTTP receiver, an allowed
//! and a denied request arrive there as log records and spans carrying the decision, rule,
//! host, method, path, status and session, and the local log stays complete.

use std::time::Duration;

use integration_tests::clients::curl;
use integration_tests::contracts::{EU, INJECTED};
use integration_tests::gateway::{Gateway, GatewayOptions, Scratch};
use integration_tests::otlp_receiver::{attr, OtlpReceiver};
use integration_tests::upstream::{TestCa, Upstream};

const HOST: &str = "api.eu.mistral.ai";
const URL: &str = "https://api.eu.mistral.ai/v1/chat/completions";

#[test]
fn sandbox_proxy_exports_every_flow_to_the_collector() {
    // A worker thread of its own keeps the receiver serving while the test body below blocks
    // (spawning the proxy and curl).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let receiver = rt.block_on(OtlpReceiver::start()).unwrap();

    let ca = TestCa::new();
    let up = Upstream::start(&ca, &[HOST], &["http/1.1"]);
    let scratch = Scratch::new("otlp-gateway");
    let mut opts = GatewayOptions::new(EU);
    opts.connect_to = vec![up.connect_to(HOST)];
    opts.upstream_ca = Some(ca.pem());
    opts.env = vec![
        ("IT_MISTRAL_AUTH".into(), INJECTED.into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), receiver.endpoint()),
    ];
    let mut gw = Gateway::start(&scratch, opts);

    let ok = curl(&gw.url(), &gw.ca, "POST", URL, Some("{}"), &[]);
    assert_eq!(ok.status, 200, "allowed POST: {ok:?}");
    let denied = curl(&gw.url(), &gw.ca, "GET", URL, None, &[]);
    assert_eq!(denied.status, 403, "denied GET: {denied:?}");
    let records = gw.stop();
    assert!(
        gw.stderr.contains("exported"),
        "the proxy reports the exporter's outcome at the end: {}",
        gw.stderr
    );

    let got = rt.block_on(async {
        receiver
            .wait_until(Duration::from_secs(20), |r| {
                r.logs.len() >= records.len() && !r.spans.is_empty()
            })
            .await;
        receiver.received()
    });
    assert_eq!(
        got.logs.len(),
        records.len(),
        "every local record reached the collector as a log record"
    );
    assert_eq!(got.bad_requests, 0);

    let decisions: Vec<_> = got
        .logs
        .iter()
        .filter(|l| attr(&l.attributes, "sandbox.event").as_deref() == Some("decision"))
        .filter(|l| attr(&l.attributes, "sandbox.kind").as_deref() == Some("request"))
        .collect();
    let allow = decisions
        .iter()
        .find(|l| attr(&l.attributes, "sandbox.decision").as_deref() == Some("allow"))
        .expect("the allowed request was exported");
    assert_eq!(
        attr(&allow.attributes, "sandbox.rule").as_deref(),
        Some("mistral-eu")
    );
    assert_eq!(
        attr(&allow.attributes, "server.address").as_deref(),
        Some(HOST)
    );
    assert_eq!(
        attr(&allow.attributes, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        attr(&allow.attributes, "url.path").as_deref(),
        Some("/v1/chat/completions")
    );
    let local_allow = records
        .iter()
        .find(|r| r["event"] == "decision" && r["kind"] == "request" && r["decision"] == "allow")
        .expect("the local log has the allowed request");
    assert_eq!(
        attr(&allow.attributes, "sandbox.region").as_deref(),
        local_allow["region"].as_str(),
        "the exported region is the logged one"
    );
    assert!(local_allow["region"].is_string());
    let deny = decisions
        .iter()
        .find(|l| attr(&l.attributes, "sandbox.decision").as_deref() == Some("deny"))
        .expect("the denied request was exported");
    assert_eq!(
        attr(&deny.attributes, "http.response.status_code").as_deref(),
        Some("403")
    );
    let session = records[0]["session"].as_str().unwrap().to_string();
    assert!(got
        .logs
        .iter()
        .all(|l| attr(&l.attributes, "sandbox.session").as_deref() == Some(session.as_str())));
    assert!(
        got.spans.iter().any(|s| s.name.contains(HOST)
            || attr(&s.attributes, "server.address").as_deref() == Some(HOST)),
        "the finished flow is a span: {:?}",
        got.spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
}
