//! Attacks on `sandbox proxy` over loopback: each is refused, logged, and never reaches the
//! upstream. (Attacks that name non-loopback addresses are in `proxy_netns.rs`.)

use std::io::Write;

use integration_tests::clients::curl;
use integration_tests::contracts::{EU, INJECTED, OPEN};
use integration_tests::gateway::{Gateway, GatewayOptions, Scratch};
use integration_tests::rawclient;
use integration_tests::upstream::{TestCa, Upstream};
use serde_json::Value;

const HOST: &str = "api.eu.mistral.ai";
const URL: &str = "https://api.eu.mistral.ai/v1/chat/completions";

struct Env {
    up: Upstream,
    gw: Gateway,
    _scratch: Scratch,
    ca: TestCa,
}

fn eu_env(alpn: &[&str]) -> Env {
    let ca = TestCa::new();
    let up = Upstream::start(&ca, &[HOST], alpn);
    let scratch = Scratch::new("attacks");
    let mut opts = GatewayOptions::new(EU);
    opts.connect_to = vec![up.connect_to(HOST)];
    opts.upstream_ca = Some(ca.pem());
    opts.env = vec![("IT_MISTRAL_AUTH".into(), INJECTED.into())];
    let gw = Gateway::start(&scratch, opts);
    Env {
        up,
        gw,
        _scratch: scratch,
        ca,
    }
}

fn denials(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["event"] == "decision" && r["decision"] == "deny")
        .collect()
}

fn has_denial(records: &[Value], kind: &str, reason_part: &str) -> bool {
    denials(records).iter().any(|r| {
        r["kind"] == kind
            && r["reason"]
                .as_str()
                .unwrap_or_default()
                .contains(reason_part)
    })
}

#[test]
fn sni_must_equal_the_connect_host() {
    let mut env = eu_env(&["http/1.1"]);
    // Domain fronting: an allowed CONNECT, then a ClientHello for another name.
    for sni in [
        Some("evil.example"),
        Some("api.eu.mistral.ai.evil.example"),
        None,
    ] {
        let (status, tcp) = rawclient::connect(env.gw.port, "api.eu.mistral.ai:443");
        assert_eq!(status, 200);
        let mut tls = rawclient::tls(tcp, &env.gw.ca, sni);
        let res = rawclient::exchange(
            &mut tls,
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.eu.mistral.ai\r\nContent-Length: 2\r\n\r\n{}",
        );
        assert!(
            res.is_err() || res.as_ref().unwrap().is_empty(),
            "SNI {sni:?} got an answer: {res:?}"
        );
    }
    // Case and a trailing dot are the same host: accepted.
    let (status, tcp) = rawclient::connect(env.gw.port, "api.eu.mistral.ai:443");
    assert_eq!(status, 200);
    let mut tls = rawclient::tls(tcp, &env.gw.ca, Some("API.EU.MISTRAL.AI"));
    let ok = rawclient::exchange(
        &mut tls,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.eu.mistral.ai\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .unwrap();
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert_eq!(
        env.up.received().len(),
        1,
        "only the honest request arrives"
    );
    let records = env.gw.stop();
    let fronting = denials(&records)
        .into_iter()
        .filter(|r| {
            r["kind"] == "connect"
                && r["reason"]
                    .as_str()
                    .unwrap()
                    .contains("does not match the CONNECT host")
        })
        .count();
    assert_eq!(fronting, 2, "{records:#?}");
    assert!(has_denial(&records, "connect", "has no SNI"));
}

#[test]
fn host_and_authority_must_equal_the_tunnel_host() {
    let mut env = eu_env(&["h2", "http/1.1"]);
    let attempts: [&[u8]; 4] = [
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.eu.mistral.ai:8443\r\nContent-Length: 2\r\n\r\n{}",
        b"POST https://api.openai.com/v1/chat/completions HTTP/1.1\r\nHost: api.eu.mistral.ai\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.eu.mistral.ai\r\nHost: api.openai.com\r\nContent-Length: 2\r\n\r\n{}",
    ];
    for attempt in attempts {
        let (status, tcp) = rawclient::connect(env.gw.port, "api.eu.mistral.ai:443");
        assert_eq!(status, 200);
        let mut tls = rawclient::tls(tcp, &env.gw.ca, Some(HOST));
        let answer = rawclient::exchange(&mut tls, attempt).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 421") || answer.starts_with("HTTP/1.1 400"),
            "{}: {answer}",
            String::from_utf8_lossy(attempt)
        );
    }
    // HTTP/2: curl turns a Host header into :authority.
    let h2 = curl(
        &env.gw.url(),
        &env.gw.ca,
        "POST",
        URL,
        Some("{}"),
        &["--http2", "-H", "Host: api.openai.com"],
    );
    assert_eq!(h2.status, 421, "{h2:?}");
    assert_eq!(h2.http_version, "2");
    assert_eq!(h2.json()["error"], "misdirected_request");
    assert!(env.up.received().is_empty(), "{:?}", env.up.received());
    let records = env.gw.stop();
    let misdirected = denials(&records)
        .into_iter()
        .filter(|r| r["status"] == 421)
        .count();
    assert!(misdirected >= 4, "{records:#?}");
}

