//! Real HTTP clients driven through the proxy: curl, Python `requests`, Node `undici`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a client got back.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status (0 when the client failed before a response, e.g. CONNECT refused).
    pub status: u16,
    /// The response body.
    pub body: String,
    /// The HTTP version the client spoke inside the tunnel (`1.1`, `2`), when known.
    pub http_version: String,
    /// The client's stderr (diagnostics).
    pub stderr: String,
    /// curl only: the status of the proxy's answer to CONNECT (0 when none).
    pub connect_status: u16,
}

impl Reply {
    /// The body parsed as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} / {}", self.body, self.stderr))
    }
}

/// One request with curl through `proxy`, trusting `ca`. `extra` are more curl arguments.
pub fn curl(
    proxy: &str,
    ca: &Path,
    method: &str,
    url: &str,
    body: Option<&str>,
    extra: &[&str],
) -> Reply {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "30", "--proxy", proxy, "--cacert"])
        .arg(ca)
        .args([
            "-X",
            method,
            "-o",
            "-",
            "-w",
            "\n%{http_code} %{http_version} %{http_connect}",
        ]);
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "--data-binary", b]);
    }
    cmd.args(extra).arg(url);
    let out = cmd.output().expect("run curl (apt-get install curl)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    let mut parts = tail.split_whitespace();
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let http_version = parts.next().unwrap_or_default().to_string();
    let connect_status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    Reply {
        status,
        body: body.to_string(),
        http_version,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        connect_status,
    }
}

/// The arrival times of `data:` lines of an SSE stream fetched with curl (unbuffered), measured
/// from the start of the request, and the lines themselves.
pub fn curl_sse(proxy: &str, ca: &Path, url: &str, extra: &[&str]) -> Vec<(Duration, String)> {
    let start = Instant::now();
    let mut child = Command::new("curl")
        .args([
            "-sS",
            "-N",
            "--max-time",
            "30",
            "--proxy",
            proxy,
            "--cacert",
        ])
        .arg(ca)
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run curl");
    let stdout = child.stdout.take().expect("stdout");
    let mut events = Vec::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if line.starts_with("data:") {
            events.push((start.elapsed(), line));
        }
    }
    let _ = child.wait();
    events
}

const PYTHON_CLIENT: &str = r#"
import json, sys
import requests
proxy, ca, method, url, body, auth = sys.argv[1:7]
headers = {"content-type": "application/json"}
if auth:
    headers["authorization"] = auth
try:
    r = requests.request(method, url, data=body.encode() if body else None, headers=headers,
                         proxies={"http": proxy, "https": proxy}, verify=ca, timeout=30)
    print(json.dumps({"status": r.status_code, "body": r.text}))
except requests.exceptions.ProxyError as e:
    print(json.dumps({"status": 0, "body": str(e)}))
"#;

/// One request with Python `requests` through `proxy`.
pub fn python(
    proxy: &str,
    ca: &Path,
    method: &str,
    url: &str,
    body: Option<&str>,
    auth: Option<&str>,
) -> Reply {
    let out = Command::new("python3")
        .arg("-c")
        .arg(PYTHON_CLIENT)
        .args([
            proxy,
            &ca.display().to_string(),
            method,
            url,
            body.unwrap_or(""),
            auth.unwrap_or(""),
        ])
        .output()
        .expect("run python3 (apt-get install python3-requests)");
    parse_json_reply(&out, "python3 with requests")
}

const NODE_CLIENT: &str = r#"
const { ProxyAgent, fetch } = require(process.env.UNDICI_PATH);
const fs = require("fs");
const [proxy, ca, method, url, body, auth] = process.argv.slice(1);
const dispatcher = new ProxyAgent({ uri: proxy, requestTls: { ca: fs.readFileSync(ca) } });
const headers = { "content-type": "application/json" };
if (auth) headers["authorization"] = auth;
fetch(url, { method, body: body || undefined, headers, dispatcher })
  .then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() })))
  .catch((e) => console.log(JSON.stringify({ status: 0, body: String(e && (e.cause || e)) })));
"#;

/// The undici package installed by `npm ci --prefix integration-tests/node`.
pub fn undici_path() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("node/node_modules/undici");
    assert!(
        p.join("package.json").is_file(),
        "{} is missing: run `npm ci --prefix integration-tests/node`",
        p.display()
    );
    p
}

/// One request with Node's fetch (undici `ProxyAgent`) through `proxy`.
pub fn node(
    proxy: &str,
    ca: &Path,
    method: &str,
    url: &str,
    body: Option<&str>,
    auth: Option<&str>,
) -> Reply {
    let out = Command::new("node")
        .arg("-e")
        .arg(NODE_CLIENT)
        .args([
            proxy,
            &ca.display().to_string(),
            method,
            url,
            body.unwrap_or(""),
            auth.unwrap_or(""),
        ])
        .env("UNDICI_PATH", undici_path())
        .output()
        .expect("run node (apt-get install nodejs)");
    parse_json_reply(&out, "node with undici")
}

fn parse_json_reply(out: &std::process::Output, who: &str) -> Reply {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{who} printed no JSON ({e}): {stdout} {stderr}"));
    Reply {
        status: v["status"].as_u64().unwrap_or(0) as u16,
        body: v["body"].as_str().unwrap_or_default().to_string(),
        http_version: String::new(),
        stderr,
        connect_status: 0,
    }
}
