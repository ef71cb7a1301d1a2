//! A small writer of synthetic flow logs for tests, following `docs/flow-log.md` exactly: it
//! builds records with `proxy::flowlog::FlowRecord` and seals them into the hash chain, but
//! unlike the proxy's writer it sets the timestamps itself, so tests control time.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use egress_policy::Verdict;
use proxy::flowlog::{Event, FlowRecord, Kind, TlsInfo, GENESIS_PREV};
use serde_json::Value;

/// One allowed or denied HTTP request to write.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Destination host.
    pub host: &'a str,
    /// HTTP method.
    pub method: &'a str,
    /// Path without query.
    pub path: &'a str,
    /// Region the proxy would log.
    pub region: Option<&'a str>,
    /// Jurisdiction the proxy would log.
    pub jurisdiction: Option<&'a str>,
    /// Rule that decided.
    pub rule: Option<&'a str>,
    /// Bytes client → upstream (allowed flows).
    pub bytes_out: u64,
    /// Bytes upstream → client (allowed flows).
    pub bytes_in: u64,
}

impl<'a> Request<'a> {
    /// A request with EU region and no bytes.
    pub fn new(host: &'a str, method: &'a str, path: &'a str) -> Self {
        Request {
            host,
            method,
            path,
            region: Some("EU"),
            jurisdiction: Some("FR"),
            rule: Some("llm"),
            bytes_out: 0,
            bytes_in: 0,
        }
    }
}

/// Writes a hash-chained flow log with controlled timestamps.
pub struct SyntheticLog {
    out: BufWriter<File>,
    prev: String,
    session: String,
    seq: u64,
    next_flow: u64,
    micros: u64,
}

/// Midnight of the synthetic log's day, as `YYYY-MM-DD`.
pub const DAY: &str = "2026-11-21";

impl SyntheticLog {
    /// Creates (truncates) `path`; the clock starts at `DAY`T10:00:00Z.
    pub fn create(path: &Path) -> std::io::Result<SyntheticLog> {
        Ok(SyntheticLog {
            out: BufWriter::with_capacity(1 << 20, File::create(path)?),
            prev: GENESIS_PREV.to_string(),
            session: "s-00000000000000a1".to_string(),
            seq: 0,
            next_flow: 1,
            micros: 10 * 3600 * 1_000_000,
        })
    }

    /// Switches to another session id (`s-` and 16 hex digits); numbering restarts.
    pub fn set_session(&mut self, session: &str) {
        self.session = session.to_string();
        self.seq = 0;
        self.next_flow = 1;
    }

    /// Moves the clock forward.
    pub fn advance_micros(&mut self, micros: u64) {
        self.micros += micros;
    }

    /// The timestamp the next record gets.
    pub fn now(&self) -> String {
        let us = self.micros % 1_000_000;
        let s = (self.micros / 1_000_000) % 86_400;
        format!(
            "{DAY}T{:02}:{:02}:{:02}.{us:06}Z",
            s / 3600,
            (s / 60) % 60,
            s % 60
        )
    }

    /// Seals and writes one record (ts, session, seq, prev and hash are filled in).
    pub fn write(&mut self, mut rec: FlowRecord) -> std::io::Result<FlowRecord> {
        self.micros += 1000;
        self.seq += 1;
        rec.ts = self.now();
        rec.session = self.session.clone();
        rec.seq = self.seq;
        rec.prev = std::mem::take(&mut self.prev);
        let line = rec.seal();
        self.out.write_all(&line)?;
        self.prev = rec.hash.clone();
        Ok(rec)
    }

    /// A `session_start` record with `detail`.
    pub fn session_start(&mut self, detail: Value) -> std::io::Result<()> {
        let mut r = FlowRecord::new(Event::SessionStart, Kind::Session);
        r.detail = Some(detail);
        self.write(r).map(drop)
    }

    /// A `session_end` record with `detail`.
    pub fn session_end(&mut self, detail: Value) -> std::io::Result<()> {
        let mut r = FlowRecord::new(Event::SessionEnd, Kind::Session);
        r.detail = Some(detail);
        self.write(r).map(drop)
    }

    fn flow_record(
        &mut self,
        event: Event,
        kind: Kind,
        req: &Request<'_>,
        flow: u64,
    ) -> FlowRecord {
        let mut r = FlowRecord::new(event, kind);
        r.flow = Some(flow);
        r.host = Some(req.host.to_string());
        r.port = Some(443);
        r.addr = Some("127.0.0.1".to_string());
        r.region = req.region.map(str::to_string);
        r.jurisdiction = req.jurisdiction.map(str::to_string);
        r.tls = Some(TlsInfo {
            intercepted: true,
            sni: Some(req.host.to_string()),
            alpn: Some("http/1.1".to_string()),
        });
        if kind == Kind::Request {
            r.method = Some(req.method.to_string());
            r.path = Some(req.path.to_string());
        }
        r
    }

