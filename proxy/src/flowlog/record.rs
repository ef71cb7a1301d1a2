//! One flow-log record and its canonical serialisation.

use egress_policy::Verdict;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev` of the first record of a file: 64 ASCII zeros.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a record says about its flow (`event` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The engine's verdict, written before any byte goes upstream.
    Decision,
    /// The flow finished (status, byte counts, duration).
    End,
    /// A session began (written by the supervisor or `sandbox proxy`).
    SessionStart,
    /// A session ended.
    SessionEnd,
    /// One `done` check ran after the agent (command, exit code, duration, output tail).
    Check,
    /// What the session changed in the workspace's git state (no file content).
    Changes,
    /// A rollback drill of an earlier session (`sandbox rollback --drill`).
    RollbackDrill,
    /// One ref update of a git push (`detail`: ref, old, new), allowed or refused, after the
    /// push's `decision` record and with its flow id.
    RefUpdate,
    /// An earlier session in this log ended without its `session_end` (its supervisor was
    /// killed); `detail` says up to which record it is whole (`sandbox log recover`).
    SessionRecovered,
}

/// What kind of flow a record describes (`kind` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A CONNECT tunnel.
    Connect,
    /// One HTTP request, inside a tunnel or plain.
    Request,
    /// A passthrough TLS tunnel (`intercept = false`).
    Tunnel,
    /// A DNS query (transparent capture).
    Dns,
    /// A TCP connection (transparent capture).
    Tcp,
    /// A UDP datagram flow (transparent capture).
    Udp,
    /// A session record.
    Session,
    /// A host unix socket the agent may connect to (`[sockets] connect`).
    Unix,
    /// A file the agent created that the host would run later (a planted hook or config),
    /// refused.
    File,
}

/// The `tls` object of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    /// `true` when the proxy terminated TLS, `false` for a spliced passthrough tunnel.
    pub intercepted: bool,
    /// The ClientHello SNI, if any.
    pub sni: Option<String>,
    /// The negotiated ALPN protocol with the client (`h2`, `http/1.1`), if any.
    pub alpn: Option<String>,
}

/// One line of the flow log. Field order is the contract's key order: do not reorder.
///
/// Build one with [`FlowRecord::new`] and the builder-style setters, then hand it to
/// [`crate::flowlog::FlowLog::append`], which fills `ts`, `session`, `seq`, `prev` and `hash`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowRecord {
    /// RFC 3339 UTC timestamp with microseconds.
    pub ts: String,
    /// Session id, `s-` and 16 lowercase hex digits.
    pub session: String,
    /// 1, 2, 3 ... within the session.
    pub seq: u64,
    /// Flow id shared by a flow's `decision` and `end` records; null for session records.
    pub flow: Option<u64>,
    /// `decision`, `end`, `session_start`, `session_end`.
    pub event: Event,
    /// The kind of flow.
    pub kind: Kind,
    /// The engine's verdict on `decision` records.
    pub decision: Option<Verdict>,
    /// The rule that decided.
    pub rule: Option<String>,
    /// The engine's reason, or the fault.
    pub reason: Option<String>,
    /// Normalised destination host.
    pub host: Option<String>,
    /// Destination port.
    pub port: Option<u16>,
    /// The IP address actually dialled.
    pub addr: Option<String>,
    /// HTTP method.
    pub method: Option<String>,
    /// Request path without the query string.
    pub path: Option<String>,
    /// Names of the query parameters, never their values.
    pub query_keys: Option<Vec<String>>,
    /// HTTP status returned to the client.
    pub status: Option<u16>,
    /// Body or tunnel bytes client → upstream.
    pub bytes_out: Option<u64>,
    /// Body or tunnel bytes upstream → client.
    pub bytes_in: Option<u64>,
    /// Wall time of the flow in milliseconds, on `end` records.
    pub duration_ms: Option<f64>,
    /// Where the data goes.
    pub region: Option<String>,
    /// The provider's jurisdiction.
    pub jurisdiction: Option<String>,
    /// TLS facts of the flow.
    pub tls: Option<TlsInfo>,
    /// Kind-specific facts.
    pub detail: Option<serde_json::Value>,
    /// Hash of the previous record (64 `0`s for the first line of a file).
    pub prev: String,
    /// SHA-256 of `prev` followed by this record's canonical bytes, lowercase hex.
    pub hash: String,
}

/// The part of a record that is hashed: every key except `hash`, same order.
#[derive(Serialize)]
struct Canonical<'a> {
    ts: &'a str,
    session: &'a str,
    seq: u64,
    flow: Option<u64>,
    event: Event,
    kind: Kind,
    decision: Option<Verdict>,
    rule: &'a Option<String>,
    reason: &'a Option<String>,
    host: &'a Option<String>,
    port: Option<u16>,
    addr: &'a Option<String>,
    method: &'a Option<String>,
    path: &'a Option<String>,
    query_keys: &'a Option<Vec<String>>,
    status: Option<u16>,
    bytes_out: Option<u64>,
    bytes_in: Option<u64>,
    duration_ms: Option<f64>,
    region: &'a Option<String>,
    jurisdiction: &'a Option<String>,
    tls: &'a Option<TlsInfo>,
    detail: &'a Option<serde_json::Value>,
    prev: &'a str,
}

impl FlowRecord {
    /// A record of `event` and `kind` with every other key null; `ts`, `session`, `seq`,
    /// `prev` and `hash` are filled in by the writer.
    pub fn new(event: Event, kind: Kind) -> Self {
        FlowRecord {
            ts: String::new(),
            session: String::new(),
            seq: 0,
            flow: None,
            event,
            kind,
            decision: None,
            rule: None,
            reason: None,
            host: None,
            port: None,
            addr: None,
            method: None,
            path: None,
            query_keys: None,
            status: None,
            bytes_out: None,
            bytes_in: None,
            duration_ms: None,
            region: None,
            jurisdiction: None,
            tls: None,
            detail: None,
            prev: String::new(),
            hash: String::new(),
        }
    }

    /// The canonical bytes: the serialised record without its `hash` member.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let canonical = Canonical {
            ts: &self.ts,
            session: &self.session,
            seq: self.seq,
            flow: self.flow,
            event: self.event,
            kind: self.kind,
            decision: self.decision,
            rule: &self.rule,
            reason: &self.reason,
            host: &self.host,
            port: self.port,
            addr: &self.addr,
            method: &self.method,
            path: &self.path,
            query_keys: &self.query_keys,
            status: self.status,
            bytes_out: self.bytes_out,
            bytes_in: self.bytes_in,
            // JSON has no NaN or infinity: a non-finite duration is logged as null.
            duration_ms: self.duration_ms.filter(|d| d.is_finite()),
            region: &self.region,
            jurisdiction: &self.jurisdiction,
            tls: &self.tls,
            detail: &self.detail,
            prev: &self.prev,
        };
        // Serialising plain data (strings, integers, finite floats, JSON values) cannot fail.
        serde_json::to_vec(&canonical).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// Sets `hash` from `prev` and the canonical bytes, and returns the full line (with its
    /// terminating `\n`).
    pub fn seal(&mut self) -> Vec<u8> {
        let canonical = self.canonical_bytes();
        self.hash = chain_hash(&self.prev, &canonical);
        let mut line = canonical;
        line.pop(); // the closing '}'
        line.extend_from_slice(b",\"hash\":\"");
        line.extend_from_slice(self.hash.as_bytes());
        line.extend_from_slice(b"\"}\n");
        line
    }
}

/// `lowercase_hex(SHA-256(prev ‖ canonical))`.
pub fn chain_hash(prev: &str, canonical: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(canonical);
    hex::encode(hasher.finalize())
}

/// Splits one raw log line (without its `\n`) into its canonical bytes and the `hash` it
/// claims, following `docs/flow-log.md`: the canonical bytes are everything before the last
/// `,"hash":"` followed by `}`. Returns `None` when the line does not end with a well-formed
/// hash member.
pub fn canonical_and_hash(line: &[u8]) -> Option<(Vec<u8>, String)> {
    const MARK: &[u8] = b",\"hash\":\"";
    let pos = line.windows(MARK.len()).rposition(|w| w == MARK)?;
    let rest = &line[pos + MARK.len()..];
    if rest.len() != 64 + 2 || &rest[64..] != b"\"}" {
        return None;
    }
    let hash = std::str::from_utf8(&rest[..64]).ok()?;
    if !hash
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut canonical = line[..pos].to_vec();
    canonical.push(b'}');
    Some((canonical, hash.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FlowRecord {
        let mut r = FlowRecord::new(Event::Decision, Kind::Request);
        r.ts = "2026-11-21T10:04:05.123456Z".into();
        r.session = "s-0123456789abcdef".into();
        r.seq = 1;
        r.flow = Some(7);
        r.decision = Some(Verdict::Allow);
        r.host = Some("api.eu.mistral.ai".into());
        r.port = Some(443);
        r.tls = Some(TlsInfo {
            intercepted: true,
            sni: Some("api.eu.mistral.ai".into()),
            alpn: None,
        });
        r.prev = GENESIS_PREV.into();
        r
    }

    #[test]
    fn keys_are_in_contract_order_and_all_present() {
        let mut r = sample();
        let line = r.seal();
        let text = std::str::from_utf8(&line).unwrap();
        let order = [
            "ts",
            "session",
            "seq",
            "flow",
            "event",
            "kind",
            "decision",
            "rule",
            "reason",
            "host",
            "port",
            "addr",
            "method",
            "path",
            "query_keys",
            "status",
            "bytes_out",
            "bytes_in",
            "duration_ms",
            "region",
            "jurisdiction",
            "tls",
            "detail",
            "prev",
            "hash",
        ];
        let mut at = 0;
        for key in order {
            let needle = format!("\"{key}\":");
            let found = text[at..]
                .find(&needle)
                .unwrap_or_else(|| panic!("{key} missing or out of order in {text}"));
            at += found + needle.len();
        }
        assert!(text.ends_with("\"}\n"));
        assert!(text.starts_with("{\"ts\":\"2026-11-21T10:04:05.123456Z\",\"session\":"));
        assert!(text.contains("\"rule\":null,"));
        assert!(text.contains("\"decision\":\"allow\","));
        assert!(text.contains("\"event\":\"decision\",\"kind\":\"request\""));
    }

    #[test]
    fn hash_covers_prev_and_canonical_bytes() {
        let mut r = sample();
        let line = r.seal();
        let (canonical, hash) = canonical_and_hash(&line[..line.len() - 1]).unwrap();
        assert_eq!(canonical, r.canonical_bytes());
        assert_eq!(hash, r.hash);
        assert_eq!(chain_hash(GENESIS_PREV, &canonical), hash);
        // Changing any byte of the canonical part changes the hash.
        let mut tampered = canonical.clone();
        tampered[10] ^= 1;
        assert_ne!(chain_hash(GENESIS_PREV, &tampered), hash);
        // The same record after another prev hashes differently.
        assert_ne!(chain_hash(&"1".repeat(64), &canonical), hash);
    }

    #[test]
    fn parses_back() {
        let mut r = sample();
        let line = r.seal();
        let back: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(back, serde_json::to_value(&r).unwrap());
        assert_eq!(back["hash"].as_str().unwrap(), r.hash);
    }

    #[test]
    fn rejects_malformed_hash_members() {
        assert!(canonical_and_hash(b"{\"a\":1}").is_none());
        assert!(canonical_and_hash(b"{\"a\":1,\"hash\":\"abc\"}").is_none());
        let upper = format!("{{\"a\":1,\"hash\":\"{}\"}}", "A".repeat(64));
        assert!(canonical_and_hash(upper.as_bytes()).is_none());
    }

    #[test]
    fn non_finite_duration_is_null() {
        let mut r = sample();
        r.duration_ms = Some(f64::NAN);
        let line = r.seal();
        assert!(std::str::from_utf8(&line)
            .unwrap()
            .contains("\"duration_ms\":null"));
    }
}
