//! Python `requests` and Node `fetch` (undici `ProxyAgent`) through `sandbox proxy`, as each
//! user: allowed, denied by the engine, refused at CONNECT; the upstream sees only the allowed
//! requests, with the injected credential.

use integration_tests::clients::{self, Reply};
use integration_tests::contracts::{EU, INJECTED};
use integration_tests::gateway::{Gateway, GatewayOptions, Scratch};
use integration_tests::upstream::{TestCa, Upstream};
use integration_tests::users::each_user;

const URL: &str = "https://api.eu.mistral.ai/v1/chat/completions";
const HOST: &str = "api.eu.mistral.ai";

type Client = fn(&str, &std::path::Path, &str, &str, Option<&str>, Option<&str>) -> Reply;

#[test]
fn python_and_node_through_the_proxy_as_each_user() {
    let all: [(&str, Client); 2] = [("python", clients::python), ("node", clients::node)];
    for user in each_user() {
        let ca = TestCa::new();
        let up = Upstream::start(&ca, &[HOST], &["h2", "http/1.1"]);
        let scratch = Scratch::new("clients");
        let mut opts = GatewayOptions::new(EU);
        opts.user = user;
        opts.connect_to = vec![up.connect_to(HOST)];
        opts.upstream_ca = Some(ca.pem());
        opts.env = vec![("IT_MISTRAL_AUTH".into(), INJECTED.into())];
        let mut gw = Gateway::start(&scratch, opts);
        for (name, client) in all {
            let ok = client(
                &gw.url(),
                &gw.ca,
                "POST",
                URL,
                Some("{\"n\":1}"),
                Some("Bearer agent-key-canary"),
            );
            assert_eq!(ok.status, 200, "{name} as {}: {ok:?}", user.label());
            assert_eq!(ok.json()["body_len"], 7);

            let denied = client(&gw.url(), &gw.ca, "GET", URL, None, None);
            assert_eq!(denied.status, 403, "{name}: {denied:?}");
            assert_eq!(denied.json()["error"], "egress_denied");

            let blocked = client(
                &gw.url(),
                &gw.ca,
                "GET",
                "https://blocked.example/",
                None,
                None,
            );
            assert_eq!(
                blocked.status, 0,
                "{name} must fail at CONNECT: {blocked:?}"
            );
            // requests names the proxy's status; undici only says the request was cancelled
            // (the log below shows the CONNECT refusal for both).
            if name == "python" {
                assert!(blocked.body.contains("403"), "{name}: {blocked:?}");
            }
        }
        let got = up.received();
        assert_eq!(got.len(), 2, "only the two POSTs arrive: {got:?}");
        for r in &got {
            assert_eq!(r.method, "POST");
            assert_eq!(r.header("authorization"), Some(INJECTED));
        }
        let records = gw.stop();
        let text = std::fs::read_to_string(&gw.log).unwrap();
        assert!(!text.contains("agent-key-canary") && !text.contains("sk-injected"));
        let count = |kind: &str, decision: &str, host: &str| {
            records
                .iter()
                .filter(|r| {
                    r["event"] == "decision"
                        && r["kind"] == kind
                        && r["decision"] == decision
                        && r["host"] == host
                })
                .count()
        };
        assert_eq!(count("request", "allow", HOST), 2);
        assert_eq!(count("request", "deny", HOST), 2);
        assert_eq!(count("connect", "deny", "blocked.example"), 2);
    }
}
