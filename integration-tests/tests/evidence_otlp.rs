//! OTLP export of the flow log against a real OTLP/HTTP receiver on loopback that decodes the
//! protobuf: every record arrives as a log record with its attributes, flows arrive as spans,
//! counters as metrics; a receiver that stops or is slow costs no local log line, and the
//! failures are counted in the final report.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use egress_policy::Verdict;
use integration_tests::bin::sandbox_bin;
use integration_tests::gateway::Scratch;
use integration_tests::otlp_receiver::{attr, OtlpReceiver};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use proxy::flowlog::{Event, FlowLog, FlowRecord, Kind};
use proxy::otlp::{OtlpConfig, OtlpExporter};

const SESSION: &str = "s-00000000000000b1";

/// A fresh scratch directory (removed when the test ends) and the flow-log path in it.
fn temp_log(name: &str) -> (Scratch, std::path::PathBuf) {
    let dir = Scratch::new(&format!("evidence-otlp-{name}"));
    let log = dir.join("flows.jsonl");
    (dir, log)
}

fn allowed(flow: u64) -> (FlowRecord, FlowRecord) {
    let mut d = FlowRecord::new(Event::Decision, Kind::Request);
    d.flow = Some(flow);
    d.decision = Some(Verdict::Allow);
    d.rule = Some("mistral-eu".into());
    d.reason = Some("allowed by rule mistral-eu".into());
    d.host = Some("api.eu.mistral.ai".into());
    d.port = Some(443);
    d.method = Some("POST".into());
    d.path = Some("/v1/chat/completions".into());
    d.region = Some("EU".into());
    d.jurisdiction = Some("FR".into());
    let mut e = d.clone();
    e.event = Event::End;
    e.decision = None;
    e.status = Some(200);
    e.bytes_out = Some(1200);
    e.bytes_in = Some(3400);
    e.duration_ms = Some(12.0);
    (d, e)
}

fn denied(flow: u64) -> FlowRecord {
    let mut d = FlowRecord::new(Event::Decision, Kind::Request);
    d.flow = Some(flow);
    d.decision = Some(Verdict::Deny);
    d.reason = Some("residency: api.openai.com is global (US), the contract requires EU".into());
    d.rule = Some("residency".into());
    d.host = Some("api.openai.com".into());
    d.port = Some(443);
    d.method = Some("POST".into());
    d.path = Some("/v1/chat/completions".into());
    d.status = Some(403);
    d.region = Some("global".into());
    d.jurisdiction = Some("US".into());
    d
}

fn config(endpoint: String) -> OtlpConfig {
    let mut c = OtlpConfig::new(endpoint);
    c.flush_interval = Duration::from_millis(50);
    c.request_timeout = Duration::from_millis(500);
    c.resource = vec![("sandbox.session".into(), SESSION.into())];
    c
}

