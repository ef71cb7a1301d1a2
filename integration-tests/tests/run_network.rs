//! `sandbox run` network: the only way out is the proxy. Direct TCP and UDP to servers on the
//! host's loopback fail, the sandbox has no route out, proxy-aware curl, Python and Node reach
//! an allowed local upstream (through --connect-to and --upstream-ca) and get the 403 JSON
//! reason elsewhere; every flow is in the log. Only loopback addresses are used.

use std::time::Duration;

use integration_tests::sandbox_harness::{host_tcp_server, host_udp_server, run, tagged, TestDir};
use integration_tests::upstream::{TestCa, Upstream};
use integration_tests::users::each_user;

#[test]
fn direct_tcp_and_udp_to_the_host_loopback_fail_and_there_is_no_route_out() {
    for user in each_user() {
        let dir = TestDir::new(user, "direct");
        let tcp = host_tcp_server();
        let udp = host_udp_server();
        let tcp_port = tcp.local_addr().unwrap().port();
        let udp_port = udp.local_addr().unwrap().port();
        let contract = dir.contract("write = [\".\"]\n", &[]);
        let script = format!(
            r#"
python3 - <<'PY'
import socket
s = socket.socket()
s.settimeout(3)
try:
    s.connect(("127.0.0.1", {tcp_port})); print("TCP rc=0 connected")
except OSError as e:
    print("TCP rc=1", e)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    for _ in range(3): u.sendto(b"escape", ("127.0.0.1", {udp_port}))
    print("UDP sent-inside-own-namespace")
except OSError as e:
    print("UDP rc=1", e)
PY
echo "ROUTES $(tail -n +2 /proc/net/route | wc -l)"
echo "IFACES $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ',')"
echo "V6NOTLO $(awk '$10 != "lo"' /proc/net/ipv6_route | wc -l)"
"#
        );
        let out = run(
            user,
            &dir,
            &["--contract", contract.to_str().unwrap()],
            &script,
        );
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        let tcp_line = tagged(&out.stdout, "TCP");
        assert!(tcp_line.starts_with("TCP rc=1"), "{ctx}");
        assert!(
            tcp_line.contains("Permission denied") || tcp_line.contains("refused"),
            "the agent saw no clear error: {ctx}"
        );
        assert_eq!(tagged(&out.stdout, "ROUTES"), "ROUTES 0", "{ctx}");
        assert_eq!(tagged(&out.stdout, "IFACES"), "IFACES lo,", "{ctx}");
        assert_eq!(tagged(&out.stdout, "V6NOTLO"), "V6NOTLO 0", "{ctx}");
        // Nothing reached the host's servers.
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            tcp.accept().is_err(),
            "a TCP connection reached the host {ctx}"
        );
        let mut buf = [0u8; 64];
        assert!(
            udp.recv_from(&mut buf).is_err(),
            "a UDP datagram reached the host {ctx}"
        );
    }
}

const NODE_ALLOWED: &str = r#"
const http = require('http'), tls = require('tls');
const p = new URL(process.env.HTTPS_PROXY);
const req = http.request({host: p.hostname, port: p.port, method: 'CONNECT', path: 'allowed.example:443'});
req.on('connect', (res, socket) => {
  if (res.statusCode !== 200) { console.log('NODE rc=1 connect', res.statusCode); process.exit(0); }
  const t = tls.connect({socket, servername: 'allowed.example'}, () => {
    t.write('GET /v1/models HTTP/1.1\r\nHost: allowed.example\r\nConnection: close\r\n\r\n');
  });
  let d = ''; t.on('data', c => d += c);
  t.on('end', () => console.log('NODE rc=0', d.split('\r\n\r\n')[1]));
  t.on('error', e => console.log('NODE rc=1', e.message));
});
req.on('error', e => console.log('NODE rc=1', e.message));
req.end();
"#;

const NODE_BLOCKED: &str = r#"
const http = require('http');
const p = new URL(process.env.HTTP_PROXY);
http.get({host: p.hostname, port: p.port, path: 'http://blocked.example/x', headers: {Host: 'blocked.example'}}, res => {
  let d = ''; res.on('data', c => d += c); res.on('end', () => console.log('NODEBLOCK', res.statusCode, d));
}).on('error', e => console.log('NODEBLOCK error', e.message));
"#;

