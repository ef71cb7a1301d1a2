//! One flow-log record as the readers see it (`docs/flow-log.md`): parsed leniently from the
//! raw line, after the hash chain has judged the raw bytes.

use serde::{Deserialize, Serialize};

/// The `tls` object of a record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct TlsFacts {
    /// `true` when the proxy terminated TLS.
    #[serde(default)]
    pub intercepted: bool,
    /// The ClientHello SNI.
    #[serde(default)]
    pub sni: Option<String>,
    /// The negotiated ALPN protocol.
    #[serde(default)]
    pub alpn: Option<String>,
}

/// One line of the flow log. Every key of the contract; `Option` where it may be null.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct LogRecord {
    /// RFC 3339 UTC timestamp with microseconds.
    pub ts: String,
    /// Session id.
    pub session: String,
    /// Sequence number within the session.
    #[serde(default)]
    pub seq: u64,
    /// Flow id shared by a flow's `decision` and `end` records.
    #[serde(default)]
    pub flow: Option<u64>,
    /// `decision`, `end`, `session_start`, `session_end`.
    pub event: String,
    /// `connect`, `request`, `tunnel`, `dns`, `tcp`, `udp`, `session`.
    pub kind: String,
    /// `allow`, `deny` or null.
    #[serde(default)]
    pub decision: Option<String>,
    /// The rule that decided.
    #[serde(default)]
    pub rule: Option<String>,
    /// The engine's reason or the fault.
    #[serde(default)]
    pub reason: Option<String>,
    /// Normalised destination host.
    #[serde(default)]
    pub host: Option<String>,
    /// Destination port.
    #[serde(default)]
    pub port: Option<u16>,
    /// The address dialled.
    #[serde(default)]
    pub addr: Option<String>,
    /// HTTP method.
    #[serde(default)]
    pub method: Option<String>,
    /// Path without the query string.
    #[serde(default)]
    pub path: Option<String>,
    /// Names of the query parameters.
    #[serde(default)]
    pub query_keys: Option<Vec<String>>,
    /// HTTP status returned to the client.
    #[serde(default)]
    pub status: Option<u16>,
    /// Bytes client → upstream.
    #[serde(default)]
    pub bytes_out: Option<u64>,
    /// Bytes upstream → client.
    #[serde(default)]
    pub bytes_in: Option<u64>,
    /// Wall time of the flow.
    #[serde(default)]
    pub duration_ms: Option<f64>,
    /// Where the data goes.
    #[serde(default)]
    pub region: Option<String>,
    /// The provider's jurisdiction.
    #[serde(default)]
    pub jurisdiction: Option<String>,
    /// TLS facts.
    #[serde(default)]
    pub tls: Option<TlsFacts>,
    /// Kind-specific facts (session records: contract, command, exit code ...).
    #[serde(default)]
    pub detail: Option<serde_json::Value>,
    /// The record's own hash (already checked by the chain).
    #[serde(default)]
    pub hash: String,
}

impl LogRecord {
    /// `true` for a `decision` record.
    pub fn is_decision(&self) -> bool {
        self.event == "decision"
    }

    /// `true` for an `end` record.
    pub fn is_end(&self) -> bool {
        self.event == "end"
    }

    /// `true` for `session_start` and `session_end` records.
    pub fn is_session(&self) -> bool {
        self.event == "session_start" || self.event == "session_end" || self.kind == "session"
    }

    /// `true` when the engine denied the flow.
    pub fn is_denied(&self) -> bool {
        self.decision.as_deref() == Some("deny")
    }

    /// `true` when the engine allowed the flow.
    pub fn is_allowed(&self) -> bool {
        self.decision.as_deref() == Some("allow")
    }

    /// An allowed CONNECT whose requests are logged on their own: a container, not a flow.
    pub fn is_container(&self) -> bool {
        self.kind == "connect"
            && self.is_allowed()
            && self.tls.as_ref().is_none_or(|t| t.intercepted)
    }
}

/// Where a record came from: the file and its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordRef {
    /// The file as given on the command line.
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// The record's timestamp.
    pub ts: String,
    /// The record's session.
    pub session: String,
    /// The record's sequence number.
    pub seq: u64,
}

impl std::fmt::Display for RecordRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{} ({} {} seq {})",
            self.file, self.line, self.ts, self.session, self.seq
        )
    }
}
