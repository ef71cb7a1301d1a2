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
fn private_literals_and_metadata_are_refused_at_connect_and_logged() {
    if !netns::inside() {
        for user in each_user() {
            netns::rerun(
                user,
                "private_literals_and_metadata_are_refused_at_connect_and_logged",
            );
        }
        return;
    }
    // No contract can name a private literal (only the operator's --connect-to reaches
    // private addresses), so 10.0.0.1 and the metadata address are refused at CONNECT,
    // before anything is dialled, and both refusals are logged.
    let scratch = Scratch::new("netns-private-literal");
    let mut gw = Gateway::start(&scratch, GatewayOptions::new(OPEN));
    for target in ["10.0.0.1", "169.254.169.254"] {
        let r = curl(
            &gw.url(),
            &gw.ca,
            "GET",
            &format!("https://{target}/"),
            None,
            &["--max-time", "15"],
        );
        assert_eq!(r.connect_status, 403, "{target}: {r:?}");
    }
    let records = gw.stop();
    for target in ["10.0.0.1", "169.254.169.254"] {
        let refused: Vec<_> = denied_connects(&records)
            .into_iter()
            .filter(|r| r["host"] == target)
            .collect();
        assert_eq!(refused.len(), 1, "{target}: {records:#?}");
        assert!(refused[0]["addr"].is_null(), "{target} was never dialled");
    }
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