    /// An allowed intercepted CONNECT decision (its requests follow separately); returns the
    /// flow id.
    pub fn connect_allowed(&mut self, host: &str) -> std::io::Result<u64> {
        let flow = self.next_flow;
        self.next_flow += 1;
        let req = Request::new(host, "CONNECT", "");
        let mut r = self.flow_record(Event::Decision, Kind::Connect, &req, flow);
        r.decision = Some(Verdict::Allow);
        r.rule = req.rule.map(str::to_string);
        r.reason = Some("host allowed by rule llm".to_string());
        self.write(r)?;
        Ok(flow)
    }

    /// The `end` record of a CONNECT tunnel.
    pub fn connect_end(
        &mut self,
        host: &str,
        flow: u64,
        bytes_out: u64,
        bytes_in: u64,
    ) -> std::io::Result<()> {
        let req = Request::new(host, "CONNECT", "");
        let mut r = self.flow_record(Event::End, Kind::Connect, &req, flow);
        r.bytes_out = Some(bytes_out);
        r.bytes_in = Some(bytes_in);
        r.duration_ms = Some(12.5);
        self.write(r).map(drop)
    }

    /// An allowed request: its `decision` record and its `end` record (status 200).
    pub fn allowed(&mut self, req: &Request<'_>) -> std::io::Result<u64> {
        let flow = self.next_flow;
        self.next_flow += 1;
        let mut d = self.flow_record(Event::Decision, Kind::Request, req, flow);
        d.decision = Some(Verdict::Allow);
        d.rule = req.rule.map(str::to_string);
        d.reason = Some(format!("allowed by rule {}", req.rule.unwrap_or("?")));
        d.query_keys = Some(vec![]);
        self.write(d)?;
        let mut e = self.flow_record(Event::End, Kind::Request, req, flow);
        e.status = Some(200);
        e.bytes_out = Some(req.bytes_out);
        e.bytes_in = Some(req.bytes_in);
        e.duration_ms = Some(3.25);
        self.write(e)?;
        Ok(flow)
    }

    /// A denied request: one `decision` record with status 403 and `reason`.
    pub fn denied(&mut self, req: &Request<'_>, reason: &str) -> std::io::Result<u64> {
        let flow = self.next_flow;
        self.next_flow += 1;
        let mut d = self.flow_record(Event::Decision, Kind::Request, req, flow);
        d.decision = Some(Verdict::Deny);
        d.rule = req.rule.map(str::to_string);
        d.reason = Some(reason.to_string());
        d.status = Some(403);
        self.write(d)?;
        Ok(flow)
    }

    /// Flushes the file.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The standard scenario used by the evidence tests: one session with allowed flows to the
/// EU Mistral endpoint, a denied flow to an unknown host, a residency denial, and session
/// records. Returns the path's contract SHA-256 used in the session records.
pub fn write_pilot_scenario(path: &Path) -> std::io::Result<&'static str> {
    const SHA: &str = "3f1b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f";
    let mut log = SyntheticLog::create(path)?;
    log.set_session("s-0123456789abcdef");
    log.session_start(serde_json::json!({
        "contract": {"path": "tasks/fix-parser.toml", "sha256": SHA, "class": "B"},
        "command": ["claude", "-p", "fix the parser"],
        "user": "agent",
        "enforcement": {"landlock": "enforced", "seccomp": "enforced", "netns": "enforced"}
    }))?;
    let tunnel = log.connect_allowed("api.eu.mistral.ai")?;
    for i in 0..3 {
        let mut req = Request::new("api.eu.mistral.ai", "POST", "/v1/chat/completions");
        req.bytes_out = 2000 + i;
        req.bytes_in = 9000;
        log.allowed(&req)?;
    }
    log.connect_end("api.eu.mistral.ai", tunnel, 100_000, 200_000)?;
    let mut denied = Request::new("paste.evil.example", "POST", "/upload");
    denied.region = None;
    denied.jurisdiction = None;
    denied.rule = None;
    log.denied(&denied, "no rule allows host paste.evil.example")?;
    let mut us = Request::new("api.openai.com", "POST", "/v1/chat/completions");
    us.region = Some("global");
    us.jurisdiction = Some("US");
    us.rule = Some("residency");
    log.denied(
        &us,
        "residency: api.openai.com is global (US), the contract requires EU",
    )?;
    log.session_end(serde_json::json!({"exit_code": 0, "flows": {"allowed": 3, "denied": 2}}))?;
    log.finish()?;
    Ok(SHA)
}
