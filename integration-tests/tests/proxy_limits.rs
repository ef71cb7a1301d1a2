//! Resource limits and the library API (`proxy::start` with already-bound listeners), with
//! small limits: the connection cap (503), slowloris heads, idle tunnels, slow upstreams (504),
//! the sink hook, stats and the shutdown report.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use egress_policy::{PathContext, Policy};
use integration_tests::clients::curl;
use integration_tests::contracts::{EU, INJECTED, OPEN};
use integration_tests::flowcheck::verify_chain;
use integration_tests::gateway::Scratch;
use integration_tests::rawclient;
use integration_tests::upstream::{TestCa, Upstream};
use proxy::{FlowRecord, FlowSink, Limits, ProxyConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

const HOST: &str = "api.eu.mistral.ai";

struct Collect(Mutex<Vec<String>>);

impl FlowSink for Collect {
    fn on_record(&self, rec: &FlowRecord) {
        self.0.lock().unwrap().push(rec.hash.clone());
    }
}

fn start(scratch: &Scratch, up: &Upstream, ca: &TestCa, limits: Limits) -> proxy::ProxyHandle {
    start_with(scratch, EU, &[up.connect_to(HOST)], ca, limits)
}

/// A proxy for `contract`, dialling each `connect_to` override, trusting `ca` upstream.
fn start_with(
    scratch: &Scratch,
    contract: &str,
    connect_to: &[String],
    ca: &TestCa,
    limits: Limits,
) -> proxy::ProxyHandle {
    let ctx = PathContext {
        workspace: scratch.path.clone(),
        home: scratch.path.clone(),
    };
    let policy = Policy::parse(contract, "contract.toml", &ctx).expect("the contract parses");
    let mut config = ProxyConfig::new(Arc::new(policy));
    config.log_path = Some(scratch.path.join("flows.jsonl"));
    config.connect_to = connect_to.iter().map(|c| c.parse().unwrap()).collect();
    config.upstream_roots = CertificateDer::pem_slice_iter(ca.pem().as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    config.credentials = HashMap::from([(
        "IT_MISTRAL_AUTH".to_string(),
        proxy::credentials::Credential::Secret(INJECTED.to_string()),
    )]);
    config.limits = limits;
    let listener = proxy::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    proxy::start(config, vec![listener]).expect("the proxy starts")
}

fn small_limits() -> Limits {
    Limits {
        max_connections: 4,
        header_read_timeout: Duration::from_secs(1),
        tls_handshake_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        upstream_response_timeout: Duration::from_secs(2),
        ..Limits::default()
    }
}

/// Waits (at most `limit`) for the peer to close; returns how long it took.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 1024];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn connections_beyond_the_cap_get_503_and_are_logged() {
    let ca = TestCa::new();
    let up = Upstream::start(&ca, &[HOST], &["http/1.1"]);
    let scratch = Scratch::new("limits-cap");
    let handle = start(
        &scratch,
        &up,
        &ca,
        Limits {
            header_read_timeout: Duration::from_secs(10),
            ..small_limits()
        },
    );
    let port = handle.local_addrs()[0].port();
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(("127.0.0.1", port)).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let answer = rawclient::exchange(
        &mut extra,
        b"CONNECT api.eu.mistral.ai:443 HTTP/1.1\r\nHost: api.eu.mistral.ai:443\r\n\r\n",
    )
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("proxy_busy"));
    drop(held);
    // Slots come back: a normal request works again.
    std::thread::sleep(Duration::from_millis(300));
    let mut again = TcpStream::connect(("127.0.0.1", port)).unwrap();
    again
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        again,
        "CONNECT api.eu.mistral.ai:443 HTTP/1.1\r\nHost: api.eu.mistral.ai:443\r\n\r\n"
    )
    .unwrap();
    assert_eq!(rawclient::status_of(&rawclient::read_head(&mut again)), 200);
    drop(again);
    let stats = handle.stats();
    assert!(stats.connections >= 6, "{stats:?}");
    let report = handle.shutdown();
    let records = verify_chain(&scratch.path.join("flows.jsonl")).unwrap();
    assert_eq!(
        report.last_hash,
        records.last().unwrap()["hash"].as_str().unwrap()
    );
    let busy = records
        .iter()
        .filter(|r| r["status"] == 503 && r["decision"] == "deny")
        .count();
    assert_eq!(busy, 1, "{records:#?}");
}

#[test]
fn slow_heads_and_idle_tunnels_are_closed() {
    let ca = TestCa::new();
    let up = Upstream::start(&ca, &[HOST], &["http/1.1"]);
    let scratch = Scratch::new("limits-slow");
    let handle = start(&scratch, &up, &ca, small_limits());
    let port = handle.local_addrs()[0].port();
    // Slowloris: a head that never ends.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"CONNECT api.eu.mistral.ai:443 HTTP/1.1\r\nX-A: 1\r\n")
        .unwrap();
    let t =
        closed_within(&mut slow, Duration::from_secs(8)).expect("the slow head was not cut off");
    assert!(t < Duration::from_secs(5), "{t:?}");
    // A tunnel that never starts TLS.
    let (status, mut quiet) = rawclient::connect(port, "api.eu.mistral.ai:443");
    assert_eq!(status, 200);
    assert!(
        closed_within(&mut quiet, Duration::from_secs(8)).is_some(),
        "a silent tunnel stayed open"
    );
    // An established TLS tunnel that goes idle.
    let (status, tcp) = rawclient::connect(port, "api.eu.mistral.ai:443");
    assert_eq!(status, 200);
    let ca_file = scratch.write("session-ca.pem", &handle.ca_cert_pem());
    let mut tls = rawclient::tls(tcp, &ca_file, Some(HOST));
    let first = rawclient::exchange(&mut tls, b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.eu.mistral.ai\r\nContent-Length: 2\r\n\r\n{}").unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let start = Instant::now();
    let mut buf = [0u8; 64];
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let n = tls.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "idle tunnel lived {:?}",
        start.elapsed()
    );
    let _ = handle.shutdown();
    let records = verify_chain(&scratch.path.join("flows.jsonl")).unwrap();
    assert!(
        records.iter().any(|r| r["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no TLS ClientHello")),
        "{records:#?}"
    );
}

