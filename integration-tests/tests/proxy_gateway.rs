//! Acceptance of `sandbox proxy` with curl: an allowed POST reaches the (impersonated)
//! upstream with the injected credential, a GET on the same URL is refused with the JSON 403
//! and never arrives, an unlisted host is refused at CONNECT before any DNS lookup, every flow
//! is in the log, the chain verifies, and no credential value is in the log. As each user.

use integration_tests::clients::curl;
use integration_tests::contracts::{EU, INJECTED};
use integration_tests::gateway::{Gateway, GatewayOptions, Scratch};
use integration_tests::upstream::{TestCa, Upstream};
use integration_tests::users::each_user;
use serde_json::Value;

const URL: &str = "https://api.eu.mistral.ai/v1/chat/completions";
const HOST: &str = "api.eu.mistral.ai";

fn parse_ts(ts: &str) -> std::time::SystemTime {
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("ts {ts} is not RFC 3339: {e}"));
    std::time::SystemTime::from(t)
}

fn by_event<'a>(records: &'a [Value], event: &str, kind: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["event"] == event && r["kind"] == kind)
        .collect()
}

#[test]
fn acceptance_with_curl_as_each_user() {
    for user in each_user() {
        let ca = TestCa::new();
        let up = Upstream::start(&ca, &[HOST], &["h2", "http/1.1"]);
        let scratch = Scratch::new("gateway");
        let mut opts = GatewayOptions::new(EU);
        opts.user = user;
        opts.connect_to = vec![up.connect_to(HOST)];
        opts.upstream_ca = Some(ca.pem());
        opts.env = vec![("IT_MISTRAL_AUTH".into(), INJECTED.into())];
        let mut gw = Gateway::start(&scratch, opts);

        // Allowed: POST, with the agent's own credentials, which must be replaced.
        let allowed = curl(
            &gw.url(),
            &gw.ca,
            "POST",
            &format!("{URL}?api_key=query-value-canary&stream=1"),
            Some(r#"{"model":"mistral-large-latest","messages":[]}"#),
            &[
                "-H",
                "authorization: Bearer agent-own-key-canary",
                "-H",
                "x-api-key: agent-xkey-canary",
                "-H",
                "cookie: session=agent-cookie-canary",
                "-H",
                "proxy-authorization: Basic cHJveHktY2FuYXJ5",
                "-H",
                "x-sandbox-internal: forged",
            ],
        );
        assert_eq!(
            allowed.status,
            200,
            "{} allowed POST: {allowed:?}",
            user.label()
        );
        assert_eq!(
            allowed.json()["path"],
            "/v1/chat/completions?api_key=query-value-canary&stream=1"
        );
        let got = up.received();
        assert_eq!(got.len(), 1, "exactly the allowed request arrived: {got:?}");
        let r = &got[0];
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.header("authorization"),
            Some(INJECTED),
            "the credential is injected"
        );
        for stripped in [
            "x-api-key",
            "cookie",
            "proxy-authorization",
            "x-sandbox-internal",
            "proxy-connection",
        ] {
            assert_eq!(
                r.header(stripped),
                None,
                "{stripped} must not reach the upstream"
            );
        }
        assert_eq!(r.header("host").or(Some(HOST)), Some(HOST));
        assert!(r.body_complete);
        assert_eq!(r.body, br#"{"model":"mistral-large-latest","messages":[]}"#);

        // Denied by method: 403 with the JSON body, never reaches the upstream.
        let denied = curl(&gw.url(), &gw.ca, "GET", URL, None, &[]);
        assert_eq!(denied.status, 403, "{denied:?}");
        let body = denied.json();
        assert_eq!(body["error"], "egress_denied");
        assert_eq!(body["host"], HOST);
        assert!(body["reason"].as_str().unwrap().contains("GET"), "{body}");
        assert!(body.get("rule").is_some());
        assert_eq!(
            up.received().len(),
            1,
            "the denied GET reached the upstream"
        );

        // Not in the contract: refused at CONNECT with 403.
        let blocked = curl(
            &gw.url(),
            &gw.ca,
            "GET",
            "https://blocked.example/",
            None,
            &[],
        );
        assert_eq!(blocked.connect_status, 403, "{blocked:?}");
        assert_eq!(blocked.status, 0);

        let records = gw.stop();
        // The evidence side's verifier accepts what the proxy wrote.
        let verify = std::process::Command::new(integration_tests::bin::sandbox_bin())
            .args(["log", "verify"])
            .arg(&gw.log)
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "sandbox log verify: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        let text = std::fs::read_to_string(&gw.log).unwrap();
        for canary in [
            "sk-injected-CANARY",
            "agent-own-key-canary",
            "agent-xkey-canary",
            "agent-cookie-canary",
            "cHJveHktY2FuYXJ5",
            "query-value-canary",
        ] {
            assert!(!text.contains(canary), "{canary} leaked into the flow log");
        }
        assert_eq!(by_event(&records, "session_start", "session").len(), 1);
        assert_eq!(
            by_event(&records, "session_end", "session").len(),
            1,
            "stderr: {}",
            gw.stderr
        );

        // blocked.example: one CONNECT deny, decided before any DNS lookup (no address).
        let b: Vec<&Value> = by_event(&records, "decision", "connect")
            .into_iter()
            .filter(|r| r["host"] == "blocked.example")
            .collect();
        assert_eq!(b.len(), 1, "{records:#?}");
        assert_eq!(b[0]["decision"], "deny");
        assert_eq!(b[0]["status"], 403);
        assert!(
            b[0]["addr"].is_null(),
            "blocked.example was resolved: {}",
            b[0]
        );

        // Intercepted CONNECTs to the API host, allowed, with TLS facts and the pinned address.
        let tunnels: Vec<&Value> = by_event(&records, "decision", "connect")
            .into_iter()
            .filter(|r| r["host"] == HOST)
            .collect();
        assert_eq!(tunnels.len(), 2, "{tunnels:#?}");
        for t in &tunnels {
            assert_eq!(t["decision"], "allow");
            assert_eq!(t["rule"], "mistral-eu");
            assert_eq!(t["addr"], "127.0.0.1");
            assert_eq!(t["tls"]["intercepted"], true);
            assert_eq!(t["tls"]["sni"], HOST);
            assert_eq!(t["region"], "EU");
        }

        // The POST: decision (allow) then end, linked by flow id.
        let requests = by_event(&records, "decision", "request");
        let post = requests
            .iter()
            .find(|r| r["method"] == "POST")
            .expect("POST logged");
        assert_eq!(post["decision"], "allow");
        assert_eq!(post["rule"], "mistral-eu");
        assert_eq!(post["path"], "/v1/chat/completions");
        assert_eq!(post["query_keys"], serde_json::json!(["api_key", "stream"]));
        assert_eq!(post["jurisdiction"], "FR");
        assert!(
            parse_ts(post["ts"].as_str().unwrap()) <= got[0].arrived,
            "the decision record must be written before the request reaches the upstream"
        );
        let end = records
            .iter()
            .find(|r| r["event"] == "end" && r["flow"] == post["flow"])
            .expect("the POST has an end record");
        assert_eq!(end["status"], 200);
        assert_eq!(end["bytes_out"], 46);
        assert!(end["bytes_in"].as_u64().unwrap() > 0);
        assert!(end["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(end["decision"].is_null());

        // The GET: a single deny record with the status the client got.
        let get = requests
            .iter()
            .find(|r| r["method"] == "GET")
            .expect("GET logged");
        assert_eq!(get["decision"], "deny");
        assert_eq!(get["status"], 403);
        assert!(
            !records
                .iter()
                .any(|r| r["event"] == "end" && r["flow"] == get["flow"]),
            "a denied flow has no end record"
        );
        // Each decision is counted once in session_end.
        let session_end = by_event(&records, "session_end", "session")[0];
        let decisions = records.iter().filter(|r| r["event"] == "decision").count() as u64;
        assert_eq!(session_end["detail"]["flows"].as_u64(), Some(decisions));
    }
}

#[test]
fn appending_to_an_existing_log_continues_the_chain() {
    let ca = TestCa::new();
    let up = Upstream::start(&ca, &[HOST], &["http/1.1"]);
    let scratch = Scratch::new("append");
    for round in 0..2 {
        let mut opts = GatewayOptions::new(EU);
        opts.connect_to = vec![up.connect_to(HOST)];
        opts.upstream_ca = Some(ca.pem());
        opts.env = vec![("IT_MISTRAL_AUTH".into(), INJECTED.into())];
        let mut gw = Gateway::start(&scratch, opts);
        let r = curl(&gw.url(), &gw.ca, "POST", URL, Some("{}"), &[]);
        assert_eq!(r.status, 200, "{r:?}");
        let records = gw.stop();
        let sessions: std::collections::HashSet<&str> = records
            .iter()
            .map(|r| r["session"].as_str().unwrap())
            .collect();
        assert_eq!(
            sessions.len(),
            round + 1,
            "one session per run, one chain across runs"
        );
    }
}

#[test]
fn a_damaged_log_is_refused_at_start() {
    let scratch = Scratch::new("damaged");
    scratch.write("flows.jsonl", "{\"ts\":\"cut off");
    let contract = scratch.write("c.toml", EU);
    let out = std::process::Command::new(integration_tests::bin::sandbox_bin())
        .args(["proxy", "--listen", "127.0.0.1:0", "--contract"])
        .arg(&contract)
        .arg("--log")
        .arg(scratch.path.join("flows.jsonl"))
        .env("IT_MISTRAL_AUTH", INJECTED)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to append"), "{err}");
}