#[test]
fn proxy_aware_clients_reach_an_allowed_upstream_and_get_403_json_elsewhere() {
    for user in each_user() {
        let dir = TestDir::new(user, "proxy");
        let ca = TestCa::new();
        let upstream = Upstream::start(&ca, &["allowed.example"], &["h2", "http/1.1"]);
        let ca_pem = dir.write("upstream-ca.pem", &ca.pem());
        dir.write("ws/allowed.js", NODE_ALLOWED);
        dir.write("ws/blocked.js", NODE_BLOCKED);
        let contract = dir.contract("write = [\".\"]\n", &["allowed.example"]);
        let connect_to = upstream.connect_to("allowed.example");
        let script = r#"
echo "CURL $(curl -sS https://allowed.example/v1/models 2>&1)"
echo "CURLSYS $(env -u SSL_CERT_FILE -u CURL_CA_BUNDLE curl -sS https://allowed.example/v1/models 2>&1)"
echo "BUNDLE $(grep -c 'BEGIN CERTIFICATE' "$SSL_CERT_FILE") $(cmp -s "$SSL_CERT_FILE" /etc/ssl/certs/ca-certificates.crt && echo same) $(grep -c 'BEGIN CERTIFICATE' "$NODE_EXTRA_CA_CERTS")"
echo "CURLBLOCK $(curl -sS https://blocked.example/ 2>&1)"
echo "CURLHTTPBLOCK $(curl -sS http://blocked.example/ 2>&1)"
python3 - <<'PY'
import urllib.request, urllib.error
try:
    print("PY rc=0", urllib.request.urlopen("https://allowed.example/v1/models", timeout=20).read().decode())
except Exception as e:
    print("PY rc=1", e)
try:
    urllib.request.urlopen("http://blocked.example/", timeout=20)
    print("PYBLOCK allowed")
except urllib.error.HTTPError as e:
    print("PYBLOCK", e.code, e.read().decode())
PY
node allowed.js
node blocked.js
"#;
        let out = run(
            user,
            &dir,
            &[
                "--contract",
                contract.to_str().unwrap(),
                "--connect-to",
                &connect_to,
                "--upstream-ca",
                ca_pem.to_str().unwrap(),
            ],
            script,
        );
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        let s = &out.stdout;
        assert!(
            tagged(s, "CURL").contains(r#""path":"/v1/models""#),
            "{ctx}"
        );
        assert!(
            tagged(s, "PY").starts_with("PY rc=0 ")
                && tagged(s, "PY").contains(r#""path":"/v1/models""#),
            "{ctx}"
        );
        assert!(
            tagged(s, "NODE").starts_with("NODE rc=0 ")
                && tagged(s, "NODE").contains(r#""path":"/v1/models""#),
            "{ctx}"
        );
        assert!(tagged(s, "CURLBLOCK").contains("403"), "{ctx}");
        // Tools that read the system bundle path directly trust the session CA too.
        assert!(
            tagged(s, "CURLSYS").contains(r#""path":"/v1/models""#),
            "{ctx}"
        );
        // The bundle is the session CA plus the host's roots; Node gets the session CA only.
        let bundle: Vec<&str> = tagged(s, "BUNDLE").split_whitespace().collect();
        assert!(bundle[1].parse::<u32>().unwrap() > 1, "{ctx}");
        assert_eq!(bundle[2], "same", "{ctx}");
        assert_eq!(bundle[3], "1", "{ctx}");
        for tag in ["CURLHTTPBLOCK", "PYBLOCK", "NODEBLOCK"] {
            let line = tagged(s, tag);
            assert!(
                line.contains("egress_denied") && line.contains("blocked.example"),
                "{tag}: {ctx}"
            );
        }
        assert!(tagged(s, "PYBLOCK").contains("403"), "{ctx}");
        assert!(tagged(s, "NODEBLOCK").contains("403"), "{ctx}");

        // Curl (twice), Python and Node reached the upstream; nothing else did.
        let received = upstream.received();
        assert_eq!(received.len(), 4, "{ctx}");
        assert!(
            received.iter().all(|r| r.path_and_query == "/v1/models"),
            "{ctx}"
        );

        // Every flow is in the log, between session_start and session_end, in one chain.
        let log = std::fs::read_to_string(dir.log_path()).expect("the flow log exists");
        let records: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(records.first().unwrap()["event"], "session_start", "{log}");
        assert_eq!(records.last().unwrap()["event"], "session_end", "{log}");
        assert_eq!(records.last().unwrap()["detail"]["exit_code"], 0);
        let decisions = |verdict: &str, host: &str| {
            records
                .iter()
                .filter(|r| {
                    r["event"] == "decision" && r["decision"] == verdict && r["host"] == host
                })
                .count()
        };
        assert!(
            decisions("allow", "allowed.example") >= 3,
            "curl, python and node: {log}"
        );
        assert!(
            decisions("deny", "blocked.example") >= 4,
            "the blocked attempts: {log}"
        );
        for pair in records.windows(2) {
            assert_eq!(
                pair[1]["prev"], pair[0]["hash"],
                "the chain is broken: {log}"
            );
        }
        let start = &records[0]["detail"];
        assert_eq!(start["contract_sha256"].as_str().map(str::len), Some(64));
        assert!(start["landlock_abi"].as_i64().unwrap() >= 1);
        assert_eq!(start["best_effort"], false);
        assert_eq!(start["task_id"], "IT-1");
        assert_eq!(start["class"], "B");
    }
}

#[test]
fn a_flow_log_inside_the_workspace_is_invisible_and_untouchable_inside() {
    for user in each_user() {
        let dir = TestDir::new(user, "logws");
        let contract = dir.write(
            "contract.toml",
            "version = 1\n[task]\nid = \"IT-2\"\nclass = \"B\"\nobjective = \"log in the workspace\"\n\
             done = []\nrollback = \"none\"\n[files]\nwrite = [\".\"]\n[network]\n[log]\npath = \"flows.jsonl\"\n",
        );
        let script = r#"
probe() { tag=$1; shift; out=$("$@" 2>&1); echo "$tag rc=$? $out" | tr '\n' ' '; echo; }
probe READ cat flows.jsonl
probe APPEND sh -c 'echo "{}" >> flows.jsonl'
probe TRUNCATE truncate -s 0 flows.jsonl
probe REMOVE rm -f flows.jsonl
probe RENAME mv flows.jsonl gone.jsonl
probe CURL curl -sS https://blocked.example/
"#;
        let out = run(
            user,
            &dir,
            &["--contract", contract.to_str().unwrap()],
            script,
        );
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        for tag in ["READ", "APPEND", "TRUNCATE", "REMOVE", "RENAME"] {
            let line = tagged(&out.stdout, tag);
            assert!(!line.contains("rc=0"), "{tag} succeeded: {ctx}");
            assert!(
                [
                    "Permission denied",
                    "Read-only file system",
                    "Device or resource busy"
                ]
                .iter()
                .any(|e| line.contains(e)),
                "{tag}: no clear error: {ctx}"
            );
        }
        let log = std::fs::read_to_string(dir.workspace.join("flows.jsonl")).expect("the log");
        let records: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        let events: Vec<&str> = records
            .iter()
            .map(|r| r["event"].as_str().unwrap())
            .collect();
        assert_eq!(
            events,
            ["session_start", "decision", "changes", "session_end"],
            "{log}"
        );
        assert_eq!(records[1]["host"], "blocked.example");
        assert!(!log.contains("{}\n"), "{log}");
    }
}

#[test]
fn the_contract_otlp_collector_receives_the_session_and_its_flows() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the receiver");
    for user in each_user() {
        let receiver = runtime
            .block_on(integration_tests::otlp_receiver::OtlpReceiver::start())
            .expect("start the OTLP receiver on loopback");
        let dir = TestDir::new(user, "otlp");
        let contract = dir.write(
            "contract.toml",
            &format!(
                "version = 1\n[task]\nid = \"IT-OTLP\"\nclass = \"B\"\nobjective = \"otlp\"\n\
                 done = []\nrollback = \"none\"\n[files]\nwrite = [\".\"]\n[network]\n\
                 [log]\npath = \"{}\"\notlp = \"{}\"\n",
                dir.log_path().display(),
                receiver.endpoint()
            ),
        );
        let out = run(
            user,
            &dir,
            &["--contract", contract.to_str().unwrap()],
            "curl -sS https://blocked.example/ ; true",
        );
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        let got = runtime.block_on(receiver.stop());
        let events: Vec<String> = got
            .logs
            .iter()
            .filter_map(|l| integration_tests::otlp_receiver::attr(&l.attributes, "sandbox.event"))
            .collect();
        let file_lines = std::fs::read_to_string(dir.log_path())
            .unwrap()
            .lines()
            .count();
        assert_eq!(
            got.logs.len(),
            file_lines,
            "every record is exported: {events:?} {ctx}"
        );
        assert_eq!(got.bad_requests, 0);
        assert_eq!(
            events.first().map(String::as_str),
            Some("session_start"),
            "{events:?}"
        );
        assert_eq!(
            events.last().map(String::as_str),
            Some("session_end"),
            "{events:?}"
        );
        assert!(events.iter().any(|e| e == "decision"), "{events:?}");
    }
}