#[test]
fn smuggling_shapes_and_oversize_heads_are_refused() {
    let mut env = eu_env(&["http/1.1"]);
    let big = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.eu.mistral.ai\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\n{{}}",
        "a".repeat(100 * 1024)
    );
    let attempts: Vec<(Vec<u8>, &str)> = vec![
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.eu.mistral.ai\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.eu.mistral.ai\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}".to_vec(), "HTTP/1.1 400"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.eu.mistral.ai\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.eu.mistral.ai\r\nX-Bad: a\x01b\r\nContent-Length: 2\r\n\r\n{}".to_vec(), "HTTP/1.1 400"),
        (b"POST /v1/chat/completions HTTP/1.1\nHost: api.eu.mistral.ai\nContent-Length: 2\n\n{}".to_vec(), "HTTP/1.1 400"),
        (big.into_bytes(), "HTTP/1.1 431"),
    ];
    for (attempt, expected) in &attempts {
        let (status, tcp) = rawclient::connect(env.gw.port, "api.eu.mistral.ai:443");
        assert_eq!(status, 200);
        let mut tls = rawclient::tls(tcp, &env.gw.ca, Some(HOST));
        let answer = rawclient::exchange(&mut tls, attempt).unwrap_or_default();
        assert!(
            answer.starts_with(expected),
            "{}: {answer}",
            String::from_utf8_lossy(&attempt[..60])
        );
    }
    // The same shapes on the proxy's own listener (plain proxy requests).
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", env.gw.port)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let answer = rawclient::exchange(
        &mut tcp,
        b"POST http://api.eu.mistral.ai/v1/chat/completions HTTP/1.1\r\nHost: api.eu.mistral.ai\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
    )
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(env.up.received().is_empty(), "{:?}", env.up.received());
    let records = env.gw.stop();
    assert!(has_denial(
        &records,
        "request",
        "Content-Length together with Transfer-Encoding"
    ));
    let dup = denials(&records)
        .iter()
        .filter(|r| {
            r["reason"]
                .as_str()
                .unwrap()
                .contains("duplicate Content-Length")
        })
        .count();
    assert_eq!(dup, 2, "{records:#?}");
    assert!(has_denial(&records, "request", "Transfer-Encoding"));
    assert!(has_denial(&records, "request", "malformed request head"));
    assert!(has_denial(&records, "request", "bare LF"));
    assert!(denials(&records).iter().any(|r| r["status"] == 431));
}

