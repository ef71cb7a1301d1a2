//! CONNECTs that name non-loopback addresses (cloud metadata, RFC 1918, documentation ranges,
//! IPv6 unique-local) and a DNS answer that mixes a public and a private address. Each test
//! re-runs itself inside a fresh user+network namespace that has only `lo`, as each user, so
//! that a bug cannot send a packet off the machine.

use integration_tests::clients::curl;
use integration_tests::contracts::{EU, INJECTED, OPEN};
use integration_tests::gateway::{Gateway, GatewayOptions, Scratch};
use integration_tests::netns;
use integration_tests::users::each_user;
use serde_json::Value;

fn denied_connects(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["event"] == "decision" && r["kind"] == "connect" && r["decision"] == "deny")
        .collect()
}

#[test]
fn ip_literals_and_metadata_addresses_are_refused_at_connect() {
    if !netns::inside() {
        for user in each_user() {
            netns::rerun(
                user,
                "ip_literals_and_metadata_addresses_are_refused_at_connect",
            );
        }
        return;
    }
    let scratch = Scratch::new("netns-literals");
    let mut opts = GatewayOptions::new(EU);
    opts.env = vec![("IT_MISTRAL_AUTH".into(), INJECTED.into())];
    let mut gw = Gateway::start(&scratch, opts);
    let targets = [
        (
            "https://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
        ),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
        ),
        ("https://10.0.0.1/", "10.0.0.1"),
        ("https://127.0.0.1/", "127.0.0.1"),
        ("https://192.0.2.10/", "192.0.2.10"),
        ("https://[fd00:ec2::254]/", "fd00:ec2::254"),
        (
            "https://[::ffff:169.254.169.254]/",
            "::ffff:169.254.169.254",
        ),
        ("https://100.100.100.200/", "100.100.100.200"),
    ];
    for (url, _) in targets {
        let r = curl(&gw.url(), &gw.ca, "GET", url, None, &[]);
        assert!(r.connect_status == 403 || r.status == 403, "{url}: {r:?}");
    }
    let records = gw.stop();
    let all: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "decision" && r["decision"] == "deny")
        .collect();
    for (url, host) in targets {
        assert!(
            all.iter().any(|r| r["host"]
                .as_str()
                .is_some_and(|h| h.trim_matches(['[', ']']) == host)),
            "no denial logged for {url}: {records:#?}"
        );
    }
    assert!(
        records.iter().all(|r| r["decision"] != "allow"),
        "{records:#?}"
    );
}

#[test]
fn a_rule_naming_a_private_literal_still_needs_a_route_and_is_logged() {
    if !netns::inside() {
        for user in each_user() {
            netns::rerun(
                user,
                "a_rule_naming_a_private_literal_still_needs_a_route_and_is_logged",
            );
        }
        return;
    }
    // The OPEN contract names 10.0.0.1. The engine allows a named private literal; in this
    // namespace there is no route, so the proxy answers with a fault, never a silent pass.
    let scratch = Scratch::new("netns-named-literal");
    let mut gw = Gateway::start(&scratch, GatewayOptions::new(OPEN));
    let r = curl(
        &gw.url(),
        &gw.ca,
        "GET",
        "https://10.0.0.1/",
        None,
        &["--max-time", "15"],
    );
    assert_ne!(r.status, 200, "{r:?}");
    // 169.254.169.254 is never dialled, even though another literal is named.
    let meta = curl(
        &gw.url(),
        &gw.ca,
        "GET",
        "https://169.254.169.254/",
        None,
        &[],
    );
    assert_eq!(meta.connect_status, 403, "{meta:?}");
    let records = gw.stop();
    assert!(denied_connects(&records)
        .iter()
        .any(|r| r["host"] == "169.254.169.254"));
    assert!(records
        .iter()
        .any(|r| r["host"] == "10.0.0.1" && r["event"] == "decision"));
}

#[test]
fn an_unresolvable_name_is_a_logged_fault_with_no_address() {
    if !netns::inside() {
        for user in each_user() {
            netns::rerun(
                user,
                "an_unresolvable_name_is_a_logged_fault_with_no_address",
            );
        }
        return;
    }
    // No resolver is reachable in the namespace: refused, logged as a fault, nothing dialled.
    let scratch = Scratch::new("netns-dns");
    let mut gw = Gateway::start(&scratch, GatewayOptions::new(OPEN));
    let r = curl(
        &gw.url(),
        &gw.ca,
        "POST",
        "https://api.openai.com/v1/responses",
        Some("{}"),
        &[],
    );
    assert!(matches!(r.connect_status, 502 | 504), "{r:?}");
    let records = gw.stop();
    let d = denied_connects(&records);
    assert!(
        d.iter()
            .any(|r| r["host"] == "api.openai.com" && r["addr"].is_null()),
        "{records:#?}"
    );
}

const HOSTS: &str = "127.0.0.1 localhost\n93.184.216.34 rebind.example\n10.0.0.5 rebind.example\n";

#[test]
fn a_name_with_any_forbidden_address_is_refused() {
    if !netns::inside() {
        for user in each_user() {
            netns::rerun_with_hosts(
                user,
                "a_name_with_any_forbidden_address_is_refused",
                Some(HOSTS),
            );
        }
        return;
    }
    // rebind.example resolves to a public and a private address: refused as a whole, even
    // though the first address is public, and the public one is never dialled either.
    let scratch = Scratch::new("netns-mixed");
    let mut gw = Gateway::start(&scratch, GatewayOptions::new(OPEN));
    let r = curl(
        &gw.url(),
        &gw.ca,
        "GET",
        "https://rebind.example/",
        None,
        &[],
    );
    assert_eq!(r.connect_status, 403, "{r:?}");
    let records = gw.stop();
    let d = denied_connects(&records);
    let rec = d
        .iter()
        .find(|r| r["host"] == "rebind.example")
        .expect("logged");
    assert!(
        rec["reason"].as_str().unwrap().contains("10.0.0.5"),
        "{rec}"
    );
    assert!(rec["addr"].is_null());
}
