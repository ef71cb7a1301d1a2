//! Streaming and protocol mapping through `sandbox proxy`: server-sent events arrive as the
//! upstream sends them (not at the end), HTTP/2 and HTTP/1.1 clients work whatever the
//! upstream speaks, and a large body streams through intact.

use std::time::Duration;

use integration_tests::clients::{curl, curl_sse};
use integration_tests::contracts::{EU, INJECTED};
use integration_tests::gateway::{Gateway, GatewayOptions, Scratch};
use integration_tests::upstream::{TestCa, Upstream, SSE_EVENTS, SSE_GAP};

const HOST: &str = "api.eu.mistral.ai";
const URL: &str = "https://api.eu.mistral.ai/v1/chat/completions";

fn start(alpn: &[&str]) -> (Upstream, Gateway, Scratch) {
    start_with(alpn, &[])
}

fn start_with(alpn: &[&str], args: &[&str]) -> (Upstream, Gateway, Scratch) {
    let ca = TestCa::new();
    let up = Upstream::start(&ca, &[HOST], alpn);
    let scratch = Scratch::new("streaming");
    let mut opts = GatewayOptions::new(EU);
    opts.connect_to = vec![up.connect_to(HOST)];
    opts.upstream_ca = Some(ca.pem());
    opts.env = vec![("IT_MISTRAL_AUTH".into(), INJECTED.into())];
    opts.args = args.iter().map(|a| a.to_string()).collect();
    let gw = Gateway::start(&scratch, opts);
    (up, gw, scratch)
}

#[test]
fn sse_events_arrive_as_they_are_sent() {
    for upstream_alpn in [&["h2", "http/1.1"][..], &["http/1.1"][..]] {
        for client in ["--http1.1", "--http2"] {
            let (up, mut gw, _scratch) = start(upstream_alpn);
            let events = curl_sse(
                &gw.url(),
                &gw.ca,
                "https://api.eu.mistral.ai/v1/sse",
                &[client, "-X", "POST", "--data-binary", "{\"stream\":true}"],
            );
            assert_eq!(
                events.len(),
                SSE_EVENTS,
                "{client} / {upstream_alpn:?}: {events:?}"
            );
            // The upstream needs (SSE_EVENTS - 1) gaps to finish. The first event must arrive
            // well before that, and the events must be spread out as the upstream sent them.
            let total = SSE_GAP * (SSE_EVENTS as u32 - 1);
            let first = events[0].0;
            let spread = events[SSE_EVENTS - 1].0 - first;
            assert!(
                first + total / 2 < events[SSE_EVENTS - 1].0,
                "{client} / {upstream_alpn:?}: the first event came at {first:?}, the last at {:?}: buffered",
                events[SSE_EVENTS - 1].0
            );
            assert!(
                spread >= total.mul_f32(0.7),
                "{client} / {upstream_alpn:?}: events bunched within {spread:?}"
            );
            // No batching: nearly every gap between two events is a real pause.
            let paused = events
                .windows(2)
                .filter(|pair| pair[1].0 - pair[0].0 >= SSE_GAP / 3)
                .count();
            assert!(paused >= SSE_EVENTS - 2, "{events:?}");
            assert_eq!(up.received().len(), 1);
            let records = gw.stop();
            let end = records
                .iter()
                .find(|r| r["event"] == "end" && r["kind"] == "request")
                .expect("end record");
            assert_eq!(end["status"], 200);
            assert!(end["duration_ms"].as_f64().unwrap() >= total.as_millis() as f64 * 0.7);
        }
    }
}

#[test]
fn http2_and_http1_clients_work_whatever_the_upstream_speaks() {
    for (upstream_alpn, upstream_version) in
        [(&["h2"][..], "HTTP/2.0"), (&["http/1.1"][..], "HTTP/1.1")]
    {
        let (up, mut gw, _scratch) = start(upstream_alpn);
        for (flag, client_version) in [("--http2", "2"), ("--http1.1", "1.1")] {
            let r = curl(&gw.url(), &gw.ca, "POST", URL, Some("{\"a\":1}"), &[flag]);
            assert_eq!(r.status, 200, "{flag} -> {upstream_alpn:?}: {r:?}");
            assert_eq!(r.http_version, client_version);
            assert_eq!(r.json()["version"], upstream_version);
            assert_eq!(r.json()["body_len"], 7);
        }
        assert!(up
            .received()
            .iter()
            .all(|r| r.header("authorization") == Some(INJECTED)));
        let records = gw.stop();
        let alpns: Vec<&str> = records
            .iter()
            .filter(|r| r["event"] == "decision" && r["kind"] == "connect")
            .filter_map(|r| r["tls"]["alpn"].as_str())
            .collect();
        assert_eq!(alpns, vec!["h2", "http/1.1"], "{records:#?}");
    }
}

#[test]
fn a_large_body_streams_through_intact_and_is_counted() {
    let (up, mut gw, scratch) = start(&["h2", "http/1.1"]);
    let size = 16 * 1024 * 1024;
    let mut body = vec![b'z'; size];
    body[0] = b'{';
    let path = scratch.path.join("big.json");
    std::fs::write(&path, &body).unwrap();
    for flag in ["--http1.1", "--http2"] {
        let r = curl(
            &gw.url(),
            &gw.ca,
            "POST",
            URL,
            None,
            &[flag, "--data-binary", &format!("@{}", path.display())],
        );
        assert_eq!(r.status, 200, "{flag}: {r:?}");
        assert_eq!(r.json()["body_len"], size);
    }
    assert!(up
        .received()
        .iter()
        .all(|r| r.body.len() == size && r.body_complete));
    let records = gw.stop();
    let ends: Vec<u64> = records
        .iter()
        .filter(|r| r["event"] == "end" && r["kind"] == "request")
        .map(|r| r["bytes_out"].as_u64().unwrap())
        .collect();
    assert_eq!(ends, vec![size as u64, size as u64]);
    let _ = Duration::ZERO;
}

#[test]
fn upstream_connections_are_reused_across_requests_and_tunnels() {
    // Each proxy worker keeps its own upstream pool: with one worker every tunnel reuses the
    // same upstream connection; with two, at most two are opened for the 4 tunnels.
    for (alpn, workers) in [
        (&["h2"][..], 1),
        (&["http/1.1"][..], 1),
        (&["h2"][..], 2),
        (&["http/1.1"][..], 2),
    ] {
        let (up, mut gw, _scratch) = start_with(alpn, &["--workers", &workers.to_string()]);
        // 20 requests over one tunnel (curl reuses the connection for repeated URLs) ...
        // (curl applies -X and the body to every URL it is given.)
        let mut extra: Vec<&str> = vec!["--http1.1"];
        extra.extend(std::iter::repeat_n(URL, 19));
        let r = curl(&gw.url(), &gw.ca, "POST", URL, Some("{}"), &extra);
        assert_eq!(r.status, 200, "{r:?}");
        // ... and 3 more tunnels.
        for _ in 0..3 {
            assert_eq!(
                curl(&gw.url(), &gw.ca, "POST", URL, Some("{}"), &[]).status,
                200
            );
        }
        assert_eq!(up.received().len(), 23, "{alpn:?}");
        assert!(
            up.connections() <= workers,
            "{alpn:?}, {workers} workers: {} upstream connections for 23 requests: not reused",
            up.connections()
        );
        let records = gw.stop();
        let tunnels = records
            .iter()
            .filter(|r| r["event"] == "decision" && r["kind"] == "connect")
            .count();
        assert_eq!(tunnels, 4);
    }
}