#[test]
fn secrets_in_the_url_or_body_never_reach_the_upstream() {
    let mut env = eu_env(&["h2", "http/1.1"]);
    // In the URL: denied by the engine.
    let url = format!("{URL}?token=ghp_{}", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8");
    let r = curl(&env.gw.url(), &env.gw.ca, "POST", &url, Some("{}"), &[]);
    assert_eq!(r.status, 403, "{r:?}");
    // In the path itself, as a query key, and percent-encoded in the path: denied, and the
    // log (which keeps paths and query keys) must not carry it either.
    for url in [
        format!("https://{HOST}/v1/chat/completions/AKIAIOSFODNN7EXAMPLE"),
        format!("{URL}?AKIAIOSFODNN7EXAMPLE=1"),
        format!("https://{HOST}/v1/%41KIAIOSFODNN7EXAMPLE"),
    ] {
        let r = curl(&env.gw.url(), &env.gw.ca, "POST", &url, Some("{}"), &[]);
        assert_eq!(r.status, 403, "{url}: {r:?}");
    }
    // In a non-credential header: denied.
    let r = curl(
        &env.gw.url(),
        &env.gw.ca,
        "POST",
        URL,
        Some("{}"),
        &["-H", "x-debug: key=AKIAIOSFODNN7EXAMPLE"],
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert!(
        r.json()["reason"].as_str().unwrap().contains("x-debug"),
        "{r:?}"
    );
    // In the body, split by the transport however it comes: aborted before the key is sent.
    let mut body = "x".repeat(100_000);
    body.push_str("\"aws\":\"AKIAIOSFODNN7EXAMPLE\"");
    body.push_str(&"y".repeat(1000));
    for version in ["--http1.1", "--http2"] {
        let r = curl(
            &env.gw.url(),
            &env.gw.ca,
            "POST",
            URL,
            Some(&body),
            &[version],
        );
        assert_ne!(r.status, 200, "{version}: {r:?}");
    }
    for got in env.up.received() {
        assert!(
            !String::from_utf8_lossy(&got.body).contains("AKIA"),
            "the key reached the upstream"
        );
        assert!(!got.path_and_query.contains("ghp_"));
        assert!(!got.body_complete, "an aborted body must not look complete");
    }
    let records = env.gw.stop();
    let text = std::fs::read_to_string(&env.gw.log).unwrap();
    assert!(!text.contains("AKIAIOSFODNN7EXAMPLE") && !text.contains("ghp_a1B2"));
    assert!(!text.contains("%41KIAIOSFODNN7EXAMPLE"));
    assert!(
        text.contains("[redacted: carries a secret (aws-access-key)]"),
        "the log says a secret was redacted"
    );
    assert!(has_denial(&records, "request", "secret"));
    let aborted = records
        .iter()
        .filter(|r| {
            r["event"] == "end" && r["reason"].as_str().unwrap_or_default().contains("secret")
        })
        .count();
    assert_eq!(aborted, 2, "{records:#?}");
}

#[test]
fn a_name_resolving_to_loopback_is_refused_without_connect_to() {
    let scratch = Scratch::new("loopback-name");
    let mut gw = Gateway::start(&scratch, GatewayOptions::new(OPEN));
    let r = curl(&gw.url(), &gw.ca, "GET", "https://localhost/", None, &[]);
    assert_eq!(r.connect_status, 403, "{r:?}");
    let r = curl(&gw.url(), &gw.ca, "GET", "https://127.0.0.1/", None, &[]);
    assert_eq!(r.connect_status, 403, "{r:?}");
    // The proxy's own address, even by --connect-to-less name: refused, never looped.
    let own = format!("https://localhost:{}/", gw.port);
    let r = curl(&gw.url(), &gw.ca, "GET", &own, None, &[]);
    assert_eq!(r.connect_status, 403, "{r:?}");
    let records = gw.stop();
    assert!(has_denial(&records, "connect", "loopback"), "{records:#?}");
    let literal = denials(&records)
        .into_iter()
        .find(|r| r["host"] == "127.0.0.1")
        .expect("the IP literal is logged");
    assert_eq!(literal["status"], 403);
}

#[test]
fn passthrough_splices_tls_after_the_sni_check() {
    let ca = TestCa::new();
    let up = Upstream::start(&ca, &["pinned.example"], &["http/1.1"]);
    let scratch = Scratch::new("passthrough");
    let ca_file = scratch.write("upstream-ca.pem", &ca.pem());
    let mut opts = GatewayOptions::new(OPEN);
    opts.connect_to = vec![up.connect_to("pinned.example")];
    let mut gw = Gateway::start(&scratch, opts);
    // The client verifies the upstream's own certificate: the proxy did not terminate TLS.
    let r = curl(
        &gw.url(),
        &ca_file,
        "GET",
        "https://pinned.example/anything",
        None,
        &[],
    );
    assert_eq!(r.status, 200, "{r:?}");
    // Fronting through a passthrough rule: refused.
    let (status, tcp) = rawclient::connect(gw.port, "pinned.example:443");
    assert_eq!(status, 200);
    let mut tls = rawclient::tls(tcp, &ca_file, Some("evil.example"));
    let res = rawclient::exchange(&mut tls, b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    assert!(res.is_err() || res.unwrap().is_empty());
    assert_eq!(up.received().len(), 1);
    let records = gw.stop();
    let tunnel = records
        .iter()
        .find(|r| r["event"] == "decision" && r["kind"] == "tunnel" && r["decision"] == "allow")
        .expect("the tunnel is logged");
    assert_eq!(tunnel["tls"]["intercepted"], false);
    assert_eq!(tunnel["tls"]["sni"], "pinned.example");
    let end = records
        .iter()
        .find(|r| r["event"] == "end" && r["flow"] == tunnel["flow"])
        .expect("the tunnel's end record");
    assert!(end["bytes_out"].as_u64().unwrap() > 200, "{end}");
    assert!(end["bytes_in"].as_u64().unwrap() > 200, "{end}");
    assert!(has_denial(
        &records,
        "tunnel",
        "does not match the CONNECT host"
    ));
}

#[test]
fn plain_http_is_denied_unless_a_rule_allows_it() {
    let env = eu_env(&["http/1.1"]);
    let r = curl(
        &env.gw.url(),
        &env.gw.ca,
        "POST",
        "http://api.eu.mistral.ai/v1/chat/completions",
        Some("{}"),
        &[],
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.json()["error"], "egress_denied");
    // Non-proxy requests on the proxy port.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", env.gw.port)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let answer = rawclient::exchange(&mut tcp, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    drop(tcp);
    assert!(env.up.received().is_empty());
    let mut gw = env.gw;
    let records = gw.stop();
    assert!(denials(&records)
        .iter()
        .any(|r| r["kind"] == "request" && r["status"] == 403 && r["tls"].is_null()));
    let _ = env.ca;
}

#[test]
fn upstream_failures_answer_502_with_json_and_are_logged() {
    // A --connect-to target where nothing listens, and one with a certificate for another name.
    let ca = TestCa::new();
    let wrong = Upstream::start(&ca, &["someone-else.example"], &["http/1.1"]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let scratch = Scratch::new("faults");
    let mut opts = GatewayOptions::new(OPEN);
    opts.upstream_ca = Some(ca.pem());
    opts.connect_to = vec![
        format!("api.openai.com:443:127.0.0.1:{closed_port}"),
        wrong.connect_to("localhost"),
    ];
    let mut gw = Gateway::start(&scratch, opts);
    let r = curl(
        &gw.url(),
        &gw.ca,
        "POST",
        "https://api.openai.com/v1/responses",
        Some("{}"),
        &[],
    );
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(r.json()["error"], "upstream_failed");
    let r = curl(&gw.url(), &gw.ca, "GET", "https://localhost/", None, &[]);
    assert_eq!(r.status, 502, "{r:?}");
    assert!(
        r.json()["reason"].as_str().unwrap().contains("certificate"),
        "{r:?}"
    );
    assert!(
        wrong.received().is_empty(),
        "a request went to an unverified upstream"
    );
    let records = gw.stop();
    let faults: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "end" && r["status"] == 502)
        .collect();
    assert_eq!(faults.len(), 2, "{records:#?}");
    for f in faults {
        assert!(f["reason"].as_str().unwrap().starts_with("upstream failed"));
    }
}

#[test]
fn a_write_to_the_log_that_fails_refuses_the_flow() {
    // Log to /dev/full: opening works, every write fails.
    let scratch = Scratch::new("logfail");
    let ca = TestCa::new();
    let up = Upstream::start(&ca, &[HOST], &["http/1.1"]);
    let contract = scratch.write("c.toml", EU);
    let pem = scratch.write("up.pem", &ca.pem());
    let mut child = std::process::Command::new(integration_tests::bin::sandbox_bin())
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--log",
            "/dev/full",
            "--contract",
        ])
        .arg(&contract)
        .arg("--upstream-ca")
        .arg(&pem)
        .arg("--connect-to")
        .arg(up.connect_to(HOST))
        .arg("--ca-out")
        .arg(scratch.path.join("ca.pem"))
        .env("IT_MISTRAL_AUTH", INJECTED)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // session_start cannot be written either: the gateway refuses to run at all.
    let status = child.wait().unwrap();
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("session_start"), "{err}");
    assert!(up.received().is_empty());
    let _ = std::io::stderr().flush();
}

