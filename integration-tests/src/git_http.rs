//! A git smart-HTTP server for the push tests: `git http-backend` (CGI) behind the test
//! upstream's TLS, serving bare repositories under one root, pushes enabled.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::upstream::{Canned, Received, Responder};

/// A [`Responder`] that hands every request to `git http-backend` with `root` as
/// `GIT_PROJECT_ROOT` (every repository exported, receive-pack enabled for the user `agent`).
pub fn backend(root: PathBuf) -> Responder {
    Arc::new(move |r: &Received| {
        let (path, query) = match r.path_and_query.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (r.path_and_query.clone(), String::new()),
        };
        let mut child = Command::new("git")
            .arg("http-backend")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &root)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "safe.directory")
            .env("GIT_CONFIG_VALUE_0", "*")
            .env("GIT_PROJECT_ROOT", &root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("REMOTE_USER", "agent")
            .env("REMOTE_ADDR", "127.0.0.1")
            .env("REQUEST_METHOD", &r.method)
            .env("PATH_INFO", &path)
            .env("QUERY_STRING", &query)
            .env("CONTENT_TYPE", r.header("content-type").unwrap_or(""))
            .env("CONTENT_LENGTH", r.body.len().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run git http-backend");
        let mut stdin = child.stdin.take().expect("piped");
        let body = r.body.clone();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let out = child.wait_with_output().expect("git http-backend");
        let _ = writer.join();
        Some(cgi_response(&out.stdout))
    })
}

/// A CGI response (headers, blank line, body) as a [`Canned`] response.
fn cgi_response(out: &[u8]) -> Canned {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else {
        return Canned {
            status: 502,
            headers: Vec::new(),
            body: b"git http-backend gave no CGI headers".to_vec(),
        };
    };
    let head = String::from_utf8_lossy(&out[..end]);
    let mut status = 200;
    let mut headers = Vec::new();
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("status") {
            status = v
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
        } else {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    Canned {
        status,
        headers,
        body: out[end + sep..].to_vec(),
    }
}