fn verify_log(path: &Path) -> (i32, String) {
    let out = Command::new(sandbox_bin())
        .args(["log", "verify", path.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_arrive_as_log_records_spans_and_metrics() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let (_dir, path) = temp_log("arrive");
    let log = FlowLog::open(&path, SESSION).unwrap();
    let (sink, handle) = OtlpExporter::start(config(receiver.endpoint())).unwrap();
    log.add_sink(sink);

    log.append(FlowRecord::new(Event::SessionStart, Kind::Session))
        .unwrap();
    let (d, e) = allowed(1);
    log.append(d).unwrap();
    log.append(e).unwrap();
    log.append(denied(2)).unwrap();
    log.append(FlowRecord::new(Event::SessionEnd, Kind::Session))
        .unwrap();

    let report = handle.finish(Duration::from_secs(5)).await;
    assert!(report.complete(), "{report}");
    assert_eq!(report.records_seen, 5);
    assert_eq!(report.records_exported, 5);
    assert_eq!(report.spans_exported, 2, "{report}");

    let got = receiver.stop().await;
    assert_eq!(got.bad_requests, 0);
    assert_eq!(got.logs.len(), 5);
    let decision = &got.logs[1];
    for (key, want) in [
        ("sandbox.decision", "allow"),
        ("sandbox.rule", "mistral-eu"),
        ("server.address", "api.eu.mistral.ai"),
        ("http.request.method", "POST"),
        ("url.path", "/v1/chat/completions"),
        ("sandbox.region", "EU"),
        ("sandbox.jurisdiction", "FR"),
        ("sandbox.session", SESSION),
    ] {
        assert_eq!(
            attr(&decision.attributes, key).as_deref(),
            Some(want),
            "{key}"
        );
    }
    let end = &got.logs[2];
    assert_eq!(
        attr(&end.attributes, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(&end.attributes, "sandbox.bytes_out").as_deref(),
        Some("1200")
    );
    assert_eq!(
        attr(&end.attributes, "sandbox.bytes_in").as_deref(),
        Some("3400")
    );
    let deny = &got.logs[3];
    assert_eq!(
        attr(&deny.attributes, "sandbox.decision").as_deref(),
        Some("deny")
    );
    assert_eq!(
        attr(&deny.attributes, "http.response.status_code").as_deref(),
        Some("403")
    );
    // The body is the record's own JSON line, hash included.
    let body = match deny.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => s.clone(),
        other => panic!("body {other:?}"),
    };
    let local = std::fs::read_to_string(&path).unwrap();
    let line4 = local.lines().nth(3).unwrap();
    let v_local: serde_json::Value = serde_json::from_str(line4).unwrap();
    let v_body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v_local, v_body);

    assert_eq!(got.spans.len(), 2);
    let ok = got
        .spans
        .iter()
        .find(|s| attr(&s.attributes, "sandbox.decision").as_deref() == Some("allow"))
        .unwrap();
    assert_eq!(ok.name, "POST api.eu.mistral.ai");
    assert_eq!(
        attr(&ok.attributes, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(&ok.attributes, "sandbox.bytes_out").as_deref(),
        Some("1200")
    );
    assert!(ok.end_time_unix_nano >= ok.start_time_unix_nano && ok.start_time_unix_nano > 0);
    let blocked = got
        .spans
        .iter()
        .find(|s| attr(&s.attributes, "sandbox.decision").as_deref() == Some("deny"))
        .unwrap();
    assert_eq!(
        blocked.status.as_ref().unwrap().code,
        2,
        "denied flows are error spans"
    );
    assert_eq!(ok.trace_id, blocked.trace_id, "one trace per session");
    assert_eq!(ok.trace_id.len(), 16);
    assert!(got
        .resources
        .iter()
        .all(|r| attr(&r.attributes, "service.name").as_deref() == Some("sandbox-proxy")));

    let point = |name: &str, host: &str, decision: &str, direction: Option<&str>| -> i64 {
        let m = got
            .last_metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        let Some(metric::Data::Sum(sum)) = &m.data else {
            panic!("{name} is not a sum")
        };
        let p = sum
            .data_points
            .iter()
            .find(|p| {
                attr(&p.attributes, "server.address").as_deref() == Some(host)
                    && attr(&p.attributes, "sandbox.decision").as_deref() == Some(decision)
                    && attr(&p.attributes, "sandbox.direction").as_deref() == direction
            })
            .unwrap_or_else(|| panic!("{name} {host} {decision} missing"));
        match p.value {
            Some(number_data_point::Value::AsInt(v)) => v,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        point("sandbox.flows", "api.eu.mistral.ai", "allow", None),
        1
    );
    assert_eq!(point("sandbox.flows", "api.openai.com", "deny", None), 1);
    assert_eq!(
        point(
            "sandbox.flow.bytes",
            "api.eu.mistral.ai",
            "allow",
            Some("out")
        ),
        1200
    );
    assert_eq!(
        point(
            "sandbox.flow.bytes",
            "api.eu.mistral.ai",
            "allow",
            Some("in")
        ),
        3400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_receiver_mid_session_loses_no_local_line() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let (_dir, path) = temp_log("stop");
    let log = FlowLog::open(&path, SESSION).unwrap();
    let (sink, handle) = OtlpExporter::start(config(receiver.endpoint())).unwrap();
    log.add_sink(sink);
    for flow in 1..=25 {
        let (d, e) = allowed(flow);
        log.append(d).unwrap();
        log.append(e).unwrap();
    }
    assert!(
        receiver
            .wait_until(Duration::from_secs(10), |r| r.logs.len() == 50)
            .await
    );
    // And the exporter has seen the answer (bounded wait), so the stop cannot race it.
    let start = std::time::Instant::now();
    while handle.report().records_exported < 50 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(handle.report().records_exported, 50);
    let before = receiver.stop().await;
    assert_eq!(before.logs.len(), 50);
    // The collector is gone: every further record is still written locally.
    for flow in 26..=50 {
        let (d, e) = allowed(flow);
        log.append(d).unwrap();
        log.append(e).unwrap();
    }
    log.append(denied(51)).unwrap();
    let report = handle.finish(Duration::from_secs(5)).await;
    assert_eq!(report.records_seen, 101);
    assert_eq!(report.records_exported, 50, "{report}");
    assert_eq!(report.records_failed, 51, "{report}");
    assert!(
        report.requests_failed > 0 && report.last_error.is_some(),
        "{report}"
    );
    assert!(!report.complete());
    assert!(
        report.to_string().contains("export requests failed"),
        "{report}"
    );

    let local = std::fs::read_to_string(&path).unwrap();
    assert_eq!(local.lines().count(), 101);
    let (code, text) = verify_log(&path);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("intact, 101 records"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_collector_drops_and_counts_but_never_blocks_the_log() {
    let receiver = OtlpReceiver::start().await.unwrap();
    receiver.set_delay(Duration::from_millis(300));
    let (_dir, path) = temp_log("slow");
    let log = FlowLog::open(&path, SESSION).unwrap();
    let mut c = config(receiver.endpoint());
    c.queue_capacity = 8;
    c.batch_size = 4;
    c.request_timeout = Duration::from_millis(200);
    let (sink, handle) = OtlpExporter::start(c).unwrap();
    log.add_sink(sink);
    for flow in 1..=100 {
        let (d, e) = allowed(flow);
        log.append(d).unwrap();
        log.append(e).unwrap();
    }
    let report = handle.finish(Duration::from_secs(2)).await;
    assert_eq!(report.records_seen, 200);
    assert!(report.records_dropped_queue_full > 0, "{report}");
    assert!(report.records_exported < 200, "{report}");
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 200);
    let (code, text) = verify_log(&path);
    assert_eq!(code, 0, "{text}");
    drop(receiver);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_existed_is_reported_not_fatal() {
    // Bind and close a port so that nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_dir, path) = temp_log("absent");
    let log = FlowLog::open(&path, SESSION).unwrap();
    let (sink, handle) = OtlpExporter::start(config(format!("http://127.0.0.1:{port}"))).unwrap();
    log.add_sink(Arc::clone(&sink));
    let (d, e) = allowed(1);
    log.append(d).unwrap();
    log.append(e).unwrap();
    let report = handle.finish(Duration::from_secs(3)).await;
    assert_eq!(report.records_exported, 0);
    assert_eq!(report.records_failed, 2, "{report}");
    assert!(
        report
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains(&port.to_string()),
        "{report}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_collectors_get_verified_tls_and_the_configured_headers() {
    let (receiver, ca) = OtlpReceiver::start_tls().await.unwrap();
    let (_dir, path) = temp_log("https");
    let log = FlowLog::open(&path, SESSION).unwrap();
    let mut c = config(receiver.https_endpoint());
    c.extra_roots = vec![ca];
    c.headers = proxy::otlp::parse_headers("x-api-key=collector-key%3D1");
    let (sink, handle) = OtlpExporter::start(c).unwrap();
    log.add_sink(sink);
    let (d, e) = allowed(1);
    log.append(d).unwrap();
    log.append(e).unwrap();
    let report = handle.finish(Duration::from_secs(5)).await;
    assert!(report.complete(), "{report}");
    assert!(
        report.endpoint.starts_with("https://127.0.0.1:"),
        "{report}"
    );
    let got = receiver.stop().await;
    assert_eq!(got.logs.len(), 2);
    assert_eq!(got.spans.len(), 1);
    assert!(
        got.last_headers
            .iter()
            .any(|(k, v)| k == "x-api-key" && v == "collector-key=1"),
        "{:?}",
        got.last_headers
    );
    assert!(
        !report.to_string().contains("collector-key"),
        "headers never appear in reports"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_https_collector_gets_nothing_and_is_reported() {
    let (receiver, _ca) = OtlpReceiver::start_tls().await.unwrap();
    let (_dir, path) = temp_log("untrusted");
    let log = FlowLog::open(&path, SESSION).unwrap();
    // No extra root: the system store does not know the test CA.
    let (sink, handle) = OtlpExporter::start(config(receiver.https_endpoint())).unwrap();
    log.add_sink(sink);
    let (d, e) = allowed(1);
    log.append(d).unwrap();
    log.append(e).unwrap();
    let report = handle.finish(Duration::from_secs(5)).await;
    assert_eq!(report.records_exported, 0, "{report}");
    assert_eq!(report.records_failed, 2, "{report}");
    assert!(
        report.last_error.as_deref().unwrap_or("").contains("TLS"),
        "{report}"
    );
    let got = receiver.stop().await;
    assert!(got.logs.is_empty());
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
}

/// Synchronous callers (the supervisor is not async) get an exporter on its own thread.
#[test]
fn synchronous_callers_export_on_the_exporters_own_thread() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let receiver = runtime.block_on(OtlpReceiver::start()).unwrap();
    let (_dir, path) = temp_log("sync");
    let log = FlowLog::open(&path, SESSION).unwrap();
    let (sink, handle) = OtlpExporter::start(config(receiver.endpoint())).unwrap();
    log.add_sink(sink);
    let (d, e) = allowed(1);
    log.append(d).unwrap();
    log.append(e).unwrap();
    log.append(denied(2)).unwrap();
    let report = handle.finish_blocking(Duration::from_secs(5));
    assert!(report.complete(), "{report}");
    assert_eq!(report.records_exported, 3);
    assert_eq!(report.spans_exported, 2);
    let got = runtime.block_on(receiver.stop());
    assert_eq!(got.logs.len(), 3);
    assert_eq!(got.spans.len(), 2);
}