#[test]
fn an_echoed_credential_is_scrubbed_from_responses() {
    let mut env = eu_env(&["h2", "http/1.1"]);
    for flag in ["--http1.1", "--http2"] {
        let r = curl(
            &env.gw.url(),
            &env.gw.ca,
            "POST",
            "https://api.eu.mistral.ai/v1/echo-auth",
            Some("{}"),
            &[flag, "-D", "-"],
        );
        assert_eq!(r.status, 200, "{r:?}");
        let token = INJECTED.rsplit(' ').next().unwrap();
        for form in [
            token.to_string(),
            integration_tests::upstream::base64_std(token.as_bytes()),
            hex_of(token),
        ] {
            assert!(
                !r.body.contains(&form),
                "{flag}: {form} reached the client: {}",
                r.body
            );
        }
        assert!(
            r.body.contains("x-echo: ") || r.body.contains("X-Echo: "),
            "{}",
            r.body
        );
        assert!(r.body.contains("****"), "{}", r.body);
    }
    // The upstream did get the real credential.
    assert!(env
        .up
        .received()
        .iter()
        .all(|g| g.header("authorization") == Some(INJECTED)));
    env.gw.stop();
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn plain_http_is_forwarded_when_a_rule_allows_it() {
    let up = Upstream::start_plain();
    let scratch = Scratch::new("plain");
    let mut opts = GatewayOptions::new(OPEN);
    opts.connect_to = vec![format!("plain.example:80:127.0.0.1:{}", up.addr.port())];
    let mut gw = Gateway::start(&scratch, opts);
    let ca = gw.ca.clone();
    let r = curl(
        &gw.url(),
        &ca,
        "POST",
        "http://plain.example/anything?q=1",
        Some("{}"),
        &[
            "-H",
            "proxy-authorization: Basic c2VjcmV0",
            "-H",
            "x-sandbox-flow: 9",
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    // The same host over https is a different scheme: no rule allows it.
    let r = curl(&gw.url(), &ca, "GET", "https://plain.example/", None, &[]);
    assert_eq!(r.connect_status, 403, "{r:?}");
    let got = up.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path_and_query, "/anything?q=1");
    assert_eq!(got[0].header("host"), Some("plain.example"));
    assert_eq!(got[0].header("proxy-authorization"), None);
    assert_eq!(got[0].header("x-sandbox-flow"), None);
    let records = gw.stop();
    let decision = records
        .iter()
        .find(|r| r["event"] == "decision" && r["kind"] == "request" && r["decision"] == "allow")
        .expect("the plain request is logged");
    assert!(decision["tls"].is_null());
    assert_eq!(decision["addr"], "127.0.0.1");
    assert_eq!(decision["rule"], "plain");
    assert_eq!(decision["query_keys"], serde_json::json!(["q"]));
    assert!(records
        .iter()
        .any(|r| r["event"] == "end" && r["flow"] == decision["flow"] && r["status"] == 200));
}

#[test]
fn host_and_path_encodings_cannot_widen_a_rule() {
    let mut env = eu_env(&["http/1.1"]);
    // Hosts: case and a trailing dot are the same host; homographs, numeric IPv4 forms and
    // junk are not.
    for (target, expected) in [
        ("API.EU.MISTRAL.AI.:443", 200),
        ("xn--pi-7kc.eu.mistral.ai:443", 403),
        ("аpi.eu.mistral.ai:443", 403),
        ("api.eu.mistral.ai:8443", 403),
        ("0x7f.1:443", 403),
        ("2130706433:443", 403),
        ("127.1:443", 403),
        ("api.eu.mistral.ai%2e:443", 403),
        ("api.eu.mistral.ai@evil.example:443", 403),
    ] {
        let (status, _tcp) = rawclient::connect(env.gw.port, target);
        assert!(
            status == expected || (expected == 403 && status == 400),
            "CONNECT {target}: {status}"
        );
    }
    // Paths: only the exact allowed path passes; encodings of it are refused or arrive as sent.
    let paths = [
        "/v1/chat/completions/../completions",
        "/v1/chat/./completions",
        "/v1//chat/completions",
        "/v1/chat%2Fcompletions",
        "/v1/chat/completions%2F..%2Fmodels",
        "/V1/chat/completions",
        "/v1/chat/completions;x=1",
        "/v1/chat/completions%00",
        "/v1/models/../chat/completions",
    ];
    for path in paths {
        let (status, tcp) = rawclient::connect(env.gw.port, "api.eu.mistral.ai:443");
        assert_eq!(status, 200);
        let mut tls = rawclient::tls(tcp, &env.gw.ca, Some(HOST));
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: api.eu.mistral.ai\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        let answer = rawclient::exchange(&mut tls, req.as_bytes()).unwrap_or_default();
        let code = rawclient::status_of(&answer);
        assert!(code == 403 || code == 400, "{path}: {answer}");
    }
    assert!(env.up.received().is_empty(), "{:?}", env.up.received());
    let records = env.gw.stop();
    let denied_paths = records
        .iter()
        .filter(|r| r["kind"] == "request" && r["decision"] == "deny")
        .count();
    assert_eq!(denied_paths, paths.len(), "{records:#?}");
}