#[test]
fn a_slow_upstream_gets_504_and_the_sink_sees_every_record() {
    const OPENAI: &str = "api.openai.com";
    let ca = TestCa::new();
    let up = Upstream::start(&ca, &[OPENAI], &["h2", "http/1.1"]);
    let plain = Upstream::start_plain();
    let scratch = Scratch::new("limits-504");
    // The idle timeout is shorter than the response timeout: a connection waiting on the
    // upstream is busy, not idle, so the client must get the 504, not a cut connection, on
    // every serving path (h2 and HTTP/1.1 in an intercepted tunnel, plain http).
    let limits = Limits {
        idle_timeout: Duration::from_secs(1),
        ..small_limits()
    };
    let connect_to = [
        up.connect_to(OPENAI),
        format!("plain.example:80:127.0.0.1:{}", plain.addr.port()),
    ];
    let handle = start_with(&scratch, OPEN, &connect_to, &ca, limits);
    let sink = Arc::new(Collect(Mutex::new(Vec::new())));
    handle.flow_log().add_sink(sink.clone());
    assert!(handle.session_id().starts_with("s-") && handle.session_id().len() == 18);
    assert!(handle
        .ca_cert_pem()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let ca_file = scratch.write("session-ca.pem", &handle.ca_cert_pem());
    let proxy_url = format!("http://{}", handle.local_addrs()[0]);
    let cases = [
        ("https://api.openai.com/v1/slow-head", "2", &[][..]),
        (
            "https://api.openai.com/v1/slow-head",
            "1.1",
            &["--http1.1"][..],
        ),
        ("http://plain.example/v1/slow-head", "1.1", &[][..]),
    ];
    for (url, version, extra) in cases {
        let r = curl(&proxy_url, &ca_file, "POST", url, Some("{}"), extra);
        assert_eq!(
            (r.status, r.http_version.as_str()),
            (504, version),
            "{url}: {r:?}"
        );
        assert_eq!(r.json()["error"], "upstream_timeout");
    }
    let report = handle.shutdown();
    assert_eq!(
        report.stats.allowed, 5,
        "two tunnels and three requests: {report:?}"
    );
    let records = verify_chain(&scratch.path.join("flows.jsonl")).unwrap();
    let hashes: Vec<String> = records
        .iter()
        .map(|r| r["hash"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        *sink.0.lock().unwrap(),
        hashes,
        "the sink saw every record, in order"
    );
    let ends: Vec<_> = records
        .iter()
        .filter(|r| r["event"] == "end" && r["kind"] == "request")
        .collect();
    assert_eq!(ends.len(), 3, "{records:#?}");
    for end in ends {
        assert_eq!(end["status"], 504);
        assert!(end["reason"].as_str().unwrap().contains("timeout"));
    }
}

#[test]
fn requests_beyond_the_rate_get_429_and_never_arrive() {
    let ca = TestCa::new();
    let up = Upstream::start(&ca, &[HOST], &["h2", "http/1.1"]);
    let scratch = Scratch::new("limits-rate");
    let handle = start(
        &scratch,
        &up,
        &ca,
        Limits {
            requests_per_second: 2,
            ..small_limits()
        },
    );
    let ca_file = scratch.write("session-ca.pem", &handle.ca_cert_pem());
    let proxy_url = format!("http://{}", handle.local_addrs()[0]);
    let url = "https://api.eu.mistral.ai/v1/chat/completions";
    let started = Instant::now();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "30", "--proxy", &proxy_url, "--cacert"])
        .arg(&ca_file)
        .args(["-X", "POST", "-d", "{}", "-w", "%{http_code}\n"])
        .args((0..15).flat_map(|_| ["-o", "/dev/null", url]))
        .output()
        .unwrap();
    let codes: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(codes.len(), 15, "{codes:?}");
    let ok = codes.iter().filter(|c| *c == "200").count();
    let limited = codes.iter().filter(|c| *c == "429").count();
    assert_eq!(ok + limited, 15, "{codes:?}");
    // A burst of 2, then 2 a second for as long as the 15 requests took (plus one of slack).
    let refill = (started.elapsed().as_secs_f64() * 2.0).ceil() as usize;
    assert!(
        ok >= 2 && ok <= 2 + refill + 1,
        "{codes:?} in {:?}",
        started.elapsed()
    );
    assert!(limited >= 1, "{codes:?}");
    assert_eq!(up.received().len(), ok);
    let _ = handle.shutdown();
    let records = verify_chain(&scratch.path.join("flows.jsonl")).unwrap();
    let logged = records
        .iter()
        .filter(|r| r["status"] == 429 && r["decision"] == "deny")
        .count();
    assert_eq!(logged, limited);
}
